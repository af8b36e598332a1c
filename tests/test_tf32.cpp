// f32 matmuls on tensor cores (--precision): TF32 and 3xTF32 tiles
// (rtasks/tc_stages.cuh, matmul_tc.cuh) over odd shapes, both B layouts and
// every tile shape, on the simt backend (the mma.sync m16n8k8 and
// cvt.rna.tf32 emulation, thread-level checks on) and the host (whose
// fallback is exact f32) against the float64 reference: 3xTF32 within f32's
// 1e-4, TF32 within its own tolerance and not within f32's (it really
// rounds), and a broken TF32 tile fails even that. The policies offer them
// only when asked, and the CLI takes --precision.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "codegen/emit.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "matmul_cases.h"
#include "run_checks.h"
#include "runtime/cuda_backend.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

using test::MmCase;

// M, N and K take 1, 7, 33 and 129; K = 40 and 72 are 16-byte rows (A and
// a k-contiguous B by 16-byte cp.async), N = 72 an n-contiguous B's.
const std::vector<MmCase> kCases = {{1, 33, 7, false},   {7, 129, 1, true},   {33, 1, 129, false},
                                    {129, 7, 33, true},  {129, 129, 129, false}, {33, 40, 7, true},
                                    {70, 72, 45, false}, {37, 48, 72, false}};
const int kShapes[][2] = {{32, 32}, {32, 64}, {32, 128}, {64, 32}, {64, 64}, {64, 128}, {128, 32}, {128, 64}, {128, 128}};
const int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

// One f32 matmul node per (case, shape); node names end in _v<shape>.
Graph cases_graph() { return test::matmul_cases_graph("tf32_cases", DType::f32, kCases, kShapeCount, 31); }

Gpu with_precision(F32Precision p) {
    Gpu g = default_gpu();
    g.f32_precision = p;
    return g;
}

// Every matmul of `g` on tensor cores at `p`, in its node's shape.
Schedule every_shape(const Graph& g, F32Precision p) {
    TileGraph tg = decompose(g);
    const Gpu gpu = with_precision(p);
    for (ROp& op : tg.rops) {
        const int v = std::stoi(op.name.substr(op.name.rfind("_v") + 2)), bm = kShapes[v][0];
        // 3xTF32 takes at most 8 products per warp: 128 x 64 for 128 x 128.
        const int bn = anvil_tc_tile_ok(bm, kShapes[v][1], 8, ANVIL_TC_3XTF32) || p == F32Precision::tf32 ? kShapes[v][1] : 64;
        op = on_tensor_cores(op, bm, bn, deepest_tensor_core_bk(op, bm, bn, gpu), p);
        REQUIRE(std::get<MatmulParams>(op.params).algo ==
                (p == F32Precision::tf32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR_3XTF32));
    }
    verify_tile_graph(tg, default_gpu());
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

bool all_ok(const std::vector<OutputCheck>& checks) {
    for (const OutputCheck& c : checks)
        if (!c.ok()) return false;
    return true;
}

}  // namespace

TEST_CASE("TF32: 3xTF32 tiles meet f32's tolerance over odd shapes, both B layouts, every tile shape",
          "[simt][tensor][tf32]") {
    const Graph g = cases_graph();
    const Schedule s = every_shape(g, F32Precision::tf32x3);
    CHECK(emit_source(s).find("ANVIL_TC_3XTF32>(") != std::string::npos);
    const TensorMap values = make_values(g, std::nullopt);
    const size_t outputs = kCases.size() * kShapeCount;
    test::expect_reference(g, values, run_host(s, values), outputs);  // the fallback: exact f32
    for (const OutputCheck& c : check_outputs(g, run_simt(s, values), reference_execute(g, values))) {
        INFO(c.name << ": relative L2 error " << c.rel_l2);
        CHECK(c.tolerance == 1e-4);
        CHECK(c.within_tolerance());
    }
}

TEST_CASE("TF32: TF32 tiles meet the TF32 tolerance, not f32's, and a broken one fails", "[simt][tensor][tf32]") {
    const Graph g = cases_graph();
    const Schedule s = every_shape(g, F32Precision::tf32);
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    const TensorMap out = run_simt(s, values);
    const std::vector<OutputCheck> tf32 = check_outputs(g, out, reference, &values, F32Precision::tf32);
    REQUIRE(tf32.size() == kCases.size() * kShapeCount);
    for (const OutputCheck& c : tf32) {
        INFO(c.name << ": relative L2 error " << c.rel_l2);
        CHECK(c.tolerance == kTf32Tolerance);
        CHECK(c.ok());
    }
    // The operands really are rounded: f32's tolerance rejects the run (the
    // 129 x 129 x 129 products are far beyond it).
    CHECK_FALSE(all_ok(check_outputs(g, out, reference, nullptr, F32Precision::f32)));
    // A mantissa bit of every A element flipped before its rounding: the
    // TF32 check still catches a wrong tile.
    const HostRunOptions opt =
        test::with_mutation("ab[q] = anvil_tf32_big(a[q]);", "ab[q] = anvil_tf32_big(a[q] ^ 0x00200000u);");
    CHECK_FALSE(all_ok(check_outputs(g, run_simt(s, values, opt), reference, &values, F32Precision::tf32)));
}

TEST_CASE("TF32: f32 matmuls take tensor-core variants only at --precision tf32 or 3xtf32, with tensor cores on",
          "[tensor][tf32]") {
    const ROp op = decompose(cases_graph()).rops.back();  // 37 x 48 x 72
    auto algos = [&](F32Precision p, bool tensor_cores) {
        Gpu gpu = with_precision(p);
        gpu.tensor_core_tiles = tensor_cores;
        std::vector<int> out;
        for (const ROp& v : tile_variants(op, gpu))
            if (computes_on_tensor_cores(v) && std::get<MatmulParams>(v.params).stages == 0) {  // three stages (four: test_tc_stages.cpp)
                out.push_back(std::get<MatmulParams>(v.params).algo);
                CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu));
            }
        return out;
    };
    CHECK(algos(F32Precision::f32, true).empty());
    CHECK(algos(F32Precision::tf32, false).empty());
    CHECK(algos(F32Precision::tf32, true) == std::vector<int>(kShapeCount, ANVIL_MM_TENSOR_TF32));
    CHECK(algos(F32Precision::tf32x3, true) == std::vector<int>(kShapeCount - 1, ANVIL_MM_TENSOR_3XTF32));  // not 128 x 128
    CHECK(deepest_tensor_core_bk(op, 128, 128, with_precision(F32Precision::tf32)) == 8);  // f32 rows: twice the bytes
    CHECK(deepest_tensor_core_bk(op, 64, 128, with_precision(F32Precision::tf32)) == 32);  // 80 KB: over the old 48
    // f32 at f32 precision cannot use them; a TF32 tile of f16 operands is refused.
    CHECK_THROWS_WITH(on_tensor_cores(op, 64, 64, 16), Catch::Contains("cannot use them"));
    TileGraph tg = decompose(cases_graph());
    tg.rops.front() = on_tensor_cores(tg.rops.front(), 64, 64, 12, F32Precision::tf32);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("BK of 8"));
    tg.rops.front() = on_tensor_cores(decompose(cases_graph()).rops.front(), 128, 128, 8, F32Precision::tf32x3);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("at most 8 m16n8 products"));
}

TEST_CASE("TF32: a model's f32 matmuls on TF32 and 3xTF32 tensor cores under the policies that choose tiles",
          "[simt][tensor][tf32]") {
    const Graph g = load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/transformer_encoder_f32.yaml");
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    for (F32Precision p : {F32Precision::tf32, F32Precision::tf32x3}) {
        CAPTURE(precision_name(p));
        // Tensor cores far ahead, bytes and round trips nearly free: they always
        // pay. The datasheet's rates (which this scales), not the calibrated ones;
        // a TF32 K slice is 8 deep, so the latency must go too.
        Gpu fast = with_precision(p);
        fast.ceilings = Ceilings{};
        fast.measured_tile_s.clear();
        fast.memory_latency_s /= 1e3;
        fast.tensor_f16_flops_per_s *= 1e6;
        fast.dram_bytes_per_s *= 1e6;
        fast.l2_bytes_per_s *= 1e6;
        for (const char* policy : {"anvil", "rammer", "welder"}) {
            CAPTURE(policy);
            const Schedule s = plan(g, policy, fast);
            int tf32 = 0;
            for (const ROp& op : s.tiles.rops) tf32 += computes_on_tensor_cores(op);
            CHECK(tf32 > 0);
            const auto checks = check_outputs(g, run_simt(s, values), reference, &values, p);
            for (const OutputCheck& c : checks) {
                INFO(c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
                CHECK(c.ok());
            }
        }
    }
}

TEST_CASE("TF32: the CLI's --precision reaches the schedule, its report and run's check", "[cli][tf32]") {
    const test::CmdResult json = test::run_anvil("schedule models/mlp_f32.yaml --json --precision 3xtf32");
    REQUIRE(json.status == 0);
    CHECK(nlohmann::json::parse(json.output)["precision"] == "3xtf32");
    const test::CmdResult report = test::run_anvil("schedule models/mlp_f32.yaml --report --precision tf32");
    REQUIRE(report.status == 0);
    CHECK_THAT(report.output, Catch::Contains("f32 precision") && Catch::Contains("tf32"));
    const test::CmdResult bad = test::run_anvil("schedule models/mlp_f32.yaml --precision fp8");
    CHECK(bad.status == 2);
    CHECK_THAT(bad.output, Catch::Contains("--precision") && Catch::Contains("fp8"));
    const test::CmdResult run = test::run_anvil("run models/mlp_f32.yaml --backend simt --precision tf32");
    CHECK(run.status == 0);
    CHECK_THAT(run.output, Catch::Contains("tolerance 1e-02"));
}

// On a device (a session with a GPU runs the [gpu] tests): the hardware's
// mma.sync m16n8k8 and cvt.rna, against the reference.
TEST_CASE("TF32: TF32 and 3xTF32 tiles agree with the reference on the device", "[tensor][tf32][gpu]") {
    REQUIRE_DEVICE();
    const Graph g = cases_graph();
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    for (F32Precision p : {F32Precision::tf32, F32Precision::tf32x3}) {
        CAPTURE(precision_name(p));
        for (const OutputCheck& c : check_outputs(g, run_cuda(every_shape(g, p), values), reference, &values, p)) {
            INFO(c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
            CHECK(c.ok());
        }
    }
}
