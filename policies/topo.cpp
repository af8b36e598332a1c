// topo: the simplest megakernel. Every rTask in one persistent launch,
// rOperators in topological order, tiles dealt round-robin to one block per
// SM, each tile waiting only for the producer tiles it reads.
#include "schedule/orders.h"
#include "schedule/builders.h"

namespace anvil {

Schedule topo_policy(const TileGraph& tg, const Gpu& gpu) {
    const int blocks = wavefront_blocks(tg, gpu);
    return persistent_schedule("topo", tg, gpu, round_robin_order(tg, blocks), blocks);
}

}  // namespace anvil
