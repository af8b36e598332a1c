// End to end on the model zoo: every model in models/ runs through the host
// backend under every policy and matches the float64 reference; its
// megakernel and its per-op source both compile with NVRTC for sm_90.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include "codegen/emit.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "runtime/compile_nvrtc.h"

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

// A model X is full-size when models/X_small.yaml exists: full-size models
// are for the GPU; CI runs their small variants and only compiles them.
bool is_full_size(const fs::path& file) {
    return fs::exists(file.parent_path() / (file.stem().string() + "_small.yaml"));
}

// Every model small enough for the host backend in CI.
std::vector<std::string> zoo() {
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(fs::path(ANVIL_SOURCE_DIR) / "models"))
        if (e.path().extension() == ".yaml" && !is_full_size(e.path())) files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

}  // namespace

TEST_CASE("the zoo has the models the spine promises", "[models]") {
    std::vector<std::string> names;
    for (const std::string& f : zoo()) names.push_back(fs::path(f).stem().string());
    for (const char* base : {"mlp", "transformer_encoder", "llama_mlp"})
        for (const char* t : {"f32", "f16", "bf16"})
            CHECK(std::count(names.begin(), names.end(), std::string(base) + "_" + t) == 1);
}

TEST_CASE("zoo models match the reference on the host backend", "[models][host]") {
    auto file = GENERATE(from_range(zoo()));
    auto policy = GENERATE(as<std::string>{}, "topo", "per_op");
    DYNAMIC_SECTION(fs::path(file).filename().string() << " under " << policy) {
        Graph graph = load_graph(file);
        TensorMap values = make_values(graph, std::nullopt);
        Schedule s = plan(graph, policy, default_gpu());
        auto checks = check_outputs(graph, run_host(s, values), reference_execute(graph, values));
        REQUIRE(!checks.empty());
        for (const OutputCheck& c : checks) {
            INFO(c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
            CHECK(c.ok());
        }
    }
}

TEST_CASE("zoo sources compile with NVRTC for sm_90", "[models][compile]") {
    auto file = GENERATE(from_range(zoo()));
    auto policy = GENERATE(as<std::string>{}, "anvil", "per_op");
    if (policy == "per_op" && file.find("_f16") == std::string::npos) return;  // one dtype suffices for per_op
    DYNAMIC_SECTION(fs::path(file).filename().string() << " under " << policy) {
        Schedule s = plan(load_graph(file), policy, default_gpu());
        CubinResult r = compile_nvrtc(emit_source(s), "sm_90");
        CHECK(!r.cubin.empty());
        CHECK(r.kernels.size() == distinct_kernels(s));
        for (const KernelResources& k : r.kernels) {
            INFO(k.name);
            CHECK(k.registers > 0);
            CHECK(k.registers <= 255);
        }
    }
}

TEST_CASE("emitted sources compile on their own with nvcc", "[models][compile][nvcc]") {
    const fs::path nvcc = "/usr/local/cuda/bin/nvcc";
    if (!fs::exists(nvcc)) {
        WARN("nvcc not found at " << nvcc << ": standalone compilation not checked");
        return;
    }
    auto file = GENERATE(from_range(zoo()));
    auto policy = GENERATE(as<std::string>{}, "topo", "per_op");
    if (policy == "per_op" && file.find("_f16") == std::string::npos) return;  // one dtype suffices for per_op
    DYNAMIC_SECTION(fs::path(file).filename().string() << " under " << policy) {
        Schedule s = plan(load_graph(file), policy, default_gpu());
        fs::path dir = fs::temp_directory_path() / ("anvil_nvcc_" + std::to_string(getpid()));
        fs::create_directories(dir);
        fs::path cu = dir / (fs::path(file).stem().string() + "_" + policy + ".cu");
        std::ofstream(cu) << emit_source(s);
        std::string cmd = nvcc.string() + " -arch=sm_90 -c " + cu.string() + " -o " + cu.string() + ".o 2>&1";
        int rc = std::system(cmd.c_str());
        CHECK(rc == 0);
        CHECK(fs::exists(cu.string() + ".o"));
        fs::remove_all(dir);
    }
}

TEST_CASE("every full-size zoo model loads, schedules, emits and compiles with NVRTC", "[models][compile][fullsize]") {
    std::vector<std::string> full;
    for (const auto& e : fs::directory_iterator(fs::path(ANVIL_SOURCE_DIR) / "models"))
        if (e.path().extension() == ".yaml" && is_full_size(e.path())) full.push_back(e.path().string());
    std::sort(full.begin(), full.end());
    REQUIRE(full.size() >= 8);
    for (const std::string& file : full) {
        auto start = std::chrono::steady_clock::now();
        Schedule s = plan(load_graph(file), "topo", default_gpu());
        std::string source = emit_source(s);
        double emit_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        CubinResult r = compile_nvrtc(source, "sm_90");
        INFO(file);
        CHECK(!r.cubin.empty());
        CHECK(r.kernels.size() == 1);
        std::cout << fs::path(file).stem().string() << ": " << s.tasks.size() << " tasks, load-to-emit " << emit_s
                  << " s, NVRTC " << r.seconds << " s" << (r.cached ? " (cached)" : "") << ", "
                  << (r.kernels.empty() ? 0 : r.kernels[0].registers) << " registers\n";
    }
}
