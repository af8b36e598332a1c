// topo: the first megakernel schedule. Every rTask of the graph in one
// persistent launch, rOperators in topological order, tiles dealt round-robin
// to one block per SM, each tile waiting only for the producer tiles it reads.
#include "anvil/policy.h"

namespace anvil {

Schedule topo_policy(const TileGraph& tg, const Gpu& gpu) {
    Schedule s;
    s.policy = "topo";
    s.gpu = gpu;
    s.tiles = tg;
    for (size_t r = 0; r < tg.rops.size(); ++r)
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile) s.tasks.push_back(Task{static_cast<int>(r), tile, {}});
    std::vector<std::vector<int>> deps = tile_dependencies(tg, s.tasks);
    for (size_t t = 0; t < s.tasks.size(); ++t) s.tasks[t].deps = std::move(deps[t]);

    int blocks = std::max(1, std::min<int>(gpu.sm_count, static_cast<int>(s.tasks.size())));
    Launch launch;
    launch.name = "anvil_megakernel";
    launch.queues.resize(blocks);
    for (size_t t = 0; t < s.tasks.size(); ++t) launch.queues[t % blocks].push_back(static_cast<int>(t));
    s.launches.push_back(std::move(launch));
    return s;
}

}  // namespace anvil
