// Tensor-core pipelines of other depths than the default three stages
// (rtasks/tc_stages.cuh, the params' `stages`): the matmul and the conv2d
// in four stages (three slices in flight) and two, over odd shapes in f16,
// bf16 and f32 as TF32 and 3xTF32, on the host (its fallback) and on simt
// with the thread-level checks on; the variants offer four stages where
// they fit the budget and not for the widest tiles; a four-stage pipeline
// that waits for one group too few, or skips its wait or its barrier, is
// refused by simt. (NVRTC's registers and spills of every variant:
// test_tile_resources.cpp.)
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "conv_cases.h"
#include "matmul_cases.h"
#include "run_checks.h"
#include "runtime/simt_backend.h"
#include "schedule/cost_model.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

// BM x BN in `stages` stages.
struct Deep {
    int bm, bn, stages;
};
const Deep kDeep[] = {{32, 32, 4}, {64, 128, 4}, {128, 64, 4}, {32, 128, 4}, {64, 64, 2}};
const int kDeepCount = sizeof(kDeep) / sizeof(kDeep[0]);

// M, N and K take 1, 7, 33 and 129; K = 40 and 72 are 16-byte rows (cp.async
// with zero-filled tails), N = 72 an n-contiguous 16-bit B's.
const std::vector<test::MmCase> kMmCases = {{1, 33, 7, false},   {7, 129, 1, true},      {33, 1, 129, false},
                                            {129, 7, 33, true},  {129, 129, 129, false}, {33, 40, 7, true},
                                            {70, 72, 45, false}, {37, 48, 72, false}};

// Odd pixel and channel counts, strides, padding, groups; K = 27 (w's rows
// unaligned) and 144, 16, 24 (16-byte rows of w in 16-bit types).
const std::vector<test::ConvCase> kConvCases = {
    {1, 3, 7, 9, 17, 3, 3, 1, 1, 1, 1, true},     // M = 63, K = 27, N = 17
    {2, 16, 9, 12, 33, 3, 3, 2, 1, 1, 1, false},  // strided, K = 144
    {3, 16, 1, 1, 33, 1, 1, 1, 0, 1, 1, false},   // M = 1 per image, N = 33, K = 16
    {1, 48, 11, 12, 34, 1, 1, 1, 0, 1, 2, true},  // 2 groups: M = 132, N = 17, K = 24
};

Gpu with_precision(F32Precision p) {
    Gpu g = default_gpu();
    g.f32_precision = p;
    return g;
}

int stages_of(const ROp& op) {
    if (const auto* p = std::get_if<MatmulParams>(&op.params)) return anvil_tc_stages(p->stages);
    return anvil_tc_stages(std::get<WindowParams>(op.params).stages);
}

// Every GEMM rOp of `g` on tensor cores in its node's kDeep entry, its BK
// the deepest that fits in that many stages. 3xTF32 holds at most 8
// products a warp: its 128 x 64 and 64 x 128 are the widest.
Schedule every_deep_shape(const Graph& g, F32Precision precision) {
    TileGraph tg = decompose(g);
    const Gpu gpu = with_precision(precision);
    for (ROp& op : tg.rops) {
        const Deep d = kDeep[std::stoi(op.name.substr(op.name.rfind("_v") + 2))];
        const int bk = deepest_tensor_core_bk(op, d.bm, d.bn, gpu, d.stages);
        REQUIRE(bk > 0);
        op = on_tensor_cores(op, d.bm, d.bn, bk, precision, d.stages);
        REQUIRE(stages_of(op) == d.stages);
        REQUIRE(tile_smem_bytes(op, gpu) <= tile_smem_budget(gpu));
        // The stages are a template argument of the variant.
        CHECK(variant_of(op).find(", " + std::to_string(d.stages) + ">") != std::string::npos);
    }
    verify_tile_graph(tg, gpu);
    return launch_per_rop("per_op", tg, gpu, "op_");
}

// The outputs on host and simt within the precision's tolerance of the reference.
void expect_both_backends(const Graph& g, const Schedule& s, F32Precision precision, size_t count) {
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    for (bool simt : {false, true}) {
        const TensorMap out = simt ? run_simt(s, values) : run_host(s, values);
        const auto checks = check_outputs(g, out, reference, &values, simt ? precision : F32Precision::f32);
        REQUIRE(checks.size() == count);
        for (const OutputCheck& c : checks) {
            INFO((simt ? "simt " : "host ") << c.name << ": relative L2 error " << c.rel_l2 << ", tolerance "
                                            << c.tolerance);
            CHECK(c.ok());
        }
    }
}

}  // namespace

TEST_CASE("tensor-core stages: the matmul in four and two stages over odd shapes, every format, on host and simt",
          "[simt][tensor][stages]") {
    struct Format {
        DType dtype;
        F32Precision precision;
    };
    const Format f = GENERATE(Format{DType::f16, F32Precision::f32}, Format{DType::bf16, F32Precision::f32},
                              Format{DType::f32, F32Precision::tf32}, Format{DType::f32, F32Precision::tf32x3});
    CAPTURE(dtype_name(f.dtype), static_cast<int>(f.precision));
    const Graph g = test::matmul_cases_graph("tc_stages", f.dtype, kMmCases, kDeepCount, 41);
    const Schedule s = every_deep_shape(g, f.precision);
    expect_both_backends(g, s, f.precision, kMmCases.size() * kDeepCount);
}

TEST_CASE("tensor-core stages: the conv2d in four and two stages over odd shapes, every format, on host and simt",
          "[simt][tensor][stages][conv]") {
    struct Format {
        DType dtype;
        F32Precision precision;
    };
    const Format f = GENERATE(Format{DType::f16, F32Precision::f32}, Format{DType::bf16, F32Precision::f32},
                              Format{DType::f32, F32Precision::tf32});
    CAPTURE(dtype_name(f.dtype), static_cast<int>(f.precision));
    const Graph g = test::conv_cases_graph(f.dtype, kConvCases, kDeepCount, 43);
    const Schedule s = every_deep_shape(g, f.precision);
    expect_both_backends(g, s, f.precision, kConvCases.size() * kDeepCount);
}

TEST_CASE("tensor-core stages: the variants take four stages where they fit the budget, never for the widest tiles",
          "[tensor][stages]") {
    const Graph mm = test::matmul_cases_graph("tc_stages", DType::f16, {{512, 512, 512, false}}, 1, 3);
    const ROp op = decompose(mm).rops.front();
    const Gpu gpu = default_gpu();
    int four = 0, three = 0;
    for (const ROp& v : tile_variants(op, gpu)) {
        if (!computes_on_tensor_cores(v)) continue;
        const auto& p = std::get<MatmulParams>(v.params);
        CAPTURE(p.bm, p.bn, p.bk, p.stages);
        CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu));
        CHECK((p.stages == 0 || p.stages == 4));
        four += p.stages == 4;
        three += p.stages == 0;
        if (p.stages == 4) CHECK(p.bm * p.bn < 128 * 128);  // the widest keep 48 KB: no room for a fourth
    }
    CHECK(three == 9);
    CHECK(four == 8);
    // 64 x 128 f16: 27,648 B a stage at BK 64 (128-byte rows; B has room
    // for [128][64 + 8]), four of them 110,592 B, within the 115,648 of two
    // blocks per SM.
    CHECK(deepest_tensor_core_bk(op, 64, 128, gpu, 4) == 64);
    CHECK(anvil_tc_smem_bytes(64, 128, 64, ANVIL_TC_F16, 4) == 110592);
    CHECK(deepest_tensor_core_bk(op, 128, 128, gpu, 4) == 0);
    // The cost model sees the deeper pipeline: three slices in flight hide
    // more of the K loop's latency, so the same shape is predicted no slower.
    const ROp s3 = on_tensor_cores(op, 64, 128, 32), s4 = on_tensor_cores(op, 64, 128, 32, F32Precision::f32, 4);
    CHECK(rop_seconds_alone(gpu, s4, 1, 1) <= rop_seconds_alone(gpu, s3, 1, 1));
    // The default count is kept as 0 (its variant's name unchanged).
    CHECK(std::get<MatmulParams>(on_tensor_cores(op, 64, 64, 32, F32Precision::f32, 3).params).stages == 0);
}

TEST_CASE("tensor-core stages: counts the device code cannot take are refused", "[tensor][stages]") {
    const Graph mm = test::matmul_cases_graph("tc_stages", DType::f16, {{33, 40, 7, false}}, 1, 3);
    const ROp op = decompose(mm).rops.front();
    CHECK_THROWS_WITH(on_tensor_cores(op, 64, 64, 32, F32Precision::f32, 5), Catch::Contains("5 stages"));
    CHECK_THROWS_WITH(on_tensor_cores(op, 64, 64, 32, F32Precision::f32, 1), Catch::Contains("1 stages"));
    TileGraph tg = decompose(mm);
    std::get<MatmulParams>(tg.rops.front().params).stages = 4;  // a CUDA-core tile has its own four
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("only a tensor-core tile"));
    tg.rops.front() = on_tensor_cores(op, 64, 64, 32);
    std::get<MatmulParams>(tg.rops.front().params).stages = 6;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("stages 6"));
    const Graph conv = test::conv_cases_graph(DType::f16, {kConvCases[1]}, 1, 3);
    TileGraph ctg = decompose(conv);
    REQUIRE(ctg.rops.front().kind == TaskKind::conv2d);
    std::get<WindowParams>(ctg.rops.front().params).stages = 4;
    CHECK_THROWS_WITH(verify_tile_graph(ctg, default_gpu()), Catch::Contains("only a tensor-core conv2d tile"));
}

namespace {

// One f16 matmul (K = 129: many slices, a zero-filled tail) on a four-stage
// 32 x 32 tile, its source mutated.
Schedule four_stage_schedule(const Graph& g) {
    TileGraph tg = decompose(g);
    tg.rops.front() = on_tensor_cores(tg.rops.front(), 32, 32, 16, F32Precision::f32, 4);
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

TensorMap run_mutant(const Graph& g, const std::string& from, const std::string& to) {
    return run_simt(four_stage_schedule(g), make_values(g, std::nullopt), test::with_mutation(from, to));
}

}  // namespace

TEST_CASE("tensor-core stages: a four-stage pipeline short of a wait or a barrier is refused by simt",
          "[simt][tensor][stages][mutation]") {
    const Graph g = test::matmul_cases_graph("tc_stages_mutants", DType::f16, {{40, 129, 48, false}}, 1, 5);
    // Unbroken, it passes.
    test::expect_reference(g, make_values(g, std::nullopt),
                           run_simt(four_stage_schedule(g), make_values(g, std::nullopt)), 1);
    const std::string wait = "anvil_cp_async_wait<S - 2>();";
    // No wait: the slice is read before its copies land.
    CHECK_THROWS_WITH(run_mutant(g, wait, ""), Catch::Contains("on tensor cores") &&
                                                   Catch::Contains("before the cp.async.wait_group"));
    // Waiting as if there were one stage more: slice kt's group may still be in flight.
    CHECK_THROWS_WITH(run_mutant(g, wait, "anvil_cp_async_wait<S - 1>();"),
                      Catch::Contains("before the cp.async.wait_group"));
    // No barrier after the wait: other threads' copies, and the stage
    // overwritten while a slow warp still reads it, race.
    CHECK_THROWS_WITH(run_mutant(g, "anvil_barrier();               // ... and everyone's", "// ... and everyone's"),
                      Catch::Contains("shared-memory race") && Catch::Contains("on tensor cores"));
}

namespace {

// One f16 matmul (M 130, K 104, N 136: edges on every side, rows of whole
// 16-byte chunks) on a 128 x 128 tile of BK 32, whose slices are 512 chunks:
// two per thread, the second STEP rows below the first (anvil_tc_stage's
// unrolled path).
Schedule wide_schedule(const Graph& g) {
    TileGraph tg = decompose(g);
    tg.rops.front() = on_tensor_cores(tg.rops.front(), 128, 128, 32, F32Precision::f32, 4);
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

TensorMap run_wide(const Graph& g, const HostRunOptions& opt = {}) {
    return run_simt(wide_schedule(g), make_values(g, std::nullopt), opt);
}

bool matches_reference(const Graph& g, const TensorMap& outputs) {
    for (const OutputCheck& c : check_outputs(g, outputs, reference_execute(g, make_values(g, std::nullopt))))
        if (!c.ok()) return false;
    return true;
}

}  // namespace

TEST_CASE("tensor-core stages: a thread's later chunks of a slice come from and land STEP rows down",
          "[simt][tensor][stages][mutation]") {
    for (bool transpose_b : {false, true}) {  // B staged [BK][BN] (n contiguous) and [BN][BK]
        CAPTURE(transpose_b);
        const Graph g = test::matmul_cases_graph("tc_chunks", DType::f16, {{130, 104, 136, transpose_b}}, 1, 9);
        CHECK(matches_reference(g, run_wide(g)));
        // The second chunk into the first one's next row, which another
        // thread's first chunk fills: a race.
        CHECK_THROWS_WITH(run_wide(g, test::with_mutation("anvil_cp_async16(d + j * STEP * LD,",
                                                          "anvil_cp_async16(d + j * LD,")),
                          Catch::Contains("shared-memory race") && Catch::Contains("on tensor cores"));
        // ... or from the first one's next row: wrong numbers.
        CHECK_FALSE(matches_reference(g, run_wide(g, test::with_mutation("(base + (first + j * STEP * sr))",
                                                                           "(base + (first + j * sr))"))));
    }
}
