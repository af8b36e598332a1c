#include "schedule/variants.h"

#include <algorithm>
#include <cmath>

#include "schedule/cost_model.h"
#include "schedule/cost_terms.h"
#include "schedule/task_graph.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

ROp retile(const ROp& op, int bm, int bn, int bk) {
    ROp r = op;
    auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
    if (auto* p = std::get_if<MatmulParams>(&r.params); p && op.kind == TaskKind::matmul) {
        p->algo = ANVIL_MM_TILED;
        p->stages = 0;
        p->bm = bm, p->bn = bn, p->bk = bk;
        p->tiles_m = static_cast<int>(ceil_div(p->M, bm));
        p->tiles_n = static_cast<int>(ceil_div(p->N, bn));
        r.tiles = static_cast<int>(p->batches * p->tiles_m * p->tiles_n);
    } else if (auto* w = std::get_if<WindowParams>(&r.params); w && op.kind == TaskKind::conv2d) {
        w->algo = ANVIL_MM_TILED;
        w->stages = 0;
        w->bm = bm, w->bn = bn, w->bk = bk;
        w->tiles_m = static_cast<int>(ceil_div(int64_t{w->OH} * w->OW, bm));
        w->tiles_n = static_cast<int>(ceil_div(w->Og, bn));
        r.tiles = static_cast<int>(int64_t{anvil_conv_k_splits(*w)} * w->N * w->groups * w->tiles_m * w->tiles_n);
    } else {
        throw InternalError("retile: rOp '" + op.name + "' is not a GEMM");
    }
    return r;
}

ROp as_gemv(const ROp& op, int bn) {
    ROp r = retile(op, 16, bn, 0);
    auto& p = std::get<MatmulParams>(r.params);
    ANVIL_CHECK(p.M <= ANVIL_GEMV_MAX_M && p.row_op == ANVIL_MM_ROW_NONE, "as_gemv: rOp '" + op.name + "' is not a GEMV");
    p.algo = ANVIL_MM_GEMV;
    return r;
}

ROp on_tensor_cores(const ROp& op, int bm, int bn, int bk, F32Precision f32, int stages) {
    ROp r = retile(op, bm, bn, bk);
    const bool tf32 = f32 != F32Precision::f32 && tf32_operands(op);
    ANVIL_CHECK(tf32 || tensor_core_operands(op), "on_tensor_cores: rOp '" + op.name + "' cannot use them");
    const int algo = !tf32 ? ANVIL_MM_TENSOR : f32 == F32Precision::tf32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR_3XTF32;
    ANVIL_CHECK(stages == 0 || anvil_tc_stages_ok(stages), "on_tensor_cores: " + std::to_string(stages) + " stages");
    const int kept = stages == ANVIL_TC_STAGES ? 0 : stages;  // the default stays 0: its variant's name as before
    if (auto* p = std::get_if<MatmulParams>(&r.params)) p->algo = algo, p->stages = kept;
    else std::get<WindowParams>(r.params).algo = algo, std::get<WindowParams>(r.params).stages = kept;
    return r;
}

ROp on_wgmma(const ROp& op, int bn, int bk, int stages) {
    ROp r = retile(op, 128, bn, bk);
    ANVIL_CHECK(tensor_core_operands(op), "on_wgmma: rOp '" + op.name + "' cannot use tensor cores");
    auto& p = std::get<MatmulParams>(r.params);
    ANVIL_CHECK(!p.a_norm && anvil_wgmma_tile_ok(128, bn, bk) && anvil_wgmma_stages_ok(stages),
                "on_wgmma: rOp '" + op.name + "' as a 128 x " + std::to_string(bn) + " x " + std::to_string(bk) + " tile in " +
                    std::to_string(stages) + " stages");
    p.algo = ANVIL_MM_WGMMA;
    p.stages = stages;
    return r;
}

namespace {

// The deepest k slice (`max_bk`, halving down to `min_bk`) whose tile fits
// `limit` bytes of shared memory; 0 if none does. Deeper slices mean fewer
// barriers per FMA; the stage count is the caller's.
template <class SmemBytes>
int deepest_fit(int limit, int min_bk, SmemBytes smem, int max_bk = ANVIL_GEMM_MAX_BK) {
    for (int bk = max_bk; bk >= min_bk; bk /= 2)
        if (smem(bk) <= limit) return bk;
    return 0;
}

int smem_limit_for_tiles(const Gpu& gpu) { return tile_smem_budget(gpu); }

// The widest tiles (128 x 128: 64 accumulators a thread) keep the slice
// depth of the former 48 KB limit: one step deeper they spill with an
// epilogue (conv2d on CUDA cores 128 x 128 x 16: 8 B, on tensor cores
// 128 x 128 x 32: 112 B, test_tile_resources; the tensor-core matmul
// 128 x 128 x 32 in nerf_mlp's megakernel, its epilogues interpreted:
// 272 B, against 92 B in the whole kernel at 16).
constexpr int kWidestTileSliceSmem = 48 * 1024 - kMegakernelSmemExtra;
int slice_limit(int bm, int bn, const Gpu& gpu) {
    const bool widest = bm * bn >= 128 * 128;
    return widest ? std::min(kWidestTileSliceSmem, smem_limit_for_tiles(gpu)) : smem_limit_for_tiles(gpu);
}

// A CUDA-core tile's thread keeps ANVIL_GEMM_STAGES - 1 slices of its
// 4-byte copies in flight (one per element where the rows are not 16-byte
// aligned): at most this many, as the simt backend checks (simt.cuh
// kMaxCopies). Within the 48 KB of old no shape came near it; the larger
// budget would let 64 x 64 tiles take 64-deep slices, 96 copies a thread.
constexpr int kMaxCopiesInFlight = 64;
bool copies_fit(int bm, int bn, int bk) {
    const int per_slice = ((bm + bn) * bk + ANVIL_BLOCK_THREADS - 1) / ANVIL_BLOCK_THREADS;
    return (ANVIL_GEMM_STAGES - 1) * per_slice <= kMaxCopiesInFlight;
}

// A tensor-core tile's thread keeps stages - 1 slices of copies in flight
// too: f32 operands (TF32) one 4-byte cp.async per element where rows are
// not 16-byte aligned, 16-bit ones 16-byte copies or none (unaligned
// elements go through registers). Four stages of a 64 x 128 TF32 slice 32
// deep would be 72 a thread; they take 16.
bool tc_copies_fit(int bm, int bn, int bk, bool f32, int stages) {
    const int elems_per_copy = f32 ? 1 : ANVIL_VEC_BYTES / 2;
    const int per_slice = ((bm + bn) * bk / elems_per_copy + ANVIL_BLOCK_THREADS - 1) / ANVIL_BLOCK_THREADS;
    return (anvil_tc_stages(stages) - 1) * per_slice <= kMaxCopiesInFlight;
}

// The deepest slice a tensor-core tile of `op` may take, in k, by tile kind:
// - a matmul: rows of up to 128 bytes (k64 of f16/bf16, k32 of f32). On the
//   H200 BERT's tiles spent about 0.46 us a slice whether a slice was 4 KB
//   or 6 KB (docs/perf/gemm-slices-2026-11-28.md): a round trip per slice,
//   so a slice twice as deep moves twice the bytes in one, and halves the
//   barriers;
// - a matmul with a whole-row op: ANVIL_GEMM_MAX_BK (k32), since the row op
//   needs the registers (64 x 128 x 64 with a softmax spills 8-16 B:
//   test_tile_resources);
// - a conv2d: ANVIL_GEMM_MAX_BK, since its gather holds a slice's elements
//   in registers.
int tensor_core_max_bk(const ROp& op, bool f32) {
    constexpr int kMatmulRowBytes = 128;
    const auto* mm = std::get_if<MatmulParams>(&op.params);
    if (!mm || mm->row_op != ANVIL_MM_ROW_NONE) return ANVIL_GEMM_MAX_BK;
    return kMatmulRowBytes / (f32 ? 4 : 2);
}

}  // namespace

int deepest_bk(const ROp& op, int bm, int bn, const Gpu& gpu) {
    return deepest_fit(slice_limit(bm, bn, gpu), 8, [&](int k) {
        return copies_fit(bm, bn, k) ? tile_smem_bytes(retile(op, bm, bn, k), gpu) : INT32_MAX;
    });
}

int deepest_tensor_core_bk(int bm, int bn, const Gpu& gpu) {
    return deepest_fit(slice_limit(bm, bn, gpu), ANVIL_TC_TILE_STEP_K, [&](int k) {
        return anvil_matmul_tile_smem_bytes(ANVIL_MM_TENSOR, ANVIL_MM_ROW_NONE, bm, bn, k);
    });
}

int deepest_tensor_core_bk(const ROp& op, int bm, int bn, const Gpu& gpu, int stages) {
    // A k step is 32 bytes: k16 of f16/bf16, k8 of f32.
    const bool f32 = tf32_operands(op);
    const int min_bk = f32 ? ANVIL_TC_TILE_STEP_K / 2 : ANVIL_TC_TILE_STEP_K;
    const int max_bk = tensor_core_max_bk(op, f32);
    return deepest_fit(
        slice_limit(bm, bn, gpu), min_bk,
        [&](int k) {
            return tc_copies_fit(bm, bn, k, f32, stages)
                       ? tile_smem_bytes(on_tensor_cores(op, bm, bn, k, gpu.f32_precision, stages), gpu)
                       : INT32_MAX;
        },
        max_bk);
}

std::vector<ROp> tile_variants(const ROp& op, const Gpu& gpu) {
    std::vector<ROp> out{op};
    if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) return out;
    // Every candidate shape is one the device code accepts (rtasks/tiling.cuh)
    // and whose shared tiles fit the budget of one block (tile_smem_budget).
    const auto* p = std::get_if<MatmulParams>(&op.params);
    // GEMV tiles up to the narrowest that holds all of N: a wider one only
    // carries empty columns (a blocked weight's GEMV is one block wide).
    auto gemvs = [&] {
        const int b_bytes = dtype_size(op.dtypes.at(1));
        for (int bn : {16, 32, 64, 128, 256}) {
            const bool narrower_holds_n = bn / 2 >= p->N && anvil_gemv_tile_ok(bn / 2, b_bytes);
            if (anvil_gemv_tile_ok(bn, b_bytes) && !narrower_holds_n) out.push_back(as_gemv(op, bn));
        }
    };
    if (p && p->a_rms) {  // a folded rmsnorm: GEMV tiles only (gemv.cuh computes it)
        gemvs();
        return out;
    }
    // A fused row op needs whole rows: one tile as wide as N, rounded up to
    // the kind's tile step (at most ANVIL_MM_ROW_MAX_BN: fusion checked it).
    const bool whole_rows = p && p->row_op != ANVIL_MM_ROW_NONE;
    const std::vector<int> tc_bns = whole_rows ? std::vector<int>{anvil_mm_row_bn(p->N, ANVIL_TC_TILE_STEP_MN)}
                                               : std::vector<int>{32, 64, 128};
    const std::vector<int> cuda_core_bns = whole_rows ? std::vector<int>{anvil_mm_row_bn(p->N, ANVIL_GEMM_TILE_STEP)}
                                                      : std::vector<int>{16, 32, 64, 128};
    const bool tf32 = gpu.f32_precision != F32Precision::f32 && tf32_operands(op);
    // Tensor-core tiles in three stages and, where a slice still fits the
    // budget, in four (three slices in flight: more of a K loop's latency
    // hidden at the same depth). The widest tiles' 48 KB (slice_limit)
    // leaves them no room for a fourth stage.
    if (gpu.tensor_core_tiles && (tensor_core_operands(op) || tf32))
        for (int bm : {32, 64, 128})
            for (int bn : tc_bns)
                for (int stages : {ANVIL_TC_STAGES, ANVIL_TC_MAX_STAGES}) {
                    const int bk = deepest_tensor_core_bk(op, bm, bn, gpu, stages);
                    if (!bk) continue;
                    ROp v = on_tensor_cores(op, bm, bn, bk, gpu.f32_precision, stages);
                    const auto* mm = std::get_if<MatmulParams>(&v.params);
                    const int fmt = anvil_mm_tc_format(mm ? mm->algo : std::get<WindowParams>(v.params).algo);
                    if (mm ? anvil_tc_tile_ok(bm, bn, bk, fmt) : anvil_conv_tc_tile_ok(bm, bn, bk, fmt))
                        out.push_back(std::move(v));
                }
    // Hopper's wgmma tiles, only where asked for (--wgmma) and the GPU has
    // sm_90a: 128 x 64 or 128 x 128 (whole rows: the narrowest that holds
    // N) in three or four stages, each its deepest slice within the budget.
    if (p && op.kind == TaskKind::matmul && wgmma_allowed(gpu) && tensor_core_operands(op) && !p->a_norm)
        for (int bn : {64, 128}) {
            if (whole_rows && (p->N > bn || (bn == 128 && p->N <= 64))) continue;
            for (int stages : {3, 4})
                for (int bk = 64; bk >= 16; bk /= 2)
                    if (anvil_matmul_tile_smem_bytes(ANVIL_MM_WGMMA, p->row_op, 128, bn, bk, 0, 0, stages) <=
                        smem_limit_for_tiles(gpu)) {
                        out.push_back(on_wgmma(op, bn, bk, stages));
                        break;
                    }
        }
    if (p && p->M <= ANVIL_GEMV_MAX_M && p->row_op == ANVIL_MM_ROW_NONE && !p->a_norm) gemvs();  // a_norm.cuh: GEMM tiles
    for (int bm : {16, 32, 64, 128})
        for (int bn : cuda_core_bns) {
            const int bk = deepest_bk(op, bm, bn, gpu);
            if (bk && anvil_gemm_tile_ok(bm, bn, bk)) out.push_back(retile(op, bm, bn, bk));
        }
    return out;
}

namespace {

// Blocks of `op`'s tile the megakernel's SM holds at once.
int co_resident_blocks(const ROp& op, const Gpu& gpu) {
    return std::max(1, std::min(kCudaCoreBlocksPerSm, blocks_per_sm(gpu, ANVIL_BLOCK_THREADS, tile_smem_bytes(op, gpu))));
}

}  // namespace

ROp fastest_alone(const ROp& op, const Gpu& gpu, int sms) {
    ROp best = op;
    double best_s = INFINITY;
    for (ROp& v : tile_variants(op, gpu)) {
        // Its time alone, plus the fixed cost of its tasks (fetching each,
        // its dependency list) spread over the slots: in the megakernel
        // that time is taken from the rOps co-scheduled with it. So of two
        // shapes nearly as fast, the one with fewer tasks, which also has
        // fewer blocks poll its producers' counters (llama_decode's q.K
        // tiles: 128 rather than 256, each block of the GPU polling once).
        const int per_sm = co_resident_blocks(v, gpu);
        const double s = rop_seconds_alone(gpu, v, sms, per_sm) +
                         v.tiles * gpu.task_overhead_s / (double(std::max(1, sms)) * per_sm);
        if (s < best_s) best_s = s, best = std::move(v);
    }
    return best;
}

RowFusionTimes row_fusion_times(const ROp& fused, const ROp& matmul, const ROp& row, const Gpu& gpu,
                                bool choose_variants) {
    const int sms = gpu.sm_count;
    auto seconds = [&](const ROp& op) {
        const ROp v = choose_variants ? fastest_alone(op, gpu, sms) : op;
        const int per_sm = co_resident_blocks(v, gpu);
        return rop_seconds_alone(gpu, v, sms, per_sm) + v.tiles * gpu.task_overhead_s / (double(std::max(1, sms)) * per_sm);
    };
    RowFusionTimes t;
    t.fused_s = seconds(fused);
    t.apart_s = seconds(matmul) + seconds(row) + gpu.sync_latency_s + poll_wait_seconds(gpu, 1);
    return t;
}

ROp most_efficient(const ROp& op, const Gpu& gpu) {
    ROp best = op;
    double best_s = INFINITY;
    for (ROp& v : tile_variants(op, gpu)) {
        // SM-seconds of its tiles when the GPU is full: each SM's blocks
        // share its rates and hide each other's latency.
        const ROpCost c = tile_cost_alone(gpu, v);
        const int k = co_resident_blocks(v, gpu);
        const double s = v.tiles * (co_resident_seconds(c.tile_s, c.work_s, k) + gpu.task_overhead_s) / k;
        if (s < best_s) best_s = s, best = std::move(v);
    }
    return best;
}

TileGraph choose_variants_by_wave(const TileGraph& tg, const Gpu& gpu) {
    TileGraph out = tg;
    const std::vector<int> wave = rop_waves(tg, task_graph(tg));
    const std::vector<double> tile_s = tile_seconds_in_order(tg, gpu);
    const int waves = wave.empty() ? 0 : *std::max_element(wave.begin(), wave.end()) + 1;
    std::vector<double> work(waves, 0);
    std::vector<int64_t> tiles(waves, 0);
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        work[wave[r]] += tg.rops[r].tiles * tile_s[r];
        tiles[wave[r]] += tg.rops[r].tiles;
    }
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        const ROp& op = tg.rops[r];
        if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) continue;
        if (tiles[wave[r]] >= gpu.sm_count) {
            out.rops[r] = most_efficient(op, gpu);
        } else {
            const double share = work[wave[r]] > 0 ? op.tiles * tile_s[r] / work[wave[r]] : 1.0;
            out.rops[r] = fastest_alone(op, gpu, std::max(1, static_cast<int>(share * gpu.sm_count)));
        }
    }
    return out;
}

}  // namespace anvil
