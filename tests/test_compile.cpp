// The emitted source compiles everywhere it must: NVRTC for sm_90 (with
// the ptxas resource report), nvcc -c when it is installed, and the host
// C++ compiler; failures carry the compiler's log and a dump path; the disk
// cache answers the second time.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include "codegen/emit.h"
#include "anvil/error.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/compile_host.h"
#include "runtime/disk_cache.h"

namespace anvil_test {
// Defined in test_backend.cpp: the hand-built schedules the backend tests run.
std::vector<std::pair<std::string, anvil::Schedule>> backend_schedules();
}

using namespace anvil;

namespace {
// Launches that dispatch the same variants share a kernel (launch_kernels).
size_t distinct_kernels(const Schedule& s) {
    const std::vector<std::string> k = launch_kernels(s);
    return std::set<std::string>(k.begin(), k.end()).size();
}
}  // namespace


namespace {

// A source nobody compiled before, so that the first compile is not a cache hit.
std::string fresh(const std::string& source) {
    const auto now = std::chrono::high_resolution_clock::now().time_since_epoch().count();
    return source + "\n// fresh " + std::to_string(now) + " " + std::to_string(std::rand()) + "\n";
}

std::string nvcc_path() {
    for (const char* p : {"/usr/local/cuda/bin/nvcc"})
        if (std::filesystem::exists(p)) return p;
    return std::system("command -v nvcc > /dev/null 2>&1") == 0 ? "nvcc" : "";
}

}  // namespace

TEST_CASE("content_hash is 64-bit FNV-1a", "[compile]") {
    CHECK(content_hash("") == "cbf29ce484222325");
    CHECK(content_hash("a") == "af63dc4c8601ec8c");
    CHECK(content_hash("abc") != content_hash("abd"));
}

TEST_CASE("the emitted source is self-contained", "[compile]") {
    const auto all = anvil_test::backend_schedules();
    const std::string src = emit_source(all.front().second);
    CHECK(src.find("#include \"") == std::string::npos);
    // The only includes are the CPU's headers: simt.cuh's (compiled only
    // with ANVIL_SIMT) and platform.cuh's CPU branch.
    const size_t simt_begin = src.find("// ---- rtasks/simt.cuh"), simt_end = src.find("// ---- rtasks/platform.cuh");
    const size_t cpu_branch = src.find("#else  // the CPU");
    REQUIRE((simt_begin != std::string::npos && simt_end != std::string::npos && cpu_branch != std::string::npos));
    for (size_t at = src.find("#include"); at != std::string::npos; at = src.find("#include", at + 1))
        CHECK(((at > simt_begin && at < simt_end) || at > cpu_branch));
    CHECK(src.find("extern \"C\" __global__ void __launch_bounds__(256, ANVIL_MIN_BLOCKS_PER_SM) anvil_megakernel(") !=
          std::string::npos);
    CHECK(src.find("extern \"C\" void anvil_host_worker(") != std::string::npos);
    CHECK(src.find("model 'ew_f32', policy 'round robin (by hand)'") != std::string::npos);
}

TEST_CASE("every test schedule compiles with NVRTC for sm_90", "[compile]") {
    for (const auto& [name, schedule] : anvil_test::backend_schedules()) {
        CAPTURE(name);
        const CubinResult r = compile_nvrtc(emit_source(schedule), "sm_90");
        CHECK(!r.cubin.empty());
        REQUIRE(r.kernels.size() == distinct_kernels(schedule));
        for (const KernelResources& k : r.kernels) {
            CHECK(k.registers > 0);
            CHECK(k.registers <= 255);
            std::printf("[compile] %-20s %-16s %3d registers, %5d B smem, %4d B stack, spills %d/%d B%s\n",
                        name.c_str(), k.name.c_str(), k.registers, k.smem_bytes, k.stack_bytes, k.spill_stores,
                        k.spill_loads, r.cached ? " (cached)" : "");
            if (schedule.launches.size() > 3) break;  // the per-op schedule: one line is enough
        }
    }
}

TEST_CASE("the emitted source compiles with nvcc -c", "[compile]") {
    const std::string nvcc = nvcc_path();
    if (nvcc.empty()) {
        WARN("nvcc is not installed: skipping the standalone nvcc -c check");
        return;
    }
    // One source holding every kind, in every dtype, is enough: the others are NVRTC-checked.
    for (const auto& [name, schedule] : anvil_test::backend_schedules()) {
        if (name != "matmul bf16" && name != "conversions" && name != "rowwise f16") continue;
        CAPTURE(name);
        const auto dir = std::filesystem::temp_directory_path() / ("anvil-nvcc-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        const auto cu = dir / "megakernel.cu";
        std::ofstream(cu) << emit_source(schedule);
        const std::string cmd = nvcc + " -arch=sm_90 -std=c++17 -c " + cu.string() + " -o " + (dir / "m.o").string() +
                                " > " + (dir / "log").string() + " 2>&1";
        const int rc = std::system(cmd.c_str());
        std::ifstream log(dir / "log");
        const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
        INFO(cmd << "\n" << text);
        CHECK(rc == 0);
        std::filesystem::remove_all(dir);
    }
}

TEST_CASE("an NVRTC error carries the log and the dumped source", "[compile]") {
    const std::string src = fresh(emit_source(anvil_test::backend_schedules().back().second)) +
                            "__device__ int broken( { return 0 }\n";
    try {
        compile_nvrtc(src, "sm_90");
        FAIL("a syntax error compiled");
    } catch (const UserError& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("error") != std::string::npos);
        CHECK(msg.find("broken") != std::string::npos);  // NVRTC's log names the bad line
        const size_t at = msg.find("the source is in ");
        REQUIRE(at != std::string::npos);
        const std::string path = msg.substr(at + 17, msg.find('\n', at) - at - 17);
        CHECK(std::filesystem::exists(path));
    }
    CHECK_THROWS_WITH(compile_nvrtc("", "compute_90"), Catch::Contains("sm_90"));
}

TEST_CASE("compiled code is cached on disk", "[compile]") {
    const std::string src = fresh(emit_source(anvil_test::backend_schedules().back().second));
    const CubinResult first = compile_nvrtc(src, "sm_90");
    const CubinResult second = compile_nvrtc(src, "sm_90");
    CHECK_FALSE(first.cached);
    CHECK(second.cached);
    CHECK(second.cubin == first.cubin);
    CHECK(second.kernels.size() == first.kernels.size());
    CHECK(second.kernels.front().registers == first.kernels.front().registers);

    const HostLibrary h1 = compile_host(src);
    const HostLibrary h2 = compile_host(src);
    CHECK_FALSE(h1.cached);
    CHECK(h2.cached);
    CHECK(h1.path == h2.path);
    CHECK(std::filesystem::exists(h2.path));
}

TEST_CASE("a host compiler error carries its output and the dumped source", "[compile]") {
    const std::string src = fresh("int main() { return undeclared_name; }\n");
    try {
        compile_host(src);
        FAIL("a broken source compiled");
    } catch (const UserError& e) {
        const std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("undeclared_name") != std::string::npos);
        CHECK(msg.find(cache_dir()) != std::string::npos);
    }
}
