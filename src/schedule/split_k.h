// Split-K: a GEMM whose output tiles cannot fill the GPU's blocks, or
// whose K chain dominates its wave, computes K in slices. Its partials rOp
// is the same GEMM batched over the slices (the innermost batch dim: A and
// B advance by one slice of K, C by one [batch..][M][N] block; row and
// column bands that divide M and N become batch dims too, so the slices of
// one output tile are consecutive tiles), writing f32 partial sums to a
// scratch buffer of the arena; its reduce rOp (rowwise,
// ANVIL_ROW_SPLIT_SUM) adds each output's partials in slice order and
// applies the GEMM's fused epilogue; where a softmax or norm over the
// GEMM's rows alone reads the result, the reduce applies it too
// (ANVIL_ROW_SPLIT_NORM, a warp per row). The reduce reads exactly what the
// partials wrote, so its waits are ordinary counter waits (plan_waits) and
// the race checker sees them like any other. The cost model decides, never
// the user: choose_split_k is a pure function of the rOp's shape, the GPU
// and the work beside it in its wave.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

// What runs beside an rOp: the grid's blocks, and the other tiles of its
// wave (rop_waves) with their work in SM-seconds (latency hides behind
// co-resident blocks).
struct WaveLoad {
    int grid_blocks = 1;
    int64_t other_tiles = 0;
    double other_work_s = 0;
};

struct SplitChoice {
    int ways = 1;         // K slices; 1: left whole
    std::string why_not;  // ways == 1: the reason; split, but leaving blocks idle: why no more slices
    double whole_s = 0;   // the wave's predicted seconds with the rOp whole
    double split_s = 0;   // ... split `ways` ways (the best split tried; 0: none tried)
};

// Splits gain less than this share of the wave's time are not taken: the
// model's error is larger.
constexpr double kSplitKMinGain = 0.10;
// Slices of K are a multiple of this (16-byte aligned f16 operand rows in
// every slice, as in the whole GEMM) and at least kSplitKMinSlice long.
constexpr int kSplitKSliceStep = 16;
constexpr int kSplitKMinSlice = 64;

// The K slice counts `op` (a GEMM-like rOp, tile shape chosen) can take on
// a grid of `grid_blocks`: whole slices, at most a few partial tiles per
// block; empty when it cannot be split at all. What choose_split_k tries
// and what anvil tune measures.
std::vector<int> split_k_ways(const ROp& op, int grid_blocks);

// How many K slices `op` (a GEMM-like rOp, tile shape chosen) should take.
SplitChoice choose_split_k(const ROp& op, const Gpu& gpu, const WaveLoad& wave);

// The partials and reduce rOps of `op` split `ways` ways; the partials go
// to the f32 buffer `scratch` at arena offset `scratch_off`
// ([ways][batch..][M][N], or a conv2d's [ways][N][O][OH][OW], contiguous).
std::pair<ROp, ROp> split_rop(const ROp& op, int ways, VertexId scratch, int64_t scratch_off);

// A conv2d's K (Cg * KH * KW, its channels and window) in `ways` slices:
// the slice length (a multiple of 16 and of the tile's BK, at least
// kSplitKMinSlice; the last slice is shorter), 0 if no such slices make
// exactly `ways`. Its partials rOp is the conv2d tile once per slice
// (WindowParams::k_split, k_slice); slice 0 adds the bias.
int conv_slice(const WindowParams& p, int ways);

// `tg` with its rOp `rop` split `ways` ways: the partials take its place,
// the reduce follows, the scratch buffer is appended to the arena.
TileGraph split_k_in(const TileGraph& tg, int rop, int ways);
// The same in place: apply_split_k splits many rOps of one graph, and a
// copy of the graph per split was quadratic (lstm_tc: 40 s of scheduling).
void split_k_at(TileGraph& tg, int rop, int ways);

// What apply_split_k does with each GEMM's verdict (choose_split_k).
enum class SplitKMode {
    split,      // split the GEMMs it splits, and say why the others stay whole
    keep_whole  // split none: the tile graph placed beside the split one, each
                // GEMM saying what its wave's model chose, so that the whole
                // schedule's prediction decides
};

// `tg` with every GEMM-like rOp split as choose_split_k says (each split
// appends its scratch buffer to the arena) or annotated with why not; then
// each reduce applies the softmax or norm that reads its result where it
// can (apply_row_op_in_reduce). SplitKMode::keep_whole: `tg`'s rOps
// unchanged but for their why_not_split.
TileGraph apply_split_k(const TileGraph& tg, const Gpu& gpu, SplitKMode mode = SplitKMode::split);

// The split-K reduce `reduce` of a GEMM (ANVIL_ROW_SPLIT_SUM) whose result
// a softmax, layernorm or rmsnorm over its contiguous rows of N <=
// ANVIL_ROW_WARP_MAX reads becomes one ANVIL_ROW_SPLIT_NORM rOp (the GEMM's
// epilogue, the row op, the row op's epilogue; a block per row), the row
// op's rOp gone, its rows per task chosen by the cost model for a grid of
// `grid_blocks`. Where other rOps or the graph's outputs read the GEMM's
// result too (a pre-LN residual stream), the rOp stores it as well
// (RowParams::pre_off), in the reduce's place if they run before the row
// op, else in the row op's. Returns the new rOp's index, or -1, with the
// reason in the reduce's why_not_row_op when a row op reads it but stays
// apart (longer rows, a strided GEMM output, ...).
int apply_row_op_in_reduce(TileGraph& tg, int reduce, const Gpu& gpu, int grid_blocks);

// A split-K reduce run by the last of its K slices to arrive, in its block
// (no reduce wave; persistent_schedule gives its tasks Task::joins):
// by_last_slice_rop is `red` of `tg` with by_last_slice set and its rows
// per task following the partial tiles: where they divide M and N, a split
// sum takes a reduce tile per partial output tile (its kept dims
// [..][M/bm][N/bn][bm][bn]); else, and for a split norm, the row band.
// set_by_last_slice puts it in `tg` and makes its partials' footprints go
// by rows (footprint.cpp). why_not_by_last_slice: empty, or why it cannot
// be (a conv2d's reduce). apply_split_k asks the cost model whether to
// (ROp::reduce_mode says which and why; Gpu::last_slice_reduce off: never).
std::string why_not_by_last_slice(const TileGraph& tg, const ROp& red);
ROp by_last_slice_rop(const TileGraph& tg, const ROp& red);
void set_by_last_slice(TileGraph& tg, int reduce);

}  // namespace anvil
