// The 16-bit x of the tensor-core conv2d (rtasks/conv2d_tc.cuh): gathered
// through registers in two phases around a multiply (tc_stages.cuh's issue
// and land), or, for a pointwise conv whose planes keep 16-byte alignment,
// copied from x as it is stored by 16-byte cp.async. Over odd shapes
// (channels and pixels 1, 7, 33, 129, strides, padding, dilation, groups),
// f16 and bf16, every stage count, fused epilogues and split-K partials, on
// the host and on simt (thread-level checks on) against the float64
// reference; the pointwise path is really taken where x allows it and
// nowhere else (planes of 49 pixels, an x that starts mid-vector); the
// device code issues a slice's loads before the multiply and stores them
// after it; the cost model sees one slice of x in flight.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <regex>
#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "conv_cases.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
#include "schedule/cost_terms.h"
#include "schedule/orders.h"
#include "schedule/race_check.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

// Odd channels and pixels; the 1 x 1 convs of 32- and 128-pixel planes
// take the 16-byte copies (`copied`), every other conv the register gather.
struct Case {
    test::ConvCase conv;
    bool copied;
};
const std::vector<Case> kCases = {
    {{1, 7, 9, 11, 33, 3, 3, 1, 1, 1, 1, true}, false},      // M = 99, K = 63 (w's rows unaligned)
    {{2, 33, 7, 7, 7, 3, 3, 2, 1, 1, 1, false}, false},      // strided, N = 7, K = 297
    {{1, 16, 13, 11, 34, 3, 3, 1, 2, 2, 2, true}, false},    // dilated, 2 groups of 8 -> 17
    {{3, 129, 1, 1, 33, 1, 1, 1, 0, 1, 1, false}, false},    // pointwise, one pixel (planes not 8 pixels)
    {{2, 33, 4, 8, 129, 1, 1, 1, 0, 1, 1, true}, true},      // pointwise, 32 pixels, N = 129, K = 33
    {{1, 64, 7, 7, 33, 1, 1, 1, 0, 1, 1, false}, false},     // pointwise, 49 pixels: gathered
    {{1, 48, 8, 16, 34, 1, 1, 1, 0, 1, 2, true}, true},      // pointwise, 128 pixels, 2 groups
    {{1, 7, 16, 8, 33, 1, 1, 2, 0, 1, 1, false}, false},     // 1 x 1 of stride 2: gathered
};

std::vector<test::ConvCase> convs() {
    std::vector<test::ConvCase> out;
    for (const Case& c : kCases) out.push_back(c.conv);
    return out;
}

// BM x BN in `stages` stages: every count, the narrowest and widest tiles.
struct Shape {
    int bm, bn, stages;
};
const Shape kShapes[] = {{32, 32, 2}, {64, 64, 3}, {128, 32, 4}, {32, 128, 4}, {128, 128, 3}, {64, 128, 2}};
const int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

int variant_of_name(const std::string& name) { return std::stoi(name.substr(name.rfind("_v") + 2)); }
int case_of_name(const std::string& name) { return std::stoi(name.substr(1, name.rfind("_v") - 1)); }

// Every conv2d of `tg` on tensor cores in its node's shape, BK the deepest that fits.
void on_shapes(TileGraph& tg) {
    for (ROp& op : tg.rops) {
        if (op.kind != TaskKind::conv2d) continue;
        const Shape sh = kShapes[variant_of_name(op.name)];
        const int bk = deepest_tensor_core_bk(op, sh.bm, sh.bn, default_gpu(), sh.stages);
        REQUIRE(bk > 0);
        op = on_tensor_cores(op, sh.bm, sh.bn, bk, F32Precision::f32, sh.stages);
    }
    verify_tile_graph(tg, default_gpu());
}

Schedule every_shape(const Graph& g) {
    TileGraph tg = decompose(g);
    on_shapes(tg);
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

void expect_host_and_simt(const Graph& g, const Schedule& s, size_t count) {
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), count);
    test::expect_reference(g, values, run_simt(s, values), count);
}

// A pointwise conv of 32-pixel planes (x: 33 channels of 4 x 8) whose x
// starts one element into its storage: a reshaped view of a slice that
// drops t's first element. Its planes are 16-byte multiples, its base is not.
Graph misaligned_graph(DType dtype) {
    const std::string text = fmt::format(R"(anvil: 1
name: tc_conv_misaligned
dtype: {}
seed: 19
inputs:
  - {{name: t, shape: [1, 1, 1, 1057]}}
params:
  - {{name: w, shape: [40, 33, 1, 1]}}
nodes:
  - {{name: s, op: slice, inputs: [t], axis: 3, start: 1, end: 1057}}
  - {{name: x, op: reshape, inputs: [s], shape: [1, 33, 4, 8]}}
  - {{name: y9_v0, op: conv2d, inputs: [x, w]}}
outputs: [y9_v0]
)",
                                         dtype_name(dtype));
    return infer_shapes(build_graph(load_model_from_string(text, "tc_conv_misaligned.yaml")));
}

const std::string kCopyX = "anvil_tc_stage<TX, BK, BM>(xs, op.x + kb * M, M, 1, s * BK, ke - kb, place.m0, M);";

}  // namespace

TEST_CASE("tensor-core conv gather: odd shapes, every stage count, f16 and bf16, on host and simt",
          "[simt][tensor][conv][gather]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::conv_cases_graph(dtype, convs(), kShapeCount, 53);
    const Schedule s = every_shape(g);
    for (const ROp& op : s.tiles.rops) REQUIRE(computes_on_tensor_cores(op));
    expect_host_and_simt(g, s, kCases.size() * kShapeCount);
}

TEST_CASE("tensor-core conv gather: x is copied by 16-byte cp.async exactly where it allows it",
          "[simt][tensor][conv][gather][mutation]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    // The cases in two shapes, and the misaligned view in one.
    const Graph g = test::conv_cases_graph(dtype, convs(), 2, 59);
    const Graph m = misaligned_graph(dtype);
    const Schedule s = every_shape(g), sm = every_shape(m);
    REQUIRE(std::get<WindowParams>(sm.tiles.rops.front().params).x_off % 16 != 0);
    // The copies clipped by one pixel: the last pixel of each plane comes
    // out wrong where x is copied, and only there.
    const HostRunOptions clipped = test::with_mutation(kCopyX, "anvil_tc_stage<TX, BK, BM>(xs, op.x + kb * M, M, 1, "
                                                               "s * BK, ke - kb, place.m0, M - 1);");
    const TensorMap values = make_values(g, std::nullopt);
    const auto checks = check_outputs(g, run_simt(s, values, clipped), reference_execute(g, values));
    REQUIRE(checks.size() == kCases.size() * 2);
    for (const OutputCheck& c : checks) {
        INFO(c.name << ": relative L2 error " << c.rel_l2);
        CHECK(c.ok() != kCases[case_of_name(c.name)].copied);
    }
    // The misaligned x is gathered: right with the copies clipped, and unmutated.
    const TensorMap mv = make_values(m, std::nullopt);
    test::expect_reference(m, mv, run_simt(sm, mv, clipped), 1);
    test::expect_reference(m, mv, run_host(sm, mv), 1);
}

TEST_CASE("tensor-core conv gather: a slice that is never landed is refused by simt", "[simt][tensor][conv][gather][mutation]") {
    // Case 0 (gathered) alone in a 32 x 32 two-stage tile.
    const Graph g = test::conv_cases_graph(DType::f16, {kCases[0].conv}, 2, 61);
    TileGraph tg = decompose(g);
    on_shapes(tg);
    tg.rops.resize(1);
    const Schedule s = launch_per_rop("per_op", tg, default_gpu(), "op_");
    const TensorMap values = make_values(g, std::nullopt);
    const std::string land = "if (next < slices) land(st, st + BM * LDA, next);";
    // The multiply reads the x it would have stored: never written.
    CHECK_THROWS_WITH(run_simt(s, values, test::with_mutation(land, "")), Catch::Contains("no thread wrote"));
}

TEST_CASE("tensor-core conv gather: fused epilogues and split-K partials on host and simt, race-free",
          "[simt][tensor][conv][gather][split_k]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    const int ways = GENERATE(2, 3);
    CAPTURE(dtype_name(dtype), ways);
    // A gathered 3 x 3 conv fused with a relu, a pointwise one of copied
    // 32-pixel planes with a bias, and one of 49-pixel planes, gathered.
    const std::string text = fmt::format(R"(anvil: 1
name: tc_conv_split
dtype: {}
seed: 67
inputs:
  - {{name: x1, shape: [2, 33, 7, 7]}}
  - {{name: x2, shape: [1, 129, 4, 8]}}
  - {{name: x3, shape: [1, 129, 7, 7]}}
params:
  - {{name: w1, shape: [7, 33, 3, 3]}}
  - {{name: w2, shape: [33, 129, 1, 1]}}
  - {{name: b2, shape: [33]}}
  - {{name: w3, shape: [34, 129, 1, 1]}}
nodes:
  - {{name: c1, op: conv2d, inputs: [x1, w1], stride: 2, padding: 1}}
  - {{name: y1, op: relu, inputs: [c1]}}
  - {{name: y2, op: conv2d, inputs: [x2, w2, b2]}}
  - {{name: y3, op: conv2d, inputs: [x3, w3]}}
outputs: [y1, y2, y3]
)",
                                         dtype_name(dtype));
    const Graph g = infer_shapes(build_graph(load_model_from_string(text, "tc_conv_split.yaml")));
    TileGraph tg = fuse(decompose(g), default_gpu());
    int split = 0;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (tg.rops[r].kind != TaskKind::conv2d) continue;
        tg.rops[r] = on_tensor_cores(tg.rops[r], 32, 64, 32, F32Precision::f32, split == 1 ? 4 : 3);
        REQUIRE(conv_slice(std::get<WindowParams>(tg.rops[r].params), ways) > 0);
        tg = split_k_in(tg, static_cast<int>(r), ways);
        ++r;  // past the reduce
        ++split;
    }
    REQUIRE(split == 3);
    verify_tile_graph(tg, default_gpu());
    const Schedule s = persistent_schedule("test", tg, default_gpu(), round_robin_order(tg, 5), 5);
    CHECK(find_races(s).empty());
    const TensorMap values = make_values(g, std::nullopt);
    HostRunOptions opt;
    opt.workers = 3;
    opt.check_races = true;
    test::expect_reference(g, values, run_host(s, values, opt), 3);
    test::expect_reference(g, values, run_simt(s, values, opt), 3);
}

TEST_CASE("tensor-core conv gather: the device code loads a slice before the multiply and stores it after",
          "[compile][tensor][conv][gather]") {
    // Case 0 in a 32 x 32 two-stage tile: in the PTX of the conv tile, some
    // stretch between two barriers issues 16-bit loads of x, then mma.sync,
    // then 16-bit shared stores (before: loads and stores, then the mma).
    const Graph g = test::conv_cases_graph(DType::f16, {kCases[0].conv}, 2, 61);
    TileGraph tg = decompose(g);
    on_shapes(tg);
    tg.rops.resize(1);
    const std::string ptx = compile_ptx(emit_source(launch_per_rop("per_op", tg, default_gpu(), "op_")), "compute_90");
    REQUIRE(ptx.find("anvil_conv2d_tc_tile") != std::string::npos);
    // Each stretch between barriers (only the conv tile multiplies).
    bool split = false;
    size_t at = 0;
    const std::regex load(R"(ld(\.global)?(\.nc)?\.[ub]16)"), mma("mma\\.sync"), store(R"(st\.shared\.[ub]16)");
    for (size_t next; !split && (next = ptx.find("bar.sync", at)) != std::string::npos; at = next + 8) {
        const std::string stretch = ptx.substr(at, next - at);
        std::smatch l, mm, st;
        if (!std::regex_search(stretch, l, load) || !std::regex_search(stretch, mm, mma)) continue;
        const std::string after = stretch.substr(static_cast<size_t>(mm.position(0)));
        split = l.position(0) < mm.position(0) && std::regex_search(after, st, store);
    }
    CHECK(split);
}

TEST_CASE("tensor-core conv gather: the cost model sees one slice of x in flight, or the stages where it is copied",
          "[cost][tensor][conv][gather]") {
    const Graph g = test::conv_cases_graph(DType::f16, convs(), 1, 71);
    const Gpu gpu = default_gpu();
    const double L = gpu.memory_latency_s;
    const TileGraph tg = decompose(g);
    REQUIRE(tg.rops.size() == kCases.size());
    for (const ROp& op : tg.rops) {
        REQUIRE(op.kind == TaskKind::conv2d);
        const Case& c = kCases[case_of_name(op.name)];
        CAPTURE(op.name);
        const ROp four = on_tensor_cores(op, 64, 64, 32, F32Precision::f32, 4);
        const TileLatency t = tile_latency(four, gpu);
        CHECK(t.phases_per_slice == 1);  // a thread's loads of a slice are in flight together
        CHECK(t.slices_in_flight == (c.copied ? 3 : 1));
        CHECK(t.one_slice_ahead == !c.copied);
        // Hidden behind a slice's work: one round trip to fill, then what the work leaves.
        CHECK(k_loop_latency_seconds(gpu, t, 0.25 * L) ==
              Approx(L + t.k_slices * (c.copied ? L / 3 - 0.25 * L : 0.75 * L)));
        CHECK(k_loop_latency_seconds(gpu, t, 2 * L) == Approx(L));
        // The CUDA-core tile of 16-bit x still stages synchronously.
        const TileLatency cc = tile_latency(op, gpu);
        CHECK(cc.slices_in_flight == 1);
        CHECK_FALSE(cc.one_slice_ahead);
    }
    // An f32 x on TF32 tiles takes cp.async: the stages.
    const ROp tf32 = on_tensor_cores(decompose(test::conv_cases_graph(DType::f32, convs(), 1, 71)).rops.front(), 64, 64,
                                     16, F32Precision::tf32);
    CHECK(tile_latency(tf32, gpu).slices_in_flight == ANVIL_TC_STAGES - 1);
    CHECK_FALSE(tile_latency(tf32, gpu).one_slice_ahead);
}
