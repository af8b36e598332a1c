// welder (Welder, OSDI'23): fuse operators so that intermediates stay in
// registers or shared memory (the fusion pass), pick each fused group's
// tile shape for its own fastest run on the whole GPU, and launch one kernel
// per group.
#include "schedule/builders.h"

namespace anvil {

// The pipeline has fused `tg` and picked each group's fastest tile shape
// (the registry entry asks for both).
Schedule welder_policy(const TileGraph& tg, const Gpu& gpu) {
    return launch_per_rop("welder", tg, gpu, "anvil_group_");
}

}  // namespace anvil
