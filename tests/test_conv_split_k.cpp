// Split-K of the implicit-GEMM conv2d (src/schedule/split_k.cpp,
// rtasks/conv2d.cuh): each partial tile sums one slice of K = (channel, kh,
// kw) into f32, the reduce adds the slices and applies the fused epilogue.
// Checked against the float64 reference on the host and simt backends with
// --check-races over odd channels, 3x3 and 1x1, stride 2, padding, a batch
// of two, a grouped conv and fused batchnorm + residual + relu; and the cost
// model's choice on resnet18's stage-4 convs.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "run_checks.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
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

Graph model(const std::string& body, DType dtype) {
    const std::string text = fmt::format("anvil: 1\nname: conv_split\ndtype: {}\nseed: 47\n{}", dtype_name(dtype), body);
    return infer_shapes(build_graph(load_model_from_string(text, "conv_split.yaml")));
}

// Odd channels and sizes, none a multiple of a tile: a 3x3 with padding and
// a bias; a 3x3 of stride 2 with a per-channel scale, a residual add and
// relu fused (the reduce applies them); a 1x1 of stride 2 over 203
// channels; a grouped 3x3 (two groups of 37 -> 17 channels). A batch of two.
Graph conv_cases(DType dtype) {
    return model(R"(inputs:
  - {name: x, shape: [2, 37, 9, 11]}
  - {name: x1, shape: [2, 203, 7, 9]}
  - {name: xg, shape: [2, 74, 7, 5]}
  - {name: r, shape: [2, 19, 5, 6]}
params:
  - {name: w3, shape: [23, 37, 3, 3]}
  - {name: b3, shape: [23]}
  - {name: ws, shape: [19, 37, 3, 3]}
  - {name: sc, shape: [19, 1, 1], init: uniform, low: 0.5, high: 1.5}
  - {name: w1, shape: [21, 203, 1, 1]}
  - {name: wg, shape: [34, 37, 3, 3]}
nodes:
  - {name: y3, op: conv2d, inputs: [x, w3, b3], padding: 1}
  - {name: cs, op: conv2d, inputs: [x, ws], stride: 2, padding: 1}
  - {name: ms, op: mul, inputs: [cs, sc]}
  - {name: as, op: add, inputs: [ms, r]}
  - {name: ys, op: relu, inputs: [as]}
  - {name: y1, op: conv2d, inputs: [x1, w1], stride: 2}
  - {name: yg, op: conv2d, inputs: [xg, wg], padding: 1, groups: 2}
outputs: [y3, ys, y1, yg]
)",
                 dtype);
}

// Every conv2d rOp of the fused tile graph split `ways` ways (each K here
// takes 2, 3 and 4 slices), its tiles 32 x 32 on tensor cores or the CUDA
// cores.
TileGraph split_every_conv(const TileGraph& fused, int ways, bool tensor) {
    TileGraph tg = fused;
    int split = 0;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (tg.rops[r].kind != TaskKind::conv2d) continue;
        ROp& op = tg.rops[r];
        op = tensor && tensor_core_operands(op) ? on_tensor_cores(op, 32, 32, 16) : retile(op, 32, 32, 32);
        REQUIRE(conv_slice(std::get<WindowParams>(op.params), ways) > 0);
        tg = split_k_in(tg, static_cast<int>(r), ways);
        ++r;  // past the reduce
        ++split;
    }
    REQUIRE(split == 4);
    verify_tile_graph(tg, default_gpu());
    return tg;
}

// Few blocks: many tasks share one, and its known-complete counters.
Schedule persistent(const TileGraph& tg, int blocks = 7) {
    return persistent_schedule("test", tg, default_gpu(), round_robin_order(tg, blocks), blocks);
}

HostRunOptions checked(bool simt) {
    HostRunOptions opt;
    opt.workers = 3;
    opt.check_races = true;
    opt.simt = simt;
    return opt;
}

ROp first_conv(const Graph& g) {
    for (const ROp& op : decompose(g).rops)
        if (op.kind == TaskKind::conv2d) return op;
    throw std::runtime_error("no conv2d rOp");
}

}  // namespace

TEST_CASE("conv2d split-K: slices cover K in multiples of BK, the last shorter", "[split_k][conv]") {
    WindowParams p{};
    p.Cg = 37, p.KH = p.KW = 3, p.bk = 32;  // K = 333
    CHECK(conv_slice(p, 2) == 192);
    CHECK(conv_slice(p, 3) == 128);
    CHECK(conv_slice(p, 4) == 96);
    CHECK(conv_slice(p, 6) == 64);
    CHECK(conv_slice(p, 8) == 0);  // 42 -> 64: only 6 slices
    CHECK(conv_slice(p, 1) == 0);
    p.Cg = 512, p.bk = 16;  // K = 4608: resnet18's stage 4
    CHECK(conv_slice(p, 8) == 576);
    CHECK(conv_slice(p, 16) == 288);
    p.Cg = 7;  // K = 63: under one slice
    CHECK(conv_slice(p, 2) == 0);
}

TEST_CASE("conv2d split-K matches the reference on host and simt, race-free", "[split_k][conv][simt]") {
    const DType dtype = GENERATE(DType::f32, DType::f16);
    const bool tensor = GENERATE(false, true);
    const int ways = GENERATE(2, 3, 4);
    if (tensor && dtype == DType::f32) return;  // f32 convs take tensor cores only as TF32: test_tf32_conv.cpp
    CAPTURE(dtype_name(dtype), tensor, ways);
    const Graph g = conv_cases(dtype);
    const TileGraph tg = split_every_conv(fuse(decompose(g), default_gpu()), ways, tensor);
    // The fused scale, residual and relu moved to the reduce.
    bool epilogue_in_reduce = false;
    for (const ROp& op : tg.rops) {
        if (op.split_k > 1) CHECK(op.epilogue.nsteps == 0);
        if (op.kind == TaskKind::rowwise && op.epilogue.nsteps >= 3) epilogue_in_reduce = true;
    }
    CHECK(epilogue_in_reduce);
    const Schedule s = persistent(tg);
    CHECK(find_races(s).empty());
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values, checked(false)), 4);
    if (ways != 3) test::expect_reference(g, values, run_host(s, values, checked(true)), 4);
}

TEST_CASE("conv2d split-K: deleting a reduce task's wait is a race the checker catches", "[split_k][conv][race]") {
    const Graph g = conv_cases(DType::f32);
    // A block per partial tile: no other wait or queue orders a reduce after them.
    const Schedule s = persistent(split_every_conv(fuse(decompose(g), default_gpu()), 2, false), 256);
    REQUIRE(find_races(s).empty());
    int deleted = 0;
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        if (op.kind != TaskKind::rowwise || s.tasks[t].waits.empty()) continue;
        for (size_t w = 0; w < s.tasks[t].waits.size(); ++w) {
            Schedule m = s;
            const int counter = m.tasks[t].waits[w];
            if (s.tiles.rops[s.groups[counter].rop].split_k <= 1) continue;  // the residual's producer: none here
            m.tasks[t].waits.erase(m.tasks[t].waits.begin() + static_cast<long>(w));
            bool names_it = false;
            for (const Race& r : find_races(m)) names_it = names_it || static_cast<size_t>(r.consumer) == t;
            CAPTURE(t, counter);
            CHECK(names_it);
            ++deleted;
        }
    }
    CHECK(deleted > 0);
}

TEST_CASE("conv2d split-K: the cost model splits a long K over few tiles and refuses what it cannot split",
          "[split_k][conv]") {
    const Gpu gpu = default_gpu();
    const int grid = gpu.sm_count * 2;
    const Graph stage4 = model("inputs: [{name: x, shape: [1, 512, 7, 7]}]\n"
                               "params: [{name: w, shape: [512, 512, 3, 3]}]\n"
                               "nodes: [{name: y, op: conv2d, inputs: [x, w], padding: 1}]\n"
                               "outputs: [y]\n",
                               DType::f32);
    SECTION("resnet18's stage-4 3x3 conv on 64 x 32 tiles (16 of them): split") {
        const ROp op = retile(first_conv(stage4), 64, 32, 16);
        REQUIRE(op.tiles == 16);
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CAPTURE(c.why_not, c.whole_s, c.split_s);
        CHECK(c.ways >= 4);
        // Its slices still leave blocks idle: the reason names every split weighed.
        CHECK_THAT(c.why_not, Catch::Contains("predicted fastest") && Catch::Contains("2 slices"));
        CHECK(c.split_s < c.whole_s * (1 - kSplitKMinGain));
    }
    // (Before conv2d.cuh's k groups a 16 x 16 tile's 1 x 1 micro-tile read
    // 1.25 floats of shared memory an FMA and stayed whole; its 4 groups
    // read 0.3125, and the split's second wave of blocks now pays.)
    SECTION("on 16 x 16 tiles, 4 k groups each, it splits too") {
        const ROp op = retile(first_conv(stage4), 16, 16, 32);
        REQUIRE(anvil_conv_k_groups(16, 16, 32) == 4);
        REQUIRE(op.tiles == 128);
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CAPTURE(c.why_not);
        CHECK(c.ways >= 2);
        CHECK(c.split_s < c.whole_s * (1 - kSplitKMinGain));
    }
    SECTION("the variants stage's tile, then apply_split_k: a wider tile split beats it") {
        const TileGraph chosen = choose_variants_by_wave(decompose(stage4), gpu);
        const TileGraph split = apply_split_k(chosen, gpu);
        CAPTURE(chosen.rops[0].tiles, cost_key(chosen.rops[0]), split.rops[0].why_not_split);
        REQUIRE(split.rops.size() == chosen.rops.size() + 1);
        const ROp& part = split.rops[0];
        CAPTURE(part.name, part.tiles);
        CHECK(part.split_k > 1);
        CHECK(split.rops[1].kind == TaskKind::rowwise);
        const auto& p = std::get<WindowParams>(part.params);
        CHECK(p.k_split == part.split_k);
        CHECK(int64_t{p.k_split} * p.k_slice >= 4608);
        verify_tile_graph(split, gpu);
    }
    SECTION("a short K: whole, with the reason") {
        const ROp op = first_conv(model("inputs: [{name: x, shape: [1, 7, 9, 9]}]\n"
                                        "params: [{name: w, shape: [16, 7, 3, 3]}]\n"
                                        "nodes: [{name: y, op: conv2d, inputs: [x, w], padding: 1}]\n"
                                        "outputs: [y]\n",
                                        DType::f32));
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CHECK(c.ways == 1);
        CHECK_THAT(c.why_not, Catch::Contains("K = 63"));
    }
    SECTION("an integer conv2d: whole, with the reason") {
        ROp op = retile(first_conv(stage4), 64, 32, 16);
        op.dtypes = {DType::i32, DType::i32, DType::i32, DType::i32};
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CHECK(c.ways == 1);
        CHECK_THAT(c.why_not, Catch::Contains("integer conv2d"));
    }
    SECTION("partials are not split again") {
        const Graph g = conv_cases(DType::f32);
        const TileGraph tg = split_every_conv(decompose(g), 2, false);
        for (const ROp& op : tg.rops) {
            if (op.split_k <= 1) continue;
            const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
            CHECK(c.ways == 1);
            CHECK_THAT(c.why_not, Catch::Contains("already split"));
        }
    }
}

TEST_CASE("conv2d split-K: resnet18's stage-4 convs are split in the schedule, resnet18_small still matches on simt",
          "[split_k][conv][cli]") {
    const test::CmdResult json = test::run_anvil("schedule models/resnet18.yaml --json");
    REQUIRE(json.status == 0);
    const nlohmann::json j = nlohmann::json::parse(json.output);
    int stage4 = 0;
    for (const auto& g : j["group_list"]) {
        if (g["kind"] != "conv2d" || g["name"].get<std::string>().rfind("s4b", 0) != 0) continue;
        CAPTURE(g.dump());
        if (g["name"].get<std::string>().find("#partials") == std::string::npos) continue;
        CHECK(g["split_k"].get<int>() > 1);
        ++stage4;
    }
    CHECK(stage4 >= 3);
    const test::CmdResult run = test::run_anvil("run models/resnet18_small.yaml --backend simt");
    INFO(run.output);
    CHECK(run.status == 0);
}
