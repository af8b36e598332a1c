// The task graph before placement: every tile of every rOp with its
// tile-level dependencies, and the rOps' waves.
#pragma once
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

// Every tile of every rOp, rOps in tile-graph order, with its tile-level
// dependencies (a topological order of the task graph).
std::vector<Task> task_graph(const TileGraph& tg);

// The wave of every rOp: 0 for rOps that read no other rOp's output, else
// one more than the latest wave among the rOps it depends on.
std::vector<int> rop_waves(const TileGraph& tg, const std::vector<Task>& tasks);

}  // namespace anvil
