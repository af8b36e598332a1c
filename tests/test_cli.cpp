// The anvil command as a user runs it: exit statuses, messages, and that a
// refused model never leaves anything at an output path.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>

#include "frontend/npy.h"
#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "temp_dir.h"
#include "runtime/cuda_driver.h"

using namespace anvil;
namespace fs = std::filesystem;
using anvil::test::TempDir;

namespace {

using Result = test::CmdResult;
Result anvil_cmd(const std::string& args) { return test::run_anvil(args); }

const char* kBadMatmul = R"(anvil: 1
name: bad
inputs:
  - {name: x, shape: [128, 768]}
params:
  - {name: w, shape: [512, 768]}
nodes:
  - {name: attn_out, op: matmul, inputs: [x, w]}
outputs: [attn_out]
)";

}  // namespace

TEST_CASE("anvil --help lists the subcommands", "[cli]") {
    Result r = anvil_cmd("--help");
    CHECK(r.status == 0);
    for (const char* sub : {"check", "schedule", "run"}) CHECK_THAT(r.output, Catch::Contains(sub));
}

TEST_CASE("anvil check summarises a model", "[cli]") {
    Result r = anvil_cmd("check models/transformer_encoder_f16.yaml");
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Catch::Contains("FLOPs") && Catch::Contains("matmul x8") && Catch::Contains("softmax x1"));
}

TEST_CASE("a refused model exits 2 with its place and writes nothing", "[cli]") {
    TempDir s;
    std::string model = s.write("bad.yaml", kBadMatmul);
    fs::path io = s.path / "io", cu = s.path / "out.cu";
    for (std::string args : {"check " + model, "schedule " + model + " --emit " + cu.string(),
                             "run " + model + " --backend host --save-io " + io.string()}) {
        Result r = anvil_cmd(args);
        INFO(args << "\n" << r.output);
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("bad.yaml:8:") && Catch::Contains("node 'attn_out'") &&
                                 Catch::Contains("transpose_b"));
    }
    CHECK(!fs::exists(io));
    CHECK(!fs::exists(cu));
}

TEST_CASE("usage errors exit 2", "[cli]") {
    CHECK(anvil_cmd("run models/mlp_f32.yaml --policy fastest").status == 2);
    CHECK(anvil_cmd("run models/mlp_f32.yaml --backend tpu").status == 2);
    CHECK(anvil_cmd("check models/no_such_model.yaml").status == 2);
    CHECK(anvil_cmd("frobnicate").status == 2);
    CHECK(anvil_cmd("").status == 2);
}

TEST_CASE("the cuda backend says plainly when there is no device", "[cli]") {
    std::string why = cuda_unavailable_reason();
    if (!why.empty()) {
        Result r = anvil_cmd("run models/mlp_f32.yaml --backend cuda");
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("CUDA"));
        Result a = anvil_cmd("run models/mlp_f32.yaml --backend auto");
        CHECK(a.status == 0);
        CHECK_THAT(a.output, Catch::Contains("using the host backend"));
    } else {
        WARN("a CUDA device is present: the no-device path is not exercised here");
    }
}

TEST_CASE("schedule --emit writes a self-contained megakernel", "[cli]") {
    TempDir s;
    fs::path cu = s.path / "mlp.cu";
    Result r = anvil_cmd("schedule models/mlp_f32.yaml --emit " + cu.string());
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::ifstream in(cu);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_THAT(text, Catch::Contains("__global__"));
    CHECK_THAT(text, !Catch::Contains("#include \""));  // nothing of ours to find at compile time
}

TEST_CASE("run --save-io writes the spec's layout, and --inputs reads it back", "[cli]") {
    TempDir s;
    fs::path io = s.path / "io";
    Result r = anvil_cmd("run models/llama_mlp_bf16.yaml --backend host --save-io " + io.string());
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.output, Catch::Contains("relative L2 error") && Catch::Contains("ok"));
    for (const char* f : {"inputs/x.npy", "params/norm_g.npy", "params/w_gate.npy", "params/w_up.npy",
                          "params/w_down.npy", "outputs/y.npy"})
        CHECK(fs::exists(io / f));
    HostTensor y = read_npy((io / "outputs/y.npy").string(), DType::bf16);
    CHECK(y.shape == Shape{8, 512});

    // Same inputs in, same outputs out.
    fs::path io2 = s.path / "io2";
    Result again = anvil_cmd("run models/llama_mlp_bf16.yaml --backend host --inputs " + (io / "inputs").string() +
                             " --save-io " + io2.string());
    REQUIRE(again.status == 0);
    HostTensor y2 = read_npy((io2 / "outputs/y.npy").string(), DType::bf16);
    CHECK(y2.bytes == y.bytes);
}

TEST_CASE("schedule --report, --json, --trace and --dot show the schedule and its prediction", "[cli][policy]") {
    TempDir s;
    const fs::path trace = s.path / "t.json", dot = s.path / "g.dot";
    Result table = anvil_cmd("schedule models/transformer_encoder_f32.yaml --policy rammer --report");
    INFO(table.output);
    REQUIRE(table.status == 0);
    for (const char* row : {"tasks", "groups (rOps)", "kernel launches", "smem per task", "blocks per SM",
                            "predicted time", "predicted DRAM bytes", "SM idle share"})
        CHECK_THAT(table.output, Catch::Contains(row));

    Result json = anvil_cmd("schedule models/transformer_encoder_f32.yaml --policy per_op --json --trace " +
                            trace.string() + " --dot " + dot.string());
    INFO(json.output);
    REQUIRE(json.status == 0);
    const nlohmann::json j = nlohmann::json::parse(json.output);  // nothing but the object
    CHECK(j["policy"] == "per_op");
    CHECK(j["kernels"].get<int>() == j["groups"].get<int>());
    CHECK(j["tasks"].get<int>() > j["kernels"].get<int>());
    CHECK(j["predicted_us"].get<double>() > 0);
    CHECK(j["dram_bytes"].get<double>() > 0);
    CHECK(j["group_list"].size() == j["groups"].get<size_t>());

    std::ifstream tin(trace);
    const nlohmann::json t = nlohmann::json::parse(tin);
    size_t slices = 0;
    for (const auto& e : t["traceEvents"])
        if (e["ph"] == "X" && e["pid"] == 0) {
            ++slices;
            CHECK(e["dur"].get<double>() > 0);
            CHECK(e["tid"].get<int>() < 132);
        }
    CHECK(slices == j["tasks"].get<size_t>());

    std::ifstream din(dot);
    const std::string text((std::istreambuf_iterator<char>(din)), std::istreambuf_iterator<char>());
    CHECK_THAT(text, Catch::StartsWith("digraph"));
    size_t clusters = 0;
    for (size_t at = text.find("subgraph cluster_"); at != std::string::npos; at = text.find("subgraph cluster_", at + 1))
        ++clusters;
    CHECK(clusters == j["groups"].get<size_t>());
}

TEST_CASE("schedule and run take a GPU from kernels_db", "[cli][policy]") {
    Result a100 = anvil_cmd("schedule models/mlp_f32.yaml --gpu a100_sxm --json");
    REQUIRE(a100.status == 0);
    CHECK(nlohmann::json::parse(a100.output)["gpu"] == "a100_sxm");
    Result unknown = anvil_cmd("schedule models/mlp_f32.yaml --gpu v100");
    CHECK(unknown.status == 2);
    CHECK_THAT(unknown.output, Catch::Contains("unknown GPU 'v100'") && Catch::Contains("h100_sxm"));

    TempDir s;
    fs::create_directories(s.path / "gpus");
    s.write("gpus/broken.yaml", "name: broken\narch: sm_90\n");
    Result broken = anvil_cmd("run models/mlp_f32.yaml --backend host --kernels-db " + s.path.string() + " --gpu broken");
    CHECK(broken.status == 2);
    CHECK_THAT(broken.output, Catch::Contains("broken.yaml:1:1") && Catch::Contains("missing key"));
}

TEST_CASE("tensor-core tiles are on by default, --no-tensor-cores turns them off", "[cli][tensor]") {
    // Groups on tensor cores: their cost keys say "tc".
    auto tensor_groups = [](const std::string& flags) {
        Result r = anvil_cmd("schedule models/transformer_encoder_f16.yaml --policy rammer --json" + flags);
        REQUIRE(r.status == 0);
        const nlohmann::json j = nlohmann::json::parse(r.output);
        int n = 0;
        for (const auto& g : j["group_list"])
            n += g["cost_key"].get<std::string>().find(" tc ") != std::string::npos;
        return n;
    };
    CHECK(tensor_groups("") > 0);
    CHECK(tensor_groups(" --tensor-cores") == tensor_groups(""));
    CHECK(tensor_groups(" --no-tensor-cores") == 0);
}

TEST_CASE("anvil profile needs a device and says so, or measures both schedules", "[cli]") {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) {
        Result r = anvil_cmd("profile models/mlp_f32.yaml");
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("no CUDA device"));
        CHECK(anvil_cmd("profile models/mlp_f32.yaml --json").status == 2);
        // It takes schedule's and run's specialisations: parsed, then refused for want of a device only.
        Result spec = anvil_cmd("profile models/mlp_f32.yaml --no-fold --no-concat --reload-params "
                                "--poll-backoff-ns 256 --interpret-epilogues");
        CHECK(spec.status == 2);
        CHECK_THAT(spec.output, Catch::Contains("no CUDA device"));
        Result bad = anvil_cmd("profile models/mlp_f32.yaml --poll-backoff-ns -5");
        CHECK(bad.status == 2);
        CHECK_THAT(bad.output, Catch::Contains("--poll-backoff-ns"));
        // A bad model or policy is still named first.
        CHECK(anvil_cmd("profile models/no_such_model.yaml").status == 2);
        CHECK(anvil_cmd("profile models/mlp_f32.yaml --policy fastest").status == 2);
        TempDir d;
        CHECK(anvil_cmd("profile models/mlp_f32.yaml --trace " + d.file("t.json")).status == 2);
        CHECK_FALSE(fs::exists(d.file("t.json")));
        Result c = anvil_cmd("calibrate --out " + d.file("m.yaml"));
        CHECK(c.status == 2);
        CHECK_THAT(c.output, Catch::Contains("calibrate needs a CUDA device"));
        CHECK_FALSE(fs::exists(d.file("m.yaml")));
        Result t = anvil_cmd("tune models/mlp_f16.yaml --out " + d.file("m.yaml"));
        CHECK(t.status == 2);
        CHECK_THAT(t.output, Catch::Contains("anvil tune measures on a GPU"));
        CHECK_FALSE(fs::exists(d.file("m.yaml")));
        return;
    }
    TempDir d;
    Result r = anvil_cmd("profile models/mlp_f32.yaml --iters 5 --json --trace " + d.file("t.json"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    const nlohmann::json j = nlohmann::json::parse(r.output);
    CHECK(j["model"] == "mlp_f32");
    CHECK(j["policy"] == "anvil");
    for (const char* key : {"megakernel_us", "per_op_us", "per_op_graph_us", "predicted_us", "roofline_us"}) {
        INFO(key);
        CHECK(j[key].get<double>() > 0);
    }
    CHECK(j["outputs_ok"] == true);
    CHECK(j["launches"].get<int>() >= 1);
    CHECK(j["traced"]["median_us"].get<double>() > 0);
    const nlohmann::json trace = nlohmann::json::parse(std::ifstream(d.file("t.json")));
    CHECK(trace["otherData"]["measured"] == true);
    CHECK(trace["traceEvents"].size() > j["tasks"].get<size_t>());
    Result c = anvil_cmd("calibrate --out " + d.file("m.yaml"));
    INFO(c.output);
    CHECK(c.status == 0);
    std::ifstream in(d.file("m.yaml"));
    const std::string measured((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK_THAT(measured, Catch::Contains("ceilings:") && Catch::Contains("copy_bytes_per_s"));
    CHECK(!j["device"].get<std::string>().empty());
    Result text = anvil_cmd("profile models/mlp_f32.yaml --iters 3");
    INFO(text.output);
    CHECK(text.status == 0);
    CHECK_THAT(text.output, Catch::Contains("per_op") && Catch::Contains("predicted"));
}

TEST_CASE("run --backend cuda exits 2 without a device, and runs on one", "[cli]") {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) {
        Result r = anvil_cmd("run models/mlp_f32.yaml --backend cuda");
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("--backend cuda: ") && Catch::Contains(why));
        return;
    }
    for (const char* backend : {"cuda", "auto"}) {
        Result r = anvil_cmd(std::string("run models/mlp_f32.yaml --backend ") + backend);
        INFO(r.output);
        CHECK(r.status == 0);
        CHECK_THAT(r.output, Catch::Contains("backend cuda"));
    }
    // The run-time race check is the host's: auto falls back, cuda refuses.
    CHECK_THAT(anvil_cmd("run models/mlp_f32.yaml --check-races").output, Catch::Contains("using the host backend"));
    CHECK(anvil_cmd("run models/mlp_f32.yaml --backend cuda --check-races").status == 2);
}
