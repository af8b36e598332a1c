// per_op: the baseline frameworks use. One kernel launch per rOperator, one
// block per tile; the launch boundary is the only synchronisation.
#include "schedule/builders.h"

namespace anvil {

Schedule per_op_policy(const TileGraph& tg, const Gpu& gpu) { return launch_per_rop("per_op", tg, gpu, "anvil_op_"); }

}  // namespace anvil
