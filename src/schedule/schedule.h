// A Schedule: which tasks exist, in which global order, which block runs
// which, what each waits for, and how the work is cut into kernel launches.
// Every dependency points backwards in the global order and every block runs
// its queue in increasing order, so with all blocks of a launch co-resident
// the launch cannot deadlock. Nothing here assumes a single GPU: a launch is
// a set of per-block queues over task ids.
#pragma once
#include <string>
#include <vector>

#include "target/gpu.h"
#include "tile/tile_graph.h"

namespace anvil {

struct Task {
    int rop = 0;
    int tile = 0;
    std::vector<int> deps;   // task ids, all smaller than this task's id, same launch
    std::vector<int> waits;  // counter groups (Schedule::groups) it waits for
    // Not empty: the task is in no queue; the last of these (earlier tasks,
    // one launch: a split-K reduce's K slices) to publish runs it, after a
    // ticket each (rtasks/megakernel.cuh, anvil_take_tickets). Its waits then
    // name only counters whose tasks all precede the first of them.
    std::vector<int> joins;
};

// An arrival counter shared by a region of one rOp's output: the tasks of
// rOp `rop` whose tile is in [begin, end) each add 1 to it when they have
// published, and a task that waits for the group waits until all of them
// have (MPK's events). Every member must come before every waiter in the
// global order, in the same launch: the deadlock-freedom argument
// (rtasks/megakernel.cuh) needs nothing more.
struct CounterGroup {
    int rop = 0;
    int begin = 0;  // tiles [begin, end)
    int end = 0;
};

struct Launch {
    std::string name;                      // the kernel's name in the emitted source
    std::vector<std::vector<int>> queues;  // one per block: task ids, ascending
};

struct Schedule {
    std::string policy;
    Gpu gpu;
    TileGraph tiles;
    std::vector<Task> tasks;      // global order
    std::vector<Launch> launches; // run one after another
    std::vector<CounterGroup> groups;  // what Task::waits names
    int threads_per_block = 256;
    // Blocks of a persistent launch that share one SM (the grid is
    // SMs x blocks_per_sm); emit asks the compiler for registers that let
    // this many be co-resident (__launch_bounds__).
    int blocks_per_sm = 1;
};

// Checks the invariants above; throws InternalError naming the first breach.
void verify_schedule(const Schedule& s);

}  // namespace anvil
