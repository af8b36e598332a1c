// Every GEMM tile variant the policies can pick (tile_variants: CUDA-core
// matmul and conv2d in f32, f16 and bf16, tensor-core matmul and conv2d in
// f16 and bf16, tensor-core matmul and conv2d in f32 as TF32 and 3xTF32) compiles
// with NVRTC for sm_90, and, with the kernels asking for two blocks of 256
// threads per SM (__launch_bounds__(256, 2): at most 128 registers), with
// no spills, fused epilogue or not; its static shared memory lets two
// blocks co-reside. With ANVIL_TILE_RESOURCES_OUT set, the
// test also writes the table of docs/perf/tile-resources.md there
// (scripts/tile_resources.sh): per variant, the cubin's registers and
// spills, the tile's shared memory, and by construction its shared loads
// per FMA (per mma) and the bytes its pipeline keeps in flight.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "codegen/emit.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/norm_fold.h"
#include "runtime/compile_nvrtc.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "tile/fusion.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

// A matmul and a conv2d large enough that no tile shape is clipped; with
// `epilogue`, each with what most layers fuse (a bias and gelu, a relu).
Graph gemm_model(DType dtype, bool epilogue) {
    const std::string text = fmt::format(R"(anvil: 1
name: tile_resources
dtype: {}
seed: 3
inputs:
  - {{name: x, shape: [512, 512]}}
  - {{name: image, shape: [1, 64, 32, 32]}}
params:
  - {{name: w, shape: [512, 512]}}
  - {{name: k, shape: [128, 64, 3, 3]}}
  - {{name: b, shape: [512]}}
nodes:
  - {{name: y0, op: matmul, inputs: [x, w]}}
  - {{name: c0, op: conv2d, inputs: [image, k], padding: 1}}
{}
)",
                                         dtype_name(dtype),
                                         epilogue ? "  - {name: y1, op: add, inputs: [y0, b]}\n"
                                                    "  - {name: y, op: gelu, inputs: [y1]}\n"
                                                    "  - {name: c, op: relu, inputs: [c0]}\n"
                                                    "outputs: [y, c]"
                                                  : "outputs: [y0, c0]");
    return infer_shapes(build_graph(load_model_from_string(text, "tile_resources.yaml")));
}

// A batch-1 decode layer's GEMVs: x @ w, and the same over an rmsnorm of an
// f32 stream folded into the tile (frontend/norm_fold.h); with `epilogue`,
// each with a bias and silu.
Graph gemv_model(DType dtype, bool epilogue) {
    const std::string text = fmt::format(R"(anvil: 1
name: gemv_resources
dtype: {}
seed: 3
inputs:
  - {{name: x, shape: [1, 512]}}
  - {{name: s, shape: [1, 512], dtype: f32}}
params:
  - {{name: w, shape: [512, 512]}}
  - {{name: g, shape: [512]}}
  - {{name: b, shape: [512]}}
nodes:
  - {{name: n, op: rmsnorm, inputs: [s, g]}}
  - {{name: y0, op: matmul, inputs: [x, w]}}
  - {{name: z0, op: matmul, inputs: [n, w]}}
{}
)",
                                         dtype_name(dtype),
                                         epilogue ? "  - {name: y1, op: add, inputs: [y0, b]}\n"
                                                    "  - {name: y, op: silu, inputs: [y1]}\n"
                                                    "  - {name: z1, op: add, inputs: [z0, b]}\n"
                                                    "  - {name: z, op: silu, inputs: [z1]}\n"
                                                    "outputs: [y, z]"
                                                  : "outputs: [y0, z0]");
    return fold_rmsnorm_into_matmuls(infer_shapes(build_graph(load_model_from_string(text, "gemv_resources.yaml"))));
}

// Every GEMV variant of every matmul rOp of `g` (fused), one rOp (and kernel) each.
Schedule every_gemv_variant(const Graph& g) {
    const TileGraph base = fuse(decompose(g), default_gpu());
    TileGraph tg = base;
    tg.rops.clear();
    for (const ROp& op : base.rops) {
        if (op.kind != TaskKind::matmul) continue;
        std::vector<ROp> variants = tile_variants(op, default_gpu());
        variants.erase(variants.begin());
        for (ROp& v : variants)
            if (std::get<MatmulParams>(v.params).algo == ANVIL_MM_GEMV) tg.rops.push_back(std::move(v));
    }
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

// Every variant of every GEMM rOp of `g` (fused), one rOp (and so one kernel)
// each; f32 matmuls and convs also on tensor cores as TF32 and 3xTF32 (--precision).
Schedule every_variant(const Graph& g, bool epilogue) {
    const TileGraph base = fuse(decompose(g), default_gpu());
    TileGraph tg = base;
    tg.rops.clear();
    for (const ROp& op : base.rops) {
        if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) continue;
        REQUIRE((op.epilogue.nsteps > 0) == epilogue);
        std::vector<ROp> variants = tile_variants(op, default_gpu());
        variants.erase(variants.begin());  // decompose's own shape is among the others
        for (F32Precision p : {F32Precision::tf32, F32Precision::tf32x3}) {
            Gpu gpu = default_gpu();
            gpu.f32_precision = p;
            for (ROp& v : tile_variants(op, gpu)) {
                const auto* mm = std::get_if<MatmulParams>(&v.params);
                const int algo = mm ? mm->algo : std::get<WindowParams>(v.params).algo;
                if (algo == (p == F32Precision::tf32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR_3XTF32))
                    variants.push_back(std::move(v));
            }
        }
        for (ROp& v : variants)
            if (std::get_if<MatmulParams>(&v.params) == nullptr || std::get<MatmulParams>(v.params).algo != ANVIL_MM_GEMV)
                tg.rops.push_back(std::move(v));
    }
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

// Each launch's kernel resources, by launch (= rOp).
std::vector<KernelResources> per_rop(const Schedule& s, const CubinResult& r) {
    std::map<std::string, KernelResources> by_name;
    for (const KernelResources& k : r.kernels) by_name[k.name] = k;
    std::vector<KernelResources> out;
    for (const std::string& k : launch_kernels(s)) out.push_back(by_name.at(k));
    return out;
}

std::string with_two_blocks_per_sm(std::string source) {
    const std::string define = "#define ANVIL_MIN_BLOCKS_PER_SM ";
    const size_t at = source.find(define);
    REQUIRE(at != std::string::npos);  // emit.cpp's __launch_bounds__(256, ANVIL_MIN_BLOCKS_PER_SM)
    const size_t end = source.find('\n', at);
    source.replace(at, end - at, define + "2");
    return source;
}

struct TileShape {
    std::string kind;
    int algo, bm, bn, bk;
    int stages;  // tensor cores: the pipeline's stages (anvil_tc_stages)
};

// A tensor-core tile's kind names its stages where they are not the default.
std::string with_stages(const char* kind, int algo, int stages) {
    const int s = anvil_tc_stages(stages);
    return anvil_mm_on_tensor_cores(algo) && s != ANVIL_TC_STAGES ? fmt::format("{}, {} stages", kind, s) : kind;
}

TileShape shape_of(const ROp& op) {
    if (const auto* p = std::get_if<MatmulParams>(&op.params))
        return {with_stages(p->algo == ANVIL_MM_TENSOR          ? "matmul (tensor cores)"
                            : p->algo == ANVIL_MM_TENSOR_TF32   ? "matmul (TF32)"
                            : p->algo == ANVIL_MM_TENSOR_3XTF32 ? "matmul (3xTF32)"
                            : p->algo == ANVIL_MM_GEMV          ? "gemv"
                                                                : "matmul",
                            p->algo, p->stages),
                p->algo, p->bm, p->bn, p->bk, anvil_tc_stages(p->stages)};
    const auto& w = std::get<WindowParams>(op.params);
    return {with_stages(w.algo == ANVIL_MM_TENSOR          ? "conv2d (tensor cores)"
                        : w.algo == ANVIL_MM_TENSOR_TF32   ? "conv2d (TF32)"
                        : w.algo == ANVIL_MM_TENSOR_3XTF32 ? "conv2d (3xTF32)"
                                                           : "conv2d",
                        w.algo, w.stages),
            w.algo, w.bm, w.bn, w.bk, anvil_tc_stages(w.stages)};
}

// Shared loads per FMA of a CUDA-core tile's thread (RM x RN micro-tile,
// RM / VM + RN / VN vector loads per k), or ldmatrix per mma of a warp.
std::string loads_per_op(const TileShape& s) {
    if (anvil_mm_on_tensor_cores(s.algo)) {
        // A conv2d's product is transposed: rows are its BN channels, columns its BM pixels.
        const bool conv = s.kind.rfind("conv2d", 0) == 0;
        const int rows = conv ? s.bn : s.bm, cols = conv ? s.bm : s.bn;
        const int mi = rows / 2 / 16, ni = cols / 4 / 8;
        const int mmas = mi * ni * (s.algo == ANVIL_MM_TENSOR_3XTF32 ? 3 : 1);  // 3xTF32: three per product
        return fmt::format("{:.3f} ldmatrix/mma ({} x4 A + {} B per {} mma)", double(mi + (ni + 1) / 2) / mmas, mi,
                           (ni + 1) / 2, mmas);
    }
    if (s.kind == "conv2d") {
        // conv2d.cuh: k groups of 256 / G threads, each a bm / 4-wide grid
        // (else 16 x 16), B read n-major KV k-steps of a column a load.
        const int groups = anvil_conv_k_groups(s.bm, s.bn, s.bk);
        const int tx = groups > 1 ? anvil_conv_group_tx(s.bm, s.bn, groups) : 16, ty = 256 / groups / tx;
        const int rm = s.bm / tx, rn = s.bn / ty, vm = anvil_gemm_vec(rm);
        const bool nmajor = anvil_conv_b_nmajor(s.bm, s.bn);
        const double b = nmajor ? double(rn) / anvil_gemm_bt_vec(s.bk / groups) : double(rn) / anvil_gemm_vec(rn);
        return fmt::format("{:.4f} lds/FMA ({}x{} micro-tile{}, {}-wide x {} + B {} per k)", (rm / vm + b) / (rm * rn),
                           rm, rn, groups > 1 ? fmt::format(", {} k groups", groups) : "", vm * 32, rm / vm, b);
    }
    const int rm = s.bm / 16, rn = s.bn / 16, vm = anvil_gemm_vec(rm), vn = anvil_gemm_vec(rn);
    return fmt::format("{:.4f} lds/FMA ({}x{} micro-tile, {}-wide x {} + {}-wide x {} per k)",
                       double(rm / vm + rn / vn) / (rm * rn), rm, rn, vm * 32, rm / vm, vn * 32, rn / vn);
}

// Bytes the pipeline has in flight per block while a slice is multiplied.
// A tensor-core conv2d's 16-bit x (a 3 x 3 conv here) is gathered one
// slice ahead, through registers, beside its w's stages (conv2d_tc.cuh).
int bytes_in_flight(const TileShape& s, int elem_bytes) {
    const bool gathered = s.algo == ANVIL_MM_TENSOR && s.kind.rfind("conv2d", 0) == 0;
    if (gathered) return s.bk * (s.bm + (s.stages - 1) * s.bn) * elem_bytes;
    if (anvil_mm_on_tensor_cores(s.algo)) return (s.stages - 1) * s.bk * (s.bm + s.bn) * elem_bytes;
    return (ANVIL_GEMM_STAGES - 1) * s.bk * (s.bm + s.bn) * elem_bytes;
}

}  // namespace

TEST_CASE("every GEMM tile variant compiles for sm_90 without spills in at most 128 registers", "[compile][gemm]") {
    const char* out_path = std::getenv("ANVIL_TILE_RESOURCES_OUT");
    std::string table =
        "| kind | dtype | BM x BN x BK | (256, 2): registers, spills (B) | (256, 2) + epilogue | as emitted + epilogue | "
        "tile smem (B) | 2 blocks/SM | shared loads | bytes in flight per block (per SM at 2 blocks) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n";
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
        CAPTURE(dtype_name(dtype));
        const Schedule bare = every_variant(gemm_model(dtype, false), false);
        const Schedule fused = every_variant(gemm_model(dtype, true), true);
        // CUDA-core matmuls and convs; f32: TF32 and 3xTF32 (not 128 x 128) matmuls and convs;
        // f16, bf16: tensor-core matmuls and convs; each tensor-core shape but the widest also in four stages
        REQUIRE(bare.tiles.rops.size() >= (dtype == DType::f32 ? 16 + 16 + 2 * (9 + 8) : 16 + 16 + 9 + 9 + 8 + 8));
        int four_stages = 0;
        for (const ROp& op : bare.tiles.rops) four_stages += shape_of(op).stages == 4;
        CHECK(four_stages >= 16);
        REQUIRE(fused.tiles.rops.size() == bare.tiles.rops.size());
        const std::vector<KernelResources> two = per_rop(bare, compile_nvrtc(with_two_blocks_per_sm(emit_source(bare)), "sm_90"));
        const std::string fused_source = emit_source(fused);
        const CubinResult fused_two_cubin = compile_nvrtc(with_two_blocks_per_sm(fused_source), "sm_90");
        const std::vector<KernelResources> fused_two = per_rop(fused, fused_two_cubin);
        const std::vector<KernelResources> fused_plain = per_rop(fused, compile_nvrtc(fused_source, "sm_90"));
        if (const char* log = std::getenv("ANVIL_TILE_RESOURCES_LOG")) {  // for a look at ptxas' report
            std::ofstream(std::string(log) + "." + dtype_name(dtype) + ".log") << fused_two_cubin.log;
            std::ofstream(std::string(log) + "." + dtype_name(dtype) + ".cu") << with_two_blocks_per_sm(fused_source);
        }
        for (size_t i = 0; i < bare.tiles.rops.size(); ++i) {
            const ROp& op = bare.tiles.rops[i];
            const TileShape sh = shape_of(op);
            const int smem = std::max(tile_smem_bytes(op, default_gpu()), tile_smem_bytes(fused.tiles.rops[i], default_gpu()));
            INFO(sh.kind << " " << sh.bm << " x " << sh.bn << " x " << sh.bk << ": " << two[i].registers
                         << " registers, " << two[i].spill_stores << " B spilled; with the epilogue "
                         << fused_two[i].registers << ", " << fused_two[i].spill_stores << " B");
            CHECK(two[i].spill_stores == 0);
            CHECK(two[i].spill_loads == 0);
            CHECK(two[i].registers <= 128);
            CHECK(fused_two[i].registers <= 128);
            // The epilogue is a call (anvil_epilogue_apply): values live across
            // it, 64 accumulators at the first call of an 8 x 8 micro-tile. With
            // no interpreter call behind it (every entry straight-line) they fit.
            CHECK(fused_two[i].spill_stores == 0);
            CHECK(smem <= tile_smem_budget(default_gpu()));
            const int elem = sh.algo == ANVIL_MM_TENSOR ? 2 : 4;  // staged as f32 on CUDA cores and for TF32
            const int flight = bytes_in_flight(sh, elem);
            auto rs = [](const KernelResources& k) { return fmt::format("{}, {}", k.registers, k.spill_stores); };
            table += fmt::format("| {} | {} | {} x {} x {} | {} | {} | {} | {} | {} | {} | {} ({}) |\n", sh.kind,
                                 dtype_name(dtype), sh.bm, sh.bn, sh.bk, rs(two[i]), rs(fused_two[i]), rs(fused_plain[i]),
                                 smem, two[i].registers <= 128 && 2 * (smem + 1024) <= 228 * 1024 ? "yes" : "no",
                                 loads_per_op(sh), flight, 2 * flight);
        }
    }
    if (out_path) {
        std::ofstream(out_path) << table;
        WARN("wrote " << out_path);
    }
}

namespace {

// Matmuls whose row op joins them (src/tile/fusion.cpp): attention's scores
// and softmax over 128 keys (BERT) and 197 (ViT), a projection with a bias,
// a layernorm and a residual after it.
Graph row_op_model(DType dtype) {
    const std::string text = fmt::format(R"(anvil: 1
name: row_tiles
dtype: {}
seed: 3
inputs:
  - {{name: q, shape: [12, 128, 64]}}
  - {{name: qv, shape: [12, 197, 64]}}
  - {{name: x, shape: [128, 256]}}
  - {{name: r, shape: [128, 128]}}
params:
  - {{name: k, shape: [12, 128, 64]}}
  - {{name: kv, shape: [12, 197, 64]}}
  - {{name: w, shape: [256, 128]}}
  - {{name: b, shape: [128]}}
  - {{name: g, shape: [128]}}
  - {{name: be, shape: [128]}}
nodes:
  - {{name: s, op: matmul, inputs: [q, k], transpose_b: true}}
  - {{name: p, op: softmax, inputs: [s]}}
  - {{name: sv, op: matmul, inputs: [qv, kv], transpose_b: true}}
  - {{name: pv, op: softmax, inputs: [sv]}}
  - {{name: h0, op: matmul, inputs: [x, w]}}
  - {{name: h1, op: add, inputs: [h0, b]}}
  - {{name: h2, op: layernorm, inputs: [h1, g, be]}}
  - {{name: y, op: add, inputs: [h2, r]}}
outputs: [p, pv, y]
)",
                                         dtype_name(dtype));
    return infer_shapes(build_graph(load_model_from_string(text, "row_tiles.yaml")));
}

}  // namespace

TEST_CASE("every whole-row tile variant (a fused row op) compiles for sm_90 without spills in at most 128 registers",
          "[compile][gemm][rowtile]") {
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
        CAPTURE(dtype_name(dtype));
        const TileGraph base = fuse(decompose(row_op_model(dtype)), default_gpu());
        TileGraph tg = base;
        tg.rops.clear();
        for (const ROp& op : base.rops) {
            const auto* p = std::get_if<MatmulParams>(&op.params);
            if (!p || p->row_op == ANVIL_MM_ROW_NONE) continue;
            std::vector<ROp> variants = tile_variants(op, default_gpu());
            variants.erase(variants.begin());
            for (F32Precision precision : {F32Precision::tf32, F32Precision::tf32x3}) {
                Gpu gpu = default_gpu();
                gpu.f32_precision = precision;
                for (ROp& v : tile_variants(op, gpu))
                    if (std::get<MatmulParams>(v.params).algo ==
                        (precision == F32Precision::tf32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR_3XTF32))
                        variants.push_back(std::move(v));
            }
            for (ROp& v : variants) tg.rops.push_back(std::move(v));
        }
        // Three row-op rOps, each on CUDA cores and tensor cores.
        int tensor = 0;
        for (const ROp& op : tg.rops) tensor += anvil_mm_on_tensor_cores(std::get<MatmulParams>(op.params).algo);
        CHECK(tensor >= 3);
        const Schedule s = launch_per_rop("per_op", tg, default_gpu(), "op_");
        const std::vector<KernelResources> two = per_rop(s, compile_nvrtc(with_two_blocks_per_sm(emit_source(s)), "sm_90"));
        for (size_t i = 0; i < tg.rops.size(); ++i) {
            const TileShape sh = shape_of(tg.rops[i]);
            const int row_op = std::get<MatmulParams>(tg.rops[i].params).row_op;
            INFO(sh.kind << " " << sh.bm << " x " << sh.bn << " x " << sh.bk << " row op " << row_op << ": "
                         << two[i].registers << " registers, " << two[i].spill_stores << " B spilled");
            CHECK(two[i].spill_stores == 0);
            CHECK(two[i].spill_loads == 0);
            CHECK(two[i].registers <= 128);
            CHECK(tile_smem_bytes(tg.rops[i], default_gpu()) <= tile_smem_budget(default_gpu()) - ANVIL_SMALL_TILE_SMEM_BYTES);
            std::printf("[rowtile] %-6s %-22s %3d x %3d x %2d row op %d: %3d registers, spills %d/%d B, smem %d B\n",
                        dtype_name(dtype), sh.kind.c_str(), sh.bm, sh.bn, sh.bk, row_op, two[i].registers, two[i].spill_stores,
                        two[i].spill_loads, tile_smem_bytes(tg.rops[i], default_gpu()));
        }
    }
}

TEST_CASE("every GEMV tile variant compiles for sm_90 in at most 128 registers with its ring in flight", "[compile][gemv]") {
    const char* out_path = std::getenv("ANVIL_GEMV_RESOURCES_OUT");
    std::string table =
        "| A | B, C | BN | rmsnorm folded | (256, 2): registers, spills (B) | (256, 2) + epilogue | tile smem (B) | "
        "2 blocks/SM | weight bytes in flight per block (per SM at 2 blocks) |\n|---|---|---|---|---|---|---|---|---|\n";
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
        CAPTURE(dtype_name(dtype));
        const Schedule bare = every_gemv_variant(gemv_model(dtype, false));
        const Schedule fused = every_gemv_variant(gemv_model(dtype, true));
        REQUIRE(bare.tiles.rops.size() == 10);  // 5 widths, with and without the folded norm
        REQUIRE(fused.tiles.rops.size() == bare.tiles.rops.size());
        const std::vector<KernelResources> two = per_rop(bare, compile_nvrtc(with_two_blocks_per_sm(emit_source(bare)), "sm_90"));
        const std::vector<KernelResources> fused_two =
            per_rop(fused, compile_nvrtc(with_two_blocks_per_sm(emit_source(fused)), "sm_90"));
        for (size_t i = 0; i < bare.tiles.rops.size(); ++i) {
            const ROp& op = bare.tiles.rops[i];
            const auto& p = std::get<MatmulParams>(op.params);
            INFO("BN " << p.bn << " a_rms " << p.a_rms << ": " << two[i].registers << " registers, " << two[i].spill_stores
                       << " B spilled; with the epilogue " << fused_two[i].registers << ", " << fused_two[i].spill_stores);
            CHECK(two[i].registers <= 128);
            CHECK(fused_two[i].registers <= 128);
            const int smem = tile_smem_bytes(op, default_gpu());
            CHECK(smem <= tile_smem_budget(default_gpu()));
            CHECK(2 * (smem + 1024) <= 228 * 1024);
            // By construction: all stages but the one multiplied (a K of 512 fills them all).
            const int flight = (ANVIL_GEMV_RING_STAGES - 1) * ANVIL_GEMV_STAGE_BYTES;
            CHECK(2 * flight >= 32 * 1024);
            auto rs = [](const KernelResources& k) { return fmt::format("{}, {}", k.registers, k.spill_stores); };
            table += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |\n", dtype_name(op.dtypes[0]),
                                 dtype_name(dtype), p.bn, p.a_rms ? "yes" : "no", rs(two[i]), rs(fused_two[i]), smem,
                                 2 * (smem + 1024) <= 228 * 1024 ? "yes" : "no", flight, 2 * flight);
        }
    }
    if (out_path) {
        std::ofstream(out_path) << table;
        WARN("wrote " << out_path);
    }
}

TEST_CASE("every GEMM tile variant with a norm of A's rows compiles for sm_90 without spills in at most 128 registers",
          "[compile][gemm][normtile]") {
    // x -> layernorm -> matmul (its beta @ W a bias, then gelu), and the same
    // through an rmsnorm with no epilogue: every CUDA-core and tensor-core
    // variant (f32 also as TF32 and 3xTF32) computes the norm in the tile
    // (rtasks/a_norm.cuh). A variant's rOp alone names its params as a
    // constant, so without a folded norm the norm's code is compiled away.
    for (DType dtype : {DType::f32, DType::f16, DType::bf16})
        for (const char* norm : {"layernorm", "rmsnorm"}) {
            CAPTURE(dtype_name(dtype), norm);
            const bool ln = std::string(norm) == "layernorm";
            const std::string text = fmt::format(R"(anvil: 1
name: norm_tile_resources
dtype: {}
seed: 3
inputs:
  - {{name: x, shape: [512, 512]}}
params:
  - {{name: w, shape: [512, 512]}}
  - {{name: g, shape: [512]}}
  - {{name: beta, shape: [512]}}
nodes:
  - {{name: n, op: {}, inputs: [x, g{}]}}
  - {{name: y0, op: matmul, inputs: [n, w]}}
{}
)",
                                                 dtype_name(dtype), norm, ln ? ", beta" : "",
                                                 ln ? "  - {name: y, op: gelu, inputs: [y0]}\noutputs: [y]" : "outputs: [y0]");
            const Graph g = fold_norms_into_gemm_tiles(infer_shapes(build_graph(load_model_from_string(text, "norm.yaml"))));
            const Schedule s = every_variant(g, ln);
            REQUIRE(s.tiles.rops.size() >= (dtype == DType::f32 ? 16 + 2 * 8 : 16 + 9));
            const std::vector<KernelResources> two = per_rop(s, compile_nvrtc(with_two_blocks_per_sm(emit_source(s)), "sm_90"));
            for (size_t i = 0; i < s.tiles.rops.size(); ++i) {
                const ROp& op = s.tiles.rops[i];
                const TileShape sh = shape_of(op);
                INFO(sh.kind << " " << sh.bm << " x " << sh.bn << " x " << sh.bk << ": " << two[i].registers
                             << " registers, " << two[i].spill_stores << " B spilled");
                std::printf("[normtile] %s %-9s %-22s %3d x %3d x %2d: %3d registers, spills %d/%d B\n", dtype_name(dtype),
                            norm, sh.kind.c_str(), sh.bm, sh.bn, sh.bk, two[i].registers, two[i].spill_stores, two[i].spill_loads);
                CHECK(std::get<MatmulParams>(op.params).a_norm != ANVIL_MM_A_NORM_NONE);
                CHECK(two[i].registers <= 128);
                CHECK(two[i].spill_stores == 0);
                CHECK(two[i].spill_loads == 0);
                CHECK(tile_smem_bytes(op, default_gpu()) <= tile_smem_budget(default_gpu()) - ANVIL_SMALL_TILE_SMEM_BYTES);
            }
        }
}
