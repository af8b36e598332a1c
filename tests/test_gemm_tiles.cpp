// The CUDA-core GEMM tiles (rtasks/matmul.cuh, rtasks/conv2d.cuh over
// rtasks/gemm_stages.cuh: register micro-tiles, 128-bit shared loads, a
// four-stage cp.async pipeline) against the float64 reference on the host
// backend and on simt with the thread-level checks on: odd shapes (1, 7,
// 33, 129 in every position), every operand layout (transposed A and B,
// 16-byte aligned rows that take the vector copies and odd ones that take
// the element copies), every tile shape the policies may pick, and every
// dtype (f32 through cp.async, f16 and bf16 through registers).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "conv_cases.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "run_checks.h"
#include "runtime/cuda_backend.h"
#include "runtime/host_backend.h"
#include "runtime/simt_backend.h"
#include "rtasks/tiling.cuh"
#include "schedule/builders.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// The tile shapes tile_variants offers a CUDA-core GEMM (its BK is the
// deepest that fits).
const int kShapes[][2] = {{16, 16}, {16, 64}, {32, 32}, {32, 128}, {64, 16}, {64, 64}, {128, 32}, {128, 128}};
const int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

struct MmCase {
    int m, k, n;
    bool ta, tb;
};

// One matmul node per (case, tile shape); node names end in _v<shape>.
Graph matmul_cases(DType dtype, const std::vector<MmCase>& cases) {
    std::string inputs, params, nodes, outputs;
    for (size_t c = 0; c < cases.size(); ++c) {
        const MmCase& mc = cases[c];
        inputs += mc.ta ? fmt::format("  - {{name: x{}, shape: [{}, {}]}}\n", c, mc.k, mc.m)
                        : fmt::format("  - {{name: x{}, shape: [{}, {}]}}\n", c, mc.m, mc.k);
        params += mc.tb ? fmt::format("  - {{name: w{}, shape: [{}, {}]}}\n", c, mc.n, mc.k)
                        : fmt::format("  - {{name: w{}, shape: [{}, {}]}}\n", c, mc.k, mc.n);
        for (int v = 0; v < kShapeCount; ++v) {
            nodes += fmt::format("  - {{name: y{}_v{}, op: matmul, inputs: [x{}, w{}]{}{}}}\n", c, v, c, c,
                                 mc.ta ? ", transpose_a: true" : "", mc.tb ? ", transpose_b: true" : "");
            outputs += fmt::format("{}y{}_v{}", outputs.empty() ? "" : ", ", c, v);
        }
    }
    const std::string text = fmt::format("anvil: 1\nname: gemm_cases\ndtype: {}\nseed: 23\ninputs:\n{}params:\n{}nodes:\n{}outputs: [{}]\n",
                                         dtype_name(dtype), inputs, params, nodes, outputs);
    return infer_shapes(build_graph(load_model_from_string(text, "gemm_cases.yaml")));
}

Graph conv_cases(DType dtype, const std::vector<ConvCase>& cases, int variants = kShapeCount) {
    return conv_cases_graph(dtype, cases, variants, 29);
}

int shape_index(const ROp& op) { return std::stoi(op.name.substr(op.name.rfind("_v") + 2)); }

// Every GEMM rOp of `g` (no fusion) with its node's tile shape, tiled on CUDA cores.
Schedule every_shape(const Graph& g, TaskKind kind) {
    TileGraph tg = decompose(g);
    int retiled = 0;
    for (ROp& op : tg.rops) {
        if (op.kind != kind) continue;
        const int v = shape_index(op), bm = kShapes[v][0], bn = kShapes[v][1];
        const int bk = deepest_bk(op, bm, bn, default_gpu());
        REQUIRE(bk >= 8);
        op = retile(op, bm, bn, bk);
        ++retiled;
    }
    REQUIRE(retiled == static_cast<int>(tg.rops.size()));
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

const std::vector<MmCase> kMatmulCases = {
    // odd: element copies (k-fast transposing A, n-fast B), zero-filled edges
    {1, 33, 7, false, false},
    {7, 129, 1, false, false},
    {33, 1, 129, false, false},
    {129, 7, 33, false, false},
    {129, 129, 129, false, true},
    {33, 7, 129, true, false},
    // 16-byte aligned rows: B's n (and a transposed A's m) move as 16-byte copies, with tails
    {37, 70, 68, false, false},
    {68, 45, 36, true, false},
    {20, 64, 132, true, true},
};

const std::vector<ConvCase> kConvCases = {
    {1, 3, 7, 9, 17, 3, 3, 1, 1, 1, 1, true},     // M = 63, K = 27, N = 17
    {2, 16, 9, 12, 33, 3, 3, 2, 1, 1, 1, false},  // strided
    {1, 8, 13, 11, 32, 3, 3, 1, 2, 2, 2, true},   // dilated, 2 groups of 16 channels
    {1, 257, 5, 7, 7, 1, 1, 1, 0, 1, 1, false},   // 1 x 1: K = 257, N = 7 (an implicit GEMM as K > 256)
    {1, 4, 1, 129, 20, 1, 5, 1, 2, 1, 1, true},   // one row, 129 wide
    {2, 20, 6, 10, 18, 1, 1, 1, 0, 1, 1, true},   // pointwise, M = 60: f32 x's planes move 16 bytes at a time
};

// The tensor-core tile shapes tile_variants offers (BK: the deepest that fits).
const int kTcShapes[][2] = {{32, 32}, {32, 64}, {32, 128}, {64, 32}, {64, 64}, {64, 128}, {128, 32}, {128, 64}, {128, 128}};
const int kTcShapeCount = sizeof(kTcShapes) / sizeof(kTcShapes[0]);

// Every conv2d rOp of `g` on tensor cores in its node's shape of kTcShapes.
Schedule every_tc_shape(const Graph& g) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) {
        REQUIRE(op.kind == TaskKind::conv2d);
        const int v = shape_index(op), bm = kTcShapes[v][0], bn = kTcShapes[v][1];
        op = on_tensor_cores(op, bm, bn, deepest_tensor_core_bk(op, bm, bn, default_gpu()));
    }
    verify_tile_graph(tg, default_gpu());
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

// The tensor-core conv cases: kConvCases (w's rows unaligned, K = 27, 36,
// 257, 20, 20: element copies; K = 144: 16-byte cp.async) and odd pixel and
// channel counts with aligned rows of w (K = 8, 16, 24).
std::vector<ConvCase> tc_conv_cases() {
    std::vector<ConvCase> c = kConvCases;
    c.push_back({1, 8, 7, 7, 129, 1, 1, 1, 0, 1, 1, true});     // M = 49, N = 129, K = 8
    c.push_back({3, 16, 1, 1, 33, 1, 1, 1, 0, 1, 1, false});    // M = 1 per image, N = 33, K = 16
    c.push_back({1, 48, 11, 12, 34, 1, 1, 1, 0, 1, 2, true});   // 2 groups: M = 132, N = 17, K = 24
    return c;
}

// A model of the zoo in another dtype (its text with the default dtype swapped).
Graph zoo_model_as(const std::string& name, DType dtype) {
    std::ifstream in(std::string(ANVIL_SOURCE_DIR) + "/models/" + name + ".yaml");
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    std::string yaml = text.str();
    const size_t at = yaml.find("\ndtype: f32\n");
    REQUIRE(at != std::string::npos);
    yaml.replace(at, 12, std::string("\ndtype: ") + dtype_name(dtype) + "\n");
    return infer_shapes(build_graph(load_model_from_string(yaml, name + "_" + dtype_name(dtype) + ".yaml")));
}

int tensor_convs(const Schedule& s) {
    int n = 0;
    for (const ROp& op : s.tiles.rops) n += op.kind == TaskKind::conv2d && computes_on_tensor_cores(op);
    return n;
}

}  // namespace

TEST_CASE("GEMM tiles: matmul on CUDA cores over odd shapes, every layout and tile shape, on host and simt",
          "[simt][gemm]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = matmul_cases(dtype, kMatmulCases);
    const Schedule s = every_shape(g, TaskKind::matmul);
    const TensorMap values = make_values(g, std::nullopt);
    const size_t outputs = kMatmulCases.size() * kShapeCount;
    test::expect_reference(g, values, run_host(s, values), outputs);
    test::expect_reference(g, values, run_simt(s, values), outputs);
}

TEST_CASE("GEMM tiles: implicit-GEMM conv2d over odd shapes, strides, padding, dilation, groups, on host and simt",
          "[simt][gemm][conv]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = conv_cases(dtype, kConvCases);
    const Schedule s = every_shape(g, TaskKind::conv2d);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), kConvCases.size() * kShapeCount);
    test::expect_reference(g, values, run_simt(s, values), kConvCases.size() * kShapeCount);
}

TEST_CASE("GEMM tiles: the deepest k slice that fits is picked, and every variant fits two blocks per SM",
          "[gemm]") {
    const Graph g = matmul_cases(DType::f32, {{129, 129, 129, false, false}});
    const ROp op = decompose(g).rops.front();
    // The H100's budget per tile: two blocks per SM, 113 KB each less 64 B.
    CHECK(tile_smem_budget(default_gpu()) == 115648);
    // 128 x 128 keeps the depth of 48 KB (deeper, it spills with an epilogue).
    CHECK(deepest_bk(op, 128, 128, default_gpu()) == 8);   // 4 x 8 x 264 x 4 B = 33.8 KB
    CHECK(deepest_bk(op, 64, 64, default_gpu()) == 32);    // 69.6 KB
    CHECK(deepest_bk(op, 16, 16, default_gpu()) == 32);    // 20.5 KB
    CHECK(deepest_tensor_core_bk(128, 128, default_gpu()) == 16);
    CHECK(deepest_tensor_core_bk(64, 64, default_gpu()) == 32);
    CHECK(deepest_tensor_core_bk(128, 64, default_gpu()) == 32);  // 46 KB: within 48 KB already
    // Whatever the policies pick stays within the budget: two blocks of 256
    // threads fit an H100 SM's 228 KB.
    for (const ROp& v : tile_variants(op, default_gpu()))
        CHECK(tile_smem_bytes(v, default_gpu()) <= tile_smem_budget(default_gpu()));
}

// The same schedules on a device (a session with a GPU runs the [gpu] tests):
// the cp.async pipeline, the 128-bit shared loads and the zero-filled edges
// as the hardware runs them, against the reference.
TEST_CASE("GEMM tiles: matmul and conv2d on CUDA cores agree with the reference on the device", "[gemm][gpu]") {
    REQUIRE_DEVICE();
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph mm = matmul_cases(dtype, kMatmulCases);
    const TensorMap mm_values = make_values(mm, std::nullopt);
    test::expect_reference(mm, mm_values, run_cuda(every_shape(mm, TaskKind::matmul), mm_values),
                           kMatmulCases.size() * kShapeCount);
    const Graph conv = conv_cases(dtype, kConvCases);
    const TensorMap conv_values = make_values(conv, std::nullopt);
    test::expect_reference(conv, conv_values, run_cuda(every_shape(conv, TaskKind::conv2d), conv_values),
                           kConvCases.size() * kShapeCount);
}

namespace {

// Two cases' rOps in every tile shape, their 16-byte copies' tails clipped
// by one float: the outputs of case `copied` go wrong, and the other
// case's, copied element by element, stay right.
void expect_clipped_copies(const Graph& g, const Schedule& s, const std::string& copy, int copied) {
    const std::string whole = copy + " left < 0 ? 0 : left > 4 ? 4 : left,";
    const std::string clipped = copy + " left < 0 ? 0 : left > 3 ? 3 : left,";
    const TensorMap values = make_values(g, std::nullopt);
    const auto checks =
        check_outputs(g, run_simt(s, values, test::with_mutation(whole, clipped)), reference_execute(g, values));
    REQUIRE(checks.size() == 2 * kShapeCount);
    for (const OutputCheck& c : checks) {
        INFO(c.name << ": relative L2 error " << c.rel_l2);
        CHECK(c.ok() != (c.name.rfind(fmt::format("y{}_", copied), 0) == 0));
    }
}

}  // namespace

// The 16-byte copies are really taken for aligned rows (A's rows here are
// not contiguous along m: only B takes them).
TEST_CASE("GEMM tiles: the aligned cases take the 16-byte copies", "[simt][gemm][mutation]") {
    const Graph g = matmul_cases(DType::f32, {{37, 70, 68, false, false}, {129, 7, 33, false, false}});
    expect_clipped_copies(g, every_shape(g, TaskKind::matmul), "(const float*)X + (gk * sk + gx),", 0);
}

// A pointwise f32 conv whose planes keep 16-byte alignment copies x four
// pixels at a time; the 1 x 1 conv of 35-pixel planes gathers element by
// element.
TEST_CASE("GEMM tiles: a pointwise conv2d's aligned planes take the 16-byte copies", "[simt][gemm][conv][mutation]") {
    const Graph g = conv_cases(DType::f32, {kConvCases[3], kConvCases[5]});
    expect_clipped_copies(g, every_shape(g, TaskKind::conv2d), "(const float*)x + (gk * M + gm),", 1);
}

// A 1 x 1, stride-1 conv padded only at the bottom and right has pixel m of
// x at pixel m of y no longer (y is wider and taller than x): it must gather,
// not copy x's planes (the 16-byte path once took it and read the wrong
// pixels; found in review 2026-11-28).
TEST_CASE("GEMM tiles: a pointwise conv2d padded only at the bottom and right gathers", "[simt][gemm][conv]") {
    const std::string text =
        "anvil: 1\nname: pad_br\ndtype: f32\nseed: 31\n"
        "inputs:\n  - {name: x, shape: [2, 260, 4, 6]}\n"
        "params:\n  - {name: w, shape: [7, 260, 1, 1]}\n"
        "nodes:\n  - {name: y, op: conv2d, inputs: [x, w], padding: [0, 0, 1, 2]}\n"
        "outputs: [y]\n";
    const Graph g = infer_shapes(build_graph(load_model_from_string(text, "pad_br.yaml")));
    REQUIRE(g.value(*g.find("y")).shape == Shape{2, 7, 5, 8});
    TileGraph tg = decompose(g);
    REQUIRE(tg.rops.size() == 1);
    tg.rops.front() = retile(tg.rops.front(), 32, 32, 8);
    verify_tile_graph(tg, default_gpu());
    const Schedule s = launch_per_rop("per_op", tg, default_gpu(), "op_");
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values));
    test::expect_reference(g, values, run_simt(s, values));
}

TEST_CASE("GEMM tiles: conv2d on tensor cores over odd shapes, strides, padding, groups, every tile shape, on host and simt",
          "[simt][gemm][conv][tensor]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const std::vector<ConvCase> cases = tc_conv_cases();
    const Graph g = conv_cases(dtype, cases, kTcShapeCount);
    const Schedule s = every_tc_shape(g);
    REQUIRE(tensor_convs(s) == static_cast<int>(cases.size()) * kTcShapeCount);
    const std::string src = emit_source(s);
    CHECK(src.find("anvil_conv2d_tc_tile<anvil_") != std::string::npos);  // a variant, not the template
    CHECK(src.find("anvil_conv2d_tile<anvil_") == std::string::npos);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), cases.size() * kTcShapeCount);
    test::expect_reference(g, values, run_simt(s, values), cases.size() * kTcShapeCount);
}

TEST_CASE("GEMM tiles: a conv2d takes tensor-core variants only with f16 or bf16 operands and tensor cores on",
          "[gemm][conv][tensor]") {
    auto variants_on_tc = [](DType dtype, bool tensor_cores) {
        Gpu gpu = default_gpu();
        gpu.tensor_core_tiles = tensor_cores;
        int n = 0;
        for (const ROp& v : tile_variants(decompose(conv_cases(dtype, {kConvCases[1]}, 1)).rops.front(), gpu)) {
            n += computes_on_tensor_cores(v) && std::get<WindowParams>(v.params).stages == 0;  // three stages
            CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu));
        }
        return n;
    };
    CHECK(variants_on_tc(DType::f16, true) == kTcShapeCount);
    CHECK(variants_on_tc(DType::bf16, true) == kTcShapeCount);
    CHECK(variants_on_tc(DType::f16, false) == 0);
    CHECK(variants_on_tc(DType::f32, true) == 0);
    // The tiles the host cannot emit are refused, naming the rOp.
    const ROp f32 = decompose(conv_cases(DType::f32, {kConvCases[1]}, 1)).rops.front();
    CHECK_THROWS_WITH(on_tensor_cores(f32, 64, 64, 32), Catch::Contains("cannot use them"));
    TileGraph tg = decompose(conv_cases(DType::f16, {kConvCases[1]}, 1));
    tg.rops.front() = on_tensor_cores(tg.rops.front(), 96, 64, 16);  // 256 threads are not whole rows of 96 pixels
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("dividing 256"));
    std::get<WindowParams>(tg.rops.front().params).algo = ANVIL_MM_GEMV;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("unknown conv2d algo"));
}

// The CNNs of the zoo in f16 and bf16 under every policy: where tensor
// cores pay (here: a target whose tensor cores and memory are so fast that
// they always do) the policies that choose variants put the wide convs on them,
// fused epilogues (batchnorm folded, relu, residual adds) included; per_op
// and topo keep decompose's CUDA-core tiles. Depthwise convs stay window tiles.
TEST_CASE("GEMM tiles: the zoo's CNNs in f16 and bf16 with tensor-core convs, every policy, on host and simt",
          "[simt][gemm][conv][tensor]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    const std::string model = GENERATE(as<std::string>{}, "resnet18_small", "mobilenet_v2_small");
    CAPTURE(dtype_name(dtype), model);
    const Graph g = zoo_model_as(model, dtype);
    Gpu fast = default_gpu();  // compute-bound everywhere, tensor cores far ahead
    fast.ceilings = Ceilings{};  // the datasheet's rates, which this scales, not the calibrated ones
    fast.memory_latency_s /= 1e3;  // and round trips nearly free: the tensor tiles' slices are shallower
    fast.tensor_f16_flops_per_s *= 1e6;
    fast.dram_bytes_per_s *= 1e6;
    fast.l2_bytes_per_s *= 1e6;
    const TensorMap values = make_values(g, std::nullopt);
    for (const char* policy : {"anvil", "per_op", "rammer", "welder", "topo"}) {
        CAPTURE(policy);
        const Schedule s = plan(g, policy, fast);
        const bool chooses = std::string(policy) != "per_op" && std::string(policy) != "topo";
        if (chooses) CHECK(tensor_convs(s) > 0);
        else CHECK(tensor_convs(s) == 0);
        for (const ROp& op : s.tiles.rops)
            if (op.kind == TaskKind::window) CHECK(!computes_on_tensor_cores(op));
        test::expect_reference(g, values, run_host(s, values));
        if (std::string(policy) == "anvil") test::expect_reference(g, values, run_simt(s, values));
    }
}

// The tensor-core conv2d on a device (a session with a GPU runs the [gpu] tests).
TEST_CASE("GEMM tiles: conv2d on tensor cores agrees with the reference on the device", "[gemm][conv][tensor][gpu]") {
    REQUIRE_DEVICE();
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const std::vector<ConvCase> cases = tc_conv_cases();
    const Graph g = conv_cases(dtype, cases, kTcShapeCount);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_cuda(every_tc_shape(g), values), cases.size() * kTcShapeCount);
}

namespace {

// The CUDA-core conv2d's weight slices (conv2d.cuh): w's rows, k
// contiguous, land n-major in 16-byte copies where K % 4 == 0, else one
// element at a time. Odd pixels and channels (1, 7, 33, 129) on both
// paths, with strides, padding, dilation and groups.
const std::vector<ConvCase> kWeightRowCases = {
    {1, 4, 7, 7, 33, 3, 3, 1, 1, 1, 1, true},      // K = 36: aligned rows; M = 49, N = 33
    {2, 32, 9, 11, 7, 3, 3, 2, 2, 2, 1, false},    // K = 288, strided and dilated, N = 7 (a GEMM as K > 256)
    {1, 16, 1, 1, 129, 1, 1, 1, 0, 1, 1, true},    // K = 16, one pixel (M = 1), N = 129
    {1, 66, 5, 5, 129, 1, 1, 1, 0, 1, 3, false},   // 3 groups: K = 22, 43 channels each: element copies
    {1, 29, 33, 1, 1, 3, 3, 1, 1, 1, 1, true},     // K = 261: element copies; a column of 33 pixels, N = 1
};

// Tile shapes beyond the policies' deepest BK: slices shallower than a
// 16-pixel tile's rows of threads (BK 4, 12: a thread's gather ends early),
// a BK not a multiple of 4 (6: element copies, 2 k-steps per load of B), a
// BM the block's threads are not whole rows of (48: every element finds
// its pixel).
const int kSliceShapes[][3] = {{16, 16, 4}, {16, 32, 12}, {32, 16, 6}, {48, 16, 8}, {64, 32, 32}, {128, 64, 16}};
const int kSliceShapeCount = sizeof(kSliceShapes) / sizeof(kSliceShapes[0]);

Schedule every_slice_shape(const Graph& g) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) {
        const int v = shape_index(op);
        op = retile(op, kSliceShapes[v][0], kSliceShapes[v][1], kSliceShapes[v][2]);
    }
    verify_tile_graph(tg, default_gpu());
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

}  // namespace

TEST_CASE("GEMM tiles: conv2d's weight rows, aligned or not, in every slice shape, on host and simt",
          "[simt][gemm][conv]") {
    const DType dtype = GENERATE(DType::f32, DType::f16);
    CAPTURE(dtype_name(dtype));
    const Graph g = conv_cases_graph(dtype, kWeightRowCases, kSliceShapeCount, 31);
    const Schedule s = every_slice_shape(g);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), kWeightRowCases.size() * kSliceShapeCount);
    test::expect_reference(g, values, run_simt(s, values), kWeightRowCases.size() * kSliceShapeCount);
}

// The aligned rows really take the 16-byte copies (clipped by one float,
// their outputs go wrong in every shape whose BK is a multiple of 4), and
// the odd rows (K = 261) do not.
TEST_CASE("GEMM tiles: conv2d's aligned weight rows take the 16-byte copies", "[simt][gemm][conv][mutation]") {
    const Graph g = conv_cases_graph(DType::f32, {kWeightRowCases[0], kWeightRowCases[4]}, kSliceShapeCount, 31);
    const std::string copy = "(const float*)w + (go * K + gk),";
    const TensorMap values = make_values(g, std::nullopt);
    const auto checks = check_outputs(
        g,
        run_simt(every_slice_shape(g), values,
                 test::with_mutation(copy + " left < 0 ? 0 : left > 4 ? 4 : left,", copy + " left < 0 ? 0 : left > 3 ? 3 : left,")),
        reference_execute(g, values));
    REQUIRE(checks.size() == 2 * kSliceShapeCount);
    for (const OutputCheck& c : checks) {
        INFO(c.name << ": relative L2 error " << c.rel_l2);
        const bool vector_copies = c.name.rfind("y0_", 0) == 0 && kSliceShapes[std::stoi(c.name.substr(4))][2] % 4 == 0;
        CHECK(c.ok() != vector_copies);
    }
}

// Split K over aligned rows: each slice's k range starts at a multiple of
// BK, so its rows stay 16-byte aligned; the partials and their reduce
// match the reference.
TEST_CASE("GEMM tiles: conv2d split-K over aligned weight rows, on host and simt", "[simt][gemm][conv][split_k]") {
    // K = 288 in slices of 96; K = 396 in 144, 144, 108.
    const Graph g = conv_cases_graph(DType::f32, {kWeightRowCases[1], {1, 44, 7, 9, 33, 3, 3, 1, 1, 1, 1, true}}, 1, 37);
    TileGraph tg = decompose(g);
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (tg.rops[r].kind != TaskKind::conv2d) continue;
        tg.rops[r] = retile(tg.rops[r], 32, 16, 8);
        REQUIRE(conv_slice(std::get<WindowParams>(tg.rops[r].params), 3) > 0);
        tg = split_k_in(tg, static_cast<int>(r), 3);
        ++r;  // past the reduce
    }
    verify_tile_graph(tg, default_gpu());
    const Schedule s = launch_per_rop("per_op", tg, default_gpu(), "op_");
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), 2);
    test::expect_reference(g, values, run_simt(s, values), 2);
}

namespace {

// Tile shapes whose slices are split over k groups (anvil_conv_k_groups,
// rtasks/tiling.cuh): 2 groups (64 x 32, 16 x 128: 4 threads along M and 32
// along N, 128 x 16: 32 along M, a warp one row; 32 x 64 x 8: one 128-bit
// load of B a group) and 4 (32 x 32, 64 x 16 x 16: one load a group, 16 x
// 16 and 16 x 32: micro-tiles 4 x 1 and 4 x 2).
const int kGroupShapes[][4] = {{64, 32, 32, 2}, {16, 128, 32, 2}, {128, 16, 32, 2}, {32, 64, 8, 2},
                               {32, 32, 32, 4}, {64, 16, 16, 4},  {16, 16, 32, 4},  {16, 32, 16, 4}};
const int kGroupShapeCount = sizeof(kGroupShapes) / sizeof(kGroupShapes[0]);

Schedule every_group_shape(const Graph& g) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) {
        const int* s = kGroupShapes[shape_index(op)];
        op = retile(op, s[0], s[1], s[2]);
    }
    verify_tile_graph(tg, default_gpu());
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

}  // namespace

TEST_CASE("GEMM tiles: conv2d's k groups are the tile shapes' own", "[gemm][conv]") {
    for (const auto& s : kGroupShapes) {
        CAPTURE(s[0], s[1], s[2]);
        CHECK(anvil_conv_k_groups(s[0], s[1], s[2]) == s[3]);
        // Each group's grid tiles the whole tile in micro-tiles of at most 4 x 4.
        const int tx = anvil_conv_group_tx(s[0], s[1], s[3]), ty = ANVIL_BLOCK_THREADS / s[3] / tx;
        CHECK(s[0] % tx == 0);
        CHECK(s[1] % ty == 0);
        CHECK((s[0] / tx) * (s[1] / ty) <= 16);
        // The partial tiles fit where the stages were.
        CHECK(s[3] * s[0] * s[1] * 4 <= anvil_conv_smem_bytes(s[0], s[1], s[2]));
    }
    // Big micro-tiles, slices too shallow for whole 128-bit loads of B per
    // group, and grids that do not tile the shape keep one group.
    CHECK(anvil_conv_k_groups(64, 64, 32) == 1);
    CHECK(anvil_conv_k_groups(128, 128, 8) == 1);
    CHECK(anvil_conv_k_groups(32, 32, 12) == 1);
    CHECK(anvil_conv_k_groups(64, 32, 4) == 1);
    CHECK(anvil_conv_k_groups(48, 16, 8) == 1);
}

// The k groups' partial tiles summed through shared memory: odd shapes
// (pixels and channels 1, 7, 33, 129), strides, padding, dilation, groups,
// w's rows aligned and not, f32 and f16; the simt runs are race-checked.
// (The host runs one thread, one group: its runs check the references.)
TEST_CASE("GEMM tiles: conv2d over k groups, in every group shape, on host and simt", "[simt][gemm][conv]") {
    const DType dtype = GENERATE(DType::f32, DType::f16);
    CAPTURE(dtype_name(dtype));
    const Graph g = conv_cases_graph(dtype, kWeightRowCases, kGroupShapeCount, 41);
    const Schedule s = every_group_shape(g);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), kWeightRowCases.size() * kGroupShapeCount);
    test::expect_reference(g, values, run_simt(s, values), kWeightRowCases.size() * kGroupShapeCount);
}

// Every group's share counts: the sum without the first group's partial
// tile goes wrong in every shape with k groups, and a shape without them
// (64 x 64) stays right.
TEST_CASE("GEMM tiles: conv2d's k groups each add their partial tile", "[simt][gemm][conv][mutation]") {
    const Graph g = conv_cases_graph(DType::f32, {kWeightRowCases[0], kWeightRowCases[3]}, 1, 43);
    const Graph one_shape = conv_cases_graph(DType::f32, {kWeightRowCases[0]}, kGroupShapeCount, 43);
    const TensorMap values = make_values(one_shape, std::nullopt);
    const auto checks = check_outputs(one_shape,
                                      run_simt(every_group_shape(one_shape), values,
                                               test::with_mutation("for (int g = 0; g < G; ++g) v +=",
                                                                   "for (int g = 1; g < G; ++g) v +=")),
                                      reference_execute(one_shape, values));
    REQUIRE(checks.size() == kGroupShapeCount);
    for (const OutputCheck& c : checks) {
        INFO(c.name << ": relative L2 error " << c.rel_l2);
        CHECK(!c.ok());
    }
    // Without k groups the mutated line is not run.
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) op = retile(op, 64, 64, 32);
    verify_tile_graph(tg, default_gpu());
    const TensorMap g_values = make_values(g, std::nullopt);
    test::expect_reference(g, g_values,
                           run_simt(launch_per_rop("per_op", tg, default_gpu(), "op_"), g_values,
                                    test::with_mutation("for (int g = 0; g < G; ++g) v +=",
                                                        "for (int g = 1; g < G; ++g) v +=")),
                           2);
}
