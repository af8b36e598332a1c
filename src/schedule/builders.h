// Schedules built from placements: one persistent launch from a global
// order, or one launch per rOp.
#pragma once
#include <string>
#include <vector>

#include "schedule/orders.h"

namespace anvil {

// One persistent launch ("anvil_megakernel") of `blocks` blocks running the
// tasks in `order`, which must be topological. Each task waits for the
// producer tiles it reads, except those that queue order already puts
// before it: of the producers on one block only the latest is kept, and
// none on its own block (same-SM edges need no counter).
Schedule persistent_schedule(const std::string& policy, const TileGraph& tg, const Gpu& gpu,
                             const std::vector<Placed>& order, int blocks);

// One launch per rOp ("<prefix>N"), one block per tile, no dependencies:
// the launch boundary is the synchronisation.
Schedule launch_per_rop(const std::string& policy, const TileGraph& tg, const Gpu& gpu, const std::string& prefix);

}  // namespace anvil
