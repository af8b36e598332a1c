#include "frontend/blocked_weights.h"

#include <memory>

#include "anvil/error.h"

#include "frontend/affine_fold.h"
#include "frontend/batch1_matmul.h"
#include "frontend/graph_rewrite.h"
#include "frontend/norm_fold.h"
#include "frontend/op_table.h"

namespace anvil {

namespace {

// Whether matmul m may read its weight blocked by `block` columns.
bool blockable(const Graph& g, VertexId m, int64_t block, const std::vector<bool>& is_output) {
    if (!constant_weight_matmul(g, m)) return false;
    const Value& mv = g.value(m);
    if (mv.attrs.get_bool("transpose_a") || mv.attrs.get_bool("transpose_b") || mv.attrs.has(kMatmulNormAttr))
        return false;
    const std::vector<VertexId> ops = g.operands(m);
    const Value& x = g.value(ops[0]);
    const Value& w = g.value(ops[1]);
    const int64_t N = w.shape[1];
    return x.shape.size() == 2 && x.shape[0] == 1 && mv.shape == Shape({1, N}) && N % block == 0 && N / block >= 2 &&
           g.consumers(ops[1]).size() == 1 && !is_output[ops[1]];
}

// A reshape of v to `shape` named `name`, placed where v was declared.
Value reshaped(const Value& v, const Shape& shape, const std::string& name) {
    Value r = v;
    r.name = name;
    r.role = Role::node;
    r.op = Op::reshape;
    r.attrs = Attrs{};
    r.attrs.values["shape"] = std::vector<int64_t>(shape.begin(), shape.end());
    r.attr_locs.clear();
    r.input_locs = {v.loc};
    r.init = InitSpec{};
    r.fold.reset();
    r.shape = shape;
    return r;
}

bool pointwise(const Value& v, OpClass cls) { return v.role == Role::node && op_def(v.op).cls == cls; }

// The pointwise ops after matmul m, each the one reader of the one before
// (the bias add, the activation, the residual add), that the blocked GEMV
// takes along on its [N / B, 1, B] shape, so that they still fuse into its
// epilogue: a reshape between them would not. A binary step's other operand
// is one element (broadcast as it is) or N of them ([1, N] or [N], read
// through a reshape to the blocks: a free view). A node another matmul's
// chain has taken (a GLU's mul of two GEMVs) ends the chain: that matmul
// gives it the row instead.
std::vector<VertexId> pointwise_chain(const Graph& g, VertexId m, const std::vector<bool>& is_output,
                                      const std::vector<bool>& taken) {
    const Shape row = g.value(m).shape;
    std::vector<VertexId> chain;
    for (VertexId cur = m; !is_output[cur] && g.consumers(cur).size() == 1;) {
        const VertexId c = g.consumers(cur).front();
        const Value& cv = g.value(c);
        if (cv.shape != row || taken[c]) break;
        if (!pointwise(cv, OpClass::Unary)) {
            const std::vector<VertexId> ops = g.operands(c);
            if (!pointwise(cv, OpClass::Binary) || ops.size() != 2 || ops[0] == ops[1]) break;
            const Shape& other = g.value(ops[0] == cur ? ops[1] : ops[0]).shape;
            if (numel(other) != 1 && other != row && other != Shape{row[1]}) break;
        }
        chain.push_back(c);
        cur = c;
    }
    return chain;
}

}  // namespace

Graph block_gemv_weights(const Graph& graph, int64_t block) {
    ANVIL_CHECK(block >= 1 && (block & (block - 1)) == 0, "block_gemv_weights: a block is a power of two of columns");
    std::vector<bool> is_output(graph.size(), false), taken(graph.size(), false);
    for (VertexId v : graph.outputs) is_output[v] = true;
    GraphRewrite rw(graph);
    bool changed = false;
    for (VertexId m : graph.topological_order()) {
        if (!blockable(graph, m, block, is_output)) continue;
        changed = true;
        const Value& mv = graph.value(m);
        const std::vector<VertexId> ops = graph.operands(m);
        const Value& w = graph.value(ops[1]);
        const int64_t K = w.shape[0], N = w.shape[1];

        ParamFold blocked;
        blocked.part = ParamFold::Part::blocked;
        blocked.channels = block;
        blocked.pieces = {fold_source(w)};
        Value wv = w;
        wv.name = w.name + "+blocked";  // '+' is no name character of the format
        wv.shape = {N / block, K, block};
        wv.fold = std::make_shared<const ParamFold>(blocked);
        const int w_id = rw.add(std::move(wv));

        const Shape blocks{N / block, 1, block};
        Value bv = mv;  // the batched GEMV: x broadcast over the blocks
        bv.name = mv.name + "+blocks";
        bv.shape = blocks;
        int last = rw.add(std::move(bv), {static_cast<int>(ops[0]), w_id});
        VertexId prev = m;
        for (VertexId c : pointwise_chain(graph, m, is_output, taken)) {
            taken[c] = true;
            Value cv = graph.value(c);
            cv.name += "+blocks";
            cv.shape = blocks;
            std::vector<int> operands;
            for (VertexId o : graph.operands(c)) {
                const Value& ov = graph.value(o);
                if (o == prev) operands.push_back(last);
                else if (numel(ov.shape) == 1) operands.push_back(static_cast<int>(o));
                else operands.push_back(rw.add(reshaped(ov, blocks, cv.name + "+" + ov.name), {static_cast<int>(o)}));
            }
            last = rw.add(std::move(cv), operands);
            rw.drop(static_cast<int>(prev));
            prev = c;
        }
        // The last value as the row it was, under its name, for its readers.
        const Value& pv = graph.value(prev);
        Value rv = reshaped(pv, pv.shape, pv.name);
        rw.replace(static_cast<int>(prev), GraphRewrite::Node{rv, {last}});
    }
    return changed ? rw.build("block_gemv_weights") : graph;
}

}  // namespace anvil
