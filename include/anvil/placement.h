// What the policies share: the task graph before placement, the tile shapes
// a GEMM rOp may take, and the construction of a persistent launch from a
// global order and a placement.
#pragma once
#include <string>
#include <vector>

#include "anvil/schedule.h"

namespace anvil {

// Every tile of every rOp, rOps in tile-graph order, with its tile-level
// dependencies (a topological order of the task graph).
std::vector<Task> task_graph(const TileGraph& tg);

// The wave of every rOp: 0 for rOps that read no other rOp's output, else
// one more than the latest wave among the rOps it depends on.
std::vector<int> rop_waves(const TileGraph& tg, const std::vector<Task>& tasks);

// `op` with BM x BN x BK shared-memory tiles (matmul and conv2d only).
ROp retile(const ROp& op, int bm, int bn, int bk);

// A matmul of at most 4 rows as a streaming GEMV tile bn columns wide.
ROp as_gemv(const ROp& op, int bn);

// Whether `op` is a matmul whose operands tensor cores take: both f16 or both bf16.
bool tensor_core_operands(const ROp& op);

// An f16 or bf16 matmul with BM x BN x BK tiles on tensor cores.
ROp on_tensor_cores(const ROp& op, int bm, int bn, int bk);

// The tile shapes the rTask of `op` can take on `gpu` (itself included);
// only GEMM rOps have more than one.
std::vector<ROp> tile_variants(const ROp& op, const Gpu& gpu);

// The variant that finishes soonest alone on `sms` SMs (Welder's choice).
ROp fastest_alone(const ROp& op, const Gpu& gpu, int sms);

// The variant that uses the fewest SM-seconds, for rOps co-scheduled with
// others that fill the GPU (Rammer's choice: throughput per resource).
ROp most_efficient(const ROp& op, const Gpu& gpu);

// Every GEMM rOp with its tile shape chosen by wave: most_efficient when the
// wave it belongs to has at least one tile per SM, else fastest_alone on
// the wave's SMs shared in proportion to work.
TileGraph choose_variants_by_wave(const TileGraph& tg, const Gpu& gpu);

struct Placed {
    int rop = 0;
    int tile = 0;
    int block = 0;
};

// One persistent launch ("anvil_megakernel") of `blocks` blocks running the
// tasks in `order`, which must be topological. Each task waits for the
// producer tiles it reads, except those that queue order already puts
// before it: of the producers on one block only the latest is kept, and
// none on its own block (same-SM edges need no counter).
Schedule persistent_schedule(const std::string& policy, const TileGraph& tg, const Gpu& gpu,
                             const std::vector<Placed>& order, int blocks);

// Rammer's static placement: waves in order; in a wave, tiles largest first
// (by predicted time), each onto the block with the least work so far.
std::vector<Placed> wavefront_order(const TileGraph& tg, const Gpu& gpu);
// Every tile in tile-graph order, dealt round-robin to the blocks.
std::vector<Placed> round_robin_order(const TileGraph& tg, int blocks);
// One block per SM, or one per task when there are fewer tasks.
int wavefront_blocks(const TileGraph& tg, const Gpu& gpu);

// One launch per rOp ("<prefix>N"), one block per tile, no dependencies:
// the launch boundary is the synchronisation.
Schedule launch_per_rop(const std::string& policy, const TileGraph& tg, const Gpu& gpu, const std::string& prefix);

}  // namespace anvil
