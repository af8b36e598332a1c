// anvil: the command line. Every user error exits with status 2 and one
// message naming the place; nothing is written to an output path unless the
// command gets that far.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <map>
#include <tuple>

#include "tools/calibrate.h"
#include "tools/cost_fit.h"
#include "schedule/cost_model.h"
#include "runtime/cuda_driver.h"
#include "runtime/arena_io.h"
#include "runtime/simt_backend.h"
#include "anvil/pipeline.h"
#include "frontend/blocked_weights.h"
#include "frontend/concat_siblings.h"
#include "pipeline/dump.h"
#include "policies/registry.h"
#include "tools/profile.h"
#include "tools/report.h"
#include "tools/tune.h"
#include "base/paths.h"
#include "tile/footprint.h"
#include "tile/size_limits.h"
#include "frontend/save_model.h"
#include "onnx_import/import_onnx.h"
#include "onnx_import/onnx_file.h"

namespace fs = std::filesystem;
using namespace anvil;

namespace {

std::string human_bytes(double b) {
    const char* unit[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (b >= 1024 && u < 3) {
        b /= 1024;
        ++u;
    }
    return u == 0 ? fmt::format("{:.0f} {}", b, unit[u]) : fmt::format("{:.1f} {}", b, unit[u]);
}

// Writes `text` to `path` through a temporary sibling, so a failure never
// leaves a half-written file.
void write_file_atomically(const std::string& path, const std::string& text) {
    fs::path target(path);
    fs::path tmp = target;
    tmp += ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary);
        if (!out) throw UserError(path + ": cannot open for writing");
        out << text;
        if (!out.flush()) throw UserError(path + ": write failed");
    }
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) {
        fs::remove(tmp, ec);  // nothing left behind
        throw UserError(path + ": cannot write it: " + ec.message());
    }
}

using InputShapes = std::map<std::string, Shape>;

int cmd_check(const std::string& model, const Gpu& gpu, const InputShapes& shapes) {
    PipelineOptions opt;
    opt.input_shapes = shapes;
    opt.gpu = gpu;  // its memory bounds every tensor and the arena
    Compilation c = from_model(model);
    run_to(c, Stage::decompose, opt);
    const Graph& graph = *c.graph;
    const TileGraph& tg = *c.tiles;
    std::map<std::string, int> ops;
    for (VertexId v : graph.of_role(Role::node)) ++ops[op_name(graph.value(v).op)];
    auto bytes_of = [&](Role r) {
        int64_t total = 0;
        for (VertexId v : graph.of_role(r)) total += numel(graph.value(v).shape) * dtype_size(graph.value(v).dtype);
        return total;
    };
    int64_t flops = 0;
    for (const ROp& op : tg.rops) flops += op.flops;

    fmt::print("model {} ({}): ok\n", graph.model_name, model);
    fmt::print("  tensors     {} ({} inputs, {} params, {} nodes, {} outputs)\n", graph.size(),
               graph.of_role(Role::input).size(), graph.of_role(Role::param).size(),
               graph.of_role(Role::node).size(), graph.outputs.size());
    std::string hist;
    for (const auto& [name, n] : ops) hist += fmt::format("{}{} x{}", hist.empty() ? "" : ", ", name, n);
    fmt::print("  ops         {}\n", hist);
    fmt::print("  FLOPs       {:.4g}\n", static_cast<double>(flops));
    fmt::print("  bytes       params {}, inputs {}, activations {}, arena {}\n", human_bytes(bytes_of(Role::param)),
               human_bytes(bytes_of(Role::input)), human_bytes(bytes_of(Role::node)), human_bytes(tg.arena_bytes));
    for (VertexId v : graph.outputs)
        fmt::print("  output      {} {} {}\n", graph.value(v).name, shape_str(graph.value(v).shape),
                   dtype_name(graph.value(v).dtype));
    return 0;
}

// Wall-clock seconds of each pipeline stage, printed by `schedule`.
struct StageClock {
    std::vector<std::pair<std::string, double>> stages;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    void mark(const std::string& stage) {
        auto now = std::chrono::steady_clock::now();
        stages.emplace_back(stage, std::chrono::duration<double>(now - last).count());
        last = now;
    }
    std::string str() const {
        std::string r;
        double total = 0;
        for (const auto& [name, s] : stages) {
            r += fmt::format("{}{} {:.3f} s", r.empty() ? "" : ", ", name, s);
            total += s;
        }
        return r + fmt::format(" (total {:.3f} s)", total);
    }
};

// The compile-time specialisations a command may turn off (for before/after measurements).
struct Specialisation {
    bool fold = true;                  // --no-fold
    bool concat = true;                // --no-concat
    bool norm_fold = true;             // --no-norm-fold
    bool transpose_views = true;       // --no-transpose-views
    int64_t blocked_weights = 0;       // --blocked-weights[=COLUMNS]
    bool interpret_epilogues = false;  // --interpret-epilogues
    bool reload_params = false;        // --reload-params
    int poll_backoff_ns = -1;          // --poll-backoff-ns
    void apply(PipelineOptions& opt) const {
        opt.fold = fold;
        opt.concat_siblings = concat;
        opt.norm_fold = norm_fold;
        opt.transpose_views = transpose_views;
        opt.blocked_weights = blocked_weights;
        if (interpret_epilogues) opt.emit.max_straight_epilogues = 0;
        opt.emit.reload_params = reload_params;
        opt.emit.poll_backoff_ns = poll_backoff_ns;
    }
};

struct ScheduleOutputs {
    std::string emit_path, trace_path, dot_path, dump_after, snapshot_path;
    bool compile = false, report = false, json = false;
};

int cmd_schedule(const std::string& model, const std::string& policy, const Gpu& gpu, const ScheduleOutputs& out,
                 const Specialisation& spec, const InputShapes& shapes) {
    // --dump-after prints that stage's value and nothing else, then stops.
    const std::optional<Stage> dump_after =
        out.dump_after.empty() ? std::nullopt : std::optional(stage_named(out.dump_after));
    StageClock clock;
    PipelineOptions opt;
    opt.policy = policy;
    opt.gpu = gpu;
    opt.input_shapes = shapes;
    opt.compile_for = CompileFor::cuda;  // for the schedule's GPU
    spec.apply(opt);
    opt.hook = [&](Stage stage, const Compilation& c) {
        clock.mark(stage_name(stage));
        if (stage != dump_after) return true;
        fmt::print("{}", dump_stage(stage, c));
        return false;
    };
    Compilation c = from_model(model);
    if (dump_after) {
        run_to(c, *dump_after, opt);
        return 0;
    }
    run_to(c, Stage::verify, opt);
    const Graph& graph = *c.graph;
    const Schedule& s = *c.schedule;
    const Prediction prediction = predict(s);
    clock.mark("predict");
    // --json prints one JSON object and nothing else, so it can be piped.
    auto say = [&](const std::string& text) {
        if (!out.json) fmt::print("{}", text);
    };
    // --compile first, so the report and the JSON show NVRTC's registers.
    if (!out.emit_path.empty() || out.compile) run_to(c, out.compile ? Stage::compile : Stage::emit, opt);
    const CubinResult* cubin = out.compile ? &*c.cubin : nullptr;
    if (out.report) {
        say(schedule_table(s, prediction, cubin));
    } else {
        size_t deps = 0;
        for (const Task& t : s.tasks) deps += t.deps.size() + t.waits.size();
        say(fmt::format("model {}: policy {}, target {} ({} SMs)\n", graph.model_name, s.policy, s.gpu.name,
                        s.gpu.sm_count));
        say(fmt::format("  rOperators  {}\n  tasks       {}\n  dependencies {}\n  launches    {}\n"
                        "  predicted   {:.2f} us, {:.4g} DRAM bytes\n",
                        s.tiles.rops.size(), s.tasks.size(), deps, s.launches.size(), prediction.total_s * 1e6,
                        prediction.dram_bytes));
    }
    // Sibling matmuls the fold stage could not join (--concat), and why.
    const std::map<std::string, std::string> left_apart =
        c.folded ? not_joined_members(*c.folded) : std::map<std::string, std::string>{};
    for (const auto& [name, why] : left_apart) say(fmt::format("  not joined  {}: {}\n", name, why));
    const std::string& source = c.source;
    if (out.compile) {
        const CubinResult& r = *c.cubin;
        say(fmt::format("  NVRTC       {} for {}{}\n", human_bytes(static_cast<double>(r.cubin.size())), s.gpu.arch,
                        r.cached ? " (cached)" : ""));
        for (const KernelResources& k : r.kernels)
            say(fmt::format("    {:<24} {:>3} registers, {:>6} B smem, {} B spill stores, {} B spill loads, {} of code\n",
                            k.name, k.registers, k.smem_bytes, k.spill_stores, k.spill_loads,
                            human_bytes(static_cast<double>(k.code_bytes))));
    }
    if (!out.emit_path.empty()) {
        write_file_atomically(out.emit_path, source);
        say(fmt::format("  wrote       {} ({})\n", out.emit_path, human_bytes(static_cast<double>(source.size()))));
    }
    if (!out.trace_path.empty()) {
        write_file_atomically(out.trace_path, trace_json(s, prediction));
        say(fmt::format("  wrote       {} (predicted timeline, Chrome/Perfetto trace)\n", out.trace_path));
    }
    if (!out.dot_path.empty()) {
        write_file_atomically(out.dot_path, tile_graph_dot(s));
        say(fmt::format("  wrote       {} (tile graph, Graphviz)\n", out.dot_path));
    }
    if (!out.snapshot_path.empty()) {
        write_file_atomically(out.snapshot_path, schedule_snapshot_json(s));
        say(fmt::format("  wrote       {} (the schedule as anvil cost-fit replays it)\n", out.snapshot_path));
    }
    say(fmt::format("  time        {}\n", clock.str()));
    if (out.json) {
        nlohmann::json j = schedule_json(s, prediction, cubin);
        j["schedule_seconds"] = clock.stages;
        j["not_joined"] = left_apart;
        fmt::print("{}\n", j.dump(1));
    }
    return 0;
}

int cmd_run(const std::string& model, const std::string& backend, const std::string& policy,
            const std::string& save_io_dir, const std::string& inputs_dir, int workers, bool check_races,
            const Gpu& gpu, const Specialisation& spec, int repeat, const InputShapes& shapes) {
    PipelineOptions opt;
    opt.policy = policy;
    opt.gpu = gpu;
    opt.input_shapes = shapes;
    spec.apply(opt);
    Compilation c = from_model(model);
    run_to(c, Stage::shapes, opt);
    const Graph& graph = *c.graph;
    find_policy(policy);  // refuse an unknown name before any work on the tiles
    if (!inputs_dir.empty() && !fs::is_directory(inputs_dir))
        throw UserError(inputs_dir + ": --inputs is not a directory");
    // --check-races watches every task start, which only the host backend can.
    if (check_races && backend == "cuda")
        throw UserError("--check-races runs on the host backend only: use --backend host or auto");
    std::string chosen = backend;
    if (backend == "auto") {
        const std::string why = check_races ? std::string("--check-races needs the host backend")
                                            : cuda_unavailable_reason();
        chosen = why.empty() ? "cuda" : "host";
        if (!why.empty()) fmt::print("backend auto: {}; using the host backend\n", why);
    } else if (backend == "cuda") {
        if (const std::string why = cuda_unavailable_reason(); !why.empty())
            throw UserError("--backend cuda: " + why);
    }
    TensorMap values = make_values(graph, inputs_dir.empty() ? std::nullopt : std::optional(inputs_dir));
    opt.compile_for = chosen == "cuda" ? CompileFor::cuda : CompileFor::host;
    opt.emit.simt = chosen == "simt";
    if (chosen == "cuda") opt.arch = cuda_device_arch(0);
    run_to(c, Stage::compile, opt);
    const Schedule& s = *c.schedule;
    TensorMap outputs;
    if (chosen == "cuda") {
        outputs = run_cuda(s, *c.cubin, values);
    } else {
        HostRunOptions host;
        host.workers = workers;
        host.check_races = check_races;
        host.simt = chosen == "simt";
        host.simt_checks = simt_checks_default();
        const TensorMap run_values = repeat > 0 ? with_folded_params(s.tiles, values) : values;
        outputs = run_host(s, *c.host_library, run_values, host);
        // --repeat: the median wall time of that many more runs (the compiled library, no reference;
        // folded params computed once, as a program loaded once would).
        std::vector<double> ms;
        for (int i = 0; i < repeat; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            run_host(s, *c.host_library, run_values, host);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        if (!ms.empty()) {
            std::sort(ms.begin(), ms.end());
            fmt::print("  run time    median {:.1f} ms of {} runs (min {:.1f}, max {:.1f})\n", ms[ms.size() / 2],
                       ms.size(), ms.front(), ms.back());
        }
    }
    auto reference = reference_execute(graph, values);
    std::vector<OutputCheck> checks = check_outputs(graph, outputs, reference, &values, s.gpu.f32_precision);

    fmt::print("model {}: backend {}, policy {}, {} tasks in {} launch{}\n", graph.model_name, chosen, s.policy,
               s.tasks.size(), s.launches.size(), s.launches.size() == 1 ? "" : "es");
    if (check_races) fmt::print("  races       none: every producer is ordered before its readers, and had published\n");
    bool ok = true;
    for (const OutputCheck& c : checks) {
        if (c.floor > 0)  // beyond the dtype's tolerance: judged against the model's own rounding floor
            fmt::print("  output {:<20} relative L2 error {:.3e} (tolerance {:.0e}; the model's own rounding floor "
                       "{:.3e}, accepted up to {:g}x: {:.3e}) {}\n",
                       c.name, c.rel_l2, c.tolerance, c.floor, OutputCheck::kFloorMultiple,
                       OutputCheck::kFloorMultiple * c.floor, c.ok() ? "ok" : "FAILED");
        else
            fmt::print("  output {:<20} relative L2 error {:.3e} (tolerance {:.0e}) {}\n", c.name, c.rel_l2,
                       c.tolerance, c.ok() ? "ok" : "FAILED");
        ok = ok && c.ok();
    }
    if (!save_io_dir.empty()) {
        save_io(save_io_dir, graph, values, outputs);
        fmt::print("  saved inputs, params and outputs to {}\n", save_io_dir);
    }
    return ok ? 0 : 1;
}

// The model's graph as the pipeline's front stages leave it (shapes inferred).
Graph front_graph(const std::string& model, const InputShapes& shapes) {
    Compilation c = from_model(model);
    PipelineOptions opt;
    opt.input_shapes = shapes;
    run_to(c, Stage::shapes, opt);
    return std::move(*c.graph);
}

int cmd_profile(const std::string& model, const ProfileOptions& opt, bool json, const std::string& trace_path,
                const InputShapes& shapes) {
    const Graph graph = front_graph(model, shapes);
    find_policy(opt.pipeline.policy);
    const ProfileResult r = profile(graph, opt);
    if (!trace_path.empty()) write_file_atomically(trace_path, r.trace_json);
    if (json) {
        fmt::print("{}\n", profile_json(r).dump(1));
    } else {
        fmt::print("{}", profile_table(r));
        if (!trace_path.empty())
            fmt::print("  wrote          {} (measured per-SM timeline, Chrome/Perfetto trace)\n", trace_path);
    }
    return r.outputs_ok() ? 0 : 1;
}

int cmd_calibrate(const Gpu& gpu, const std::string& out_path) {
    Gpu measured = gpu;
    measured.ceilings = calibrate(0);
    const Ceilings& c = measured.ceilings;
    fmt::print("{} (target {}), {}:\n", c.device, gpu.name, c.date);
    fmt::print("  copy bandwidth   {:.4g} B/s (datasheet DRAM {:.4g} B/s)\n", c.copy_bytes_per_s, gpu.dram_bytes_per_s);
    fmt::print("  fp32 FMA         {:.4g} FLOP/s (datasheet {:.4g})\n", c.fp32_flops_per_s, gpu.fp32_flops_per_s);
    fmt::print("  mma.sync f16     {:.4g} FLOP/s (datasheet tensor peak {:.4g})\n", c.tensor_f16_flops_per_s,
               gpu.tensor_f16_flops_per_s);
    fmt::print("  mma.sync bf16    {:.4g} FLOP/s\n", c.tensor_bf16_flops_per_s);
    if (!out_path.empty()) {
        write_file_atomically(out_path, measured_yaml(measured));
        fmt::print("  wrote            {} (copy it to kernels_db/measured/{}.yaml)\n", out_path, gpu.name);
    }
    return 0;
}

// The cost model against measured schedules (src/tools/cost_fit.h): each
// one's measured and predicted time with the GPU's latencies, and with
// --fit the poll and memory latencies that fit them best. A timeline file
// is played on the GPU it names (kernels_db's description of it), the
// others on --gpu; a fit over several GPUs gives them one pair of latencies.
int cmd_cost_fit(const std::vector<std::string>& files, const Gpu& gpu, const std::string& kernels_db, bool fit,
                 bool json) {
    std::vector<MeasuredSchedule> ms;
    std::vector<Gpu> gpus;
    for (const std::string& f : files) {
        ms.push_back(load_measured_schedule(f));
        const std::string& name = ms.back().gpu;
        gpus.push_back(name.empty() || name == gpu.name ? gpu : find_gpu(name, kernels_db));
    }
    LatencyFit best;
    if (fit) best = fit_latencies(gpus, ms);
    nlohmann::json j;
    j["gpu"] = gpu.name;
    j["poll_latency_s"] = gpu.poll_latency_s;
    j["memory_latency_s"] = gpu.memory_latency_s;
    if (fit) {
        j["fit"] = {{"poll_latency_s", best.poll_latency_s},
                    {"memory_latency_s", best.memory_latency_s},
                    {"rms_log_error", best.rms_log_error}};
    }
    if (!json) fmt::print("{:<34} {:>12} {:>12}{}\n", "schedule", "measured", "predicted", fit ? "    fitted" : "");
    for (size_t i = 0; i < ms.size(); ++i) {
        const Prediction pr = predict_measured(gpus[i], ms[i]);
        const double p = pr.total_s;
        nlohmann::json row{{"file", files[i]}, {"schedule", ms[i].name}, {"gpu", gpus[i].name},
                           {"measured_us", ms[i].measured_s * 1e6},
                           {"predicted_us", p * 1e6}};
        for (size_t l = 0; l < pr.launch_end_s.size(); ++l)
            row["launch_us"].push_back((pr.launch_end_s[l] - pr.launch_start_s[l]) * 1e6);
        // Each rOp's estimated tile (measured tiles aside): its throughput and latency parts.
        for (size_t r = 0; r < ms[i].rop_names.size(); ++r) {
            const TileTime t = tile_time(gpus[i], ms[i].work[r], ms[i].latency[r]);
            row["rops"].push_back({{"name", ms[i].rop_names[r]},
                                   {"cost_key", ms[i].cost_keys[r]},
                                   {"measured_tile", gpus[i].measured_tile_s.count(ms[i].cost_keys[r]) > 0},
                                   {"work_us", t.work_s * 1e6},
                                   {"latency_us", t.latency_s * 1e6}});
        }
        if (fit) row["fitted_us"] = best.predicted_s[i] * 1e6;
        j["schedules"].push_back(row);
        if (!json)
            fmt::print("{:<34} {:>9.1f} us {:>9.1f} us{}\n", ms[i].name, ms[i].measured_s * 1e6, p * 1e6,
                       fit ? fmt::format(" {:>9.1f} us", best.predicted_s[i] * 1e6) : "");
    }
    if (json) fmt::print("{}\n", j.dump(1));
    else if (fit)
        fmt::print("fit: poll_latency_s {:.3g}, memory_latency_s {:.3g}, rms log error {:.3f}\n", best.poll_latency_s,
                   best.memory_latency_s, best.rms_log_error);
    return 0;
}

int cmd_tune(const std::string& model, const Gpu& gpu, int iters, const std::string& out_path,
             const InputShapes& shapes) {
    const Graph graph = front_graph(model, shapes);
    TuneOptions opt;
    opt.iters = iters;
    std::vector<TuneRecord> records;
    fmt::print("model {}: tuning for {}\n", graph.model_name, gpu.name);
    const Gpu tuned = tune(graph, gpu, opt, &records, [](const std::string& line) { fmt::print("  {}\n", line); });
    const auto failed = std::count_if(records.begin(), records.end(), [](const TuneRecord& r) { return !r.ok; });
    fmt::print("  {} rOps measured (a K split's partials and reduce apart), {} refused (output differs from the "
               "model's run)\n",
               records.size() - failed, failed);
    for (const TuneRecord& r : records)
        if (!r.ok)
            fmt::print("    refused: {}{} (relative L2 {:.3e})\n", r.key,
                       r.ways > 1 ? fmt::format(", of a split in {} K slices", r.ways) : "", r.rel_l2);
    if (!out_path.empty()) {
        write_file_atomically(out_path, measured_yaml(tuned));
        fmt::print("  wrote {} (copy it to kernels_db/measured/{}.yaml)\n", out_path, gpu.name);
    }
    return failed == 0 ? 0 : 1;
}

// `anvil import`: the ONNX model as YAML with its weights beside it, after
// the checks every command makes (a model that would not run is not written).
int cmd_import(const std::string& model, const std::string& out_path, const InputShapes& shapes) {
    Compilation c = from_model(model);
    PipelineOptions opt;
    opt.input_shapes = shapes;
    if (!looks_like_onnx(model)) throw UserError(model + ": anvil import reads ONNX models (.onnx)");
    run_to(c, Stage::shapes, opt);
    const std::string dir = save_model(*c.model, out_path);
    fmt::print("model {} ({}): {} inputs, {} params, {} nodes, {} outputs\n", c.model->name, model,
               c.model->inputs.size(), c.model->params.size(), c.model->nodes.size(), c.model->outputs.size());
    fmt::print("  wrote {} and its weights in {}/\n", out_path, dir);
    return 0;
}

// The GPU description a command on the device uses: --gpu when given, else
// the one whose `match` names the device, else the default.
Gpu device_gpu(bool named, const std::string& name, const std::string& kernels_db) {
    if (named || !cuda_unavailable_reason().empty()) return find_gpu(name, kernels_db);
    const std::string found = gpu_for_device(cuda_device_name(0), kernels_db);
    return find_gpu(found.empty() ? name : found, kernels_db);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"anvil: a deep-learning graph in YAML -> one persistent CUDA megakernel"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "anvil 0.1");

    std::string model, policy = default_policy(), backend = "auto", save_io_dir, inputs_dir;
    std::string gpu_name = "h100_sxm", kernels_db;
    ScheduleOutputs outputs;
    int workers = 0;
    std::string policy_help = "scheduling policy:";
    for (const PolicyEntry& p : all_policies()) policy_help += fmt::format(" {} ({});", p.name, p.summary);
    std::string gpu_help = "target GPU, a description in kernels_db/gpus:";
    for (const std::string& g : known_gpus()) gpu_help += " " + g;
    bool tensor_cores = true;
    bool last_slice_reduce = true;
    bool wgmma = false;
    int gemv_ring_stages = 0;  // 0: the header's default
    int gemv_l2_prefetch_kb = 0;  // 0: none
    bool gemm_l2_prefetch = false;
    int epilogue_batch = 0;  // 0: the header's default
    std::string precision = "f32";
    Specialisation spec;
    int repeat = 0;
    auto add_target = [&](CLI::App* cmd) {
        cmd->add_option("--policy", policy, policy_help)->capture_default_str();
        cmd->add_option("--gpu", gpu_name, gpu_help)->capture_default_str();
        cmd->add_option("--kernels-db", kernels_db, "read GPU descriptions and measured times from DIR instead of "
                                                    "the kernels_db built into anvil");
        cmd->add_flag("--tensor-cores,!--no-tensor-cores", tensor_cores,
                      "let policies pick mma.sync tensor-core matmul and conv2d tiles for f16/bf16 (the default; "
                      "--no-tensor-cores keeps every matmul and conv on CUDA cores)");
        cmd->add_flag("--wgmma", wgmma,
                      "also let policies and tune pick Hopper wgmma matmul tiles for f16/bf16 where the GPU has "
                      "sm_90a (its module is then compiled for sm_90a); off by default until its time against the "
                      "mma.sync tiles is measured");
        cmd->add_option("--gemv-ring-stages", gemv_ring_stages,
                        "the depth of the GEMV weight ring, in 8 KB stages of which all but one are in flight "
                        "(default 4; for comparisons)")
            ->check(CLI::Range(2, max_gemv_ring_stages()));
        cmd->add_flag("--gemv-l2-prefetch{256}", gemv_l2_prefetch_kb,
                      "before a GEMV task waits for its inputs, prefetch into L2 up to 256 KB (=KB: that many, 8 to "
                      "1024) of its weights past the ring's first stages, so they stream during the wait (off by "
                      "default until its time on a device is measured: scripts/gpu_bench.sh layouts)")
            ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
            ->check(CLI::Range(8, 1024));
        cmd->add_flag("--gemm-l2-prefetch", gemm_l2_prefetch,
                      "let a tensor-core matmul tile prefetch its weights into L2 about 32 KB ahead of the slices it "
                      "copies to shared memory, so that its K loop waits on L2 rather than DRAM (off by default "
                      "until its time on a device is measured: scripts/gpu_bench.sh)");
        cmd->add_option("--epilogue-batch", epilogue_batch,
                        "how many of a thread's values a GEMM or conv tile's fused epilogue takes per call, their "
                        "operands' loads in flight together (default 8; 1: a round trip per value, for comparisons)")
            ->check(CLI::IsMember({1, 2, 4, 8}));
        cmd->add_flag("--last-slice-reduce,!--no-last-slice-reduce", last_slice_reduce,
                      "let the cost model have a split-K reduce run by the last K slice to arrive, in its block "
                      "(the default; --no-last-slice-reduce keeps every reduce a wave of its own, for comparisons)");
        cmd->add_option("--precision", precision,
                        "f32 matmuls and convs: f32 (exact, CUDA cores), tf32 (tensor cores, 10-bit mantissas; the run's "
                        "check allows 1e-2) or 3xtf32 (tensor cores, three TF32 products: f32 accuracy)")
            ->check(CLI::IsMember({"f32", "tf32", "3xtf32"}))
            ->capture_default_str();
    };
    auto add_specialisation = [&](CLI::App* cmd) {
        cmd->add_flag("--fold,!--no-fold", spec.fold,
                      "fold batchnorm and mul/add/sub/div by constants into the conv or matmul weights before them "
                      "(the default; --no-fold keeps them as nodes)");
        cmd->add_flag("--concat,!--no-concat", spec.concat,
                      "join batch-1 matmuls that read one activation (QKV, gate/up) into one matmul over their "
                      "concatenated weights, each read back as a column range (the default)");
        cmd->add_flag("--norm-fold,!--no-norm-fold", spec.norm_fold,
                      "compute a norm inside the matmuls that read it: an rmsnorm read by batch-1 matmuls in their "
                      "GEMV tiles (the row's rsqrt(mean(x^2) + eps)), any other layernorm or rmsnorm read only by "
                      "matmuls as A in their GEMM tiles (each tile's rows' mean and 1/std, A normalised as it is "
                      "staged); gamma folded into the weights, beta @ W into the bias (the default)");
        cmd->add_flag("--transpose-views,!--no-transpose-views", spec.transpose_views,
                      "let a matmul read a transpose of its operand, or write its result transposed, through "
                      "strides instead of a copy (attention heads; the default)");
        cmd->add_flag("--blocked-weights{" + std::to_string(kWeightBlockColumns) + "}", spec.blocked_weights,
                      "give batch-1 matmuls their weights in blocks of 64 columns (=16, 32, 128 or 256: that many), "
                      "each block one run of memory, so that a GEMV tile streams contiguous bytes (a batched GEMV "
                      "over the blocks, read back as the row; off by default until its time on a device is "
                      "measured: scripts/gpu_bench.sh layouts)")
            ->check(CLI::IsMember({16, 32, 64, 128, 256}));
        cmd->add_flag("--interpret-epilogues", spec.interpret_epilogues,
                      "run every fused epilogue on the run-time interpreter instead of straight-line code "
                      "(for comparisons)");
        cmd->add_flag("--reload-params", spec.reload_params,
                      "let the tiles read their rOp's params through the params table, reloading them after every "
                      "store, instead of from a local copy (for comparisons)");
        // The megakernel's pause between two polls of a counter
        // (ANVIL_POLL_BACKOFF_NS, rtasks/platform.cuh), for A/B runs on the device.
        cmd->add_option("--poll-backoff-ns", spec.poll_backoff_ns,
                        "the pause of a waiting block between two polls of a counter, in ns (default 64; for "
                        "comparisons)")
            ->check(CLI::Range(0, 1000000));
    };
    std::string max_memory;
    bool max_memory_given = false;  // an empty --max-memory '' is an error, not the default
    auto add_max_memory = [&](CLI::App* cmd) {
        cmd->add_option_function<std::string>(
            "--max-memory", [&](const std::string& v) { max_memory = v, max_memory_given = true; },
            "refuse a model whose arena or any tensor needs more than this many bytes (K, M, G, T: "
            "powers of 1024; default: the target GPU's memory)");
    };
    auto with_options = [&](Gpu g) {
        g.tensor_core_tiles = tensor_cores;
        g.last_slice_reduce = last_slice_reduce;
        g.wgmma_tiles = wgmma;
        g.gemv_ring_stages = gemv_ring_stages;
        g.gemv_l2_prefetch_bytes = gemv_l2_prefetch_kb * 1024;
        g.gemm_l2_prefetch = gemm_l2_prefetch;
        g.epilogue_batch = epilogue_batch;
        g.f32_precision = parse_precision(precision);
        if (max_memory_given) g.memory_bytes = parse_memory_size(max_memory, "--max-memory");
        return g;
    };

    InputShapes input_shapes;  // parsed from input_shape_args with the other checks, so a bad one exits 2
    std::vector<std::string> input_shape_args;
    auto add_input_shape = [&](CLI::App* cmd) {
        cmd->add_option("--input-shape", input_shape_args,
                        "an ONNX model's input dims, NAME=D1,D2,... (fixes symbolic dims such as the batch); "
                        "repeat it for several inputs")
            ->allow_extra_args(false);
    };

    CLI::App* check = app.add_subcommand("check", "validate a model and summarise it: ops, tensors, FLOPs, bytes");
    check->add_option("MODEL", model, "model file (.yaml, or .onnx imported on the fly)")->required();
    check->add_option("--gpu", gpu_name, gpu_help)->capture_default_str();
    check->add_option("--kernels-db", kernels_db, "read GPU descriptions from DIR");
    add_max_memory(check);
    add_input_shape(check);

    CLI::App* sched = app.add_subcommand("schedule", "decompose and schedule a model; optionally emit the .cu");
    sched->add_option("MODEL", model, "model file (.yaml, or .onnx imported on the fly)")->required();
    add_target(sched);
    add_specialisation(sched);
    add_max_memory(sched);
    add_input_shape(sched);
    sched->add_option("--emit", outputs.emit_path, "write the self-contained CUDA source here");
    sched->add_flag("--compile", outputs.compile, "compile the source with NVRTC and report registers, smem, spills");
    sched->add_flag("--report", outputs.report,
                    "print the schedule's table: tasks, groups, launches, smem, blocks per SM, predicted time, "
                    "DRAM bytes, SM idle share");
    sched->add_flag("--json", outputs.json, "print the schedule and its prediction as one JSON object (only that)");
    sched->add_option("--trace", outputs.trace_path, "write the predicted per-SM timeline (Chrome/Perfetto trace)");
    sched->add_option("--dot", outputs.dot_path, "write the tile graph in Graphviz dot, each group a cluster");
    sched->add_option("--snapshot", outputs.snapshot_path,
                      "write the schedule as `anvil cost-fit` replays it (JSON; add its measured_us: "
                      "docs/perf/cost-model/)");
    std::string stage_names;
    for (Stage st : all_stages()) stage_names += std::string(stage_names.empty() ? "" : ", ") + stage_name(st);
    sched->add_option("--dump-after", outputs.dump_after,
                      "print the value the pipeline has after STAGE (" + stage_names + ") and stop");

    CLI::App* run = app.add_subcommand("run", "run a model and check every output against the float64 reference");
    run->add_option("MODEL", model, "model file (.yaml, or .onnx imported on the fly)")->required();
    run->add_option("--backend", backend,
                    "auto (cuda if a device is usable, else host), host, cuda, or simt (the CUDA code on CPU fibers "
                    "with thread-level checks; ANVIL_SIMT_CHECKS=0 turns the checks off)")
        ->check(CLI::IsMember({"auto", "host", "cuda", "simt"}))
        ->capture_default_str();
    add_target(run);
    add_specialisation(run);
    run->add_option("--repeat", repeat, "host and simt backends: time this many more runs and print the median");
    add_max_memory(run);
    add_input_shape(run);
    run->add_option("--save-io", save_io_dir, "write inputs/, params/ and outputs/ as .npy files here");
    run->add_option("--inputs", inputs_dir, "read input values from DIR/NAME.npy");
    run->add_option("--workers", workers, "host backend worker threads (0: one per core, at least 2)");
    bool check_races = false;
    run->add_flag("--check-races", check_races,
                  "refuse a schedule with an unordered producer/consumer pair, and check every task's producers "
                  "had published when it started (host backend; auto picks it)");

    CLI::App* prof = app.add_subcommand(
        "profile", "time a model's schedule on the GPU against the per_op baseline (plain and in a CUDA graph), "
                   "with the roofline bound");
    prof->add_option("MODEL", model, "model file (.yaml, or .onnx imported on the fly)")->required();
    add_target(prof);
    add_input_shape(prof);
    ProfileOptions profile_opt;
    bool profile_json = false;
    std::string profile_trace;
    prof->add_option("--iters", profile_opt.iters, "timed runs per schedule (the median is reported)")
        ->capture_default_str();
    prof->add_flag("--json", profile_json, "print the measurements as one JSON object (only that)");
    add_specialisation(prof);
    prof->add_option("--trace", profile_trace,
                     "also run the instrumented megakernel and write its measured per-task timeline "
                     "(Chrome/Perfetto trace)");

    CLI::App* calib = app.add_subcommand(
        "calibrate", "measure the GPU's copy bandwidth and FLOP peaks (the roofline's ceilings)");
    calib->add_option("--gpu", gpu_name, "the kernels_db description they belong to (default: the device's)");
    calib->add_option("--kernels-db", kernels_db, "read GPU descriptions from DIR");
    std::string calib_out;
    calib->add_option("--out", calib_out, "write kernels_db/measured/<gpu>.yaml's text (with the GPU's tiles) here");

    CLI::App* fit_cmd = app.add_subcommand(
        "cost-fit", "the cost model against measured schedules (docs/perf/cost-model/*.json); --fit its latencies");
    std::vector<std::string> fit_files;
    bool fit_latency = false, fit_json = false;
    fit_cmd->add_option("SCHEDULES", fit_files, "measured schedules (JSON)")->required();
    fit_cmd->add_flag("--fit", fit_latency, "also fit the poll and memory latencies to them");
    fit_cmd->add_flag("--json", fit_json, "print one JSON object");
    fit_cmd->add_option("--gpu", gpu_name, "the kernels_db GPU (default h100_sxm)");
    fit_cmd->add_option("--kernels-db", kernels_db, "read GPU descriptions from DIR");

    CLI::App* tune_cmd = app.add_subcommand(
        "tune", "measure the candidate tiles of every distinct GEMM of a model on the GPU (kernels_db/measured)");
    tune_cmd->add_option("MODEL", model, "model file (.yaml, or .onnx imported on the fly)")->required();
    add_target(tune_cmd);
    add_input_shape(tune_cmd);
    int tune_iters = 10;
    std::string tune_out;
    tune_cmd->add_option("--iters", tune_iters, "timed runs per candidate (the median is kept)")->capture_default_str();
    tune_cmd->add_option("--out", tune_out, "write kernels_db/measured/<gpu>.yaml's text (ceilings kept) here");

    CLI::App* import_cmd = app.add_subcommand(
        "import", "convert an ONNX model to anvil's YAML, its weights as .npy files in a folder beside it");
    import_cmd->add_option("MODEL", model, "the ONNX model (.onnx)")->required();
    std::string import_out;
    import_cmd->add_option("-o,--out", import_out, "the YAML file to write (weights go to its stem's folder)")
        ->required();
    add_input_shape(import_cmd);

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    try {
        // Every output path is checked before any work: a refused one exits 2 having written nothing.
        const std::vector<std::tuple<CLI::App*, const char*, const std::string*>> out_files = {
            {sched, "--emit", &outputs.emit_path}, {sched, "--trace", &outputs.trace_path},
            {sched, "--dot", &outputs.dot_path},   {sched, "--snapshot", &outputs.snapshot_path},
            {prof, "--trace", &profile_trace},
            {calib, "--out", &calib_out},          {tune_cmd, "--out", &tune_out},
            {import_cmd, "--out", &import_out}};
        for (const auto& [cmd, opt, path] : out_files)
            if (*cmd && cmd->count(opt) > 0) check_output_file(*path, opt);
        if (*run && run->count("--save-io") > 0) check_output_dir(save_io_dir, "--save-io");
        if (*run && run->count("--inputs") > 0 && inputs_dir.empty())
            throw UserError("--inputs: the path is empty");
        for (const std::string& t : input_shape_args) {
            auto [name, shape] = parse_input_shape(t);
            input_shapes[name] = shape;
        }
        if (*import_cmd) return cmd_import(model, import_out, input_shapes);
        if (*check) return cmd_check(model, with_options(find_gpu(gpu_name, kernels_db)), input_shapes);
        if (*sched)
            return cmd_schedule(model, policy, with_options(find_gpu(gpu_name, kernels_db)), outputs, spec,
                                input_shapes);
        if (*prof) {
            profile_opt.pipeline.policy = policy;
            profile_opt.pipeline.gpu = with_options(device_gpu(prof->count("--gpu") > 0, gpu_name, kernels_db));
            profile_opt.pipeline.input_shapes = input_shapes;
            spec.apply(profile_opt.pipeline);
            profile_opt.trace = !profile_trace.empty();
            return cmd_profile(model, profile_opt, profile_json, profile_trace, input_shapes);
        }
        if (*fit_cmd) return cmd_cost_fit(fit_files, find_gpu(gpu_name, kernels_db), kernels_db, fit_latency, fit_json);
        if (*calib) return cmd_calibrate(device_gpu(calib->count("--gpu") > 0, gpu_name, kernels_db), calib_out);
        if (*tune_cmd)
            return cmd_tune(model, with_options(device_gpu(tune_cmd->count("--gpu") > 0, gpu_name, kernels_db)),
                            tune_iters, tune_out, input_shapes);
        if (*run)
            return cmd_run(model, backend, policy, save_io_dir, inputs_dir, workers, check_races,
                           with_options(find_gpu(gpu_name, kernels_db)), spec, repeat, input_shapes);
    } catch (const UserError& e) {
        std::cerr << e.what() << "\n";
        return 2;
    } catch (const InternalError& e) {
        std::cerr << "anvil: " << e.what() << "\n";
        return 3;
    } catch (const std::exception& e) {
        std::cerr << "anvil: error: " << e.what() << "\n";
        return 3;
    }
    return 0;
}
