#include "frontend/norm_fold.h"

#include "frontend/affine_fold.h"
#include "frontend/batch1_matmul.h"
#include "frontend/graph_rewrite.h"

namespace anvil {

namespace {

// Whether rmsnorm n can live in its readers.
bool foldable(const Graph& g, VertexId n, const std::vector<bool>& is_output) {
    const Value& nv = g.value(n);
    if (nv.role != Role::node || nv.op != Op::rmsnorm || is_output[n] || boost::out_degree(n, g.g) == 0) return false;
    const std::vector<VertexId> ops = g.operands(n);
    const Value& x = g.value(ops[0]);
    const Value& gamma = g.value(ops[1]);
    if (ops[0] == ops[1] || !is_float(x.dtype) || gamma.role != Role::param || gamma.fold || !is_float(gamma.dtype) ||
        gamma.shape != Shape{x.shape.back()})
        return false;
    for (VertexId c : g.consumers(n)) {
        const Value& cv = g.value(c);
        if (!constant_weight_matmul(g, c) || !one_output_row(cv.shape) || cv.attrs.get_bool("transpose_a") ||
            cv.attrs.has(kMatmulRmsEpsAttr) || g.operands(c)[0] != n || g.operands(c)[1] == n)
            return false;
    }
    return true;
}

}  // namespace

Graph fold_rmsnorm_into_matmuls(const Graph& graph) {
    std::vector<bool> is_output(graph.size(), false);
    for (VertexId v : graph.outputs) is_output[v] = true;
    GraphRewrite rw(graph);
    bool changed = false;
    for (VertexId n = 0; n < graph.size(); ++n) {
        if (!foldable(graph, n, is_output)) continue;
        changed = true;
        const Value& nv = graph.value(n);
        const VertexId x = graph.operands(n)[0];
        const Value& gamma = graph.value(graph.operands(n)[1]);
        for (VertexId c : graph.consumers(n)) {
            const Value& w = graph.value(graph.operands(c)[1]);
            const bool tb = graph.value(c).attrs.get_bool("transpose_b");
            ParamFold f;
            f.part = ParamFold::Part::weight;
            f.source = w.name;
            f.source_fold = w.fold;
            f.channel_axis = tb ? 1 : 0;  // the weight's K axis
            f.channels = gamma.shape[0];
            f.steps = {AffineStep{AffineStepKind::mul, nv.name, {ChannelFactor{gamma.name, 0}}, 0}};
            Value wv = w;
            wv.name = w.name + "+" + nv.name;  // '+' is no name character of the format: no clash
            wv.fold = std::make_shared<const ParamFold>(f);
            const int w_id = rw.add(std::move(wv));
            GraphRewrite::Node& m = rw.node(static_cast<int>(c));
            m.operands = {static_cast<int>(x), w_id};
            m.value.attrs.values[kMatmulRmsEpsAttr] = nv.attrs.get_float("eps");
        }
        rw.drop(static_cast<int>(n));
    }
    return changed ? rw.build("fold_rmsnorm_into_matmuls") : graph;
}

}  // namespace anvil
