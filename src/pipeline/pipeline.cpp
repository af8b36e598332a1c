// The one pipeline: each stage is a pure function of the values before it;
// run_to() runs them in order and calls the hook after each.
#include "anvil/pipeline.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "frontend/affine_fold.h"
#include "frontend/blocked_weights.h"
#include "frontend/concat_siblings.h"
#include "frontend/transpose_views.h"
#include "frontend/norm_fold.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "onnx_import/import_onnx.h"
#include "onnx_import/onnx_file.h"
#include "policies/registry.h"
#include "runtime/cuda_driver.h"
#include "schedule/cost_model.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "tile/size_limits.h"
#include "tile/verify_tile_graph.h"
#include "runtime/simt_backend.h"

namespace anvil {

namespace {

struct StageInfo {
    Stage stage;
    const char* name;
};

constexpr StageInfo kStages[] = {
    {Stage::load, "load"},         {Stage::graph, "graph"},       {Stage::shapes, "shapes"},
    {Stage::fold, "fold"},
    {Stage::decompose, "decompose"}, {Stage::fuse, "fuse"},       {Stage::variants, "variants"},
    {Stage::policy, "policy"},     {Stage::verify, "verify"},     {Stage::emit, "emit"},
    {Stage::compile, "compile"},
};

bool is_policy_stage(Stage s) { return s == Stage::fuse || s == Stage::variants || s == Stage::policy; }

// The tile shapes the policy's entry asks the variants stage for.
std::vector<TileGraph> variant_candidates(const TileGraph& tg, VariantChoice choice, const Gpu& gpu) {
    auto alone = [&] {
        TileGraph a = tg;
        for (ROp& op : a.rops) op = fastest_alone(op, gpu, gpu.sm_count);
        return a;
    };
    // Once tile shapes are chosen, the cost model splits the K of the GEMMs
    // that would leave the GPU idle (split_k.h).
    auto by_wave = [&] { return apply_split_k(choose_variants_by_wave(tg, gpu), gpu); };
    switch (choice) {
        case VariantChoice::keep: return {tg};
        case VariantChoice::by_wave: return {by_wave()};
        case VariantChoice::fastest_alone: return {apply_split_k(alone(), gpu)};
        case VariantChoice::by_wave_and_fastest_alone: {
            // Split-K decides per GEMM, within its wave; the whole GEMMs
            // stay a candidate, so the full prediction (every wait and
            // placement) has the last word.
            TileGraph whole = choose_variants_by_wave(tg, gpu);
            std::vector<TileGraph> c{apply_split_k(whole, gpu)};
            // Any split counts: a reduce that takes in its norm keeps the rOp count.
            const bool split = std::any_of(c.front().rops.begin(), c.front().rops.end(),
                                           [](const ROp& op) { return op.split_k > 1; });
            if (split) c.push_back(apply_split_k(whole, gpu, SplitKMode::keep_whole));
            c.push_back(apply_split_k(alone(), gpu));
            return c;
        }
    }
    throw InternalError("pipeline: unknown variant choice");
}

// The policy placed on every candidate; of several, the one the cost model
// predicts fastest, the first on a tie.
Schedule place(const PolicyEntry& policy, const std::vector<TileGraph>& candidates, const Gpu& gpu) {
    ANVIL_CHECK(!candidates.empty(), "pipeline: the variants stage left no tile graph to place");
    if (candidates.size() == 1) return policy.fn(candidates.front(), gpu);
    Schedule best;
    double best_s = INFINITY;
    for (const TileGraph& tg : candidates) {
        Schedule s = policy.fn(tg, gpu);
        const double t = predict(s).total_s;
        if (t < best_s) best_s = t, best = std::move(s);
    }
    return best;
}

// A YAML model, or an ONNX one (by extension or by its first bytes)
// imported in memory; --input-shape means something only to the latter.
Model load_any_model(const std::string& path, const PipelineOptions& opt) {
    if (looks_like_onnx(path)) return import_onnx(path, ImportOptions{opt.input_shapes});
    if (!opt.input_shapes.empty())
        throw UserError(path + ": --input-shape fixes the dims of an ONNX model's inputs; a YAML model declares its "
                               "shapes itself");
    return load_model(path);
}

void run_stage(Stage stage, Compilation& c, const PipelineOptions& opt, const PolicyEntry* policy) {
    switch (stage) {
        case Stage::load: c.model = load_any_model(c.model_path, opt); return;
        case Stage::graph: c.graph = build_graph(*c.model); return;
        case Stage::shapes:
            c.graph = infer_shapes(std::move(*c.graph));
            check_tensor_sizes(*c.graph, opt.gpu);  // before any work that grows with the model
            return;
        case Stage::fold: {
            Graph g = opt.fold ? fold_affine_chains(*c.graph) : *c.graph;
            if (opt.concat_siblings) g = concat_sibling_matmuls(g);
            if (opt.norm_fold) g = fold_norms_into_gemm_tiles(fold_rmsnorm_into_matmuls(g));
            if (opt.blocked_weights > 0) g = block_gemv_weights(g, opt.blocked_weights);
            if (opt.transpose_views) g = transpose_views(g);
            c.folded = std::move(g);
            return;
        }
        case Stage::decompose:
            check_tensor_sizes(*c.graph, opt.gpu);  // again: a compilation from_graph skipped the shapes stage
            c.tiles = decompose(*c.folded);
            check_arena_size(*c.folded, *c.tiles, opt.gpu);
            verify_tile_graph(*c.tiles, opt.gpu);
            return;
        case Stage::fuse:
            if (policy->fuses) {
                // A row op joins its matmul only where the cost model predicts that no slower.
                FusionOptions fusion;
                const bool choose = policy->variants != VariantChoice::keep;
                fusion.row_fusion_pays = [&](const ROp& fused, const ROp& matmul, const ROp& row) {
                    return row_fusion_times(fused, matmul, row, opt.gpu, choose).pays();
                };
                c.tiles = fuse(*c.tiles, opt.gpu, fusion);
                verify_tile_graph(*c.tiles, opt.gpu);
            }
            check_task_count(*c.tiles);  // after fusion, which may merge many rOps' tiles into one
            return;
        case Stage::variants: c.candidates = variant_candidates(*c.tiles, policy->variants, opt.gpu); return;
        case Stage::policy:
            c.schedule = place(*policy, c.candidates, opt.gpu);
            check_task_count(c.schedule->tiles);  // a variant may cut finer than decompose did
            return;
        case Stage::verify:
            verify_tile_graph(c.schedule->tiles, opt.gpu);
            verify_schedule(*c.schedule);
            return;
        case Stage::emit: c.source = emit_source(*c.schedule, opt.emit); return;
        case Stage::compile:
            if (opt.compile_for == CompileFor::host)
                c.host_library = compile_host(c.source, opt.emit.simt ? simt_link_flags() : "");
            else
                c.cubin = compile_nvrtc(c.source,
                                        module_arch(c.schedule->tiles, opt.arch.empty() ? c.schedule->gpu.arch : opt.arch));
            return;
    }
    throw InternalError("pipeline: unknown stage");
}

}  // namespace

const std::vector<Stage>& all_stages() {
    static const std::vector<Stage> stages = [] {
        std::vector<Stage> r;
        for (const StageInfo& s : kStages) r.push_back(s.stage);
        return r;
    }();
    return stages;
}

const char* stage_name(Stage s) {
    for (const StageInfo& i : kStages)
        if (i.stage == s) return i.name;
    throw InternalError("pipeline: unknown stage");
}

Stage stage_named(const std::string& name) {
    std::string known;
    for (const StageInfo& s : kStages) {
        if (name == s.name) return s.stage;
        known += known.empty() ? s.name : std::string(", ") + s.name;
    }
    throw UserError("unknown stage '" + name + "': the stages are " + known + ".");
}

Compilation from_model(const std::string& model_path) {
    Compilation c;
    c.model_path = model_path;
    return c;
}

Compilation from_graph(Graph graph) {
    Compilation c;
    c.model_path = graph.model_path;
    c.graph = std::move(graph);
    c.done = Stage::shapes;
    return c;
}

Compilation from_schedule(Schedule schedule) {
    Compilation c;
    c.schedule = std::move(schedule);
    c.done = Stage::verify;
    return c;
}

void run_to(Compilation& c, Stage last, const PipelineOptions& opt) {
    c.stopped = false;
    const auto first = c.done ? static_cast<int>(*c.done) + 1 : 0;
    if (first > static_cast<int>(last)) return;
    // An unknown policy is refused before any work.
    const PolicyEntry* policy = nullptr;
    for (int s = first; s <= static_cast<int>(last); ++s)
        if (is_policy_stage(static_cast<Stage>(s))) policy = &find_policy(opt.policy);
    for (int s = first; s <= static_cast<int>(last); ++s) {
        const Stage stage = static_cast<Stage>(s);
        run_stage(stage, c, opt, policy);
        c.done = stage;
        if (opt.hook && !opt.hook(stage, c)) {
            c.stopped = true;
            return;
        }
    }
}

Schedule plan(const Graph& graph, const PipelineOptions& opt) {
    Compilation c = from_graph(graph);
    run_to(c, Stage::verify, opt);
    return std::move(*c.schedule);
}

Schedule plan(const Graph& graph, const std::string& policy, const Gpu& gpu, bool fold) {
    PipelineOptions opt;
    opt.policy = policy;
    opt.gpu = gpu;
    opt.fold = fold;
    opt.concat_siblings = fold;
    opt.norm_fold = fold;
    opt.transpose_views = fold;
    return plan(graph, opt);
}

TensorMap run_host(const Schedule& s, const TensorMap& values, const HostRunOptions& opt) {
    Compilation c = from_schedule(s);
    PipelineOptions p;
    p.emit.trace = opt.trace != nullptr;
    p.emit.simt = opt.simt;
    p.compile_for = CompileFor::host;
    run_to(c, Stage::emit, p);
    if (opt.edit_source) opt.edit_source(c.source);
    run_to(c, Stage::compile, p);
    return run_host(s, *c.host_library, values, opt);
}

TensorMap run_simt(const Schedule& s, const TensorMap& values, HostRunOptions opt) {
    opt.simt = true;
    opt.simt_checks = opt.simt_checks && simt_checks_default();
    return run_host(s, values, opt);
}

namespace {

// `s` emitted and compiled by NVRTC for CUDA device opt.device's architecture.
CubinResult device_cubin(const Schedule& s, const CudaRunOptions& opt) {
    Compilation c = from_schedule(s);
    PipelineOptions p;
    p.emit = opt.emit;
    p.compile_for = CompileFor::cuda;
    p.arch = cuda_device_arch(opt.device);
    run_to(c, Stage::compile, p);
    return std::move(*c.cubin);
}

}  // namespace

CudaProgram cuda_program(const Schedule& s, const CudaRunOptions& opt) {
    return CudaProgram(s, device_cubin(s, opt), opt);
}

TensorMap run_cuda(const Schedule& s, const TensorMap& values, const CudaRunOptions& opt) {
    return run_cuda(s, device_cubin(s, opt), values, opt);
}

namespace {

double loosest_tolerance(const Graph& graph, VertexId out, F32Precision f32) {
    std::vector<bool> seen(graph.size(), false);
    std::vector<VertexId> stack{out};
    double tol = 0;
    while (!stack.empty()) {
        VertexId v = stack.back();
        stack.pop_back();
        if (seen[v]) continue;
        seen[v] = true;
        const DType t = graph.value(v).dtype;
        if (is_float(t)) tol = std::max(tol, t == DType::f32 && f32 == F32Precision::tf32 ? kTf32Tolerance : dtype_tolerance(t));
        for (VertexId u : graph.operands(v)) stack.push_back(u);
    }
    return tol;
}

}  // namespace

std::vector<OutputCheck> check_outputs(const Graph& graph, const TensorMap& outputs,
                                       const std::map<std::string, RefTensor>& reference, const TensorMap* values,
                                       F32Precision f32) {
    std::vector<OutputCheck> checks;
    bool beyond = false;
    for (VertexId v : graph.outputs) {
        const std::string& name = graph.value(v).name;
        OutputCheck c;
        c.name = name;
        c.tolerance = loosest_tolerance(graph, v, f32);
        c.rel_l2 = relative_l2_error(outputs.at(name).to_doubles(), reference.at(name).data);
        beyond = beyond || !c.within_tolerance();
        checks.push_back(c);
    }
    if (beyond && values) {
        const auto rounded = reference_execute_rounded(graph, *values);
        for (OutputCheck& c : checks) c.floor = relative_l2_error(rounded.at(c.name).data, reference.at(c.name).data);
    }
    return checks;
}

}  // namespace anvil
