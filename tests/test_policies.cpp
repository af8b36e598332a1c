// GPU descriptions, the cost model and the scheduling policies: what each
// policy promises about its schedule, what the cost model predicts for
// hand-checkable graphs, and the done-when claims of the scheduling work on
// the full-size zoo (predictions only: nothing runs).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <set>

#include "schedule/cost_model.h"
#include "schedule/sync_counters.h"
#include "tile/fusion.h"
#include "anvil/pipeline.h"
#include "schedule/variants.h"
#include "policies/registry.h"
#include "graph_builder.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "frontend/infer_shapes.h"

using namespace anvil;
using namespace anvil::test;
namespace fs = std::filesystem;

namespace {

Graph model_graph(const std::string& name) { return load_graph((fs::path(ANVIL_SOURCE_DIR) / "models" / name).string()); }

const char* kDescription = R"(name: toy
match: "Toy GPU"
arch: sm_90
sm_count: 4
max_threads_per_sm: 2048
max_blocks_per_sm: 32
smem_per_sm: 100000
smem_per_block: 99000
regs_per_sm: 65536
l2_bytes: 1048576
dram_bytes_per_s: 1.0e12
l2_bytes_per_s: 4.0e12
fp32_flops_per_s: 1.0e13
tensor_f16_flops_per_s: 1.0e14
launch_overhead_s: 3.0e-6
sync_latency_s: 1.0e-6
task_overhead_s: 1.0e-7
)";

std::string replace(std::string s, const std::string& from, const std::string& to) {
    const size_t at = s.find(from);
    REQUIRE(at != std::string::npos);
    return s.replace(at, from.size(), to);
}

// x [rows, cols] -> relu -> neg: two elementwise rOps, an intermediate in between.
Graph two_ops(int64_t rows, int64_t cols) {
    GraphBuilder b;
    b.input("x", {rows, cols});
    b.node("r", Op::relu, {"x"});
    b.node("n", Op::neg, {"r"});
    b.output("n");
    return infer_shapes(b.graph());
}

}  // namespace

TEST_CASE("kernels_db describes the H100 SXM, the H200 and the A100", "[policy][gpu]") {
    const Gpu h100 = find_gpu("h100_sxm"), h200 = find_gpu("h200"), a100 = find_gpu("a100_sxm");
    CHECK(h100.sm_count == 132);
    CHECK(h100.arch == "sm_90");
    CHECK(h200.sm_count == 132);
    CHECK(h200.dram_bytes_per_s > h100.dram_bytes_per_s);
    CHECK(a100.sm_count == 108);
    CHECK(a100.arch == "sm_80");
    CHECK(a100.l2_bytes == 40LL * 1024 * 1024);
    CHECK(default_gpu().name == "h100_sxm");
    const std::vector<std::string> known = known_gpus();
    CHECK(known == std::vector<std::string>{"a100_sxm", "h100_sxm", "h200"});
}

TEST_CASE("a bad GPU description is a user error naming the place", "[policy][gpu]") {
    CHECK_THROWS_WITH(find_gpu("v100"), Catch::Contains("unknown GPU 'v100'") && Catch::Contains("h200"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", replace(kDescription, "sm_count: 4\n", "")),
                      Catch::Contains("toy.yaml:1:1") && Catch::Contains("missing key 'sm_count'"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", replace(kDescription, "sm_count: 4", "sm_count: four")),
                      Catch::Contains("toy.yaml:4:11") && Catch::Contains("'four' is not a valid value"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", replace(kDescription, "sm_count: 4", "sm_count: 0")),
                      Catch::Contains("toy.yaml:4:11") && Catch::Contains("must be positive"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", std::string(kDescription) + "sm_cuont: 4\n"),
                      Catch::Contains("toy.yaml:18:1") && Catch::Contains("unknown key 'sm_cuont'"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", "name: [unclosed\n"), Catch::Contains("toy.yaml:"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", kDescription, "m.yaml", "gpu: h100_sxm\ntiles: []\n"),
                      Catch::Contains("m.yaml:1:6") && Catch::Contains("not 'toy'"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", kDescription, "m.yaml", "tiles:\n  - {key: k, seconds: -1}\n"),
                      Catch::Contains("m.yaml:2:") && Catch::Contains("seconds must be positive"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", kDescription, "m.yaml", "tiels: []\n"),
                      Catch::Contains("m.yaml:1:1") && Catch::Contains("unknown key 'tiels'"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", kDescription, "m.yaml", "ceilings: {copy_bytes_per_s: 1.0e12}\n"),
                      Catch::Contains("m.yaml:1:11") && Catch::Contains("missing key 'fp32_flops_per_s'"));
    CHECK_THROWS_WITH(parse_gpu("toy.yaml", kDescription, "m.yaml",
                                "ceilings: {copy_bytes_per_s: 0, fp32_flops_per_s: 1, tensor_f16_flops_per_s: 1,\n"
                                "           tensor_bf16_flops_per_s: 1, device: d, date: 2026-11-24}\n"),
                      Catch::Contains("m.yaml:1:30") && Catch::Contains("'copy_bytes_per_s': must be positive"));
}

TEST_CASE("measured ceilings and tiles round-trip through measured_yaml", "[policy][gpu]") {
    Gpu g = parse_gpu("toy.yaml", kDescription);
    CHECK_FALSE(g.ceilings.measured());
    g.ceilings = Ceilings{2.9e12, 5.1e13, 6.6e14, 6.5e14, "NVIDIA H100 80GB HBM3", "2026-11-24"};
    g.measured_tile_s["matmul f16,f16,f16 64x64x32 M=1 N=2 K=3"] = 3.25e-6;
    const Gpu back = parse_gpu("toy.yaml", kDescription, "m.yaml", measured_yaml(g));
    CHECK(back.ceilings.copy_bytes_per_s == 2.9e12);
    CHECK(back.ceilings.fp32_flops_per_s == 5.1e13);
    CHECK(back.ceilings.tensor_f16_flops_per_s == 6.6e14);
    CHECK(back.ceilings.tensor_bf16_flops_per_s == 6.5e14);
    CHECK(back.ceilings.device == "NVIDIA H100 80GB HBM3");
    CHECK(back.ceilings.date == "2026-11-24");
    CHECK(back.measured_tile_s == g.measured_tile_s);
}

TEST_CASE("a CUDA device name finds its GPU description", "[policy][gpu]") {
    CHECK(gpu_for_device("NVIDIA H100 80GB HBM3") == "h100_sxm");
    CHECK(gpu_for_device("NVIDIA H200") == "h200");
    CHECK(gpu_for_device("NVIDIA A100-SXM4-80GB") == "a100_sxm");
    CHECK(gpu_for_device("NVIDIA GeForce RTX 4090").empty());
}

TEST_CASE("the cost model counts DRAM and L2 bytes and launch overheads", "[policy][cost]") {
    const Gpu gpu = parse_gpu("toy.yaml", kDescription);
    const Graph g = two_ops(300, 257);  // not a multiple of the elementwise tile
    const double bytes = 300 * 257 * 4;
    SECTION("per_op: every tensor once from DRAM, the intermediate again from L2") {
        const Prediction p = predict(find_policy("per_op").fn(decompose(g), gpu));
        // x read, r written, r read (L2: 308 KB < half of 1 MiB), n written
        CHECK(p.dram_bytes == Approx(3 * bytes));
        CHECK(p.l2_bytes == Approx(bytes));
        // two launches, each paying its overhead before its first task
        CHECK(p.launch_start_s.size() == 2);
        CHECK(p.launch_start_s[0] == Approx(gpu.launch_overhead_s));
        CHECK(p.launch_start_s[1] == Approx(p.launch_end_s[0] + gpu.launch_overhead_s));
        CHECK(p.total_s == Approx(p.launch_end_s[1]));
        // the elementwise tiles are memory bound: 4 SMs share the DRAM
        const double tile_s = p.rops[0].tile_s;
        CHECK(tile_s > 0);
        CHECK(p.rops[0].measured == false);
    }
    SECTION("the intermediate misses L2 when the L2 is too small to hold it") {
        const Gpu tiny = parse_gpu("toy.yaml", replace(kDescription, "l2_bytes: 1048576", "l2_bytes: 65536"));
        const Prediction p = predict(find_policy("per_op").fn(decompose(g), tiny));
        CHECK(p.dram_bytes == Approx(4 * bytes));
        CHECK(p.l2_bytes == Approx(0));
    }
    SECTION("a measured tile time replaces the model") {
        const TileGraph tg = decompose(g);
        const std::string key = cost_key(tg.rops[1]);
        const Gpu tuned = parse_gpu("toy.yaml", kDescription, "m.yaml",
                                    "gpu: toy\ntiles:\n  - {key: \"" + key + "\", seconds: 4.5e-5}\n");
        const Prediction p = predict(find_policy("per_op").fn(tg, tuned));
        CHECK(p.rops[1].measured);
        CHECK(p.rops[1].tile_s == Approx(4.5e-5));
        CHECK_FALSE(p.rops[0].measured);
        for (size_t t = 0; t < p.end_s.size(); ++t)
            if (find_policy("per_op").fn(tg, tuned).tasks[t].rop == 1)
                CHECK(p.end_s[t] - p.start_s[t] == Approx(4.5e-5 + tuned.task_overhead_s));
    }
    SECTION("measured ceilings replace the datasheet rates") {
        const Prediction datasheet = predict(find_policy("per_op").fn(decompose(g), gpu));
        Gpu calibrated = gpu;
        // Half the datasheet's DRAM rate and a quarter of its FLOP rate.
        calibrated.ceilings = Ceilings{0.5e12, 0.25e13, 0.25e14, 0.25e14, "toy", "2026-11-24"};
        const Prediction measured = predict(find_policy("per_op").fn(decompose(g), calibrated));
        REQUIRE(measured.rops.size() == 2);
        // rOp 0 streams from DRAM: its work twice as slow, its round trips as long as
        // before; rOp 1 reads its input from L2: never faster.
        CHECK(measured.rops[0].work_s == Approx(2 * datasheet.rops[0].work_s));
        CHECK(measured.rops[0].latency_s == Approx(datasheet.rops[0].latency_s));
        CHECK(measured.rops[0].latency_s > 0);
        CHECK(measured.rops[1].tile_s >= datasheet.rops[1].tile_s);
    }
    SECTION("a persistent kernel pays one launch and a sync latency per dependency across SMs") {
        const Prediction p = predict(find_policy("topo").fn(decompose(g), gpu));
        CHECK(p.launch_start_s.size() == 1);
        const Schedule s = find_policy("topo").fn(decompose(g), gpu);
        for (size_t t = 0; t < s.tasks.size(); ++t)
            for (int d : s.tasks[t].deps) {
                CHECK(p.sm[d] != p.sm[t]);  // same-SM edges are left to queue order
                CHECK(p.start_s[t] >= p.end_s[d] + gpu.sync_latency_s - 1e-12);
            }
    }
}

TEST_CASE("every policy gives a valid schedule that covers every tile once", "[policy]") {
    auto model = GENERATE(as<std::string>{}, "transformer_encoder_f32.yaml", "lstm_tc_small.yaml",
                          "resnext29_small.yaml", "mobilenet_v2_small.yaml", "llama_mlp_bf16.yaml");
    const Graph g = model_graph(model);
    for (const PolicyEntry& entry : all_policies()) {
        DYNAMIC_SECTION(model << " under " << entry.name) {
            const Schedule s = plan(g, entry.name, default_gpu());
            CHECK(s.policy == entry.name);
            std::map<std::pair<int, int>, int> seen;
            for (const Task& t : s.tasks) ++seen[{t.rop, t.tile}];
            int64_t tiles = 0;
            for (const ROp& op : s.tiles.rops) tiles += op.tiles;
            CHECK(seen.size() == static_cast<size_t>(tiles));
            for (const auto& [tile, n] : seen) CHECK(n == 1);
            const bool persistent = entry.name != std::string("per_op") && entry.name != std::string("welder");
            if (persistent) {
                REQUIRE(s.launches.size() == 1);
                // Every co-resident block: up to blocks_per_sm per SM.
                CHECK(s.blocks_per_sm <= kCudaCoreBlocksPerSm);
                CHECK(s.launches[0].queues.size() <= static_cast<size_t>(s.gpu.sm_count * s.blocks_per_sm));
                // Tasks synchronise through counter groups only; no task waits
                // on a group that only its own block's earlier tasks fill
                // (queue order covers them), nor on one group twice.
                std::vector<int> block(s.tasks.size());
                for (size_t b = 0; b < s.launches[0].queues.size(); ++b)
                    for (int t : s.launches[0].queues[b]) block[t] = static_cast<int>(b);
                const SyncCounters sync = sync_counters(s);
                for (size_t t = 0; t < s.tasks.size(); ++t) {
                    CHECK(s.tasks[t].deps.empty());
                    const std::set<int> distinct(s.tasks[t].waits.begin(), s.tasks[t].waits.end());
                    CHECK(distinct.size() == s.tasks[t].waits.size());
                    for (int g : s.tasks[t].waits) {
                        bool elsewhere = false;
                        for (int m : sync.members[g]) elsewhere = elsewhere || block[m] != block[t];
                        CHECK(elsewhere);
                    }
                }
            } else {
                CHECK(s.launches.size() == s.tiles.rops.size());
            }
        }
    }
}

TEST_CASE("GEMM tile variants keep the problem and fit shared memory", "[policy]") {
    const TileGraph tg = decompose(model_graph("transformer_encoder_f32.yaml"));
    const Gpu gpu = default_gpu();
    for (const ROp& op : tg.rops) {
        if (op.kind != TaskKind::matmul) continue;
        const auto& base = std::get<MatmulParams>(op.params);
        const std::vector<ROp> variants = tile_variants(op, gpu);
        CHECK(variants.size() > 4);
        for (const ROp& v : variants) {
            const auto& p = std::get<MatmulParams>(v.params);
            CHECK(p.M == base.M);
            CHECK(p.N == base.N);
            CHECK(p.tiles_m * p.bm >= p.M);
            CHECK((p.tiles_m - 1) * p.bm < p.M);
            CHECK(v.tiles == p.batches * p.tiles_m * p.tiles_n);
            CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu));
        }
        // Alone on one SM the biggest tiles win (fewest bytes per FLOP);
        // alone on the whole GPU a wave of small tiles beats a few big ones.
        const ROp one = fastest_alone(op, gpu, 1), all = fastest_alone(op, gpu, gpu.sm_count);
        CHECK(one.tiles <= all.tiles);
        CHECK(most_efficient(op, gpu).tiles <= all.tiles);
    }
    ROp ew = tg.rops[0];
    while (ew.kind == TaskKind::matmul) ew = tg.rops[1];
    CHECK(tile_variants(ew, gpu).size() == 1);
    CHECK_THROWS_AS(retile(ew, 64, 64, 32), InternalError);
}

TEST_CASE("the policies' predictions on the full-size zoo", "[policy][zoo]") {
    // The done-when claims of the scheduling work: fusion cuts DRAM traffic
    // on the transformers and CNNs; co-scheduling cuts time on the branchy
    // models and the LSTM; anvil is never predicted slower than the others.
    const std::vector<std::string> models = {"transformer_encoder_f16.yaml", "bert_base.yaml", "vit_b16.yaml",
                                             "resnet18.yaml", "mobilenet_v2.yaml", "resnext29.yaml",
                                             "resnext29_split.yaml", "lstm_tc.yaml", "llama_decode.yaml",
                                             "nerf_mlp.yaml"};
    const std::set<std::string> fusing = {"transformer_encoder_f16.yaml", "bert_base.yaml", "vit_b16.yaml",
                                          "resnet18.yaml", "mobilenet_v2.yaml", "resnext29.yaml"};
    const std::set<std::string> branchy = {"resnext29.yaml", "resnext29_split.yaml", "lstm_tc.yaml"};
    const Gpu gpu = default_gpu();
    for (const std::string& model : models) {
        const Graph g = model_graph(model);
        std::map<std::string, Prediction> p;
        std::map<std::string, double> partials;  // split-K's f32 partials, written once each
        std::string line = fmt::format("{:<30}", model);
        for (const PolicyEntry& entry : all_policies()) {
            // Through the pipeline: it runs the front stages (fusion, tile
            // shapes) each policy's entry asks for.
            const Schedule s = plan(g, entry.name, gpu);
            p[entry.name] = predict(s);
            for (const ROp& op : s.tiles.rops)
                if (op.split_k > 1) partials[entry.name] += double(s.tiles.buffers.at(op.node).bytes);
            line += fmt::format(" {} {:.1f} us {:.3g} B |", entry.name, p[entry.name].total_s * 1e6,
                                p[entry.name].dram_bytes);
        }
        WARN(line);
        INFO(line);
        if (fusing.count(model)) {
            // Fusion's claim; a split GEMM's partials are traffic it adds
            // on purpose (charged as DRAM writes: L2 writes them back).
            CHECK(p["welder"].dram_bytes - partials["welder"] < p["per_op"].dram_bytes);
            CHECK(p["anvil"].dram_bytes - partials["anvil"] < p["per_op"].dram_bytes);
        }
        if (branchy.count(model)) {
            CHECK(p["rammer"].total_s < p["per_op"].total_s);
            CHECK(p["anvil"].total_s < p["per_op"].total_s);
        }
        for (const auto& [name, other] : p) CHECK(p["anvil"].total_s <= other.total_s * (1 + 1e-9));
    }
}
