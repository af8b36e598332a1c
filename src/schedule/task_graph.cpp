#include "schedule/task_graph.h"

#include <algorithm>

#include "schedule/tile_dependencies.h"

namespace anvil {

std::vector<Task> task_graph(const TileGraph& tg) {
    std::vector<Task> tasks;
    for (size_t r = 0; r < tg.rops.size(); ++r)
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile) tasks.push_back(Task{static_cast<int>(r), tile, {}, {}, {}});
    std::vector<std::vector<int>> deps = tile_dependencies(tg, tasks);
    for (size_t t = 0; t < tasks.size(); ++t) tasks[t].deps = std::move(deps[t]);
    return tasks;
}

std::vector<int> rop_waves(const TileGraph& tg, const std::vector<Task>& tasks) {
    std::vector<int> wave(tg.rops.size(), 0);
    for (const Task& t : tasks)  // producers come first: one pass in task order
        for (int d : t.deps) wave[t.rop] = std::max(wave[t.rop], wave[tasks[d].rop] + 1);
    return wave;
}

}  // namespace anvil
