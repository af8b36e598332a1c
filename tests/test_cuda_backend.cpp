// The cuda backend on a real device: zoo and test models against the
// float64 reference under several policies, a dependency that can never be
// satisfied (a deadlock report, not a hang), an embedding id outside its
// table, and a launch whose waiting blocks cannot all be resident. Every
// [gpu] test starts by asking for a device and, without one, says it was
// skipped (WARN) so that CI shows it. The no-device path is tested always.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>

#include "runtime/cuda_backend.h"
#include "anvil/error.h"
#include "anvil/pipeline.h"
#include "run_checks.h"
#include "runtime/cuda_driver.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {

std::string source_path(const std::string& rel) { return (fs::path(ANVIL_SOURCE_DIR) / rel).string(); }

// Models small enough for CI (a full-size X has an X_small sibling), and the test models.
std::vector<std::string> small_models() {
    std::vector<std::string> files;
    for (const char* dir : {"models", "tests/models"})
        for (const auto& e : fs::directory_iterator(source_path(dir))) {
            const fs::path& p = e.path();
            if (p.extension() == ".yaml" && !fs::exists(p.parent_path() / (p.stem().string() + "_small.yaml")))
                files.push_back(p.string());
        }
    std::sort(files.begin(), files.end());
    return files;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("without a device, run_cuda and cuda_unavailable_reason say why", "[backend]") {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) {
        CHECK_THAT(why, Catch::Contains("CUDA"));
        const Graph graph = load_graph(source_path("models/mlp_f32.yaml"));
        const Schedule s = plan(graph, "topo", default_gpu());
        CHECK_THROWS_WITH(run_cuda(s, make_values(graph, std::nullopt)), Catch::Contains(why));
    } else {
        WARN("a CUDA device is present: the no-device path is not exercised here");
    }
}

TEST_CASE("cuda backend: zoo and test models match the reference", "[gpu]") {
    REQUIRE_DEVICE();
    const auto file = GENERATE(from_range(small_models()));
    // The two extremes (one persistent launch with fusion; a launch per
    // rOp): every policy takes 7+ minutes of NVRTC and reference on an H100 host.
    const auto policy = GENERATE(as<std::string>{}, "anvil", "per_op");
    DYNAMIC_SECTION(fs::path(file).filename().string() << " under " << policy) {
        const Graph graph = load_graph(file);
        const TensorMap values = make_values(graph, std::nullopt);
        const Schedule s = plan(graph, policy, default_gpu());
        const auto checks = check_outputs(graph, run_cuda(s, values), reference_execute(graph, values));
        REQUIRE(!checks.empty());
        for (const OutputCheck& c : checks) {
            INFO(c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
            CHECK(c.ok());
        }
    }
}

TEST_CASE("cuda backend: a dependency that is never published is a deadlock, not a hang", "[gpu]") {
    REQUIRE_DEVICE();
    const Graph graph = load_graph(source_path("models/mlp_f32.yaml"));
    const TensorMap values = make_values(graph, std::nullopt);
    Schedule s = plan(graph, "topo", default_gpu());
    REQUIRE(!s.tasks.empty());
    s.tasks[0].deps = {0};  // task 0 waits for itself
    CudaRunOptions opt;
    opt.spin_timeout_s = 0.5;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        run_cuda(s, values, opt);
        FAIL("a task waiting for itself ran to completion");
    } catch (const UserError& e) {
        const std::string msg = e.what();
        INFO(msg);
        // Task 0's block is stuck, so whichever waiter times out first
        // (task 0 or a reader of a later task of that block) claims the status.
        CHECK(msg.find("model 'mlp_f32', launch '" + s.launches[0].name + "': task ") != std::string::npos);
        // Every wait is on an arrival counter (Schedule::groups), named with its rOp and tiles.
        CHECK(msg.find(" waited more than 0.5 s for counter ") != std::string::npos);
        CHECK(msg.find(": deadlock") != std::string::npos);
    }
    CHECK(seconds_since(t0) < 10.0);  // compile (cached after the first run) + the spin bound

    // The device is still usable afterwards.
    s.tasks[0].deps.clear();
    for (const OutputCheck& c : check_outputs(graph, run_cuda(s, values), reference_execute(graph, values)))
        CHECK(c.ok());
}

TEST_CASE("cuda backend: an embedding id outside the table stops the run with an error naming it", "[gpu]") {
    REQUIRE_DEVICE();
    const Graph graph = load_graph(source_path("tests/models/embed_mlp_bf16.yaml"));
    const std::string policy = GENERATE(as<std::string>{}, "topo", "per_op");
    CAPTURE(policy);
    const Schedule s = plan(graph, policy, default_gpu());
    TensorMap values = make_values(graph, std::nullopt);
    values.at("ids").set(1 * 7 + 4, 50);  // ids[1, 4]
    CudaRunOptions opt;
    opt.spin_timeout_s = 5.0;
    const auto t0 = std::chrono::steady_clock::now();
    try {
        run_cuda(s, values, opt);
        FAIL("a run with an id outside the table completed");
    } catch (const UserError& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("embed_mlp_bf16.yaml:25:") != std::string::npos);
        CHECK(msg.find("node 'tok': embedding id 50 at position [1, 4] of ids 'ids' is outside [0, 50)") !=
              std::string::npos);
        CHECK(msg.find("found by task ") != std::string::npos);
    }
    CHECK(seconds_since(t0) < 4.5);  // stopped by the status word, not by the spin bound
}

TEST_CASE("cuda backend: a launch whose waiting blocks cannot all be resident is refused", "[gpu]") {
    REQUIRE_DEVICE();
    const Graph graph = load_graph(source_path("models/mlp_f32.yaml"));
    Schedule s = plan(graph, "topo", default_gpu());
    bool waits = false;
    for (const Task& t : s.tasks) waits = waits || !t.deps.empty() || !t.waits.empty();
    REQUIRE(waits);
    // More blocks than any SM count x 32 resident blocks: the extra ones are empty.
    s.launches[0].queues.resize(200 * 33);
    CHECK_THROWS_WITH(run_cuda(s, make_values(graph, std::nullopt)),
                      Catch::Contains("launch '" + s.launches[0].name + "'") &&
                          Catch::Contains("blocks wait on one another") && Catch::Contains("blocks per SM"));

    // The same width without waits (per_op's shape) is fine: blocks run in turn.
    Schedule per_op = plan(graph, "per_op", default_gpu());
    per_op.launches[0].queues.resize(200 * 33);
    const TensorMap values = make_values(graph, std::nullopt);
    for (const OutputCheck& c : check_outputs(graph, run_cuda(per_op, values), reference_execute(graph, values)))
        CHECK(c.ok());
}

TEST_CASE("cuda backend: a missing or mistyped input is a UserError", "[gpu]") {
    REQUIRE_DEVICE();
    const Graph graph = load_graph(source_path("models/mlp_f32.yaml"));
    const Schedule s = plan(graph, "topo", default_gpu());
    TensorMap values = make_values(graph, std::nullopt);
    const std::string name = s.tiles.inputs.at(0);
    values.erase(name);
    CHECK_THROWS_WITH(run_cuda(s, values), Catch::Contains("no value was given for tensor '" + name + "'"));
}

TEST_CASE("cuda backend: a program runs many times, one epoch per run", "[gpu]") {
    REQUIRE_DEVICE();
    const Graph graph = load_graph(source_path("models/transformer_encoder_f16.yaml"));
    const TensorMap values = make_values(graph, std::nullopt);
    const Schedule s = plan(graph, "anvil", default_gpu());
    CudaProgram program = cuda_program(s);
    program.upload(values);
    for (int i = 0; i < 5; ++i) CHECK(program.run() > 0);
    for (const OutputCheck& c : check_outputs(graph, program.outputs(), reference_execute(graph, values)))
        CHECK(c.ok());
    CHECK(program.arch().rfind("sm_", 0) == 0);
    CHECK(program.sm_count() > 0);
}
