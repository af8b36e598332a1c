// welder (Welder, OSDI'23): fuse operators so that intermediates stay in
// registers or shared memory (the fusion pass), pick each fused group's
// tile shape for its own fastest run on the whole GPU, and launch one kernel
// per group.
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "schedule/variants.h"
#include "schedule/builders.h"

namespace anvil {

Schedule welder_policy(const TileGraph& unfused, const Gpu& gpu) {
    TileGraph tg = fuse(unfused, gpu);
    verify_tile_graph(tg, gpu);
    for (ROp& op : tg.rops) op = fastest_alone(op, gpu, gpu.sm_count);
    return launch_per_rop("welder", tg, gpu, "anvil_group_");
}

}  // namespace anvil
