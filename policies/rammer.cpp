// rammer (Rammer, OSDI'20): co-schedule the rTasks of independent operators.
// rOps are grouped into waves (rOps of one wave never depend on each other);
// each wave's tiles are placed statically on the SMs, largest first onto the
// least loaded, inside one persistent kernel. A GEMM rOp takes the tile
// shape with the best throughput per resource when its wave fills the GPU,
// and the one fastest alone on its share of the SMs when it does not.
#include "schedule/orders.h"
#include "schedule/builders.h"

namespace anvil {

// The pipeline has chosen the tile shapes by wave (the registry entry asks for it).
Schedule rammer_policy(const TileGraph& tg, const Gpu& gpu) {
    return persistent_schedule("rammer", tg, gpu, wavefront_order(tg, gpu), wavefront_blocks(tg, gpu));
}

}  // namespace anvil
