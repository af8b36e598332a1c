// --poll-backoff-ns: the pause of a waiting block between two polls of a
// counter, a knob for A/B runs on the device (the H200 traces of 2026-11-28
// leave open whether polling slows the busy blocks' loads). Checked without
// a GPU: the define reaches the emitted source and NVRTC's PTX, the default
// source carries none, a bad value is refused before anything is written,
// and the schedule still computes on the simt backend.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "anvil_cmd.h"
#include "runtime/compile_nvrtc.h"
#include "temp_dir.h"

using namespace anvil;
using namespace anvil::test;

namespace {

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("the poll pause (--poll-backoff-ns) reaches the source and the PTX", "[cli][compile]") {
    TempDir dir;
    const std::string slow = (dir.path / "slow.cu").string(), plain = (dir.path / "plain.cu").string();
    REQUIRE(run_anvil("schedule models/mlp_f32.yaml --poll-backoff-ns 1500 --emit " + slow).status == 0);
    REQUIRE(run_anvil("schedule models/mlp_f32.yaml --emit " + plain).status == 0);
    const std::string slow_src = read_text(slow), plain_src = read_text(plain);
    CHECK(slow_src.find("#define ANVIL_POLL_BACKOFF_NS 1500\n") != std::string::npos);
    CHECK(plain_src.find("#define ANVIL_POLL_BACKOFF_NS 1500") == std::string::npos);
    // The pause is an immediate of nanosleep: the default where none is asked.
    const std::string slow_ptx = compile_ptx(slow_src, "compute_90"), plain_ptx = compile_ptx(plain_src, "compute_90");
    CHECK(slow_ptx.find("nanosleep.u32 1500;") != std::string::npos);
    CHECK(slow_ptx.find("nanosleep.u32 64;") == std::string::npos);
    CHECK(plain_ptx.find("nanosleep.u32 64;") != std::string::npos);
}

TEST_CASE("a poll pause (--poll-backoff-ns) out of range is refused with nothing written", "[cli]") {
    TempDir dir;
    for (const std::string bad : {"-1", "1000001", "many"}) {
        const std::string cu = (dir.path / ("bad" + bad + ".cu")).string();
        const CmdResult r = run_anvil("schedule models/mlp_f32.yaml --poll-backoff-ns " + bad + " --emit " + cu);
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK(r.output.find("--poll-backoff-ns") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(cu));
    }
}

TEST_CASE("a schedule with a long poll pause still computes", "[cli][simt]") {
    const CmdResult r = run_anvil("run models/resnet18_small.yaml --backend simt --poll-backoff-ns 2000");
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find(") ok") != std::string::npos);
    CHECK(r.output.find("FAILED") == std::string::npos);
}
