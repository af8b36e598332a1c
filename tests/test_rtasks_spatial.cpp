// The spatial rTask kinds (conv2d, window, channel, gather) beyond the
// table-driven op test: an out-of-range embedding id ends the run with an
// error naming the node, the id and its place (never a wild read or a
// hang); the emitted source of the spatial models compiles with NVRTC and
// nvcc; the dispatcher's size does not grow with the model; a conv tile
// waits only for the producer tiles under its halo.
#include <catch2/catch.hpp>

#include "schedule/sync_counters.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <unistd.h>

#include "codegen/emit.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "runtime/compile_nvrtc.h"
#include "frontend/load_model.h"
#include "frontend/infer_shapes.h"

using namespace anvil;

namespace {
// Launches that dispatch the same variants share a kernel (launch_kernels).
size_t distinct_kernels(const Schedule& s) {
    const std::vector<std::string> k = launch_kernels(s);
    return std::set<std::string>(k.begin(), k.end()).size();
}
}  // namespace

namespace fs = std::filesystem;

namespace {

std::string model_path(const std::string& dir, const std::string& name) {
    return (fs::path(ANVIL_SOURCE_DIR) / dir / name).string();
}

// A test model's text with its default dtype replaced.
Graph with_dtype(const std::string& file, DType t) {
    std::ifstream in(model_path("tests/models", file));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text = std::regex_replace(text, std::regex(R"(\ndtype: \w+\n)"), std::string("\ndtype: ") + dtype_name(t) + "\n");
    return infer_shapes(build_graph(load_model_from_string(text, file)));
}

}  // namespace

TEST_CASE("an embedding id outside the table stops the run with an error naming it", "[backend][spatial]") {
    const Graph graph = load_graph(model_path("tests/models", "embed_mlp_bf16.yaml"));
    const std::string policy = GENERATE(as<std::string>{}, "topo", "per_op");
    const int bad = GENERATE(50, -3, 1000000);
    CAPTURE(policy, bad);
    const Schedule s = plan(graph, policy, default_gpu());
    TensorMap values = make_values(graph, std::nullopt);
    values.at("ids").set(1 * 7 + 4, bad);  // ids[1, 4]
    const auto t0 = std::chrono::steady_clock::now();
    try {
        run_host(s, values, {2, 5.0});
        FAIL("a run with an id outside the table completed");
    } catch (const UserError& e) {
        const std::string msg = e.what();
        INFO(msg);
        // The place of the ids operand of node 'tok' in the file, as the reference reports it.
        CHECK(msg.find("embed_mlp_bf16.yaml:25:") != std::string::npos);
        CHECK(msg.find("node 'tok': embedding id " + std::to_string(bad) +
                       " at position [1, 4] of ids 'ids' is outside [0, 50): table 'table' has 50 rows") !=
              std::string::npos);
        CHECK(msg.find("found by task ") != std::string::npos);
    }
    // Stopped, not timed out: the other blocks see the status word.
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 4.0);

    // The same values with the id fixed run, and the outputs agree with the reference.
    values.at("ids").set(1 * 7 + 4, 49);
    const TensorMap out = run_host(s, values, {2, 5.0});
    for (const OutputCheck& c : check_outputs(graph, out, reference_execute(graph, values))) {
        CAPTURE(c.name);
        CHECK(c.ok());
    }
}

TEST_CASE("the spatial kinds compile with NVRTC for sm_90 in every dtype", "[compile][spatial]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        const Graph g = with_dtype("cnn_mixed_f16.yaml", t);
        // per_op: one kernel per rOp, so each kernel's registers are its kind's.
        const Schedule s = plan(g, "per_op", default_gpu());
        const CubinResult r = compile_nvrtc(emit_source(s), "sm_90");
        REQUIRE(r.kernels.size() == distinct_kernels(s));
        for (const KernelResources& k : r.kernels) {
            const ROp* found = nullptr;  // the launch's one rOp
            for (const Launch& l : s.launches)
                if (l.name == k.name) found = &s.tiles.rops[s.tasks[l.queues.front().front()].rop];
            REQUIRE(found != nullptr);
            const ROp& op = *found;
            CAPTURE(dtype_name(t), op.name);
            CHECK(k.registers > 0);
            CHECK(k.registers <= 255);
            CHECK(k.spill_stores <= 64);  // a few bytes of the persistent loop's frame at most
            std::printf("[compile] %-5s %-8s %-12s %3d registers, %5d B smem, %4d B stack, spills %d/%d B%s\n",
                        dtype_name(t), op.name.c_str(), task_kind_name(op.kind), k.registers, k.smem_bytes,
                        k.stack_bytes, k.spill_stores, k.spill_loads, r.cached ? " (cached)" : "");
        }
    }
    const Graph e = load_graph(model_path("tests/models", "embed_mlp_bf16.yaml"));
    const CubinResult r = compile_nvrtc(emit_source(plan(e, "topo", default_gpu())), "sm_90");
    REQUIRE(r.kernels.size() == 1);
    std::printf("[compile] embed_mlp_bf16 topo: %d registers, spills %d/%d B\n", r.kernels[0].registers,
                r.kernels[0].spill_stores, r.kernels[0].spill_loads);
}

TEST_CASE("the spatial kinds compile with nvcc -c", "[compile][spatial]") {
    const std::string nvcc = fs::exists("/usr/local/cuda/bin/nvcc") ? "/usr/local/cuda/bin/nvcc" : "nvcc";
    if (std::system(("command -v " + nvcc + " > /dev/null 2>&1").c_str()) != 0) {
        WARN("nvcc is not installed: skipping the standalone nvcc -c check");
        return;
    }
    const auto dir = fs::temp_directory_path() / ("anvil-nvcc-spatial-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    int n = 0;
    for (const char* model : {"cnn_mixed_f16.yaml", "embed_mlp_bf16.yaml"}) {
        CAPTURE(model);
        const auto cu = dir / ("m" + std::to_string(n++) + ".cu");
        std::ofstream(cu) << emit_source(plan(load_graph(model_path("tests/models", model)), "topo", default_gpu()));
        const std::string cmd = nvcc + " -arch=sm_90 -std=c++17 -c " + cu.string() + " -o " + (dir / "m.o").string() +
                                " > " + (dir / "log").string() + " 2>&1";
        const int rc = std::system(cmd.c_str());
        std::ifstream log(dir / "log");
        INFO(cmd << "\n" << std::string((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>()));
        CHECK(rc == 0);
    }
    fs::remove_all(dir);
}

TEST_CASE("a launch dispatches on variants: its switch does not grow with the rOps", "[schedule][spatial]") {
    const Schedule s = plan(load_graph(model_path("models", "lstm_tc_small.yaml")), "topo", default_gpu());
    const std::string src = emit_source(s);
    const size_t begin = src.find("ANVIL_DEVICE void run_task_0(");
    REQUIRE(begin != std::string::npos);
    const size_t end = src.find("\n}\n", begin);
    int cases = 0;
    for (size_t at = src.find("case ", begin); at < end; at = src.find("case ", at + 1)) ++cases;
    std::set<std::string> variants;
    for (size_t at = src.find("//   ", src.find("// variants:")); at < begin && src.compare(at, 5, "//   ") == 0;
         at = src.find('\n', at) + 1)
        variants.insert(src.substr(at, src.find('\n', at) - at));
    INFO(s.tiles.rops.size() << " rOps, " << variants.size() << " variants");
    CHECK(cases == static_cast<int>(variants.size()));
    CHECK(cases <= 16);
    CHECK(s.tiles.rops.size() > 100);
}

TEST_CASE("a conv tile waits only for the producer tiles under its halo", "[schedule][spatial]") {
    const Schedule s = plan(load_graph(model_path("tests/models", "cnn_mixed_f16.yaml")), "topo", default_gpu());
    int narrower = 0, spatial = 0;
    const SyncCounters sync = sync_counters(s);
    for (size_t i = 0; i < s.tasks.size(); ++i) {
        const Task& t = s.tasks[i];
        const ROp& op = s.tiles.rops[t.rop];
        if (op.kind != TaskKind::conv2d && op.kind != TaskKind::window) continue;
        ++spatial;
        const std::vector<int> waited = waited_tasks(s, sync, static_cast<int>(i));  // through its counters
        int producer_tiles = 0;  // tiles of the rOps it waits for
        std::set<int> producers;
        for (int d : waited) producers.insert(s.tasks[d].rop);
        for (int p : producers) producer_tiles += s.tiles.rops[p].tiles;
        narrower += static_cast<int>(waited.size()) < producer_tiles;
    }
    CHECK(spatial > 0);
    CHECK(narrower > 0);
}
