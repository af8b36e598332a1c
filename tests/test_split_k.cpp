// Split-K (src/schedule/split_k.cpp): the cost model's decision, and split
// GEMMs (CUDA-core tiles, tensor cores, GEMV; batched, transposed, with a
// fused epilogue) against the float64 reference on the host and simt
// backends with --check-races, over odd M and N and K much larger than
// M x N; the race checker catches a deleted wait of the reduction.
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
#include "split_k_cases.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
#include "schedule/orders.h"
#include "schedule/race_check.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

using test::checked;
using test::persistent;
using test::split_every_matmul;

namespace {

Graph model(const std::string& body, DType dtype) { return test::split_model(body, dtype); }

// Odd M and N, K much larger than M x N; a transposed weight, a batch, a
// fused bias + relu (the reduce applies it) and a GEMV; M and N whole
// tiles (y64), M whole tiles and N ragged in a batch (yr).
Graph split_cases(DType dtype) {
    return model(R"(inputs:
  - {name: x1, shape: [1, 1024]}
  - {name: x7, shape: [7, 2048]}
  - {name: x33, shape: [33, 512]}
  - {name: xb, shape: [3, 5, 768]}
  - {name: x129, shape: [129, 256]}
  - {name: x64, shape: [64, 512]}
  - {name: xr, shape: [2, 64, 256]}
params:
  - {name: w1, shape: [1024, 7]}
  - {name: w7, shape: [33, 2048]}
  - {name: w33, shape: [512, 1]}
  - {name: wb, shape: [3, 768, 9]}
  - {name: w129, shape: [256, 129]}
  - {name: b7, shape: [33]}
  - {name: w64, shape: [512, 96]}
  - {name: wr, shape: [2, 256, 40]}
nodes:
  - {name: y1, op: matmul, inputs: [x1, w1]}
  - {name: m7, op: matmul, inputs: [x7, w7], transpose_b: true}
  - {name: a7, op: add, inputs: [m7, b7]}
  - {name: y7, op: relu, inputs: [a7]}
  - {name: y33, op: matmul, inputs: [x33, w33]}
  - {name: yb, op: matmul, inputs: [xb, wb]}
  - {name: y129, op: matmul, inputs: [x129, w129]}
  - {name: y64, op: matmul, inputs: [x64, w64]}
  - {name: yr, op: matmul, inputs: [xr, wr]}
outputs: [y1, y7, y33, yb, y129, y64, yr]
)",
                 dtype);
}

}  // namespace

TEST_CASE("split-K: the cost model splits a long K whose tiles leave the grid idle, and says why not otherwise",
          "[split_k]") {
    const Gpu gpu = default_gpu();
    const int grid = gpu.sm_count * 2;
    auto first_matmul = [](const std::string& body) {
        for (const ROp& op : decompose(model(body, DType::f16)).rops)
            if (op.kind == TaskKind::matmul || op.kind == TaskKind::conv2d) return op;
        throw std::runtime_error("no GEMM");
    };
    SECTION("few tiles, long K: split") {
        const ROp op = first_matmul("inputs: [{name: x, shape: [128, 8192]}]\nparams: [{name: w, shape: [8192, 256]}]\n"
                                    "nodes: [{name: y, op: matmul, inputs: [x, w]}]\noutputs: [y]\n");
        REQUIRE(op.tiles < grid);
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CAPTURE(c.why_not, c.whole_s, c.split_s);
        CHECK(c.ways > 1);
        // Its slices still leave blocks idle: the reason names every split weighed.
        CHECK_THAT(c.why_not, Catch::Contains("predicted fastest") && Catch::Contains("2 slices"));
        CHECK(c.split_s < c.whole_s * (1 - kSplitKMinGain));
        CHECK(c.ways >= 4);
    }
    SECTION("tiles that fill the grid: whole") {
        const ROp op = first_matmul("inputs: [{name: x, shape: [2048, 1024]}]\nparams: [{name: w, shape: [1024, 2048]}]\n"
                                    "nodes: [{name: y, op: matmul, inputs: [x, w]}]\noutputs: [y]\n");
        REQUIRE(op.tiles >= grid);
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CHECK(c.ways == 1);
        CHECK_THAT(c.why_not, Catch::Contains("fill the grid"));
    }
    SECTION("a wave that other tiles fill: whole") {
        const ROp op = first_matmul("inputs: [{name: x, shape: [128, 8192]}]\nparams: [{name: w, shape: [8192, 256]}]\n"
                                    "nodes: [{name: y, op: matmul, inputs: [x, w]}]\noutputs: [y]\n");
        // Other tiles' work that keeps every SM busy far longer than this
        // rOp's chain of K slices: the split's extra traffic only adds to it.
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 4 * grid, 1.0});
        CAPTURE(c.why_not, c.whole_s, c.split_s, c.ways);
        CHECK(c.ways == 1);
        CHECK_THAT(c.why_not, Catch::Contains("wave"));
    }
    SECTION("short K: whole, with the reason") {
        const ROp op = first_matmul("inputs: [{name: x, shape: [7, 129]}]\nparams: [{name: w, shape: [129, 33]}]\n"
                                    "nodes: [{name: y, op: matmul, inputs: [x, w]}]\noutputs: [y]\n");
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CHECK(c.ways == 1);
        CHECK_THAT(c.why_not, Catch::Contains("K = 129"));
    }
    SECTION("a conv2d is no longer refused: its K slices have a device path (tests/test_conv_split_k.cpp)") {
        const ROp op = first_matmul("inputs: [{name: x, shape: [1, 512, 7, 7]}]\nparams: [{name: w, shape: [64, 512, 3, 3]}]\n"
                                    "nodes: [{name: y, op: conv2d, inputs: [x, w], padding: 1}]\noutputs: [y]\n");
        REQUIRE(op.kind == TaskKind::conv2d);
        const SplitChoice c = choose_split_k(op, gpu, WaveLoad{grid, 0, 0});
        CAPTURE(c.why_not, c.whole_s, c.split_s);
        CHECK(c.split_s > 0);  // splits were weighed
        CHECK_THAT(c.why_not, !Catch::Contains("device path"));
    }
}

TEST_CASE("split-K kept whole: the same rOps, each GEMM with its wave's verdict", "[split_k]") {
    // The candidate the pipeline places beside the split one
    // (by_wave_and_fastest_alone): nothing split, no scratch, each GEMM's
    // reason the split graph's, or that its wave's model splits it.
    const Gpu gpu = default_gpu();
    const Graph conv = model("inputs: [{name: x, shape: [1, 512, 7, 7]}]\nparams: [{name: w, shape: [64, 512, 3, 3]}]\n"
                             "nodes: [{name: y, op: conv2d, inputs: [x, w], padding: 1}]\noutputs: [y]\n",
                             DType::f16);
    int split_gemms = 0, whole_gemms = 0;
    for (const Graph& g : {split_cases(DType::f32), split_cases(DType::f16), conv}) {
        const TileGraph tg = choose_variants_by_wave(fuse(decompose(g), gpu), gpu);
        const TileGraph split = apply_split_k(tg, gpu);
        const TileGraph whole = apply_split_k(tg, gpu, SplitKMode::keep_whole);
        REQUIRE(whole.rops.size() == tg.rops.size());
        CHECK(whole.buffers.size() == tg.buffers.size());
        CHECK(whole.arena_bytes == tg.arena_bytes);
        for (size_t r = 0; r < tg.rops.size(); ++r) {
            const ROp& op = whole.rops[r];
            CAPTURE(op.name, op.why_not_split);
            CHECK(op.name == tg.rops[r].name);
            CHECK(op.kind == tg.rops[r].kind);
            CHECK(op.tiles == tg.rops[r].tiles);  // a conv2d keeps its tile shape
            CHECK(op.split_k == 1);
            if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) continue;
            int ways = 0;
            const ROp* same = nullptr;
            for (const ROp& o : split.rops) {
                if (o.name == op.name + "#partials") ways = o.split_k;
                if (o.name == op.name) same = &o;
            }
            if (ways > 1) {
                ++split_gemms;
                CHECK(op.why_not_split == fmt::format("its wave's model splits K {} ways, but the whole schedule with "
                                                      "every GEMM whole was predicted faster",
                                                      ways));
            } else {
                ++whole_gemms;
                REQUIRE(same);
                CHECK(!op.why_not_split.empty());
                CHECK(op.why_not_split == same->why_not_split);
            }
        }
    }
    CHECK(split_gemms > 0);
    CHECK(whole_gemms > 0);
}

TEST_CASE("split-K GEMMs match the reference on host and simt, race-free", "[split_k][simt]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    const int algo = GENERATE(ANVIL_MM_TILED, ANVIL_MM_TENSOR, ANVIL_MM_GEMV);
    const int ways = GENERATE(2, 3, 4);
    CAPTURE(dtype_name(dtype), algo, ways);
    const Graph g = split_cases(dtype);
    const TileGraph fused = fuse(decompose(g), default_gpu());
    const TileGraph tg = split_every_matmul(fused, ways, algo);
    int split = 0;
    for (const ROp& op : tg.rops) split += op.split_k > 1;
    CHECK(split == 7);
    const Schedule s = persistent(tg);
    CHECK(find_races(s).empty());
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values, checked(false)), 7);
    if (ways != 3) test::expect_reference(g, values, run_host(s, values, checked(true)), 7);
}

TEST_CASE("split-K: the reduce sums in a fixed order, so runs agree bit for bit", "[split_k]") {
    const Graph g = split_cases(DType::f32);
    const Schedule s = persistent(split_every_matmul(fuse(decompose(g), default_gpu()), 4, ANVIL_MM_TILED));
    const TensorMap values = make_values(g, std::nullopt);
    const TensorMap a = run_host(s, values, checked(false)), b = run_host(s, values, checked(false));
    for (const auto& [name, t] : a) CHECK(t.bytes == b.at(name).bytes);
}

TEST_CASE("split-K: the slices of one output tile are consecutive partial tiles, so a reduce task waits one counter",
          "[split_k][waits]") {
    const int ways = 4;
    const TileGraph tg = split_every_matmul(fuse(decompose(split_cases(DType::f32)), default_gpu()), ways, ANVIL_MM_TILED);
    auto rop_of = [&](const std::string& name, bool partials) {
        for (size_t r = 0; r < tg.rops.size(); ++r)
            if (tg.rops[r].name.find(name) != std::string::npos && (tg.rops[r].split_k > 1) == partials)
                return static_cast<int>(r);
        FAIL("no rOp " << name);
        return -1;
    };
    for (const char* name : {"y64", "yr"}) {
        CAPTURE(name);
        const ROp& part = tg.rops[rop_of(name, true)];
        const auto& p = std::get<MatmulParams>(part.params);
        const int64_t slice_elems = int64_t{64} * (std::string(name) == "y64" ? 96 : 2 * 40);
        // The slices are the innermost batch dim: tile t computes slice
        // (t / per) % ways of its output tile, whose C sits that many slice
        // blocks past slice 0's, and A that many K slices on. y64's output
        // tiles are whole batches: its slices are consecutive tiles.
        const int per = p.tiles_m * p.tiles_n;
        CHECK(per == (std::string(name) == "y64" ? 1 : 2));
        for (int t = 0; t < part.tiles; ++t) {
            const int slice = t / per % ways;
            const AnvilMmPlace at = anvil_mm_place(p, t, p.bm, p.bn), first = anvil_mm_place(p, t - slice * per, p.bm, p.bn);
            CAPTURE(t);
            CHECK(at.m0 == first.m0);
            CHECK(at.n0 == first.n0);
            CHECK(at.cb - first.cb == slice * slice_elems);
            CHECK(at.ab - first.ab == slice * int64_t{p.K} * p.a_sk);
        }
    }
    // A block per task: no queue order spares a wait, every reduce task
    // waits for its partials alone.
    const Schedule s = persistent(tg, 512);
    REQUIRE(find_races(s).empty());
    auto most_waits = [&](int reduce) {
        size_t most = 0, tasks = 0;
        for (const Task& t : s.tasks) {
            if (t.rop != reduce) continue;
            most = std::max(most, t.waits.size());
            ++tasks;
        }
        CHECK(tasks > 1);
        return most;
    };
    CHECK(most_waits(rop_of("y64", false)) == 1);
    CHECK(most_waits(rop_of("yr", false)) == 1);
    // y64's first reduce tile (rows 0-10) waits for exactly its row band's
    // partials: 3 column tiles x the slices, the first tiles of the rOp.
    for (const Task& t : s.tasks)
        if (t.rop == rop_of("y64", false) && t.tile == 0) {
            REQUIRE(t.waits.size() == 1);
            const CounterGroup& g = s.groups[t.waits[0]];
            CHECK(g.begin == 0);
            CHECK(g.end == 3 * ways);
        }
    // Ragged row and column bands keep the slices outermost, a run per
    // slice: a reduce task waits once for their span (wait_groups.cpp).
    const int ragged = rop_of("y129", false);
    CHECK(most_waits(ragged) == 1);
    const int ragged_tiles = tg.rops[ragged - 1].tiles;
    bool spans_slices = false;
    for (const Task& t : s.tasks)
        if (t.rop == ragged) {
            REQUIRE(t.waits.size() == 1);
            const CounterGroup& g = s.groups[t.waits[0]];
            CHECK(g.rop == ragged - 1);
            spans_slices = spans_slices || (g.begin < ragged_tiles / ways && g.end > ragged_tiles / ways * (ways - 1));
        }
    CHECK(spans_slices);
}

TEST_CASE("split-K: deleting a reduce task's wait is a race the checker catches", "[split_k][race]") {
    const Graph g = split_cases(DType::f16);
    // A block per partial tile: no other wait or queue orders a reduce after them.
    const Schedule s = persistent(split_every_matmul(fuse(decompose(g), default_gpu()), 2, ANVIL_MM_TILED), 256);
    REQUIRE(find_races(s).empty());
    int deleted = 0;
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        if (op.kind != TaskKind::rowwise || s.tasks[t].waits.empty()) continue;
        for (size_t w = 0; w < s.tasks[t].waits.size(); ++w) {
            Schedule m = s;
            const int counter = m.tasks[t].waits[w];
            REQUIRE(s.tiles.rops[s.groups[counter].rop].split_k > 1);  // a reduce waits only for its partials
            m.tasks[t].waits.erase(m.tasks[t].waits.begin() + static_cast<long>(w));
            const std::vector<Race> races = find_races(m);
            bool names_it = false;
            for (const Race& r : races) names_it = names_it || static_cast<size_t>(r.consumer) == t;
            CAPTURE(t, counter);
            CHECK(names_it);
            ++deleted;
        }
    }
    CHECK(deleted > 0);
}

TEST_CASE("split-K in schedule --report and --json: the split GEMMs, and why the others stay whole", "[split_k][cli]") {
    const test::CmdResult report = test::run_anvil("schedule tests/models/split_k_f16.yaml --report");
    INFO(report.output);
    REQUIRE(report.status == 0);
    CHECK_THAT(report.output, Catch::Contains("split K") && Catch::Contains("xw+xwb+y#partials in") &&
                                  Catch::Contains("z#partials in"));
    for (const char* model : {"tests/models/split_k_f16.yaml", "models/resnet18_small.yaml", "models/bert_base.yaml",
                              "models/llama_mlp_f32.yaml"}) {
        const test::CmdResult json = test::run_anvil(std::string("schedule ") + model + " --json");
        REQUIRE(json.status == 0);
        const nlohmann::json j = nlohmann::json::parse(json.output);
        int gemms = 0, split = 0;
        for (const auto& g : j["group_list"]) {
            if (g["kind"] != "matmul" && g["kind"] != "conv2d") continue;
            ++gemms;
            split += g["split_k"].get<int>() > 1;
            // Every GEMM fills a wave or carries the cost model's reason (a
            // split one: why no more slices).
            CAPTURE(model, g.dump());
            CHECK((g["fills_wave"].get<bool>() || !g.value("why_not", std::string()).empty()));
        }
        CHECK(gemms > 0);
        if (std::string(model).find("split_k") != std::string::npos) CHECK(split == 2);
    }
}
