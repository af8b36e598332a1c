// per_op: the baseline frameworks use. One kernel launch per rOperator, one
// block per tile; the launch boundary is the only synchronisation.
#include "anvil/policy.h"

namespace anvil {

Schedule per_op_policy(const TileGraph& tg, const Gpu& gpu) {
    Schedule s;
    s.policy = "per_op";
    s.gpu = gpu;
    s.tiles = tg;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        Launch launch;
        launch.name = "anvil_op_" + std::to_string(r);
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile) {
            launch.queues.push_back({static_cast<int>(s.tasks.size())});
            s.tasks.push_back(Task{static_cast<int>(r), tile, {}});
        }
        s.launches.push_back(std::move(launch));
    }
    return s;
}

}  // namespace anvil
