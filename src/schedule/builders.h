// Schedules built from placements: one persistent launch from a global
// order, or one launch per rOp.
#pragma once
#include <string>
#include <vector>

#include "schedule/orders.h"

namespace anvil {

// One persistent launch ("anvil_megakernel") of `blocks` blocks running the
// tasks in `order`, which must be topological. Each task waits on the
// counter groups that cover the producer tiles it reads (plan_waits), except
// those its block already knows complete (same-SM producers need no counter).
Schedule persistent_schedule(const std::string& policy, const TileGraph& tg, const Gpu& gpu,
                             const std::vector<Placed>& order, int blocks);

// One launch per rOp ("<prefix>N"), one block per tile, no dependencies:
// the launch boundary is the synchronisation.
Schedule launch_per_rop(const std::string& policy, const TileGraph& tg, const Gpu& gpu, const std::string& prefix);

}  // namespace anvil
