// Model -> Graph: names become edges, cycles are refused, and the Graph's
// queries (operands, consumers, a deterministic topological order).
#include "frontend/graph.h"
#include "frontend/load_model.h"
#include "frontend/infer_shapes.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>

namespace anvil {

namespace {

const char* role_name(Role r) {
    switch (r) {
        case Role::input: return "input";
        case Role::param: return "param";
        case Role::node: return "node";
    }
    return "?";
}

std::string subject_of(const Value& v) { return std::string(role_name(v.role)) + " '" + v.name + "'"; }

// Kahn's algorithm, smallest vertex id first among the ready ones. Returns
// the vertices it could order; fewer than all means a cycle.
std::vector<VertexId> kahn(const GraphStore& g) {
    const size_t n = boost::num_vertices(g);
    std::vector<size_t> waiting(n);
    for (VertexId v = 0; v < n; ++v) waiting[v] = boost::in_degree(v, g);
    std::priority_queue<VertexId, std::vector<VertexId>, std::greater<VertexId>> ready;
    for (VertexId v = 0; v < n; ++v)
        if (waiting[v] == 0) ready.push(v);
    std::vector<VertexId> order;
    while (!ready.empty()) {
        VertexId v = ready.top();
        ready.pop();
        order.push_back(v);
        for (auto [e, end] = boost::out_edges(v, g); e != end; ++e)
            if (--waiting[boost::target(*e, g)] == 0) ready.push(boost::target(*e, g));
    }
    return order;
}

// Called when Kahn left vertices over: each of them has a producer that is
// also left over, so walking producers from one of them must come back to a
// vertex already seen. Returns that cycle in data-flow order, starting at
// its smallest vertex id.
std::vector<VertexId> find_cycle(const Graph& graph, const std::vector<VertexId>& ordered) {
    std::vector<bool> done(graph.size(), false);
    for (VertexId v : ordered) done[v] = true;
    VertexId cur = 0;
    while (done[cur]) ++cur;
    std::vector<VertexId> path;
    std::map<VertexId, size_t> seen;
    while (!seen.count(cur)) {
        seen[cur] = path.size();
        path.push_back(cur);
        for (VertexId p : graph.operands(cur))
            if (!done[p]) {
                cur = p;
                break;
            }
    }
    std::vector<VertexId> cycle(path.begin() + static_cast<long>(seen[cur]), path.end());
    std::reverse(cycle.begin(), cycle.end());  // producers before consumers
    std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
    return cycle;
}

SourceLoc operand_loc(const Value& node, size_t k) {
    return k < node.input_locs.size() ? node.input_locs[k] : node.loc;
}

}  // namespace

std::vector<VertexId> Graph::operands(VertexId v) const {
    std::vector<VertexId> out(boost::in_degree(v, g));
    for (auto [e, end] = boost::in_edges(v, g); e != end; ++e) {
        const size_t k = static_cast<size_t>(g[*e].index);
        ANVIL_CHECK(k < out.size(), "operand index out of range at '" + g[v].name + "'");
        out[k] = boost::source(*e, g);
    }
    return out;
}

// Each consumer once (a node may use the same tensor twice), by vertex id.
std::vector<VertexId> Graph::consumers(VertexId v) const {
    std::vector<VertexId> out;
    for (auto [e, end] = boost::out_edges(v, g); e != end; ++e) out.push_back(boost::target(*e, g));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::optional<VertexId> Graph::find(const std::string& name) const {
    for (VertexId v = 0; v < size(); ++v)
        if (g[v].name == name) return v;
    return std::nullopt;
}

std::vector<VertexId> Graph::topological_order() const {
    std::vector<VertexId> order = kahn(g);
    ANVIL_CHECK(order.size() == size(), "topological_order on a graph with a cycle");
    return order;
}

std::vector<VertexId> Graph::of_role(Role r) const {
    std::vector<VertexId> out;
    for (VertexId v = 0; v < size(); ++v)
        if (g[v].role == r) out.push_back(v);
    return out;
}

Graph build_graph(const Model& model) {
    Graph graph;
    graph.model_name = model.name;
    graph.model_path = model.path;
    graph.seed = model.seed;

    std::map<std::string, VertexId> ids;
    auto add = [&](Value v) {
        auto it = ids.find(v.name);
        if (it != ids.end())
            user_error(v.loc, subject_of(v),
                       "the name is already used by the " + std::string(role_name(graph.g[it->second].role)) +
                           " declared at " + graph.g[it->second].loc.str());
        ids[v.name] = boost::add_vertex(std::move(v), graph.g);
    };
    for (Role role : {Role::input, Role::param})
        for (const TensorDecl& t : role == Role::input ? model.inputs : model.params) {
            Value v;
            v.name = t.name;
            v.role = role;
            v.shape = t.shape;
            v.dtype = t.dtype;
            v.init = t.init;
            v.loc = t.loc;
            add(std::move(v));
        }
    for (const NodeDecl& n : model.nodes) {
        Value v;
        v.name = n.name;
        v.role = Role::node;
        v.op = n.op;
        v.attrs = n.attrs;
        v.dtype = n.dtype.value_or(model.dtype);
        v.explicit_dtype = n.dtype.has_value();
        v.loc = n.loc;
        v.input_locs = n.input_locs;
        v.attr_locs = n.attr_locs;
        add(std::move(v));
    }

    auto undeclared = [](const std::string& name) {
        return "'" + name + "' is declared nowhere (no input, param or node has that name)";
    };
    for (const NodeDecl& n : model.nodes) {
        const VertexId dst = ids.at(n.name);
        for (size_t k = 0; k < n.inputs.size(); ++k) {
            auto src = ids.find(n.inputs[k]);
            if (src == ids.end())
                user_error(operand_loc(graph.g[dst], k), "node '" + n.name + "'", "input " + undeclared(n.inputs[k]));
            boost::add_edge(src->second, dst, Operand{static_cast<int>(k)}, graph.g);
        }
    }
    for (size_t k = 0; k < model.outputs.size(); ++k) {
        auto it = ids.find(model.outputs[k]);
        if (it == ids.end())
            user_error(k < model.output_locs.size() ? model.output_locs[k] : SourceLoc{model.path, 0, 0}, "",
                       "output " + undeclared(model.outputs[k]));
        graph.outputs.push_back(it->second);
    }
    if (graph.outputs.empty())
        user_error(SourceLoc{model.path, 0, 0}, "", "'outputs' is empty (a model needs at least one output)");

    // i32 holds ids: it may only feed the ids operand of embedding.
    for (VertexId v = 0; v < graph.size(); ++v) {
        if (graph.g[v].dtype != DType::i32) continue;
        for (auto [e, end] = boost::out_edges(v, graph.g); e != end; ++e) {
            const Value& user = graph.g[boost::target(*e, graph.g)];
            const int k = graph.g[*e].index;
            if (user.op != Op::embedding || k != 1)
                user_error(operand_loc(user, static_cast<size_t>(k)), subject_of(user),
                           "input '" + graph.g[v].name +
                               "' is i32; only the ids operand of embedding (its second input) takes i32 values");
        }
    }

    std::vector<VertexId> order = kahn(graph.g);
    if (order.size() != graph.size()) {
        std::vector<VertexId> cycle = find_cycle(graph, order);
        std::string names;
        for (VertexId v : cycle) names += graph.g[v].name + " -> ";
        names += graph.g[cycle.front()].name;
        const Value& first = graph.g[cycle.front()];
        user_error(first.loc, subject_of(first), "the graph has a cycle: " + names);
    }
    return graph;
}

Graph load_graph(const std::string& path) { return infer_shapes(build_graph(load_model(path))); }

}  // namespace anvil
