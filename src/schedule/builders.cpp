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
            s.tasks.push_back(Task{static_cast<int>(r), tile, {}, {}, {}});
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
    for (const Placed& p : order) s.tasks.push_back(Task{p.rop, p.tile, {}, {}, {}});
    const std::vector<std::vector<int>> needed = tile_dependencies(tg, s.tasks);
    Launch launch;
    launch.name = "anvil_megakernel";
    launch.queues.resize(static_cast<size_t>(std::max(1, blocks)));
    std::vector<int> block_of(order.size());
    std::vector<int> queued_anyway(tg.rops.size(), 0);
    for (size_t t = 0; t < order.size(); ++t) {
        const int block = order[t].block;
        ANVIL_CHECK(block >= 0 && block < blocks, "task placed on block " + std::to_string(block));
        block_of[t] = block;
        if (tg.rops[order[t].rop].by_last_slice && tg.rops[order[t].rop].kind == TaskKind::rowwise) {
            // Run by the last of its K slices (the tasks that write the
            // partials it reads), when all else it reads comes before the
            // first of them (megakernel.cuh's argument); else queued here.
            const ROp& op = tg.rops[order[t].rop];
            const VertexId scratch = tg.buffers[op.reads.front()].storage;
            std::vector<int> joins;
            int last_other = -1;
            for (int p : needed[t]) {
                if (tg.buffers[tg.rops[s.tasks[p].rop].node].storage == scratch) joins.push_back(p);
                else last_other = std::max(last_other, p);
            }
            if (!joins.empty() && last_other < *std::min_element(joins.begin(), joins.end())) {
                s.tasks[t].joins = std::move(joins);
                block_of[t] = -1 - static_cast<int>(t);  // a block of its own: no task knows it done by queue order
                continue;
            }
            ++queued_anyway[order[t].rop];
        }
        launch.queues[block].push_back(static_cast<int>(t));
    }
    WaitPlan plan = plan_waits(tg, s.tasks, block_of, needed);
    s.groups = std::move(plan.groups);
    for (size_t t = 0; t < order.size(); ++t) s.tasks[t].waits = std::move(plan.waits[t]);
    s.launches.push_back(std::move(launch));
    for (size_t r = 0; r < tg.rops.size(); ++r)
        if (queued_anyway[r] > 0)
            s.tiles.rops[r].reduce_mode += "; " + std::to_string(queued_anyway[r]) +
                                           " tasks queued: they read what is produced after their first K slice";
    s.blocks_per_sm = static_cast<int>(block_share(gpu, blocks));  // the grid's co-resident blocks per SM
    return s;
}

}  // namespace anvil
