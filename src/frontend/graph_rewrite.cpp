#include "frontend/graph_rewrite.h"

#include <string>
#include <unordered_set>

#include "anvil/error.h"

namespace anvil {

GraphRewrite::GraphRewrite(const Graph& graph) : graph_(graph) {
    for (VertexId v = 0; v < graph.size(); ++v) {
        Node n{graph.value(v), {}};
        for (VertexId u : graph.operands(v)) n.operands.push_back(static_cast<int>(u));
        nodes_.push_back(std::move(n));
    }
}

int GraphRewrite::add(Value value, std::vector<int> operands) {
    nodes_.push_back(Node{std::move(value), std::move(operands)});
    return static_cast<int>(nodes_.size() - 1);
}

Graph GraphRewrite::build(const char* pass) const {
    const size_t n = graph_.size();
    std::vector<std::optional<Node>> nodes = nodes_;
    std::vector<bool> used(nodes.size(), false);
    for (const auto& nn : nodes)
        if (nn)
            for (int u : nn->operands) used[static_cast<size_t>(u)] = true;
    for (VertexId v : graph_.outputs) used[v] = true;
    for (VertexId v = 0; v < n; ++v) {
        const Value& val = graph_.value(v);
        const bool source = val.role != Role::node || val.op == Op::constant;
        if (nodes[v] && source && !used[v] && boost::out_degree(v, graph_.g) > 0) nodes[v].reset();
    }

    // Tensors are found by name downstream (buffers, folds, I/O): two of one
    // name would silently share or shadow each other's values.
    std::unordered_set<std::string> names;
    for (const auto& nn : nodes)
        if (nn)
            ANVIL_CHECK(names.insert(nn->value.name).second,
                        std::string(pass) + ": two tensors are named '" + nn->value.name + "'");

    Graph out;
    out.model_name = graph_.model_name;
    out.model_path = graph_.model_path;
    out.seed = graph_.seed;
    std::vector<std::optional<VertexId>> id(nodes.size());
    for (size_t v = 0; v < nodes.size(); ++v)
        if (nodes[v]) id[v] = boost::add_vertex(nodes[v]->value, out.g);
    for (size_t v = 0; v < nodes.size(); ++v) {
        if (!nodes[v]) continue;
        const auto& operands = nodes[v]->operands;
        for (size_t k = 0; k < operands.size(); ++k) {
            const auto& src = id[static_cast<size_t>(operands[k])];
            ANVIL_CHECK(src.has_value(), std::string(pass) + ": an operand of '" + nodes[v]->value.name + "' was dropped");
            boost::add_edge(*src, *id[v], Operand{static_cast<int>(k)}, out.g);
        }
    }
    for (VertexId v : graph_.outputs) {
        ANVIL_CHECK(id[v].has_value(), std::string(pass) + ": output '" + graph_.value(v).name + "' was dropped");
        out.outputs.push_back(*id[v]);
    }
    return out;
}

}  // namespace anvil
