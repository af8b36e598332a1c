#include "tools/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "anvil/error.h"

#include "codegen/emit.h"  // launch_kernels, launch_smem_bytes
#include "schedule/sync_counters.h"
#include "schedule/tile_dependencies.h"
#include "target/occupancy.h"
#include "tile/verify_tile_graph.h"
#include "tile/footprint.h"

namespace anvil {

namespace {

const char* level_name(FusionLevel l) {
    switch (l) {
        case FusionLevel::none: return "none";
        case FusionLevel::registers: return "registers";
        case FusionLevel::shared: return "shared";
    }
    return "?";
}

struct Totals {
    size_t deps = 0, fused_nodes = 0;
    size_t wait_checks = 0, wait_checks_per_block_max = 0, counters = 0;
    int max_smem = 0, widest = 0, grid_blocks = 0;
};

Totals totals(const Schedule& s) {
    Totals t;
    const SyncCounters sync = sync_counters(s);
    t.counters = sync.count();
    t.wait_checks = sync.wait_checks();
    for (const Task& task : s.tasks) t.deps += task.deps.size() + task.waits.size();
    for (const ROp& op : s.tiles.rops) {
        t.fused_nodes += op.fused.size();
        t.max_smem = std::max(t.max_smem, tile_smem_bytes(op, s.gpu));
    }
    for (const Launch& l : s.launches) t.widest = std::max(t.widest, static_cast<int>(l.queues.size()));
    t.wait_checks_per_block_max = sync.wait_checks_per_block_max(s);
    t.grid_blocks = t.widest;
    return t;
}

// The dynamic shared memory the launches of kernel `name` give its blocks
// (the most of theirs).
int dynamic_smem_of(const Schedule& s, const std::string& name) {
    const std::vector<std::string> kernels = launch_kernels(s);
    int bytes = 0;
    for (size_t l = 0; l < kernels.size(); ++l)
        if (kernels[l] == name) bytes = std::max(bytes, launch_smem_bytes(s, l));
    return bytes;
}

// A compiled kernel's use: NVRTC's registers and static shared memory, and
// the dynamic shared memory its launches give it.
KernelUsage usage_of(const Schedule& s, const KernelResources& k) {
    return KernelUsage{s.threads_per_block, k.registers, k.smem_bytes + dynamic_smem_of(s, k.name)};
}

// The megakernel's occupancy: from NVRTC's resource usage of every kernel
// (the smallest of theirs; shared memory with the dynamic part) when
// compiled, else from the register cap of the launch bounds the schedule
// asks for and the tiles' shared memory.
struct KernelFit {
    Occupancy occ;
    bool compiled = false;
};

KernelFit kernel_fit(const Schedule& s, const Totals& t, const CubinResult* cubin) {
    KernelFit f;
    if (cubin && !cubin->kernels.empty()) {
        f.compiled = true;
        bool first = true;
        for (const KernelResources& k : cubin->kernels) {
            const Occupancy o = occupancy(s.gpu, usage_of(s, k));
            if (first || o.blocks_per_sm < f.occ.blocks_per_sm) f.occ = o;
            first = false;
        }
        return f;
    }
    const int regs = register_cap(s.gpu, s.threads_per_block, std::max(1, s.blocks_per_sm));
    f.occ = occupancy(s.gpu, KernelUsage{s.threads_per_block, regs, t.max_smem + kMegakernelSmemExtra});
    return f;
}

// The blocks of one wave of tiles: the persistent grid.
int grid_of(const Schedule& s) { return s.gpu.sm_count * std::max(1, s.blocks_per_sm); }

// The GEMM-like rOps: split (with their slices), filling a wave whole, neither.
std::string split_k_summary(const Schedule& s) {
    constexpr int kNamed = 3;  // split GEMMs named; the rest counted
    int fill = 0, below = 0, split = 0;
    std::string named;
    for (const ROp& op : s.tiles.rops) {
        if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) continue;
        if (op.split_k > 1 && split++ < kNamed) named += fmt::format(", {} in {}", op.name, op.split_k);
        else if (op.split_k == 1) ++(op.tiles >= grid_of(s) ? fill : below);
    }
    int norms = 0;
    for (const ROp& op : s.tiles.rops)
        if (const auto* rp = std::get_if<RowParams>(&op.params); rp && rp->op == ANVIL_ROW_SPLIT_NORM) ++norms;
    return fmt::format("{} GEMMs split{}{}; whole, {} fill a wave of {} blocks, {} do not (why_not in --json); {} "
                       "reduces apply the softmax or norm after them",
                       split, named, split > kNamed ? fmt::format(" and {} more", split - kNamed) : "", fill,
                       grid_of(s), below, norms);
}

const char* row_op_name(int row_op) {
    switch (row_op) {
        case ANVIL_ROW_SOFTMAX: return "softmax";
        case ANVIL_ROW_LAYERNORM: return "layernorm";
        case ANVIL_ROW_RMSNORM: return "rmsnorm";
        default: return "other";
    }
}

std::string dot_id(const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
    return out + "\"";
}

}  // namespace

nlohmann::json schedule_json(const Schedule& s, const Prediction& p, const CubinResult* cubin) {
    const Totals t = totals(s);
    const KernelFit fit = kernel_fit(s, t, cubin);
    nlohmann::json j;
    j["model"] = s.tiles.model_name;
    j["policy"] = s.policy;
    j["gpu"] = s.gpu.name;
    j["precision"] = precision_name(s.gpu.f32_precision);
    j["tasks"] = s.tasks.size();
    j["kernels"] = s.launches.size();
    j["groups"] = s.tiles.rops.size();
    j["fused_nodes"] = t.fused_nodes;
    j["dependencies"] = t.deps;
    j["cross_sm_dependencies"] = p.cross_sm_deps;
    j["widest_launch_blocks"] = t.widest;
    j["max_smem_per_task"] = t.max_smem;
    j["counters"] = t.counters;
    j["wait_checks"] = t.wait_checks;
    j["wait_checks_per_block_max"] = t.wait_checks_per_block_max;
    j["grid_blocks"] = t.grid_blocks;
    j["blocks_per_sm"] = fit.occ.blocks_per_sm;
    j["blocks_per_sm_source"] = fit.compiled ? "nvrtc" : "estimate";
    j["blocks_per_sm_limited_by"] = fit.occ.limited_by;
    j["grid_blocks_per_sm"] = s.blocks_per_sm;
    if (cubin) {
        nlohmann::json kernels = nlohmann::json::array();
        for (const KernelResources& k : cubin->kernels)
            kernels.push_back({{"name", k.name},
                               {"registers", k.registers},
                               {"smem_bytes", k.smem_bytes},
                               {"dynamic_smem_bytes", dynamic_smem_of(s, k.name)},
                               {"spill_bytes", k.spill_stores + k.spill_loads},
                               {"spill_store_bytes", k.spill_stores},
                               {"spill_load_bytes", k.spill_loads},
                               {"blocks_per_sm", occupancy(s.gpu, usage_of(s, k)).blocks_per_sm}});
        j["kernel_list"] = kernels;
    }
    j["predicted_us"] = p.total_s * 1e6;
    j["dram_bytes"] = p.dram_bytes;
    j["l2_bytes"] = p.l2_bytes;
    j["flops"] = p.flops;
    j["sm_idle_share"] = p.sm_idle_share;
    nlohmann::json groups = nlohmann::json::array();
    for (size_t r = 0; r < s.tiles.rops.size(); ++r) {
        const ROp& op = s.tiles.rops[r];
        nlohmann::json fused = nlohmann::json::array();
        for (VertexId v : op.fused) fused.push_back(s.tiles.buffers[v].name);
        groups.push_back({{"name", op.name},
                          {"kind", task_kind_name(op.kind)},
                          {"tiles", op.tiles},
                          {"fused", fused},
                          {"fusion", level_name(op.fusion)},
                          {"smem_per_task", tile_smem_bytes(op, s.gpu)},
                          {"tile_us", p.rops[r].tile_s * 1e6},
                          {"measured", p.rops[r].measured},
                          {"dram_bytes", p.rops[r].dram_read + p.rops[r].dram_write},
                          {"cost_key", cost_key(op)}});
        if (op.kind == TaskKind::matmul || op.kind == TaskKind::conv2d) {
            groups.back()["split_k"] = op.split_k;
            groups.back()["fills_wave"] = op.tiles >= grid_of(s);
            if (!op.why_not_split.empty()) groups.back()["why_not"] = op.why_not_split;
        }
        if (const auto* rp = std::get_if<RowParams>(&op.params)) {
            // A split-K reduce: whether it applies the softmax or norm after it, or why not.
            if (rp->op == ANVIL_ROW_SPLIT_NORM) groups.back()["split_reduce_row_op"] = row_op_name(rp->norm_op);
            if (!op.why_not_row_op.empty()) groups.back()["why_not_row_op"] = op.why_not_row_op;
            if (!op.reduce_mode.empty()) groups.back()["reduce_mode"] = op.reduce_mode;
        }
    }
    j["group_list"] = groups;
    return j;
}

std::string schedule_table(const Schedule& s, const Prediction& p, const CubinResult* cubin) {
    const Totals t = totals(s);
    const KernelFit fit = kernel_fit(s, t, cubin);
    auto row = [](const char* k, const std::string& v) { return fmt::format("  {:<24}{}\n", k, v); };
    std::string o = fmt::format("model {}: policy {}, target {} ({} SMs)\n", s.tiles.model_name, s.policy,
                                s.gpu.name, s.gpu.sm_count);
    int tc = 0;
    for (const ROp& op : s.tiles.rops) tc += computes_on_tensor_cores(op);
    o += row("f32 precision", precision_name(s.gpu.f32_precision));
    o += row("tensor-core rOps", std::to_string(tc));
    o += row("tasks", std::to_string(s.tasks.size()));
    o += row("groups (rOps)", fmt::format("{} ({} nodes fused into others)", s.tiles.rops.size(), t.fused_nodes));
    o += row("kernel launches", fmt::format("{} (widest {} blocks)", s.launches.size(), t.widest));
    o += row("dependencies", fmt::format("{} counter waits ({} cross SMs), {} counters", t.deps, p.cross_sm_deps,
                                         t.counters));
    o += row("wait checks", fmt::format("{} counter polls a run, {} at most on one block", t.wait_checks,
                                        t.wait_checks_per_block_max));
    o += row("split K", split_k_summary(s));
    o += row("smem per task", fmt::format("{} B at most", t.max_smem));
    o += row("blocks per SM", fmt::format("{} can be co-resident ({}, limited by {}); the grid uses {}",
                                          fit.occ.blocks_per_sm, fit.compiled ? "NVRTC's registers" : "estimate",
                                          fit.occ.limited_by, s.blocks_per_sm));
    o += row("grid blocks", std::to_string(t.grid_blocks));
    if (cubin)
        for (const KernelResources& k : cubin->kernels)
            o += row(("  " + k.name).c_str(),
                     fmt::format("{} registers, {} B smem + {} B dynamic, {} B spilled", k.registers, k.smem_bytes,
                                 dynamic_smem_of(s, k.name), k.spill_stores + k.spill_loads));
    o += row("predicted time", fmt::format("{:.2f} us", p.total_s * 1e6));
    o += row("predicted DRAM bytes", fmt::format("{:.4g}", p.dram_bytes));
    o += row("predicted L2 bytes", fmt::format("{:.4g}", p.l2_bytes));
    o += row("SM idle share", fmt::format("{:.1f} %", 100 * p.sm_idle_share));
    return o;
}

std::string trace_json(const Schedule& s, const Prediction& p) {
    nlohmann::json events = nlohmann::json::array();
    for (int sm = 0; sm < s.gpu.sm_count; ++sm)
        events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", sm},
                          {"args", {{"name", fmt::format("SM {}", sm)}}}});
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 0}, {"args", {{"name", "predicted SMs"}}}});
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 1}, {"args", {{"name", "kernel launches"}}}});
    for (size_t l = 0; l < s.launches.size(); ++l)
        events.push_back({{"name", s.launches[l].name}, {"ph", "X"}, {"pid", 1}, {"tid", 0},
                          {"ts", p.launch_start_s[l] * 1e6},
                          {"dur", (p.launch_end_s[l] - p.launch_start_s[l]) * 1e6}});
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        events.push_back({{"name", op.name}, {"cat", task_kind_name(op.kind)}, {"ph", "X"}, {"pid", 0},
                          {"tid", p.sm[t]}, {"ts", p.start_s[t] * 1e6}, {"dur", (p.end_s[t] - p.start_s[t]) * 1e6},
                          {"args", {{"task", t}, {"tile", s.tasks[t].tile}, {"waits", s.tasks[t].deps.size() + s.tasks[t].waits.size()}}}});
    }
    nlohmann::json trace = {{"traceEvents", events}, {"displayTimeUnit", "ns"},
                            {"otherData", {{"model", s.tiles.model_name}, {"policy", s.policy}, {"gpu", s.gpu.name},
                                           {"predicted_us", p.total_s * 1e6}}}};
    return trace.dump() + "\n";
}

std::string measured_trace_json(const Schedule& s, const std::vector<AnvilTraceRecord>& records) {
    ANVIL_CHECK(records.size() == s.tasks.size(), "a trace of " + std::to_string(records.size()) + " records for " +
                                                      std::to_string(s.tasks.size()) + " tasks");
    unsigned long long t0 = ~0ull, t1 = 0;
    for (const AnvilTraceRecord& r : records) {
        t0 = std::min(t0, r.ready_ns);
        t1 = std::max(t1, r.end_ns);
    }
    auto us = [&](unsigned long long ns) { return static_cast<double>(ns - t0) * 1e-3; };
    nlohmann::json events = nlohmann::json::array();
    events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", 0}, {"args", {{"name", "measured SMs"}}}});
    std::map<unsigned, double> busy_ns;  // per SM
    for (size_t t = 0; t < records.size(); ++t) {
        const AnvilTraceRecord& r = records[t];
        ANVIL_CHECK(r.ready_ns <= r.start_ns && r.start_ns <= r.body_end_ns && r.body_end_ns <= r.end_ns &&
                        r.end_ns != 0,
                    "task " + std::to_string(t) + " has no consistent trace record");
        if (!busy_ns.count(r.sm))
            events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", 0}, {"tid", r.sm},
                              {"args", {{"name", fmt::format("SM {}", r.sm)}}}});
        busy_ns[r.sm] += static_cast<double>(r.end_ns - r.start_ns);
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        if (r.start_ns > r.ready_ns)
            events.push_back({{"name", "wait"}, {"cat", "wait"}, {"ph", "X"}, {"pid", 0}, {"tid", r.sm},
                              {"ts", us(r.ready_ns)}, {"dur", (r.start_ns - r.ready_ns) * 1e-3},
                              {"args", {{"task", t}, {"waits", s.tasks[t].deps.size() + s.tasks[t].waits.size()}}}});
        nlohmann::json args = {{"task", t},
                               {"tile", s.tasks[t].tile},
                               {"block", r.block},
                               {"publish_us", (r.end_ns - r.body_end_ns) * 1e-3}};
        // A GEMM's phases (trace_marks.cuh), microseconds into its body.
        static const char* const kMarkNames[ANVIL_TRACE_MARKS] = {"staging_us", "first_slice_us", "loop_end_us"};
        for (int m = 0; m < ANVIL_TRACE_MARKS; ++m)
            if (r.mark_ns[m] != ANVIL_NO_MARK) {
                ANVIL_CHECK(r.start_ns + r.mark_ns[m] <= r.body_end_ns,
                            "task " + std::to_string(t) + " has a body mark past its body's end");
                args[kMarkNames[m]] = r.mark_ns[m] * 1e-3;
            }
        events.push_back({{"name", op.name}, {"cat", task_kind_name(op.kind)}, {"ph", "X"}, {"pid", 0},
                          {"tid", r.sm}, {"ts", us(r.start_ns)}, {"dur", (r.end_ns - r.start_ns) * 1e-3},
                          {"args", args}});
    }
    double busy = 0;
    for (const auto& [sm, ns] : busy_ns) busy += ns;
    const double span_ns = records.empty() ? 0 : static_cast<double>(t1 - t0);
    nlohmann::json trace = {{"traceEvents", events},
                            {"displayTimeUnit", "ns"},
                            {"otherData",
                             {{"model", s.tiles.model_name}, {"policy", s.policy}, {"measured", true},
                              {"span_us", span_ns * 1e-3}, {"sms_used", busy_ns.size()},
                              {"busy_share", span_ns > 0 ? busy / (span_ns * static_cast<double>(busy_ns.size())) : 0}}}};
    return trace.dump() + "\n";
}

std::string tile_graph_dot(const Schedule& s) {
    std::vector<std::vector<int>> tasks_of(s.tiles.rops.size());
    for (size_t t = 0; t < s.tasks.size(); ++t) tasks_of[s.tasks[t].rop].push_back(static_cast<int>(t));
    std::string o = "digraph " + dot_id(s.tiles.model_name) + " {\n  rankdir=TB;\n  node [shape=box, fontsize=9];\n";
    for (size_t r = 0; r < tasks_of.size(); ++r) {
        const ROp& op = s.tiles.rops[r];
        o += fmt::format("  subgraph cluster_{} {{\n    label={};\n", r,
                         dot_id(fmt::format("{} ({}, {} tiles{})", op.name, task_kind_name(op.kind), op.tiles,
                                            op.fused.empty() ? "" : std::string(", fused in ") + level_name(op.fusion))));
        for (int t : tasks_of[r]) o += fmt::format("    t{} [label=\"{}\"];\n", t, s.tasks[t].tile);
        o += "  }\n";
    }
    // Every tile-level dependency; the ones the schedule leaves to queue
    // order or to an earlier wait of the block (no counter of their own) are dashed.
    const std::vector<std::vector<int>> all = tile_dependencies(s.tiles, s.tasks);
    const SyncCounters sync = sync_counters(s);
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        const std::vector<int> counted = waited_tasks(s, sync, static_cast<int>(t));
        for (int d : all[t]) {
            const bool waited = std::binary_search(counted.begin(), counted.end(), d);
            o += fmt::format("  t{} -> t{}{};\n", d, t, waited ? "" : " [style=dashed]");
        }
    }
    return o + "}\n";
}

}  // namespace anvil
