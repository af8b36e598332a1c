// The profiler's parts: launches sharing kernels, the ANVIL_TRACE
// instrumentation (checked on the host backend, which runs the same
// megakernel loop), the measured trace's format, the roofline, and the
// calibration kernels (compiled here; run under [gpu]). On a device: CUDA
// graph replay, plain and graph runs alternating, the device trace, and a
// whole profile.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "tools/calibrate.h"
#include "runtime/cuda_backend.h"
#include "codegen/emit.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "tools/profile.h"
#include "tools/report.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "tile/decompose.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {

Graph zoo(const std::string& name) { return load_graph((fs::path(ANVIL_SOURCE_DIR) / "models" / name).string()); }

// Every task traced once, its phases in order, each block's queue in
// order, and no task started before a producer it waits for had started.
void check_trace(const Schedule& s, const std::vector<AnvilTraceRecord>& trace) {
    REQUIRE(trace.size() == s.tasks.size());
    for (size_t t = 0; t < trace.size(); ++t) {
        INFO("task " << t);
        CHECK(trace[t].end_ns != 0);
        CHECK(trace[t].ready_ns <= trace[t].start_ns);
        CHECK(trace[t].start_ns <= trace[t].body_end_ns);
        CHECK(trace[t].body_end_ns <= trace[t].end_ns);
        for (int d : s.tasks[t].deps) CHECK(trace[d].start_ns <= trace[t].start_ns);
    }
    for (const Launch& l : s.launches)
        for (size_t b = 0; b < l.queues.size(); ++b)
            for (size_t i = 0; i < l.queues[b].size(); ++i) {
                CHECK(trace[l.queues[b][i]].block == b);
                if (i > 0) CHECK(trace[l.queues[b][i - 1]].end_ns <= trace[l.queues[b][i]].ready_ns);
            }
}

}  // namespace

TEST_CASE("launches that dispatch the same variants share one kernel", "[profile][emit]") {
    const Schedule s = plan(zoo("bert_base_small.yaml"), "per_op", default_gpu());
    const std::vector<std::string> kernels = launch_kernels(s);
    REQUIRE(kernels.size() == s.launches.size());
    const std::set<std::string> distinct(kernels.begin(), kernels.end());
    INFO(s.launches.size() << " launches, " << distinct.size() << " kernels");
    CHECK(distinct.size() * 4 < s.launches.size());
    const std::string src = emit_source(s);
    size_t globals = 0;
    for (size_t at = src.find("__global__"); at != std::string::npos; at = src.find("__global__", at + 1)) ++globals;
    CHECK(globals == distinct.size());
    for (const std::string& k : distinct) CHECK(src.find("__launch_bounds__(256, ANVIL_MIN_BLOCKS_PER_SM) " + k + "(") != std::string::npos);
    // One persistent launch keeps its name.
    CHECK(launch_kernels(plan(zoo("mlp_f32.yaml"), "anvil", default_gpu())) ==
          std::vector<std::string>{"anvil_megakernel"});
}

TEST_CASE("ANVIL_TRACE is compiled in only when asked for", "[profile][emit]") {
    const Schedule s = plan(zoo("mlp_f16.yaml"), "anvil", default_gpu());
    const std::string plain = emit_source(s);
    EmitOptions opt;
    opt.trace = true;
    const std::string traced = emit_source(s, opt);
    CHECK(plain.find("#define ANVIL_TRACE") == std::string::npos);
    CHECK(traced.find("#define ANVIL_TRACE 1") != std::string::npos);
    const CubinResult r = compile_nvrtc(traced, "sm_90");
    CHECK(!r.cubin.empty());
    for (const KernelResources& k : r.kernels) CHECK(k.spill_stores == 0);
}

TEST_CASE("a traced host run records every task's timeline, in dependency order", "[profile][host]") {
    const Graph g = zoo("transformer_encoder_f32.yaml");
    const TensorMap values = make_values(g, std::nullopt);
    const std::string policy = GENERATE(as<std::string>{}, "anvil", "per_op");
    CAPTURE(policy);
    const Schedule s = plan(g, policy, default_gpu());
    std::vector<AnvilTraceRecord> trace;
    HostRunOptions opt;
    opt.trace = &trace;
    anvil::test::expect_reference(g, values, run_host(s, values, opt));
    check_trace(s, trace);

    const nlohmann::json j = nlohmann::json::parse(measured_trace_json(s, trace));
    size_t bodies = 0;
    std::set<int> tasks;
    for (const auto& e : j["traceEvents"])
        if (e["ph"] == "X" && e["cat"] != "wait") {
            ++bodies;
            tasks.insert(e["args"]["task"].get<int>());
            CHECK(e["dur"].get<double>() >= 0);
            CHECK(e["ts"].get<double>() >= 0);
            // The arrivals' share of the body, which they end.
            CHECK(e["args"]["publish_us"].get<double>() >= 0);
            CHECK(e["args"]["publish_us"].get<double>() <= e["dur"].get<double>() + 1e-9);
        }
    CHECK(bodies == s.tasks.size());
    CHECK(tasks.size() == s.tasks.size());
    CHECK(j["otherData"]["span_us"].get<double>() > 0);
    const double busy = j["otherData"]["busy_share"].get<double>();
    CHECK(busy > 0);
    CHECK(busy <= 1.0);

    // A record that was never written, or whose body ends after its arrivals, is refused, not drawn.
    std::vector<AnvilTraceRecord> late = trace;
    late.front().body_end_ns = late.front().end_ns + 1;
    CHECK_THROWS_WITH(measured_trace_json(s, late), Catch::Contains("no consistent trace record"));
    trace.back().end_ns = 0;
    CHECK_THROWS_WITH(measured_trace_json(s, trace), Catch::Contains("no consistent trace record"));
}

TEST_CASE("the roofline: inputs, params and outputs once, FLOPs at their unit's peak", "[profile]") {
    const Graph g = zoo("llama_mlp_f16.yaml");
    const TileGraph tg = decompose(g);
    CHECK_THROWS_WITH(roofline(tg, Ceilings{}), Catch::Contains("anvil calibrate"));
    Ceilings c;
    c.copy_bytes_per_s = 2e12;
    c.fp32_flops_per_s = 5e13;
    c.tensor_f16_flops_per_s = 5e14;
    c.tensor_bf16_flops_per_s = 4e14;
    const Roofline r = roofline(tg, c);
    // Bytes from the graph, independently of the tile graph's buffers.
    double bytes = 0;
    for (Role role : {Role::input, Role::param})
        for (VertexId v : g.of_role(role)) bytes += numel(g.value(v).shape) * dtype_size(g.value(v).dtype);
    for (VertexId v : g.outputs) bytes += numel(g.value(v).shape) * dtype_size(g.value(v).dtype);
    CHECK(r.min_bytes == Approx(bytes));
    CHECK(r.memory_s == Approx(bytes / 2e12));
    double mm = 0, other = 0;
    for (const ROp& op : tg.rops) (op.kind == TaskKind::matmul ? mm : other) += static_cast<double>(op.flops);
    REQUIRE(mm > 0);
    CHECK(r.flops == Approx(mm + other));
    CHECK(r.compute_s == Approx(mm / 5e14 + other / 5e13));
    CHECK(r.bound_s() == Approx(std::max(r.memory_s, r.compute_s)));
    // f32 matmuls run on CUDA cores.
    const Roofline f32 = roofline(decompose(zoo("llama_mlp_f32.yaml")), c);
    CHECK(f32.compute_s == Approx(f32.flops / 5e13));
}

TEST_CASE("the calibration kernels compile for sm_90", "[profile]") {
    const CubinResult r = compile_nvrtc(calibration_source(), "sm_90");
    std::set<std::string> names;
    for (const KernelResources& k : r.kernels) names.insert(k.name);
    CHECK(names == std::set<std::string>{"anvil_copy", "anvil_fma", "anvil_mma_f16", "anvil_mma_bf16"});
}

TEST_CASE("calibrate measures plausible ceilings", "[gpu][profile]") {
    REQUIRE_DEVICE();
    const Ceilings c = calibrate();
    CHECK(c.measured());
    CHECK(!c.device.empty());
    // Within an order of magnitude of every datacenter GPU since the V100.
    CHECK(c.copy_bytes_per_s > 3e11);
    CHECK(c.copy_bytes_per_s < 2e13);
    CHECK(c.fp32_flops_per_s > 5e12);
    CHECK(c.tensor_f16_flops_per_s > c.fp32_flops_per_s);
    CHECK(c.tensor_bf16_flops_per_s > c.fp32_flops_per_s);
}

TEST_CASE("a CUDA graph replays the launches; plain and graph runs alternate", "[gpu][profile]") {
    REQUIRE_DEVICE();
    const Graph g = zoo("transformer_encoder_f16.yaml");
    const TensorMap values = make_values(g, std::nullopt);
    // per_op: many launches, no waits; anvil: one launch whose tasks wait.
    const std::string policy = GENERATE(as<std::string>{}, "per_op", "anvil");
    CAPTURE(policy);
    const Schedule s = plan(g, policy, default_gpu());
    CudaProgram p = cuda_program(s);
    p.upload(values);
    for (int i = 0; i < 3; ++i) {
        CHECK(p.run_graph() > 0);
        anvil::test::expect_reference(g, values, p.outputs());
        CHECK(p.run() > 0);
        anvil::test::expect_reference(g, values, p.outputs());
    }
}

TEST_CASE("the device trace records every task's timeline", "[gpu][profile]") {
    REQUIRE_DEVICE();
    const Graph g = zoo("transformer_encoder_f16.yaml");
    const TensorMap values = make_values(g, std::nullopt);
    const Schedule s = plan(g, "anvil", default_gpu());
    CudaRunOptions opt;
    opt.emit.trace = true;
    CudaProgram p = cuda_program(s, opt);
    p.upload(values);
    p.run();
    anvil::test::expect_reference(g, values, p.outputs());
    check_trace(s, p.trace());
    std::set<unsigned> sms;
    for (const AnvilTraceRecord& r : p.trace()) sms.insert(r.sm);
    CHECK(sms.size() > 1);
    CHECK(*sms.rbegin() < static_cast<unsigned>(p.sm_count()));
    // Without the option there is nothing to read.
    CudaProgram plain = cuda_program(s);
    CHECK_THROWS_WITH(plain.trace(), Catch::Contains("not built with"));
}

TEST_CASE("a whole profile: outputs checked, every time and bound filled in", "[gpu][profile]") {
    REQUIRE_DEVICE();
    ProfileOptions opt;
    opt.pipeline.policy = "anvil";
    opt.iters = 5;
    opt.trace = true;
    const ProfileResult r = profile(zoo("mlp_f16.yaml"), opt);
    CHECK(r.outputs_ok());
    for (const Timing* t : {&r.megakernel, &r.per_op, &r.per_op_graph, &r.traced}) {
        CHECK(t->min_s > 0);
        CHECK(t->min_s <= t->median_s);
        CHECK(t->median_s <= t->max_s);
    }
    CHECK(r.roofline.bound_s() > 0);
    CHECK(r.trace.size() == r.tasks);
    const nlohmann::json j = profile_json(r);
    CHECK(j["per_op_launches"].get<size_t>() > j["launches"].get<size_t>());
}
