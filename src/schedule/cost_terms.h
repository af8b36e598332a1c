// The cost model's latency terms: what a task waits for rather than
// computes. Each is one named function of a few counts and one of the GPU
// description's latencies, fitted to the measured profiles of commits
// 30d23da and eecf9a0 (docs/perf/cost-model.md, scripts/fit_cost_model.py):
//
//   wait      = poll_rounds x poll_latency_s (a serial check per dependency
//               at 30d23da; today one round per 32 counters, warp 0 polls
//               them in parallel)
//   k_loop    = the K slices' memory round trips the pipeline leaves
//               exposed: synchronous slices expose every round trip; with
//               s slices in flight a slice costs max(its work, phases x
//               memory_latency_s / s), after one round trip to fill
//               (none when the fill was issued before the waits: a GEMV
//               ring's fixed weights, weight_ring.cuh)
//   serial    = dependent round trips outside a K loop (a thread's element
//               loop, a row's passes, the epilogue's operand loads per
//               stored value, none for a scalar operand, a fused row op's
//               pass: fused_row_rounds) x memory_latency_s
//   occupancy = with k co-resident blocks busy, an SM's throughput is
//               shared k ways, but one block's exposed latency is another's
//               issue time: a task takes max(alone, work x k)
#pragma once

#include "target/gpu.h"

struct RowParams;  // rtasks/params.cuh

namespace anvil {

// The latency structure of one tile as its rTask code runs it.
struct TileLatency {
    double k_slices = 0;          // BK-deep slices of a GEMM-like K loop; 0: none
    double phases_per_slice = 1;  // dependent round trips to stage one slice
    double slices_in_flight = 1;  // 1: synchronous (load, barrier, compute), unless one_slice_ahead
    bool one_slice_ahead = false;  // the one slice in flight was issued before the previous slice's work (a split-phase gather)
    bool fill_hidden = false;     // the first slices were issued before the tile's waits (a GEMV's weight ring)
    double serial_rounds = 0;     // further dependent round trips of a thread
};

// What one tile does, in the units of the throughput term.
struct TileWork {
    double flops = 0;            // padding included
    double flops_per_s = 0;      // the unit's peak over the whole GPU (FP32 or tensor)
    double dram_bytes = 0, l2_bytes = 0;
    double epilogue_instructions = 0;
    double smem_wavefronts = 0;  // shared-memory accesses of the K loop's multiply (gemm_smem_wavefronts)
    double issue_slots = 0;      // warp instructions of the K loop, all warps (conv_slice_issue_slots)
};

// A tile's compute or bandwidth time on one SM's share of the GPU,
// whichever is larger: FLOPs at the unit's rate, the K loop's shared loads
// at one wavefront per SM clock, or its instructions at one warp
// instruction per clock on each of the SM's 4 schedulers (the clock: the
// FP32 peak over 128 lanes x 2 FLOPs x SMs), whichever is larger, plus epilogue instructions at
// one per lane per clock (an FMA is two of the FP32 peak's FLOPs), bytes at
// DRAM's and L2's bandwidth. `anvil calibrate`'s ceilings replace the
// datasheet's where the GPU has them.
double throughput_seconds(const Gpu& g, const TileWork& w);

// Shared-memory wavefronts of a CUDA-core GEMM tile's multiply: per k,
// each of the 8 warps (16 x 16 threads, 2 rows of 16) loads its BM/16 x
// BN/16 micro-tile's operands, `vector` (today's tiles) in 64- or 128-bit
// loads, else (30d23da's) one float per load. A load of the two rows'
// operand costs one wavefront (2 distinct addresses); one of the 16
// columns' costs one per 128 distinct bytes.
double gemm_smem_wavefronts(double k, int bm, int bn, bool vector);

// The same for the CUDA-core conv2d tile (conv2d.cuh): per k of its k
// group (anvil_conv_k_groups: a small tile's slice is split over 2 or 4
// groups, each multiplying the whole tile over its share of the k), a
// warp's threads along M read A's pixels, VM floats each (one wavefront
// per 128 bytes), its rows of threads along N read B n-major, one load of
// KV k-steps per column (anvil_gemm_bt_vec; distinct rows fall in distinct
// banks: one wavefront per 128 bytes), or for the 8 x 8 micro-tile
// k-major, VN columns a load (anvil_conv_b_nmajor).
double conv_smem_wavefronts(double k, int bm, int bn, int bk);

// Warp instructions that one BK-deep slice of the CUDA-core conv2d tile
// issues (conv2d.cuh), counted from its construction: per thread its RM x
// RN FMAs and shared loads of A and B for each k of its group's share, its
// gathered elements of A (`gather`; else x's planes in 16-byte copies), its
// copies of B (16-byte where `b_vec`, else one per element), and the
// slice's pipeline steps; times the 8 warps, plus one warp's k-table
// entries. The per-item counts are the PTX's
// (docs/perf/conv-f32-tile-2026-11-28.md).
double conv_slice_issue_slots(int bm, int bn, int bk, bool gather, bool b_vec);

// Warp instructions, once per tile, of summing the k groups' partial tiles
// through shared memory (0 for a tile without k groups).
double conv_group_sum_issue_slots(int bm, int bn, int bk);

// One tile alone on its SM: throughput plus exposed latency.
struct TileTime {
    double work_s = 0, latency_s = 0;
    double total() const { return work_s + latency_s; }
};
TileTime tile_time(const Gpu& g, const TileWork& w, const TileLatency& t);

// Dependent round trips of the loops every thread of a 256-thread block
// runs: `elems` elements of a tile strided over the threads, each
// `per_elem` round trips (a load feeds the store, which the next
// iteration's loads may not pass: they may alias).
double element_loop_rounds(double elems, double per_elem);

// Round trips to stage one BK-deep slice of a BM x BN tile with plain
// loads: one per element a thread copies. In the PTX each load feeds a
// shared store and the next element's address comes from params reloaded
// after it (the tile reads them through a reference), so the loads are
// issued one after another. ptxas could still reorder them (no SASS tool
// here to check); the fit is what supports it: with two round trips per
// slice instead it needed a 41 ns poll and a 1.6 us load.
double staged_slice_rounds(int bm, int bn, int bk);

// Passes over its row (each a strided element loop) of a row op
// (AnvilRowOp): softmax 3 (max, sum, write), layernorm 3, rmsnorm 2, the
// reductions 1.
double row_passes(int row_op);

// Whether a row op's tile reduces each row with one warp in registers
// (rtasks/rowwise.cuh: short rows, no epilogue) rather than the whole block.
bool row_by_warps(const RowParams& p, bool epilogue);
// Its round trips then: a wave of rows a warp each, every lane's loads in flight together.
double row_warp_rounds(double rows, double row_len);

// Round trips of a row op (AnvilMmRowOp) fused into a matmul tile of
// `rows` rows of `row_len` (matmul.cuh: anvil_mm_rows_finish): a warp per
// row, 8 rows side by side, the values already in shared memory. Each of a
// row's reductions (5 dependent shuffles and a shared load, ~200 cycles) is
// charged a fifth of a memory round trip, and a norm's gamma and beta
// loads one. Estimated, not yet fitted to a device trace.
double fused_row_rounds(int mm_row_op, double rows, double row_len);

// Round trips per output of a direct window (pool, depthwise conv) that
// reads `reads` cells: the compiler keeps about four loads in flight.
double window_rounds_per_output(double reads);

// Seconds of `rounds` rounds of counter polls before a task may start.
double poll_wait_seconds(const Gpu& g, double rounds);

// Exposed seconds of a tile's K loop whose slices each take `slice_work_s`
// of compute and bandwidth (`t.k_slices` of them).
double k_loop_latency_seconds(const Gpu& g, const TileLatency& t, double slice_work_s);

// Exposed seconds of the dependent round trips outside the K loop.
double serial_latency_seconds(const Gpu& g, const TileLatency& t);

// A task's seconds on an SM where `share` co-resident blocks (itself
// included) are busy: `alone_s` of which `work_s` is throughput-bound.
double co_resident_seconds(double alone_s, double work_s, int share);

}  // namespace anvil
