// The Hopper wgmma matmul tile (rtasks/matmul_wgmma.cuh) against the float64
// reference: on simt, where wgmma, its descriptors and the warpgroup
// collectives are emulated with the thread-level checks on, and on the host
// (the tile's fallback), in f16 and bf16, over odd shapes (M, N, K among 1,
// 7, 33, 129 and larger ones), k-contiguous B (16-byte cp.async staging,
// K-major), n-contiguous B (element staging where its rows are not 16-byte
// aligned, else 16-byte cp.async into the MN-major layout read through
// wgmma's transpose bit, odd N zero-filled in front of live padding
// columns), transposed A, broadcast batches, a
// fused epilogue, a fused row op, split-K; verify_tile_graph refuses what
// the tile cannot take; NVRTC compiles every variant for sm_90a without
// spills (and for sm_90, where it is the mma.sync tile).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "matmul_cases.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "split_k_cases.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

// 128 x BN x BK in `stages` stages: each fits the megakernel's tile budget.
struct Shape {
    int bn, bk, stages;
};
const Shape kShapes[] = {{128, 64, 3}, {128, 32, 4}, {64, 64, 4}, {64, 16, 3}};
const int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

// M, K, N among 1, 7, 33, 129, and larger ones (several tiles, several
// slices, ragged last ones); transpose_b: B k contiguous (cp.async path).
const std::vector<test::MmCase> kCases = {{1, 33, 7, false},    {7, 129, 1, true},     {33, 1, 129, false},
                                          {129, 7, 33, true},   {129, 129, 129, false}, {129, 129, 129, true},
                                          {200, 300, 260, true}, {257, 72, 136, false}};

// Every matmul rOp of `tg` as the wgmma tile of its node's kShapes entry.
TileGraph on_wgmma_all(TileGraph tg, bool by_name = true) {
    for (ROp& op : tg.rops) {
        if (op.kind != TaskKind::matmul) continue;
        const Shape s = by_name ? kShapes[std::stoi(op.name.substr(op.name.rfind("_v") + 2))] : kShapes[0];
        op = on_wgmma(op, s.bn, s.bk, s.stages);
        REQUIRE(tile_smem_bytes(op, default_gpu()) <= tile_smem_budget(default_gpu()));
        CHECK(variant_of(op) == fmt::format("anvil_matmul_wgmma_tile<{0}, {0}, {0}, 128, {1}, {2}, {3}>",
                                            op.dtypes[0] == DType::bf16 ? "anvil_bf16" : "anvil_f16", s.bn, s.bk,
                                            s.stages));
    }
    verify_tile_graph(tg, default_gpu());
    return tg;
}

void expect_host_and_simt(const Graph& g, const Schedule& s, size_t count) {
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), count);
    test::expect_reference(g, values, run_simt(s, values), count);
}

// Strides, transposes, broadcast batches, a fused epilogue (bias, gelu).
const char* kStrided = R"(anvil: 1
name: wgmma_strided
dtype: {dtype}
seed: 13
inputs:
  - {{name: x, shape: [37, 70]}}
  - {{name: xt, shape: [70, 45]}}
  - {{name: h, shape: [3, 33, 24]}}
params:
  - {{name: w, shape: [70, 45]}}
  - {{name: wt, shape: [45, 70]}}
  - {{name: k, shape: [3, 50, 24]}}
  - {{name: wb, shape: [24, 40]}}
  - {{name: b, shape: [45]}}
nodes:
  - {{name: y0, op: matmul, inputs: [x, w]}}
  - {{name: y1, op: add, inputs: [y0, b]}}
  - {{name: y, op: gelu, inputs: [y1]}}
  - {{name: yt, op: matmul, inputs: [x, wt], transpose_b: true}}
  - {{name: ya, op: matmul, inputs: [xt, w], transpose_a: true}}
  - {{name: s, op: matmul, inputs: [h, k], transpose_b: true}}
  - {{name: hb, op: matmul, inputs: [h, wb]}}
  - {{name: p, op: softmax, inputs: [s]}}
outputs: [y, yt, ya, p, hb]
)";

Graph strided_graph(DType dtype) {
    const std::string text = fmt::format(kStrided, fmt::arg("dtype", dtype_name(dtype)));
    return infer_shapes(build_graph(load_model_from_string(text, "wgmma_strided.yaml")));
}

// [K, N] weights as the columns 8..8+N-1 of a [K, P] parameter (P a
// multiple of 8 past them, random values in every column): B n contiguous,
// its rows 16-byte aligned at any N, the columns past N live data that the
// MN-major staging must zero-fill, not read. M, K, N among 1, 7, 33, 129,
// and larger ones. Each case once per kShapes variant (y<c>_v<variant>).
Graph mn_cases_graph(DType dtype) {
    const std::vector<test::MmCase> cases = {{1, 33, 7, false},    {7, 129, 1, false},    {33, 1, 129, false},
                                             {129, 7, 33, false},  {129, 129, 129, false}, {200, 300, 260, false},
                                             {257, 72, 136, false}};
    std::string inputs, params, nodes, outputs;
    for (size_t c = 0; c < cases.size(); ++c) {
        const test::MmCase& mc = cases[c];
        inputs += fmt::format("  - {{name: x{}, shape: [{}, {}]}}\n", c, mc.m, mc.k);
        params += fmt::format("  - {{name: w{}, shape: [{}, {}]}}\n", c, mc.k, (mc.n + 8 + 7) / 8 * 8 + 8);
        nodes += fmt::format("  - {{name: b{0}, op: slice, inputs: [w{0}], axis: 1, start: 8, end: {1}}}\n", c, 8 + mc.n);
        for (int v = 0; v < kShapeCount; ++v) {
            nodes += fmt::format("  - {{name: y{0}_v{1}, op: matmul, inputs: [x{0}, b{0}]}}\n", c, v);
            outputs += fmt::format("{}y{}_v{}", outputs.empty() ? "" : ", ", c, v);
        }
    }
    const std::string text =
        fmt::format("anvil: 1\nname: wgmma_mn\ndtype: {}\nseed: 29\ninputs:\n{}params:\n{}nodes:\n{}outputs: [{}]\n",
                    dtype_name(dtype), inputs, params, nodes, outputs);
    return infer_shapes(build_graph(load_model_from_string(text, "wgmma_mn.yaml")));
}

// Whether the tile stages this matmul's B MN-major (anvil_wgmma_mn_ok: n
// contiguous, every row 16-byte aligned).
bool b_staged_mn(const ROp& op) {
    const auto& p = std::get<MatmulParams>(op.params);
    return p.b_sn == 1 && p.b_sk * 2 % 16 == 0 && p.b_off % 16 == 0;
}

}  // namespace

TEST_CASE("wgmma tile: odd shapes in every variant, f16 and bf16, on host and simt", "[simt][wgmma]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::matmul_cases_graph("wgmma_cases", dtype, kCases, kShapeCount, 23);
    const Schedule s = launch_per_rop("per_op", on_wgmma_all(decompose(g)), default_gpu(), "op_");
    expect_host_and_simt(g, s, kCases.size() * kShapeCount);
}

TEST_CASE("wgmma tile: [K, N] weights staged MN-major by cp.async at odd shapes, f16 and bf16, on host and simt",
          "[simt][wgmma]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = mn_cases_graph(dtype);
    const TileGraph tg = on_wgmma_all(decompose(g));
    int mn = 0, matmuls = 0;
    for (const ROp& op : tg.rops)
        if (op.kind == TaskKind::matmul) ++matmuls, mn += b_staged_mn(op);
    CHECK(matmuls == 7 * kShapeCount);
    CHECK(mn == matmuls);  // the slices are read in place: every B takes the MN-major path
    expect_host_and_simt(g, launch_per_rop("per_op", tg, default_gpu(), "op_"), 7 * kShapeCount);
}

TEST_CASE("wgmma tile: strides, transposes, batches, a fused epilogue and row op, on host and simt",
          "[simt][wgmma]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = strided_graph(dtype);
    const TileGraph tg = on_wgmma_all(fuse(decompose(g), default_gpu()), false);
    int epilogues = 0, row_ops = 0;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) epilogues += op.epilogue.nsteps > 0, row_ops += p->row_op != 0;
    CHECK(epilogues > 0);
    CHECK(row_ops > 0);
    expect_host_and_simt(g, launch_per_rop("per_op", tg, default_gpu(), "op_"), 5);
}

TEST_CASE("wgmma tile: a thread's later chunks of a slice are read STEP rows (K-major) or KSTEP k (MN-major) on",
          "[simt][wgmma][mutation]") {
    // A [257, 72] K-major and B [72, 136] MN-major in 128 x 128 x 64 (4 chunks a thread of each).
    const Graph g = test::matmul_cases_graph("wgmma_chunks", DType::f16, {{257, 72, 136, false}}, 1, 31);
    const Schedule s = launch_per_rop("per_op", on_wgmma_all(decompose(g)), default_gpu(), "op_");
    const TensorMap values = make_values(g, std::nullopt);
    auto matches = [&](const TensorMap& out) {
        for (const OutputCheck& c : check_outputs(g, out, reference_execute(g, values)))
            if (!c.ok()) return false;
        return true;
    };
    CHECK(matches(run_simt(s, values)));
    CHECK_FALSE(matches(run_simt(s, values, test::with_mutation("(base + (off + j * STEP * sr))",
                                                                "(base + (off + j * sr))"))));
    CHECK_FALSE(matches(run_simt(s, values, test::with_mutation("(base + (off + j * KSTEP * sk))",
                                                                "(base + (off + j * sk))"))));
}

TEST_CASE("wgmma tile: split-K partials on host and simt, race-free", "[simt][wgmma][split_k]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::pre_ln_model(37, dtype);
    const TileGraph tg = test::split_every_matmul(test::registers_only(g), 2, ANVIL_MM_WGMMA);
    int split = 0, wgmma = 0;
    for (const ROp& op : tg.rops) {
        split += op.split_k > 1;
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) wgmma += p->algo == ANVIL_MM_WGMMA;
    }
    CHECK(split == 2);
    CHECK(wgmma == 2);
    const Schedule s = test::persistent(tg);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values, test::checked(false)), 2);
    test::expect_reference(g, values, run_host(s, values, test::checked(true)), 2);
}

TEST_CASE("wgmma tile: what it cannot take is refused", "[wgmma]") {
    TileGraph f32 = decompose(test::matmul_cases_graph("wgmma_f32", DType::f32, kCases, 1, 3));
    CHECK_THROWS_WITH(on_wgmma(f32.rops.front(), 128, 64, 3), Catch::Contains("cannot use tensor cores"));
    TileGraph tg = decompose(test::matmul_cases_graph("wgmma_bad", DType::f16, kCases, 1, 3));
    CHECK_THROWS_WITH(on_wgmma(tg.rops.front(), 96, 64, 3), Catch::Contains("as a 128 x 96 x 64 tile"));
    CHECK_THROWS_WITH(on_wgmma(tg.rops.front(), 128, 64, 2), Catch::Contains("in 2 stages"));
    tg.rops.front() = on_wgmma(tg.rops.front(), 128, 64, 3);
    std::get<MatmulParams>(tg.rops.front().params).bm = 64;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("a wgmma tile needs"));
}

TEST_CASE("wgmma tile: every variant compiles for sm_90a without spills, and for sm_90 as the mma.sync tile",
          "[wgmma][compile]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::matmul_cases_graph("wgmma_compile", dtype, {{129, 129, 129, false}}, kShapeCount, 5);
    const Schedule s = launch_per_rop("per_op", on_wgmma_all(decompose(g)), default_gpu(), "op_");
    const std::string src = emit_source(s);
    CHECK(src.find("anvil_matmul_wgmma_tile<") != std::string::npos);
    const CubinResult r = compile_nvrtc(src, "sm_90a");
    CHECK(!r.cubin.empty());
    for (const KernelResources& k : r.kernels) {
        INFO(k.name << ": " << k.registers << " registers, " << k.spill_stores << " bytes spilled");
        CHECK(k.spill_stores == 0);
    }
    // Below sm_90a the fallback (the 128 x BN mma.sync tile, BK 16) still
    // compiles; its spills under two blocks per SM are the widest mma.sync
    // tiles' own (docs/perf/wgmma-2026-11-28.md), not checked here.
    CHECK(!compile_nvrtc(src, "sm_90").cubin.empty());
}
