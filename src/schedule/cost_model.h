// The cost model: predicts a schedule's time per task and per SM, and its
// memory traffic at each level, from the GPU description (peak rates,
// latencies) and the tiles' measured times where kernels_db has them.
//
// Traffic is counted per rOp and tensor: an rOp writes its output once (to
// DRAM, eventually: the arena is never reused) and reads each operand once
// per rOp (tiles of one rOp share their reads through L2). A read is served
// by L2 when the tensor was last touched within half of L2's capacity of
// traffic, in the schedule's global order; otherwise by DRAM. Intermediates
// that fusion keeps in registers or shared memory cost nothing.
//
// Time: a tile's time on one SM is its work (the largest of its compute
// time, FLOPs at the SM's share of the unit's peak or its multiply's
// shared-memory wavefronts, and its memory time, bytes at the SM's share
// of DRAM and L2 bandwidth) plus the memory latency it leaves exposed (its
// K loop's and its serial round trips: src/schedule/cost_terms.h); a
// measured time replaces all of it. The schedule is then played: launches
// one after another, each paying the launch overhead; an SM holds
// blocks_per_sm blocks, each with its own timeline (a persistent launch's
// blocks stay in their slot, a wider one's go to the slot that frees
// first); a task starts when its block is free and the counters it waits
// on are complete, plus the sync latency when a counter's tasks ran on
// another SM, plus one poll round trip per 32 counters (warp 0 polls them
// in parallel); it takes max(alone, work x the SM's busy blocks). The
// latencies are fitted to measured profiles (docs/perf/cost-model.md).
#pragma once
#include <string>
#include <vector>

#include "schedule/cost_terms.h"
#include "schedule/schedule.h"
#include "target/occupancy.h"  // kCudaCoreBlocksPerSm, kMegakernelSmemExtra

namespace anvil {

// Traffic and work of a whole rOp under a schedule's order.
struct ROpCost {
    double flops = 0;
    double dram_read = 0, dram_write = 0, l2_read = 0;  // bytes
    double epilogue_instructions = 0;  // fused elementwise work over every value the rOp stores
    double epilogue_rounds = 0;        // dependent round trips of that work, over every value
    double tile_s = 0;       // predicted seconds of one tile on one SM: work_s + latency_s
    double work_s = 0;       // of which compute and bandwidth (what co-resident blocks share)
    double latency_s = 0;    // of which exposed memory latency (src/schedule/cost_terms.h); all of a measured time
    bool measured = false;   // tile_s comes from kernels_db
};

struct Prediction {
    double total_s = 0;
    double dram_bytes = 0;  // read + written
    double l2_bytes = 0;    // reads served by L2
    double flops = 0;
    std::vector<ROpCost> rops;
    std::vector<double> start_s, end_s;  // per task
    std::vector<int> sm;                 // per task: the SM that runs it
    std::vector<double> sm_busy_s;       // per SM
    std::vector<double> launch_start_s, launch_end_s;
    double sm_idle_share = 0;  // of sm_count x total_s
    int cross_sm_deps = 0;     // counter waits whose arrivals come from another SM
};

// The key under which kernels_db stores the measured time of one tile of
// `op`: kind, storage types, tile shape, problem shape and operand layout,
// and the fused work by its operations (so identical layers share a key).
std::string cost_key(const ROp& op);

// Most blocks of `threads` threads using `smem` bytes each that fit on one
// SM, registers aside (target/occupancy.h).
int blocks_per_sm(const Gpu& gpu, int threads, int smem);

// The persistent megakernel's blocks per SM: kCudaCoreBlocksPerSm
// (target/occupancy.h), or fewer where shared memory does not allow them.
int megakernel_blocks_per_sm(const TileGraph& tg, const Gpu& gpu);
// ... of a megakernel whose largest tile takes `tile_smem` bytes.
int megakernel_blocks_per_sm(int tile_smem, const Gpu& gpu);

Prediction predict(const Schedule& s);

// A schedule as the timeline plays it: predict() builds it from a
// Schedule, src/tools/cost_fit.cpp from the schedules of an older commit.
struct Timeline {
    std::vector<Launch> launches;
    std::vector<int> rop;                    // per task
    std::vector<std::vector<int>> waits;     // per task: the counters it waits for
    std::vector<std::vector<int>> members;   // per counter: the tasks that complete it
    std::vector<double> poll_rounds;         // per task: rounds of counter polls
    std::vector<double> tile_s, work_s;      // per rOp: one tile alone, and its throughput part
    int blocks_per_sm = 1;                   // co-resident blocks per SM
    // Per task: the tasks the last of which runs it (Task::joins; empty:
    // queued). Played on that one's block right after it.
    std::vector<std::vector<int>> joins;
};

// The schedule's timeline without its tiles' times: launches, each task's
// rOp, counters and poll rounds, blocks per SM (predict() adds the times).
Timeline schedule_timeline(const Schedule& s);

// Plays `tl` on `g` into p's timeline fields (start, end, SM per task, busy
// time per SM, launches, total, idle share, crossing dependencies).
void play(const Gpu& g, const Timeline& tl, Prediction& p);

// Predicted seconds of one tile of each rOp, the rOps run in their
// tile-graph order: what policies weigh tasks by before a schedule exists.
std::vector<double> tile_seconds_in_order(const TileGraph& tg, const Gpu& g);
// The same, with each rOp's split of a tile into work (what co-resident
// blocks share) and exposed latency.
std::vector<ROpCost> tile_costs_in_order(const TileGraph& tg, const Gpu& g);

// Predicted seconds of one tile of `op` with every read served by L2: for
// comparing tile shapes of one rOp.
double tile_seconds_alone(const Gpu& g, const ROp& op);
ROpCost tile_cost_alone(const Gpu& g, const ROp& op);  // the same, with its terms

// Seconds `op` takes alone on `sms` SMs that hold `per_sm` of its blocks
// each: waves of tiles, co-resident blocks sharing their SM's rates but
// hiding each other's latency (co_resident_seconds). What tile shapes are
// compared by, and what a split-K variant (more, shallower tiles plus its
// reduction) is to be compared by.
double rop_seconds_alone(const Gpu& g, const ROp& op, int sms, int per_sm);

// The latency structure of one tile of `op` as today's rTasks run it, with
// `epilogue_rounds` dependent round trips of its epilogues over the tile's
// values (ROpCost::epilogue_rounds per tile); a GEMV's x is staged where
// it fits `g`'s budget (gemv_staged_x_bytes).
TileLatency tile_latency(const ROp& op, const Gpu& g, double epilogue_rounds = 0);

// What one tile of `op` does, in the throughput term's units, given the
// rOp's traffic `c` (the estimate's inputs; tile_seconds' unless measured).
TileWork tile_work(const Gpu& g, const ROp& op, const ROpCost& c);

// The time of one tile given the rOp's traffic (or its measured time,
// which also sets c.measured).
double tile_seconds(const Gpu& g, const ROp& op, ROpCost& c);

}  // namespace anvil

namespace anvil {

// Split-K's reduction (src/schedule/split_k.cpp): one tile of a
// ANVIL_ROW_SPLIT_SUM or ANVIL_ROW_SPLIT_NORM rOp on one SM: its partials
// read from L2 (just written), its outputs stored, the GEMM's epilogue (and
// the row op's) run on each.
double split_k_reduce_tile_seconds(const Gpu& g, const ROp& reduce);

}  // namespace anvil
