// Text of each stage's value. Lines are "key value" pairs in a fixed order,
// so a reader (or a test) can find a field without parsing the whole line.
#include "pipeline/dump.h"

#include <fmt/format.h>

#include <map>
#include <set>

#include "frontend/affine_fold.h"
#include "tile/tensor_maps.h"

namespace anvil {

namespace {

std::string attr_str(const AttrValue& v) {
    return std::visit(
        [](const auto& x) -> std::string {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
            else if constexpr (std::is_same_v<T, std::string>) return x;
            else if constexpr (std::is_same_v<T, std::vector<int64_t>>) return shape_str(x);
            else return fmt::format("{}", x);
        },
        v);
}

std::string attrs_str(const Attrs& a) {
    std::string r;
    for (const auto& [name, v] : a.values) r += fmt::format("{}{}: {}", r.empty() ? "" : ", ", name, attr_str(v));
    return r.empty() ? "" : " {" + r + "}";
}

std::string join(const std::vector<std::string>& v) {
    std::string r;
    for (const std::string& s : v) r += (r.empty() ? "" : ", ") + s;
    return r;
}

// An epilogue operand reference (rtasks/params.cuh ANVIL_EPI_*).
std::string operand(int ref, float scalar) {
    if (ref == ANVIL_EPI_SCALAR) return fmt::format("{}", scalar);
    if (ref >= ANVIL_EPI_INPUT(0) && ref < ANVIL_EPI_INPUT(ANVIL_EPI_MAX_INPUTS))
        return fmt::format("in{}", ref - ANVIL_EPI_INPUT(0));
    if (ref >= 0 && ref <= ANVIL_EPI_MAX_STEPS) return fmt::format("v{}", ref);
    return "_";
}

static_assert(ANVIL_EW_COUNT == 22, "AnvilEwOp changed: update step_str in dump.cpp");

// One step as the expression epilogue.cuh's anvil_ew_apply computes.
std::string step_str(const AnvilEpiStep& st) {
    const std::string a = operand(st.a, st.scalar), b = operand(st.b, st.scalar);
    auto infix = [&](const char* op) { return a + " " + op + " " + b; };
    auto call = [&](const char* f) { return std::string(f) + "(" + a + ")"; };
    switch (st.op) {
        case ANVIL_EW_CONST: return fmt::format("{}", st.scalar);
        case ANVIL_EW_COPY: return a;
        case ANVIL_EW_ADD: return infix("+");
        case ANVIL_EW_SUB: return infix("-");
        case ANVIL_EW_MUL: return infix("*");
        case ANVIL_EW_DIV: return infix("/");
        case ANVIL_EW_MAX: return "max(" + a + ", " + b + ")";
        case ANVIL_EW_MIN: return "min(" + a + ", " + b + ")";
        case ANVIL_EW_POW: return "pow(" + a + ", " + b + ")";
        case ANVIL_EW_RELU: return call("relu");
        case ANVIL_EW_SIGMOID: return call("sigmoid");
        case ANVIL_EW_TANH: return call("tanh");
        case ANVIL_EW_EXP: return call("exp");
        case ANVIL_EW_LOG: return call("log");
        case ANVIL_EW_SQRT: return call("sqrt");
        case ANVIL_EW_RSQRT: return call("rsqrt");
        case ANVIL_EW_NEG: return "-" + a;
        case ANVIL_EW_ABS: return call("abs");
        case ANVIL_EW_SILU: return call("silu");
        case ANVIL_EW_GELU: return call("gelu");
        case ANVIL_EW_GELU_TANH: return call("gelu_tanh");
        case ANVIL_EW_ERF: return call("erf");
    }
    return fmt::format("op{}({}, {})", st.op, a, b);
}

// Which tensor each epilogue input views: the buffer that owns its bytes.
std::string input_names(const TileGraph& tg, const AnvilEpilogue& e) {
    std::vector<std::string> names;
    for (int i = 0; i < e.ninputs; ++i) {
        std::string name = "?";
        for (const TensorBuffer& b : tg.buffers)
            if (!b.alias && b.bytes > 0 && b.offset == e.in_off[i]) {
                name = b.name;
                break;
            }
        names.push_back(fmt::format("in{} = {}", i, name));
    }
    return names.empty() ? "" : " (" + join(names) + ")";
}

const char* fusion_name(FusionLevel f) {
    switch (f) {
        case FusionLevel::none: return "none";
        case FusionLevel::registers: return "registers";
        case FusionLevel::shared: return "shared";
    }
    return "?";
}

const char* mm_row_op_name(int op) {
    switch (op) {
        case ANVIL_MM_ROW_SOFTMAX: return "softmax";
        case ANVIL_MM_ROW_LAYERNORM: return "layernorm";
        case ANVIL_MM_ROW_RMSNORM: return "rmsnorm";
    }
    return "none";
}

std::string human_bytes(int64_t b) {
    return b < 1024 ? fmt::format("{} B", b) : fmt::format("{} B ({:.1f} KiB)", b, b / 1024.0);
}

}  // namespace

std::string dump_model(const Model& m) {
    std::string o = fmt::format("model {} ({}): {} inputs, {} params, {} nodes, outputs [{}]\n", m.name, m.path,
                                m.inputs.size(), m.params.size(), m.nodes.size(), join(m.outputs));
    for (const TensorDecl& t : m.inputs)
        o += fmt::format("  input  {} : {} {}\n", t.name, dtype_name(t.dtype), shape_str(t.shape));
    for (const TensorDecl& t : m.params)
        o += fmt::format("  param  {} : {} {}\n", t.name, dtype_name(t.dtype), shape_str(t.shape));
    for (const NodeDecl& n : m.nodes)
        o += fmt::format("  node   {} = {}({}){}\n", n.name, op_name(n.op), join(n.inputs), attrs_str(n.attrs));
    return o;
}

std::string dump_graph(const Graph& g, bool shapes_known) {
    std::string o = fmt::format("graph {}: {} tensors ({} inputs, {} params, {} nodes)\n", g.model_name, g.size(),
                                g.of_role(Role::input).size(), g.of_role(Role::param).size(),
                                g.of_role(Role::node).size());
    auto type = [&](const Value& v) {
        const bool known = shapes_known || v.role != Role::node;
        return known ? fmt::format("{} {}", dtype_name(v.dtype), shape_str(v.shape)) : std::string("? ?");
    };
    for (VertexId v : g.of_role(Role::input))
        o += fmt::format("  input  {} : {}\n", g.value(v).name, type(g.value(v)));
    for (VertexId v : g.of_role(Role::param))
        o += fmt::format("  param  {} : {}{}\n", g.value(v).name, type(g.value(v)),
                         g.value(v).fold ? " = fold: " + describe_fold(*g.value(v).fold) : "");
    for (VertexId v : g.topological_order()) {
        const Value& val = g.value(v);
        if (val.role != Role::node) continue;
        std::vector<std::string> operands;
        for (VertexId u : g.operands(v)) operands.push_back(g.value(u).name);
        o += fmt::format("  node   {} = {}({}){} : {}\n", val.name, op_name(val.op), join(operands),
                         attrs_str(val.attrs), type(val));
    }
    std::vector<std::string> outs;
    for (VertexId v : g.outputs) outs.push_back(g.value(v).name);
    o += fmt::format("  outputs {}\n", join(outs));
    return o;
}

std::string epilogue_program(const AnvilEpilogue& e) {
    std::string o;
    for (int k = 0; k < e.nsteps; ++k)
        o += fmt::format("{}v{} = {}", k ? "; " : "", k + 1, step_str(e.steps[k]));
    return o;
}

std::string dump_tile_graph(const TileGraph& tg) {
    int64_t tiles = 0;
    for (const ROp& op : tg.rops) tiles += op.tiles;
    std::string o = fmt::format("tile graph {}: {} rOps, {} tiles, arena {}\n", tg.model_name, tg.rops.size(), tiles,
                                human_bytes(tg.arena_bytes));
    const std::vector<ArenaTensorMap> maps = arena_tensor_maps(tg);
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        const ROp& op = tg.rops[r];
        o += fmt::format("  rop {} {}: kind {}, variant {}, tiles {}, fusion {}", r, op.name, task_kind_name(op.kind),
                         variant_of(op), op.tiles, fusion_name(op.fusion));
        if (const int64_t at = tensor_map_at(maps, static_cast<int>(r), MapOperand::a))
            o += fmt::format(", A by TMA (map at arena byte {})", at);
        if (const int64_t at = tensor_map_at(maps, static_cast<int>(r), MapOperand::b))
            o += fmt::format(", B by TMA (map at arena byte {})", at);
        if (op.split_k > 1) o += fmt::format(", K in {} slices", op.split_k);
        if (!op.fused.empty()) {
            std::vector<std::string> members;
            for (VertexId v : op.fused) members.push_back(tg.buffers[v].name);
            o += fmt::format(", fused [{}]", join(members));
        }
        if (op.epilogue.nsteps > 0)
            o += fmt::format(", epilogue {{{}}}{}", epilogue_program(op.epilogue), input_names(tg, op.epilogue));
        if (const auto* mm = std::get_if<MatmulParams>(&op.params); mm && mm->row_op != ANVIL_MM_ROW_NONE) {
            o += fmt::format(", row op {}", mm_row_op_name(mm->row_op));
            if (op.row_epilogue.nsteps > 0)
                o += fmt::format(", row epilogue {{{}}}{}", epilogue_program(op.row_epilogue),
                                 input_names(tg, op.row_epilogue));
        }
        o += "\n";
    }
    return o;
}

std::string dump_schedule(const Schedule& s) {
    // Where each task runs: its launch and block.
    std::vector<int> launch_of(s.tasks.size(), -1), block_of(s.tasks.size(), -1);
    size_t blocks = 0, deps = 0;
    for (size_t l = 0; l < s.launches.size(); ++l) {
        blocks += s.launches[l].queues.size();
        for (size_t b = 0; b < s.launches[l].queues.size(); ++b)
            for (int t : s.launches[l].queues[b]) launch_of[t] = static_cast<int>(l), block_of[t] = static_cast<int>(b);
    }
    for (const Task& t : s.tasks) deps += t.deps.size() + t.waits.size();
    std::string o = fmt::format("schedule {}: policy {}, target {} ({} SMs)\n", s.tiles.model_name, s.policy,
                                s.gpu.name, s.gpu.sm_count);
    o += fmt::format("  launches {}, blocks {}, tasks {}, dependencies {}, threads per block {}\n",
                     s.launches.size(), blocks, s.tasks.size(), deps, s.threads_per_block);
    const std::vector<std::string> kernels = launch_kernels(s);
    for (size_t l = 0; l < s.launches.size(); ++l) {
        size_t tasks = 0;
        for (const auto& q : s.launches[l].queues) tasks += q.size();
        o += fmt::format("  launch {} {}: kernel {}, {} blocks, {} tasks\n", l, s.launches[l].name, kernels[l],
                         s.launches[l].queues.size(), tasks);
    }
    struct Placement {
        size_t tasks = 0, deps = 0;
        std::set<int> launches;
        std::set<std::pair<int, int>> blocks;  // (launch, block)
    };
    std::vector<Placement> per_rop(s.tiles.rops.size());
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        Placement& p = per_rop[s.tasks[t].rop];
        ++p.tasks;
        p.deps += s.tasks[t].deps.size() + s.tasks[t].waits.size();
        p.launches.insert(launch_of[t]);
        p.blocks.insert({launch_of[t], block_of[t]});
    }
    for (size_t r = 0; r < per_rop.size(); ++r) {
        const Placement& p = per_rop[r];
        std::vector<std::string> launches;
        for (int l : p.launches) launches.push_back(std::to_string(l));
        o += fmt::format("  rop {} {}: {} tasks on {} blocks, launch {}, {} dependencies\n", r, s.tiles.rops[r].name,
                         p.tasks, p.blocks.size(), join(launches), p.deps);
    }
    return o;
}

std::string dump_stage(Stage stage, const Compilation& c) {
    switch (stage) {
        case Stage::load: return dump_model(*c.model);
        case Stage::graph: return dump_graph(*c.graph, false);
        case Stage::shapes: return dump_graph(*c.graph, true);
        case Stage::fold: return dump_graph(*c.folded, true);
        case Stage::decompose:
        case Stage::fuse: return dump_tile_graph(*c.tiles);
        case Stage::variants: {
            if (c.candidates.size() == 1) return dump_tile_graph(c.candidates.front());
            std::string o;
            for (size_t i = 0; i < c.candidates.size(); ++i)
                o += fmt::format("candidate {} of {}: ", i + 1, c.candidates.size()) +
                     dump_tile_graph(c.candidates[i]);
            return o;
        }
        case Stage::policy:
        case Stage::verify: return dump_schedule(*c.schedule);
        case Stage::emit: return c.source;
        case Stage::compile: {
            if (c.host_library)
                return fmt::format("host library {}{}\n", c.host_library->path, c.host_library->cached ? " (cached)" : "");
            std::string o = fmt::format("CUBIN for {}: {} bytes{}\n", c.cubin->arch, c.cubin->cubin.size(),
                                        c.cubin->cached ? " (cached)" : "");
            for (const KernelResources& k : c.cubin->kernels)
                o += fmt::format("  kernel {}: {} registers, {} B smem, {} B spill stores, {} B spill loads\n", k.name,
                                 k.registers, k.smem_bytes, k.spill_stores, k.spill_loads);
            return o;
        }
    }
    throw InternalError("dump: unknown stage");
}

}  // namespace anvil
