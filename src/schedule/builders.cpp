#include "schedule/builders.h"

#include <algorithm>
#include <unordered_map>

#include "schedule/tile_dependencies.h"

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
            s.tasks.push_back(Task{static_cast<int>(r), tile, {}});
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
    for (const Placed& p : order) s.tasks.push_back(Task{p.rop, p.tile, {}});
    std::vector<std::vector<int>> deps = tile_dependencies(tg, s.tasks);
    Launch launch;
    launch.name = "anvil_megakernel";
    launch.queues.resize(static_cast<size_t>(std::max(1, blocks)));
    std::unordered_map<int, int> latest;  // block -> latest producer on it
    for (size_t t = 0; t < order.size(); ++t) {
        const int block = order[t].block;
        ANVIL_CHECK(block >= 0 && block < blocks, "task placed on block " + std::to_string(block));
        launch.queues[block].push_back(static_cast<int>(t));
        latest.clear();
        for (int d : deps[t]) {
            const int b = order[d].block;
            if (b == block) continue;  // the queue runs d first
            int& l = latest[b];
            l = std::max(l, d);  // d's block runs d before l, and l before this task
        }
        for (const auto& [b, d] : latest) s.tasks[t].deps.push_back(d);
        std::sort(s.tasks[t].deps.begin(), s.tasks[t].deps.end());
    }
    s.launches.push_back(std::move(launch));
    return s;
}

}  // namespace anvil
