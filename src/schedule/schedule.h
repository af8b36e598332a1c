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
    std::vector<int> deps;  // task ids, all smaller than this task's id, same launch
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
    int threads_per_block = 256;
};

// Checks the invariants above; throws InternalError naming the first breach.
void verify_schedule(const Schedule& s);

}  // namespace anvil
