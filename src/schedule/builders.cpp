#include "schedule/builders.h"

#include <algorithm>

#include "schedule/tile_dependencies.h"
#include "schedule/wait_groups.h"

namespace anvil {

Schedule launch_per_rop(const std::string& policy, const TileGraph& tg, const Gpu& gpu, const std::string& prefix) {
    Schedule s;
    s.policy = policy;
    s.gpu = gpu;
    s.tiles = tg;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        Launch launch;
        launch.name = prefix + std::to_string(r);
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile) {
            launch.queues.push_back({static_cast<int>(s.tasks.size())});
            s.tasks.push_back(Task{static_cast<int>(r), tile, {}, {}});
        }
        s.launches.push_back(std::move(launch));
    }
    return s;
}

Schedule persistent_schedule(const std::string& policy, const TileGraph& tg, const Gpu& gpu,
                             const std::vector<Placed>& order, int blocks) {
    Schedule s;
    s.policy = policy;
    s.gpu = gpu;
    s.tiles = tg;
    for (const Placed& p : order) s.tasks.push_back(Task{p.rop, p.tile, {}, {}});
    const std::vector<std::vector<int>> needed = tile_dependencies(tg, s.tasks);
    Launch launch;
    launch.name = "anvil_megakernel";
    launch.queues.resize(static_cast<size_t>(std::max(1, blocks)));
    std::vector<int> block_of(order.size());
    for (size_t t = 0; t < order.size(); ++t) {
        const int block = order[t].block;
        ANVIL_CHECK(block >= 0 && block < blocks, "task placed on block " + std::to_string(block));
        launch.queues[block].push_back(static_cast<int>(t));
        block_of[t] = block;
    }
    WaitPlan plan = plan_waits(tg, s.tasks, block_of, needed);
    s.groups = std::move(plan.groups);
    for (size_t t = 0; t < order.size(); ++t) s.tasks[t].waits = std::move(plan.waits[t]);
    s.launches.push_back(std::move(launch));
    s.blocks_per_sm = static_cast<int>(block_share(gpu, blocks));  // the grid's co-resident blocks per SM
    return s;
}

}  // namespace anvil
