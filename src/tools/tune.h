// anvil tune: measures the candidate tile shapes of every distinct GEMM
// problem (matmul, implicit-GEMM conv2d) of a model on the device, and the
// K splits of those that cannot fill the grid whole (partials, then their
// reduce), checks each candidate's output against the model's own run, and
// returns the measured seconds per tile by cost key
// (kernels_db/measured/<gpu>.yaml), which the cost model then uses in place
// of its estimate -- for a split, when choose_split_k weighs it. Identical
// problems (a transformer's layers) are measured once, and all candidates
// compile as one source.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "frontend/graph.h"
#include "schedule/schedule.h"

namespace anvil {

struct TuneSplit {
    size_t candidate = 0;  // the tile shape split: an index into candidates
    int ways = 2;          // K slices
};

struct TuneProblem {
    std::string key;              // the problem: cost_key without the tile shape
    std::vector<int> rops;        // the model's rOps with this problem
    std::vector<ROp> candidates;  // tile variants of rops[0], each once; its own first
    std::vector<TuneSplit> splits;  // K splits of the candidates that leave blocks of the grid idle
};

// The distinct GEMM problems of `tg` and their candidates on `gpu`.
std::vector<TuneProblem> tune_problems(const TileGraph& tg, const Gpu& gpu);

// What one device run measures: every rOp of `tg` in a launch of its own
// (the model's values fill the arena), then one launch per candidate, each
// writing its problem's output again (a split: two, its partials into a
// scratch buffer of their own, then the reduce into the output).
struct TuningPlan {
    Schedule schedule;
    size_t model_launches = 0;
    struct Candidate {
        size_t problem = 0;
        size_t launch = 0;
        int ways = 1;      // > 1: a split, launches `launch` (partials) and `launch + 1` (reduce)
        ByteRange writes;  // the bytes it (re)writes into the problem's output
    };
    std::vector<Candidate> candidates;
};
TuningPlan tuning_plan(const TileGraph& tg, const Gpu& gpu, const std::vector<TuneProblem>& problems);

// One measured rOp of a candidate: a whole tile, or a split's partials or
// reduce (`ways` > 1; both judged by the reduce's output).
struct TuneRecord {
    std::string key;  // the rOp's cost key
    int ways = 1;     // the candidate's K slices
    bool ok = false;  // its output matched the model's run
    double rel_l2 = 0;
    double launch_s = 0;  // median of the timed runs
    double tile_s = 0;    // launch_s per wave of tiles: the cost model's unit
};

struct TuneOptions {
    int iters = 10;
    int device = 0;
};

// Plans `graph` (fused, like the anvil policy), runs the tuning plan on the
// device and returns `gpu` with measured_tile_s extended by every candidate
// that matched. `progress` gets one line per problem. Throws UserError when
// no device is usable.
Gpu tune(const Graph& graph, const Gpu& gpu, const TuneOptions& opt, std::vector<TuneRecord>* records,
         const std::function<void(const std::string&)>& progress = {});

}  // namespace anvil
