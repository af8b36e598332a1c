#include "tools/profile.h"

#include <fmt/format.h>

#include <algorithm>

#include "tools/calibrate.h"
#include "schedule/cost_model.h"
#include "runtime/cuda_backend.h"
#include "anvil/error.h"
#include "tools/report.h"
#include "frontend/values.h"
#include "runtime/cuda_driver.h"

namespace anvil {

namespace {

Timing summarise(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    Timing t;
    t.median_s = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    t.min_s = v.front();
    t.max_s = v.back();
    return t;
}

// `warmup` untimed runs (module load, caches, clocks), then `iters` timed.
template <class Run>
Timing time_runs(int warmup, int iters, Run run) {
    for (int i = 0; i < warmup; ++i) run();
    std::vector<double> times;
    for (int i = 0; i < iters; ++i) times.push_back(run());
    return summarise(times);
}

nlohmann::json timing_json(const Timing& t) {
    return {{"median_us", t.median_s * 1e6}, {"min_us", t.min_s * 1e6}, {"max_us", t.max_s * 1e6}};
}

}  // namespace

bool ProfileResult::outputs_ok() const {
    return std::all_of(checks.begin(), checks.end(), [](const OutputCheck& c) { return c.ok(); });
}

ProfileResult profile(const Graph& graph, const ProfileOptions& opt) {
    if (opt.iters < 1) throw UserError("--iters must be at least 1, not " + std::to_string(opt.iters));
    if (const std::string why = cuda_unavailable_reason(); !why.empty())
        throw UserError("anvil profile measures on a GPU, and there is no CUDA device to use: " + why);
    ProfileResult r;
    r.model = graph.model_name;
    r.iters = opt.iters;
    r.warmup = std::max(2, opt.iters / 10);
    const TensorMap values = make_values(graph, std::nullopt);
    const Schedule s = plan(graph, opt.pipeline);
    r.policy = s.policy;
    r.target = s.gpu.name;
    r.tasks = s.tasks.size();
    r.launches = s.launches.size();
    r.predicted_s = predict(s).total_s;

    CudaRunOptions run_opt;
    run_opt.device = opt.device;
    run_opt.emit = opt.pipeline.emit;
    run_opt.emit.trace = false;  // the timed runs carry no instrumentation
    r.emit = run_opt.emit;
    {
        CudaProgram mk = cuda_program(s, run_opt);
        r.device = mk.device_name() + " (" + std::to_string(mk.sm_count()) + " SMs, " + mk.arch() + ")";
        mk.upload(values);
        r.megakernel = time_runs(r.warmup, r.iters, [&] { return mk.run(); });
        r.checks = check_outputs(graph, mk.outputs(), reference_execute(graph, values), nullptr, s.gpu.f32_precision);
    }
    {
        PipelineOptions per_op = opt.pipeline;
        per_op.policy = "per_op";
        const Schedule base = plan(graph, per_op);
        r.per_op_launches = base.launches.size();
        r.per_op_predicted_s = predict(base).total_s;
        CudaProgram po = cuda_program(base, run_opt);
        po.upload(values);
        r.per_op = time_runs(r.warmup, r.iters, [&] { return po.run(); });
        r.per_op_graph = time_runs(r.warmup, r.iters, [&] { return po.run_graph(); });
    }
    if (opt.trace) {
        CudaRunOptions traced = run_opt;
        traced.emit.trace = true;
        CudaProgram mk = cuda_program(s, traced);
        mk.upload(values);
        r.traced = time_runs(r.warmup, r.iters, [&] { return mk.run(); });
        r.trace = mk.trace();
        r.trace_json = measured_trace_json(s, r.trace);
    }
    r.ceilings = opt.pipeline.gpu.ceilings;
    if (!r.ceilings.measured()) {
        r.ceilings = calibrate(opt.device);
        r.ceilings_measured_now = true;
    }
    r.roofline = roofline(s.tiles, r.ceilings);
    return r;
}

nlohmann::json profile_json(const ProfileResult& r) {
    nlohmann::json j;
    j["model"] = r.model;
    j["policy"] = r.policy;
    j["device"] = r.device;
    j["target"] = r.target;
    j["iters"] = r.iters;
    j["warmup"] = r.warmup;
    j["outputs_ok"] = r.outputs_ok();
    for (const OutputCheck& c : r.checks) j["rel_l2"][c.name] = c.rel_l2;
    j["tasks"] = r.tasks;
    j["megakernel_us"] = r.megakernel.median_s * 1e6;
    j["megakernel"] = timing_json(r.megakernel);
    j["launches"] = r.launches;
    j["predicted_us"] = r.predicted_s * 1e6;
    if (r.emit.poll_backoff_ns >= 0) j["poll_backoff_ns"] = r.emit.poll_backoff_ns;
    if (r.emit.reload_params) j["reload_params"] = true;
    j["per_op_us"] = r.per_op.median_s * 1e6;
    j["per_op"] = timing_json(r.per_op);
    j["per_op_graph_us"] = r.per_op_graph.median_s * 1e6;
    j["per_op_graph"] = timing_json(r.per_op_graph);
    j["per_op_launches"] = r.per_op_launches;
    j["per_op_predicted_us"] = r.per_op_predicted_s * 1e6;
    j["roofline_us"] = r.roofline.bound_s() * 1e6;
    j["roofline"] = {{"min_bytes", r.roofline.min_bytes}, {"flops", r.roofline.flops},
                     {"memory_us", r.roofline.memory_s * 1e6}, {"compute_us", r.roofline.compute_s * 1e6},
                     {"limit", r.roofline.limit()}, {"share_achieved", r.roofline.bound_s() / r.megakernel.median_s},
                     {"ceilings",
                      {{"copy_bytes_per_s", r.ceilings.copy_bytes_per_s},
                       {"fp32_flops_per_s", r.ceilings.fp32_flops_per_s},
                       {"tensor_f16_flops_per_s", r.ceilings.tensor_f16_flops_per_s},
                       {"tensor_bf16_flops_per_s", r.ceilings.tensor_bf16_flops_per_s},
                       {"source", r.ceilings_measured_now ? "measured now" : "kernels_db"}}}};
    if (!r.trace.empty()) j["traced"] = timing_json(r.traced);
    return j;
}

std::string profile_table(const ProfileResult& r) {
    std::string o = fmt::format("model {}: profile on {}, schedule for {}; median of {} runs after {} warm-up runs\n",
                                r.model, r.device, r.target, r.iters, r.warmup);
    for (const OutputCheck& c : r.checks)
        o += fmt::format("  output {:<20} relative L2 error {:.3e} (tolerance {:.0e}) {}\n", c.name, c.rel_l2,
                         c.tolerance, c.ok() ? "ok" : "FAILED");
    auto row = [&](const std::string& name, const Timing& t, size_t launches, const std::string& note) {
        o += fmt::format("  {:<14} {:>10.2f} us (min {:.2f}, max {:.2f})  {:>5} launch{}  {}\n", name, t.median_s * 1e6,
                         t.min_s * 1e6, t.max_s * 1e6, launches, launches == 1 ? "  " : "es", note);
    };
    row(r.policy, r.megakernel, r.launches, fmt::format("predicted {:.2f} us", r.predicted_s * 1e6));
    row("per_op", r.per_op, r.per_op_launches, fmt::format("predicted {:.2f} us", r.per_op_predicted_s * 1e6));
    row("per_op graph", r.per_op_graph, r.per_op_launches, "one CUDA graph");
    if (!r.trace.empty())
        row(r.policy + " traced", r.traced, r.launches,
            fmt::format("instrumentation {:+.1f}%", (r.traced.median_s / r.megakernel.median_s - 1) * 100));
    o += fmt::format("  speed-up       {:.2f}x over per_op, {:.2f}x over per_op in a CUDA graph\n",
                     r.per_op.median_s / r.megakernel.median_s, r.per_op_graph.median_s / r.megakernel.median_s);
    o += fmt::format("  roofline       {:.2f} us ({}-bound: {:.4g} B at {:.3g} B/s, {:.4g} FLOPs); {:.1f}% of it "
                     "achieved; ceilings {}\n",
                     r.roofline.bound_s() * 1e6, r.roofline.limit(), r.roofline.min_bytes,
                     r.ceilings.copy_bytes_per_s, r.roofline.flops,
                     100 * r.roofline.bound_s() / r.megakernel.median_s,
                     r.ceilings_measured_now ? "measured now (anvil calibrate keeps them)" : "from kernels_db");
    return o;
}

}  // namespace anvil
