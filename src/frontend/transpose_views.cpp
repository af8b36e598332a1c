#include "frontend/transpose_views.h"

namespace anvil {

namespace {

bool is_op(const Graph& g, VertexId v, Op op) {
    const Value& val = g.value(v);
    return val.role == Role::node && val.op == op;
}

// Whether transpose t's operand can be stored in t's order by its matmul.
bool store_view(const Graph& g, VertexId t, const std::vector<bool>& is_output) {
    const VertexId x = g.operands(t)[0];
    return is_op(g, x, Op::matmul) && !is_output[x] && g.consumers(x).size() == 1;
}

// Whether every reader of transpose t is a matmul that can read it permuted.
bool read_view(const Graph& g, VertexId t, const std::vector<bool>& is_output) {
    const std::vector<VertexId> readers = g.consumers(t);
    if (is_output[t] || readers.empty()) return false;
    for (VertexId c : readers)
        if (!is_op(g, c, Op::matmul)) return false;
    return true;
}

}  // namespace

Graph transpose_views(const Graph& graph) {
    std::vector<bool> is_output(graph.size(), false);
    for (VertexId v : graph.outputs) is_output[v] = true;
    Graph g = graph;
    bool changed = false;
    for (VertexId t : graph.topological_order()) {
        if (!is_op(graph, t, Op::transpose)) continue;
        // An operand that is itself a view (a marked transpose) is not
        // contiguous in its own order: a second permutation of it would
        // need its strides, and a matmul reading it is the only reader
        // that takes strides. Such chains stay copies.
        const VertexId x = graph.operands(t)[0];
        if (g.value(x).attrs.has(kTransposeViewAttr)) continue;
        if (graph.value(x).dtype != graph.value(t).dtype) continue;  // a converting copy
        const char* kind = store_view(graph, t, is_output)  ? kTransposeStoreView
                           : read_view(graph, t, is_output) ? kTransposeReadView
                                                            : nullptr;
        if (!kind) continue;
        g.g[t].attrs.values[kTransposeViewAttr] = std::string(kind);
        changed = true;
    }
    return changed ? g : graph;
}

}  // namespace anvil
