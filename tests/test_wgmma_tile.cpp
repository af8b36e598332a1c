// The Hopper wgmma matmul tile (rtasks/matmul_wgmma.cuh) against the float64
// reference: on simt, where wgmma, its descriptors and the warpgroup
// collectives are emulated with the thread-level checks on, and on the host
// (the tile's fallback), in f16 and bf16, over odd shapes (M, N, K among 1,
// 7, 33, 129 and larger ones), k-contiguous B (16-byte cp.async staging,
// K-major), n-contiguous B (element staging where its rows are not 16-byte
// aligned, else 16-byte cp.async into the MN-major layout read through
// wgmma's transpose bit, odd N zero-filled in front of live padding
// columns), transposed A, broadcast batches, a
// fused epilogue, a fused row op, split-K; at BK 64, A copied by the TMA
// engine through the arena's tensor maps (which A gets one, the box at the
// tile's rows, its swizzle, the wait on its mbarrier), on the device too;
// verify_tile_graph refuses what
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
#include "runtime/arena_io.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "split_k_cases.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "tile/fusion.h"
#include "tile/tensor_maps.h"
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

// Every matmul rOp of `tg` as a wgmma tile: node _v<v>'s is kShapes[shapes[v]]
// (shapes empty: kShapes[0] for every node).
TileGraph on_wgmma_all(TileGraph tg, const std::vector<int>& shapes = {0, 1, 2, 3}) {
    for (ROp& op : tg.rops) {
        if (op.kind != TaskKind::matmul) continue;
        const Shape s = shapes.empty() ? kShapes[0]
                                       : kShapes[shapes.at(std::stoul(op.name.substr(op.name.rfind("_v") + 2)))];
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

// One model's wgmma schedule on simt, for mutation tests: whether a run
// (of the rtasks as they are, or mutated) matches the reference.
struct SimtMutations {
    Graph g;
    Schedule s;
    TensorMap values;
    SimtMutations(const Graph& graph, const TileGraph& tg)
        : g(graph), s(launch_per_rop("per_op", tg, default_gpu(), "op_")), values(make_values(g, std::nullopt)) {}
    bool matches(const HostRunOptions& opt = {}) const {
        for (const OutputCheck& c : check_outputs(g, run_simt(s, values, opt), reference_execute(g, values)))
            if (!c.ok()) return false;
        return true;
    }
    // Wrong outputs, or a read the checks refuse.
    bool goes_wrong(const std::string& from, const std::string& to) const {
        try {
            return !matches(test::with_mutation(from, to));
        } catch (const std::exception&) {
            return true;
        }
    }
};

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
    const TileGraph tg = on_wgmma_all(fuse(decompose(g), default_gpu()), {});
    int epilogues = 0, row_ops = 0;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) epilogues += op.epilogue.nsteps > 0, row_ops += p->row_op != 0;
    CHECK(epilogues > 0);
    CHECK(row_ops > 0);
    expect_host_and_simt(g, launch_per_rop("per_op", tg, default_gpu(), "op_"), 5);
}

TEST_CASE("wgmma tile: a thread's later chunks of a slice are read STEP rows (K-major) or KSTEP k (MN-major) on, and fenced",
          "[simt][wgmma][mutation]") {
    // A [257, 72] K-major and B [72, 136] MN-major in 128 x 128 x 32 (2
    // chunks a thread of each; at BK 64 the TMA engine would copy A).
    const Graph g = test::matmul_cases_graph("wgmma_chunks", DType::f16, {{257, 72, 136, false}}, 1, 31);
    const TileGraph tg = on_wgmma_all(decompose(g), {1});
    REQUIRE(arena_tensor_maps(tg).empty());
    const SimtMutations run(g, tg);
    CHECK(run.matches());
    CHECK_FALSE(run.matches(test::with_mutation("(base + (off + j * STEP * sr))", "(base + (off + j * sr))")));
    CHECK_FALSE(run.matches(test::with_mutation("(base + (off + j * KSTEP * sk))", "(base + (off + j * sk))")));
    // Without the proxy fence the tensor cores may read what cp.async wrote
    // before it reaches them: the checks refuse it.
    CHECK_THROWS_WITH(run.matches(test::with_mutation("anvil_fence_proxy_async();          // ... and its writes",
                                                      "/* no fence */;          // ... and its writes")),
                      Catch::Contains("through the generic proxy with no fence.proxy.async after the write"));
}

// A k contiguous with 16-byte aligned rows (K a multiple of 8) at BK 64:
// the TMA engine copies it through the arena's map, and B too where its
// rows are 16-byte aligned: [N, K] (K-major, the second and fourth cases)
// or [K, N] (MN-major, the last two; N 136 leaves the second box of a
// 128-wide tile mostly past N). K below, at and past one box, M from 1 to
// three row tiles (the boxes' rows past M and K zero), odd N.
const std::vector<test::MmCase> kTmaCases = {{1, 8, 7, false},     {7, 72, 33, true},    {129, 136, 129, false},
                                             {257, 200, 33, true}, {33, 64, 129, false}, {65, 72, 136, false},
                                             {200, 128, 64, false}};
const size_t kTmaBMaps = 4;

// x [45, 72] times a batch of 3 weights (A the same for every batch: one
// map), h [3, 40, 72] times one weight (an A per batch: cp.async), x's
// transpose (m contiguous: cp.async), a K of 66 (rows 132 bytes apart:
// cp.async).
const char* kTmaMixed = R"(anvil: 1
name: wgmma_tma_mixed
dtype: {dtype}
seed: 47
inputs:
  - {{name: x, shape: [45, 72]}}
  - {{name: h, shape: [3, 40, 72]}}
  - {{name: xt, shape: [72, 45]}}
  - {{name: z, shape: [30, 66]}}
params:
  - {{name: k, shape: [3, 72, 33]}}
  - {{name: w, shape: [72, 50]}}
  - {{name: v, shape: [66, 20]}}
nodes:
  - {{name: yb_v0, op: matmul, inputs: [x, k]}}
  - {{name: yh_v0, op: matmul, inputs: [h, w]}}
  - {{name: yt_v0, op: matmul, inputs: [xt, w], transpose_a: true}}
  - {{name: yz_v0, op: matmul, inputs: [z, v]}}
outputs: [yb_v0, yh_v0, yt_v0, yz_v0]
)";

TEST_CASE("wgmma tile: A copied by the TMA engine through the arena's tensor maps, f16 and bf16, on host and simt",
          "[simt][wgmma][tma]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::matmul_cases_graph("wgmma_tma", dtype, kTmaCases, 2, 41);
    const TileGraph tg = on_wgmma_all(decompose(g), {0, 2});  // 128 x 128 x 64 in 3 stages, 128 x 64 x 64 in 4
    const std::vector<ArenaTensorMap> maps = arena_tensor_maps(tg);
    REQUIRE(maps.size() == 2 * (kTmaCases.size() + kTmaBMaps));
    const int64_t table = (tg.arena_bytes + 255) / 256 * 256;
    for (size_t i = 0; i < maps.size(); ++i) {
        const auto& p = std::get<MatmulParams>(tg.rops[static_cast<size_t>(maps[i].rop)].params);
        const TmaView& v = maps[i].view;
        CAPTURE(i, p.M, p.K, p.N, p.b_sn);
        CHECK(maps[i].at == table + 128 * static_cast<int64_t>(i));  // after every tensor, 128 bytes apart
        CHECK((v.box_cols == 64 && v.swizzle_128b));
        if (maps[i].operand == MapOperand::a) {
            CHECK((v.base == static_cast<uint64_t>(p.a_off) && v.rows == static_cast<uint64_t>(p.M) &&
                   v.cols == static_cast<uint64_t>(p.K) && v.box_rows == 128));
        } else if (p.b_sn == 1) {  // [K, N]: rows of n
            CHECK((v.base == static_cast<uint64_t>(p.b_off) && v.rows == static_cast<uint64_t>(p.K) &&
                   v.cols == static_cast<uint64_t>(p.N) && v.box_rows == 64));
        } else {  // [N, K]: rows of k
            CHECK((v.base == static_cast<uint64_t>(p.b_off) && v.rows == static_cast<uint64_t>(p.N) &&
                   v.cols == static_cast<uint64_t>(p.K) && v.box_rows == static_cast<unsigned>(p.bn)));
        }
    }
    CHECK(static_cast<int64_t>(arena_size(tg)) >= maps.back().at + 128);
    expect_host_and_simt(g, launch_per_rop("per_op", tg, default_gpu(), "op_"), 2 * kTmaCases.size());
}

TEST_CASE("wgmma tile: which A gets a tensor map, and the others on cp.async beside them", "[simt][wgmma][tma]") {
    const Graph g =
        infer_shapes(build_graph(load_model_from_string(fmt::format(kTmaMixed, fmt::arg("dtype", "bf16")), "m.yaml")));
    const TileGraph tg = on_wgmma_all(decompose(g), {0});
    const std::vector<ArenaTensorMap> maps = arena_tensor_maps(tg);
    REQUIRE(maps.size() == 1);
    CHECK(tg.rops[static_cast<size_t>(maps[0].rop)].name.rfind("yb_v0", 0) == 0);
    // At BK 32 no A has one.
    CHECK(arena_tensor_maps(on_wgmma_all(decompose(g), {1})).empty());
    expect_host_and_simt(g, launch_per_rop("per_op", tg, default_gpu(), "op_"), 4);
}

TEST_CASE("wgmma tile: the TMA path waits on the stage's mbarrier and copies the box at the tile's rows",
          "[simt][wgmma][tma][mutation]") {
    const Graph g = test::matmul_cases_graph("wgmma_tma_m", DType::f16, {{257, 200, 129, false}}, 1, 43);
    const TileGraph tg = on_wgmma_all(decompose(g), {0});
    REQUIRE(arena_tensor_maps(tg).size() == 1);
    const SimtMutations run(g, tg);
    CHECK(run.matches());
    // No wait: the warps read a box that has not landed for them.
    CHECK_THROWS_WITH(run.matches(test::with_mutation("if (TMA) anvil_mbarrier_wait_parity(",
                                                      "if (false) anvil_mbarrier_wait_parity(")),
                      Catch::Contains("which a cp.async.bulk landed, without waiting on its mbarrier"));
    // Every tile's box at row 0, and the swizzled box read as unswizzled core matrices.
    CHECK_FALSE(run.matches(test::with_mutation("slice * BK, at.m0, bar)", "slice * BK, 0, bar)")));
    CHECK_FALSE(run.matches(test::with_mutation("TMA ? anvil_wgmma_desc_sw128(as + wg * 64 * BK + kk * 16, 1024)",
                                                "TMA ? anvil_wgmma_desc(as + wg * 64 * BK + kk * 128, 128, BK * 16)")));
}

TEST_CASE("wgmma tile: B [K, N] by TMA: two boxes a slice at the tile's columns, atoms along N one leading offset apart",
          "[simt][wgmma][tma][mutation]") {
    const Graph g = test::matmul_cases_graph("wgmma_tma_b", DType::bf16, {{257, 200, 136, false}}, 1, 53);
    const TileGraph tg = on_wgmma_all(decompose(g), {0});
    REQUIRE(arena_tensor_maps(tg).size() == 2);
    const SimtMutations run(g, tg);
    CHECK(run.matches());
    CHECK(run.goes_wrong("b_map, at.n0 + 64 * j, slice * BK, bar)", "b_map, 64 * j, slice * BK, bar)"));
    CHECK(run.goes_wrong("anvil_wgmma_desc_sw128_mn(bs + kk * 1024, 64 * BK * 2, 1024)",
                         "anvil_wgmma_desc_sw128_mn(bs + kk * 1024, 1024, 64 * BK * 2)"));
}

TEST_CASE("wgmma tile: A by TMA and by cp.async agree with the reference on a Hopper device", "[wgmma][tma][gpu]") {
    REQUIRE_DEVICE();
    if (cuda_device_arch(0) != "sm_90") {
        WARN("skipped: wgmma and the TMA engine's tiled copies need an sm_90 device, this one is "
             << cuda_device_arch(0));
        return;
    }
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::matmul_cases_graph("wgmma_tma", dtype, kTmaCases, 2, 41);
    const TileGraph tg = on_wgmma_all(decompose(g), {0, 2});
    REQUIRE(arena_tensor_maps(tg).size() == 2 * (kTmaCases.size() + kTmaBMaps));
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_cuda(launch_per_rop("per_op", tg, default_gpu(), "op_"), values),
                           2 * kTmaCases.size());
    const Graph mixed = infer_shapes(build_graph(
        load_model_from_string(fmt::format(kTmaMixed, fmt::arg("dtype", dtype_name(dtype))), "m.yaml")));
    const TensorMap mixed_values = make_values(mixed, std::nullopt);
    test::expect_reference(mixed, mixed_values,
                           run_cuda(launch_per_rop("per_op", on_wgmma_all(decompose(mixed), {0}), default_gpu(), "op_"),
                                    mixed_values),
                           4);
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
