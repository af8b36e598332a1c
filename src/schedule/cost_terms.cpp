#include "schedule/cost_terms.h"

#include <algorithm>
#include <cmath>

#include "../../rtasks/params.cuh"
#include "../../rtasks/tiling.cuh"

namespace anvil {

namespace {
constexpr double kThreads = 256;       // ANVIL_BLOCK_THREADS
constexpr double kLoadsInFlight = 4;   // a window's unrolled loads
}  // namespace

double element_loop_rounds(double elems, double per_elem) {
    return elems > 0 ? std::ceil(elems / kThreads) * per_elem : 0;
}

double staged_slice_rounds(int bm, int bn, int bk) { return std::ceil(double(bm + bn) * bk / kThreads); }

bool row_by_warps(const RowParams& p, bool epilogue) {
    return p.op != ANVIL_ROW_SPLIT_SUM && !epilogue && p.row_len <= ANVIL_ROW_WARP_MAX;
}

double row_warp_rounds(double rows, double row_len) {
    return std::ceil(rows / (kThreads / 32)) * window_rounds_per_output(std::ceil(row_len / 32));
}

double row_passes(int row_op) {
    switch (row_op) {
        case ANVIL_ROW_SOFTMAX: case ANVIL_ROW_LAYERNORM: return 3;
        case ANVIL_ROW_RMSNORM: return 2;
        default: return 1;
    }
}

double fused_row_rounds(int mm_row_op, double rows, double row_len) {
    if (mm_row_op == ANVIL_MM_ROW_NONE || rows <= 0 || row_len <= 0) return 0;
    const double reductions = mm_row_op == ANVIL_MM_ROW_RMSNORM ? 1 : 2;  // softmax: max, sum; layernorm: mean, variance
    const double loads = mm_row_op == ANVIL_MM_ROW_SOFTMAX ? 0 : 1;       // gamma (and beta), in flight together
    return std::ceil(rows / (kThreads / 32)) * (reductions / 5 + loads);
}

double window_rounds_per_output(double reads) { return std::ceil(std::max(1.0, reads) / kLoadsInFlight); }

double throughput_seconds(const Gpu& g, const TileWork& w) {
    const Ceilings& m = g.ceilings;
    const double sms = g.sm_count;
    const double fp32 = m.measured() ? m.fp32_flops_per_s : g.fp32_flops_per_s;
    const double dram = m.measured() ? m.copy_bytes_per_s : g.dram_bytes_per_s;
    const double clock = g.fp32_flops_per_s / (256.0 * sms);  // 128 lanes, an FMA 2 FLOPs
    const double compute =
        std::max({w.flops / (w.flops_per_s / sms), w.smem_wavefronts / clock, w.issue_slots / (4 * clock)}) +
        w.epilogue_instructions / (fp32 / 2 / sms);
    const double memory = w.dram_bytes / (dram / sms) + w.l2_bytes / (g.l2_bytes_per_s / sms);
    return std::max(compute, memory);
}

double gemm_smem_wavefronts(double k, int bm, int bn, bool vector) {
    const int rm = std::max(1, bm / 16), rn = std::max(1, bn / 16);
    const auto vec = [&](int r) { return !vector ? 1 : r % 4 == 0 ? 4 : r % 2 == 0 ? 2 : 1; };  // anvil_gemm_vec
    const double a = double(rm) / vec(rm);                                        // 2 rows: 1 wavefront each
    const double b = double(rn) / vec(rn) * std::max(1.0, 16.0 * vec(rn) * 4 / 128);  // 16 columns
    return k * 8 * (a + b);
}

namespace {
// The conv tile's thread grid (conv2d.cuh): its k groups and one group's
// threads along M and N (16 x 16 without groups).
struct ConvGrid {
    int groups, tx, ty;
};
ConvGrid conv_grid(int bm, int bn, int bk) {
    const int g = anvil_conv_k_groups(bm, bn, bk);
    if (g == 1) return {1, 16, 16};
    const int tx = anvil_conv_group_tx(bm, bn, g);
    return {g, tx, static_cast<int>(kThreads) / g / tx};
}
}  // namespace

double conv_smem_wavefronts(double k, int bm, int bn, int bk) {
    const ConvGrid t = conv_grid(bm, bn, bk);
    const int rm = std::max(1, bm / t.tx), rn = std::max(1, bn / t.ty), vm = anvil_gemm_vec(rm);
    const int wx = std::min(t.tx, 32), wy = 32 / wx;  // one warp's threads along M and N
    const double a = double(rm) / vm * std::max(1.0, wx * vm * 4 / 128.0);
    const int kv = anvil_gemm_bt_vec(bk / t.groups);
    const double b = anvil_conv_b_nmajor(bm, bn) ? double(rn) / kv * std::max(1.0, wy * kv * 4 / 128.0)
                                                 : double(rn) / anvil_gemm_vec(rn);
    return k / t.groups * 8 * (a + b);  // a warp multiplies its group's share of the k
}

namespace {
// Thread instructions per item of the conv tile's slice: PTX instructions
// of its f32 instantiations for sm_90 (nvcc -ptx of resnet18's megakernel,
// counted per unrolled element or loop iteration;
// docs/perf/conv-f32-tile-2026-11-28.md). PTX, not SASS: 64-bit address
// arithmetic and the shared-window conversions may fold, so these are upper
// bounds.
constexpr double kGatherElem = 16;  // table load, 3 adds, 2 compares, 2 selects, address, cp.async
constexpr double kCopy = 33;        // a rolled copy loop's iteration: index, edge clamp, addresses, cp.async
constexpr double kSliceSteps = 28;  // wait, barrier, commit, stage pointers, the loop's branches
constexpr double kTableEntry = 60;  // a k's table entry (two divisions by run-time values), one warp's
// The k groups' sum (conv2d.cuh), beyond the single group's epilogue (the
// PTX of 32 x 32 x 32: 40 instructions before the outputs' loop against
// 14, about 20 more an output): two barriers and the partial tile's
// addresses beside its 128-bit stores, and per output the index math and
// bias load that the grid's epilogue hoists, plus a shared load and an add
// per group.
constexpr double kGroupSumFixed = 20;
constexpr double kGroupSumOutput = 12;
}  // namespace

double conv_slice_issue_slots(int bm, int bn, int bk, bool gather, bool b_vec) {
    const ConvGrid t = conv_grid(bm, bn, bk);
    const int rm = std::max(1, bm / t.tx), rn = std::max(1, bn / t.ty), vm = anvil_gemm_vec(rm), ks = bk / t.groups;
    const bool nmajor = anvil_conv_b_nmajor(bm, bn);
    const double b_loads = double(rn) * ks / (nmajor ? anvil_gemm_bt_vec(ks) : anvil_gemm_vec(rn));
    const double multiply = double(rm) * rn * ks + double(ks) * rm / vm + b_loads;
    const double a_copies = gather ? std::ceil(double(bm) * bk / kThreads) * kGatherElem
                                   : std::ceil(double(bm) / 4 * bk / kThreads) * kCopy;
    const double b_copies = std::ceil(double(bn) * bk / (b_vec && nmajor ? 4 : 1) / kThreads) * kCopy;
    return (multiply + a_copies + b_copies + kSliceSteps) * (kThreads / 32) + std::ceil(bk / 32.0) * kTableEntry;
}

double conv_group_sum_issue_slots(int bm, int bn, int bk) {
    const ConvGrid t = conv_grid(bm, bn, bk);
    if (t.groups == 1) return 0;
    const int rm = bm / t.tx, rn = bn / t.ty;
    const double stores = double(rm) * rn / anvil_gemm_vec(rm) + kGroupSumFixed;
    const double outputs = std::ceil(double(bm) * bn / kThreads) * (kGroupSumOutput + 2.0 * t.groups);
    return (stores + outputs) * (kThreads / 32);
}

TileTime tile_time(const Gpu& g, const TileWork& w, const TileLatency& t) {
    TileTime r;
    r.work_s = throughput_seconds(g, w);
    r.latency_s = k_loop_latency_seconds(g, t, t.k_slices > 0 ? r.work_s / t.k_slices : 0) + serial_latency_seconds(g, t);
    return r;
}

double poll_wait_seconds(const Gpu& g, double rounds) { return std::max(0.0, rounds) * g.poll_latency_s; }

double k_loop_latency_seconds(const Gpu& g, const TileLatency& t, double slice_work_s) {
    if (t.k_slices <= 0) return 0;
    const double round_trips = t.phases_per_slice * g.memory_latency_s;
    if (t.slices_in_flight <= 1 && !t.one_slice_ahead) return t.k_slices * round_trips;  // nothing overlaps the loads
    // Pipelined: the first slice's round trip is exposed (unless it was
    // issued before the waits), then each slice waits for what its work did
    // not cover of its own (one slice ahead: what one slice's work did not).
    const double per_slice = std::max(0.0, round_trips / t.slices_in_flight - slice_work_s);
    return (t.fill_hidden ? 0.0 : g.memory_latency_s) + t.k_slices * per_slice;
}

double serial_latency_seconds(const Gpu& g, const TileLatency& t) {
    return std::max(0.0, t.serial_rounds) * g.memory_latency_s;
}

double co_resident_seconds(double alone_s, double work_s, int share) {
    return std::max(alone_s, work_s * std::max(1, share));
}

}  // namespace anvil
