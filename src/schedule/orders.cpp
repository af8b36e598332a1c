#include "schedule/orders.h"

#include <algorithm>

#include "schedule/cost_model.h"
#include "schedule/task_graph.h"

namespace anvil {

int wavefront_blocks(const TileGraph& tg, const Gpu& gpu) {
    int64_t tasks = 0;
    for (const ROp& op : tg.rops) tasks += op.tiles;
    const int64_t slots = int64_t{gpu.sm_count} * megakernel_blocks_per_sm(tg, gpu);
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(slots, tasks)));
}

double block_share(const Gpu& gpu, int blocks) {
    return std::max(1, (blocks + gpu.sm_count - 1) / std::max(1, gpu.sm_count));
}

std::vector<Placed> wavefront_order(const TileGraph& tg, const Gpu& gpu, bool producer_affine) {
    const std::vector<Task> tasks = task_graph(tg);  // rOp by rOp, tile by tile
    const std::vector<int> wave = rop_waves(tg, tasks);
    std::vector<int> first_task(tg.rops.size() + 1, 0);
    for (size_t r = 0; r < tg.rops.size(); ++r) first_task[r + 1] = first_task[r] + tg.rops[r].tiles;
    std::vector<int> block_of(tasks.size(), -1);
    const std::vector<double> tile_s = tile_seconds_in_order(tg, gpu);
    const int blocks = wavefront_blocks(tg, gpu);
    const double share = block_share(gpu, blocks);
    std::vector<std::vector<int>> by_wave;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (wave[r] >= static_cast<int>(by_wave.size())) by_wave.resize(wave[r] + 1);
        by_wave[wave[r]].push_back(static_cast<int>(r));
    }
    std::vector<Placed> order;
    std::vector<double> load(blocks, 0);
    int next = 0;
    for (std::vector<int>& rops : by_wave) {
        // Rops of one wave are independent: any order of their tiles is topological.
        std::stable_sort(rops.begin(), rops.end(), [&](int a, int b) { return tile_s[a] > tile_s[b]; });
        const double floor = *std::max_element(load.begin(), load.end());  // the wave starts when the last one ends
        std::fill(load.begin(), load.end(), floor);
        for (int r : rops)
            for (int tile = 0; tile < tg.rops[r].tiles; ++tile) {
                // Of the least-loaded blocks, the first after the last one
                // used: small rOps of later waves go to other blocks than
                // the first ones, so no block collects every small tile
                // (and its counter polls).
                int b = next;
                for (int k = 1; k < blocks; ++k) {
                    const int o = (next + k) % blocks;
                    if (load[o] < load[b]) b = o;
                }
                // Producer-affine: the block of its latest producer when that
                // one is as lightly loaded; there it polls no counter for the
                // producer (queue order) nor for what the producer waited on.
                const Task& task = tasks[first_task[r] + tile];
                if (producer_affine && !task.deps.empty()) {
                    const int p = block_of[*std::max_element(task.deps.begin(), task.deps.end())];
                    if (p >= 0 && load[p] <= load[b]) b = p;
                    else next = (b + 1) % blocks;
                } else {
                    next = (b + 1) % blocks;
                }
                load[b] += tile_s[r] * share + gpu.task_overhead_s;
                block_of[first_task[r] + tile] = b;
                order.push_back(Placed{r, tile, b});
            }
    }
    return order;
}

std::vector<Placed> round_robin_order(const TileGraph& tg, int blocks) {
    std::vector<Placed> order;
    for (size_t r = 0; r < tg.rops.size(); ++r)
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile)
            order.push_back(Placed{static_cast<int>(r), tile, static_cast<int>(order.size() % blocks)});
    return order;
}

}  // namespace anvil
