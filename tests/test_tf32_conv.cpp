// f32 conv2d on tensor cores (--precision tf32 / 3xtf32): conv2d_tc.cuh's
// implicit GEMM with x gathered pixel-major by 4-byte cp.async and w staged
// k-contiguous, multiplied as TF32 or 3xTF32 by tc_stages.cuh. Over odd
// shapes (channels and sizes 1, 7, 33, stride 2, padding, dilation, groups,
// w's rows unaligned and 16-byte aligned), every tile shape and split-K
// partials, on the simt backend (the mma.sync m16n8k8 and cvt.rna
// emulation, thread-level checks on) and the host (whose fallback is exact
// f32) against the float64 reference: 3xTF32 within f32's 1e-4, TF32 within
// its own tolerance and not within f32's (it really rounds), and a broken
// gather fails even that. The policies offer the tiles only when asked, and
// pick them in a CNN of the zoo.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "codegen/emit.h"
#include "conv_cases.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "run_checks.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/orders.h"
#include "schedule/race_check.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

// None a multiple of a tile; every one an implicit GEMM (N >= 16 or K > 256).
const std::vector<ConvCase> kCases = {
    {1, 1, 33, 7, 33, 3, 3, 1, 1, 1, 1, true},     // one input channel: K = 9 (w's rows unaligned), M = 231
    {2, 33, 7, 7, 7, 3, 3, 2, 1, 1, 1, false},     // 7 channels out (K = 297), stride 2, two images
    {1, 7, 1, 1, 33, 1, 1, 1, 0, 1, 1, true},      // one pixel: M = 1, K = 7
    {1, 16, 13, 11, 34, 3, 3, 1, 2, 2, 2, true},   // dilated, 2 groups of 8 -> 17: K = 72 (16-byte rows of w)
    {1, 64, 9, 9, 33, 1, 1, 2, 0, 1, 1, false},    // 1 x 1 of stride 2: M = 25, K = 64
    {1, 12, 33, 33, 16, 3, 3, 2, 1, 1, 1, false},  // M = 289 (ten 32-pixel tiles), K = 108
};

// The tensor-core tile shapes tile_variants offers (BM pixels x BN channels).
const int kShapes[][2] = {{32, 32}, {32, 64}, {32, 128}, {64, 32}, {64, 64}, {64, 128}, {128, 32}, {128, 64}, {128, 128}};
const int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

// One f32 conv2d node per (case, shape); node names end in _v<shape>.
Graph conv_cases_graph(int variants = kShapeCount) { return conv_cases_graph(DType::f32, kCases, variants, 37); }

Gpu with_precision(F32Precision p) {
    Gpu g = default_gpu();
    g.f32_precision = p;
    return g;
}

int expected_algo(F32Precision p) { return p == F32Precision::tf32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR_3XTF32; }

// `op` on tensor cores at `p` in tile shape v of kShapes (3xTF32 takes at
// most 8 products per warp: 128 x 64 for 128 x 128), its BK the deepest
// that fits.
ROp on_shape(const ROp& op, int v, F32Precision p) {
    const Gpu gpu = with_precision(p);
    const int bm = kShapes[v][0];
    const int bn = p == F32Precision::tf32 || anvil_conv_tc_tile_ok(bm, kShapes[v][1], 8, ANVIL_TC_3XTF32) ? kShapes[v][1] : 64;
    const int bk = deepest_tensor_core_bk(op, bm, bn, gpu);
    REQUIRE(bk >= 8);
    ROp r = on_tensor_cores(op, bm, bn, bk, p);
    REQUIRE(std::get<WindowParams>(r.params).algo == expected_algo(p));
    return r;
}

// Every conv2d of `g` on tensor cores at `p` in its node's shape.
Schedule every_shape(const Graph& g, F32Precision p) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) {
        REQUIRE(op.kind == TaskKind::conv2d);
        op = on_shape(op, std::stoi(op.name.substr(op.name.rfind("_v") + 2)), p);
    }
    verify_tile_graph(tg, default_gpu());
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

int tf32_convs(const Schedule& s, F32Precision p) {
    int n = 0;
    for (const ROp& op : s.tiles.rops)
        n += op.kind == TaskKind::conv2d && std::get<WindowParams>(op.params).algo == expected_algo(p);
    return n;
}

bool all_ok(const std::vector<OutputCheck>& checks) {
    for (const OutputCheck& c : checks)
        if (!c.ok()) return false;
    return true;
}

void expect_ok(const std::vector<OutputCheck>& checks, double tolerance, size_t count = 0) {
    REQUIRE(!checks.empty());
    if (count) REQUIRE(checks.size() == count);
    for (const OutputCheck& c : checks) {
        INFO(c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
        CHECK(c.tolerance == tolerance);
        CHECK(c.ok());
    }
}

}  // namespace

TEST_CASE("TF32 conv2d: 3xTF32 tiles meet f32's tolerance over odd shapes, every tile shape, on host and simt",
          "[simt][tensor][tf32][conv]") {
    const Graph g = conv_cases_graph();
    const Schedule s = every_shape(g, F32Precision::tf32x3);
    REQUIRE(tf32_convs(s, F32Precision::tf32x3) == static_cast<int>(kCases.size()) * kShapeCount);
    const std::string src = emit_source(s);
    CHECK(src.find("anvil_conv2d_tc_tile<float, float, float, float, 128, 64, 32, ANVIL_TC_3XTF32>(") != std::string::npos);
    CHECK(src.find("anvil_conv2d_tile<float") == std::string::npos);  // no CUDA-core conv variant
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    const size_t outputs = kCases.size() * kShapeCount;
    expect_ok(check_outputs(g, run_host(s, values), reference), 1e-4, outputs);  // the fallback: exact f32
    expect_ok(check_outputs(g, run_simt(s, values), reference), 1e-4, outputs);
}

TEST_CASE("TF32 conv2d: TF32 tiles meet the TF32 tolerance, not f32's, and a broken gather fails",
          "[simt][tensor][tf32][conv]") {
    const Graph g = conv_cases_graph();
    const Schedule s = every_shape(g, F32Precision::tf32);
    REQUIRE(tf32_convs(s, F32Precision::tf32) == static_cast<int>(kCases.size()) * kShapeCount);
    CHECK(emit_source(s).find("anvil_conv2d_tc_tile<float, float, float, float, 128, 128, 8, ANVIL_TC_TF32>(") !=
          std::string::npos);
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    const TensorMap out = run_simt(s, values);
    expect_ok(check_outputs(g, out, reference, &values, F32Precision::tf32), kTf32Tolerance, kCases.size() * kShapeCount);
    // The operands really are rounded: f32's tolerance rejects the run.
    CHECK_FALSE(all_ok(check_outputs(g, out, reference, nullptr, F32Precision::f32)));
    // Neighbouring pixels swapped in the staged x (every element still
    // written once): the TF32 check still catches a wrong gather.
    const HostRunOptions opt = test::with_mutation("anvil_tc_stage_elem(xs + m * LDX + 2 * k,",
                                                   "anvil_tc_stage_elem(xs + (m ^ 1) * LDX + 2 * k,");
    const std::vector<OutputCheck> broken = check_outputs(g, run_simt(s, values, opt), reference, &values, F32Precision::tf32);
    int failed = 0;
    for (const OutputCheck& c : broken) failed += !c.ok();
    CHECK(failed == static_cast<int>(broken.size()));
}

TEST_CASE("TF32 conv2d: split-K partials on TF32 and 3xTF32 tiles match the reference on host and simt, race-free",
          "[simt][tensor][tf32][conv][split_k]") {
    const F32Precision p = GENERATE(F32Precision::tf32, F32Precision::tf32x3);
    const int ways = GENERATE(2, 3);
    CAPTURE(precision_name(p), ways);
    // Three of the cases with more input channels (K = 297, 216, 207),
    // 64 x 32 tiles, 32 deep, one fused with a relu (the reduce applies it).
    const std::string text = R"(anvil: 1
name: tf32_conv_split
dtype: f32
seed: 41
inputs:
  - {name: x1, shape: [2, 33, 7, 7]}
  - {name: x3, shape: [1, 48, 13, 11]}
  - {name: x5, shape: [1, 23, 33, 33]}
params:
  - {name: w1, shape: [7, 33, 3, 3]}
  - {name: w3, shape: [34, 24, 3, 3]}
  - {name: b3, shape: [34]}
  - {name: w5, shape: [16, 23, 3, 3]}
nodes:
  - {name: c1, op: conv2d, inputs: [x1, w1], stride: 2, padding: 1}
  - {name: y1, op: relu, inputs: [c1]}
  - {name: y3, op: conv2d, inputs: [x3, w3, b3], padding: 2, dilation: 2, groups: 2}
  - {name: y5, op: conv2d, inputs: [x5, w5], stride: 2, padding: 1}
outputs: [y1, y3, y5]
)";
    const Graph g = infer_shapes(build_graph(load_model_from_string(text, "tf32_conv_split.yaml")));
    TileGraph tg = fuse(decompose(g), default_gpu());
    int split = 0;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (tg.rops[r].kind != TaskKind::conv2d) continue;
        tg.rops[r] = on_tensor_cores(tg.rops[r], 64, 32, 32, p);
        REQUIRE(conv_slice(std::get<WindowParams>(tg.rops[r].params), ways) > 0);
        tg = split_k_in(tg, static_cast<int>(r), ways);
        ++r;  // past the reduce
        ++split;
    }
    REQUIRE(split == 3);
    verify_tile_graph(tg, default_gpu());
    int partials = 0;
    for (const ROp& op : tg.rops) {
        if (op.split_k <= 1) continue;
        CHECK(std::get<WindowParams>(op.params).algo == expected_algo(p));
        CHECK(std::get<WindowParams>(op.params).k_split == ways);
        ++partials;
    }
    CHECK(partials == 3);
    const Schedule s = persistent_schedule("test", tg, default_gpu(), round_robin_order(tg, 7), 7);
    CHECK(find_races(s).empty());
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    HostRunOptions opt;
    opt.workers = 3;
    opt.check_races = true;
    expect_ok(check_outputs(g, run_host(s, values, opt), reference), 1e-4, 3);
    expect_ok(check_outputs(g, run_simt(s, values, opt), reference, &values, p),
              p == F32Precision::tf32 ? kTf32Tolerance : 1e-4, 3);
}

TEST_CASE("TF32 conv2d: f32 convs take tensor-core variants only at --precision tf32 or 3xtf32, with tensor cores on",
          "[tensor][tf32][conv]") {
    const TileGraph cases = decompose(conv_cases_graph(1));
    const ROp op = cases.rops[3];  // dilated, grouped
    auto algos = [&](F32Precision p, bool tensor_cores) {
        Gpu gpu = with_precision(p);
        gpu.tensor_core_tiles = tensor_cores;
        std::vector<int> out;
        for (const ROp& v : tile_variants(op, gpu))
            if (computes_on_tensor_cores(v) && std::get<WindowParams>(v.params).stages == 0) {  // three stages (four: test_tc_stages.cpp)
                out.push_back(std::get<WindowParams>(v.params).algo);
                CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu));
            }
        return out;
    };
    CHECK(algos(F32Precision::f32, true).empty());
    CHECK(algos(F32Precision::tf32, false).empty());
    CHECK(algos(F32Precision::tf32, true) == std::vector<int>(kShapeCount, ANVIL_MM_TENSOR_TF32));
    CHECK(algos(F32Precision::tf32x3, true) == std::vector<int>(kShapeCount - 1, ANVIL_MM_TENSOR_3XTF32));  // not 128 x 128
    // f32 rows: twice the bytes of a 16-bit k step, so 128 x 128 is 8 deep
    // (the widest tiles keep the depth of 48 KB: deeper, they spill).
    CHECK(deepest_tensor_core_bk(op, 128, 128, with_precision(F32Precision::tf32)) == 8);
    CHECK(deepest_tensor_core_bk(op, 32, 32, with_precision(F32Precision::tf32)) == 32);
    // Depthwise and thin-group convs stay window tiles, at any precision.
    const Graph dw = infer_shapes(build_graph(load_model_from_string(
        "anvil: 1\nname: dw\ndtype: f32\ninputs: [{name: x, shape: [1, 32, 9, 9]}]\n"
        "params: [{name: w, shape: [32, 1, 3, 3]}]\n"
        "nodes: [{name: y, op: conv2d, inputs: [x, w], padding: 1, groups: 32}]\noutputs: [y]\n",
        "dw.yaml")));
    const ROp depthwise = decompose(dw).rops.front();
    REQUIRE(depthwise.kind == TaskKind::window);
    CHECK_FALSE(tf32_operands(depthwise));
    CHECK(tile_variants(depthwise, with_precision(F32Precision::tf32)).size() == 1);
    // Refused, naming the rOp: f32 on tensor cores at f32 precision, a BK of
    // no whole k steps, too many 3xTF32 products, pixels that are not whole
    // rows of the block's threads, an f16 conv as TF32.
    CHECK_THROWS_WITH(on_tensor_cores(op, 64, 64, 16), Catch::Contains("cannot use them"));
    TileGraph tg = cases;
    tg.rops[3] = on_tensor_cores(op, 64, 64, 12, F32Precision::tf32);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("BK of 8") && Catch::Contains(op.name));
    tg.rops[3] = on_tensor_cores(op, 128, 128, 8, F32Precision::tf32x3);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("at most 8 m16n8 products"));
    tg.rops[3] = on_tensor_cores(op, 96, 64, 8, F32Precision::tf32);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("dividing 256"));
    tg.rops[3] = on_tensor_cores(op, 64, 64, 16, F32Precision::tf32);
    verify_tile_graph(tg, default_gpu());
    tg.rops[3].dtypes[0] = tg.rops[3].dtypes[1] = DType::f16;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("needs f32 x and w"));
}

// resnet18_small in f32 under the policies that choose tiles, on a target
// whose tensor cores and memory are so fast that they always pay: the wide
// convs go to TF32 (3xTF32) tiles, fused epilogues (batchnorm folded, relu,
// residual adds) included, and the run meets the precision's tolerance.
TEST_CASE("TF32 conv2d: resnet18_small's convs on TF32 and 3xTF32 tensor cores under the policies",
          "[simt][tensor][tf32][conv]") {
    const Graph g = load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/resnet18_small.yaml");
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    for (F32Precision p : {F32Precision::tf32, F32Precision::tf32x3}) {
        CAPTURE(precision_name(p));
        Gpu fast = with_precision(p);
        fast.ceilings = Ceilings{};  // the datasheet's rates, which this scales
        fast.measured_tile_s.clear();
        fast.memory_latency_s /= 1e3;
        fast.tensor_f16_flops_per_s *= 1e6;
        fast.dram_bytes_per_s *= 1e6;
        fast.l2_bytes_per_s *= 1e6;
        for (const char* policy : {"anvil", "rammer", "welder"}) {
            CAPTURE(policy);
            const Schedule s = plan(g, policy, fast);
            CHECK(tf32_convs(s, p) > 0);
            // The format follows the shape (and the stages, where four: test_tc_stages.cpp).
            CHECK(emit_source(s).find(p == F32Precision::tf32 ? ", ANVIL_TC_TF32" : ", ANVIL_TC_3XTF32") !=
                  std::string::npos);
            const double tolerance = p == F32Precision::tf32 ? kTf32Tolerance : 1e-4;
            if (std::string(policy) == "anvil") expect_ok(check_outputs(g, run_simt(s, values), reference, &values, p), tolerance);
            else expect_ok(check_outputs(g, run_host(s, values), reference, &values, p), tolerance);
        }
    }
}

// The CLI at full size with the cost model's own rates: at --precision tf32
// (3xtf32) resnet18's schedule puts convs, split-K partials among them, on
// TF32 (3xTF32) tiles, none at f32 (with the 113 KB budget the CUDA-core
// tiles' deeper slices win about two thirds of them, the 48 KB limit left
// TF32 most); the TF32 run on simt meets its tolerance.
TEST_CASE("TF32 conv2d: resnet18's schedule shows TF32 conv tiles, and its TF32 run on simt matches",
          "[cli][simt][tf32][conv]") {
    for (const char* p : {"f32", "tf32", "3xtf32"}) {
        CAPTURE(p);
        const test::CmdResult json = test::run_anvil(std::string("schedule models/resnet18.yaml --json --precision ") + p);
        REQUIRE(json.status == 0);
        int convs = 0, on_tf32 = 0, partials = 0;
        const nlohmann::json schedule = nlohmann::json::parse(json.output);
        for (const auto& g : schedule["group_list"]) {
            if (g["kind"] != "conv2d") continue;
            ++convs;
            if (g["cost_key"].get<std::string>().find(std::string(" ") + p + " ") == std::string::npos) continue;
            ++on_tf32;
            partials += g["split_k"].get<int>() > 1;
        }
        CHECK(convs == 20);
        if (std::string(p) == "f32") {
            CHECK(on_tf32 == 0);
        } else {
            CHECK(on_tf32 >= convs / 4);
            CHECK(partials > 0);
        }
    }
    const test::CmdResult run = test::run_anvil("run models/resnet18.yaml --backend simt --precision tf32");
    INFO(run.output);
    CHECK(run.status == 0);
    CHECK_THAT(run.output, Catch::Contains("tolerance 1e-02) ok"));
}

// On a device (a session with a GPU runs the [gpu] tests): the hardware's
// mma.sync m16n8k8 and cvt.rna behind the f32 gather.
TEST_CASE("TF32 conv2d: TF32 and 3xTF32 conv tiles agree with the reference on the device", "[tensor][tf32][conv][gpu]") {
    REQUIRE_DEVICE();
    const Graph g = conv_cases_graph();
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    for (F32Precision p : {F32Precision::tf32, F32Precision::tf32x3}) {
        CAPTURE(precision_name(p));
        expect_ok(check_outputs(g, run_cuda(every_shape(g, p), values), reference, &values, p),
                  p == F32Precision::tf32 ? kTf32Tolerance : 1e-4, kCases.size() * kShapeCount);
    }
}
