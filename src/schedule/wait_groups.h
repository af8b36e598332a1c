// Which counters a task of a persistent launch waits on: the producer
// tiles it reads, covered by runs of consecutive tiles of each producer rOp
// (one counter per distinct run), so that a task reading a whole rOp, or a
// row band of it, waits on one counter however many tiles that holds.
#pragma once
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

struct WaitPlan {
    std::vector<CounterGroup> groups;       // only the groups some task waits on
    std::vector<std::vector<int>> waits;    // per task: group ids
};

// `needed[t]`: the earlier tasks whose output task t reads (tile_dependencies);
// `block_of[t]`: its block (queues run in task order). A run is waited on
// only when every tile in it is needed or already known complete, so every
// member precedes the waiter in the global order. Known
// complete: what a vector clock over the blocks proves finished when the
// task starts (its block's earlier tasks and everything its block's waits
// imply, transitively, as the race checker would find); a task waits on
// nothing already known, and producer rOps are covered latest first, so
// that a wait for a late producer spares the waits it implies. A read that
// would take more than a few runs of one producer (strided) waits for
// their whole span instead, when every tile of the span is earlier: a
// task may then wait for tiles it does not read, never for a later one.
// So does a split-K reduce whose slices are runs apart (ragged bands).
// A task with Task::joins (run by the last of them, in no queue; its
// block_of is a block of its own) knows what its joins knew, and waits
// only for tasks before its first join, never for the joins themselves.
WaitPlan plan_waits(const TileGraph& tg, const std::vector<Task>& tasks, const std::vector<int>& block_of,
                    const std::vector<std::vector<int>>& needed);

}  // namespace anvil
