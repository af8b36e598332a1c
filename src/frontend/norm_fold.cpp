#include "frontend/norm_fold.h"

#include <map>
#include <optional>
#include <utility>

#include "frontend/affine_fold.h"
#include "frontend/batch1_matmul.h"
#include "frontend/graph_rewrite.h"

namespace anvil {

namespace {

// Weight w with its K rows scaled by the norm's gamma (a param fold), added
// to the rewrite once per weight and K axis however many of the norm's
// readers share it (gate and up may read one weight); its id.
class GammaScaledWeights {
public:
    GammaScaledWeights(const Graph& g, GraphRewrite& rw, VertexId norm)
        : g_(g), rw_(rw), norm_(g.value(norm)), gamma_(g.value(g.operands(norm)[1])) {}

    // The scaled copy of the weight matmul c reads.
    int of(VertexId c) {
        const VertexId w_id = g_.operands(c)[1];
        const bool transpose_b = g_.value(c).attrs.get_bool("transpose_b");
        const auto key = std::make_pair(w_id, transpose_b);
        if (auto it = ids_.find(key); it != ids_.end()) return it->second;
        const Value& w = g_.value(w_id);
        ParamFold f;
        f.part = ParamFold::Part::weight;
        f.source = w.name;
        f.source_fold = w.fold;
        f.channel_axis = transpose_b ? 1 : 0;  // the weight's K axis
        f.channels = gamma_.shape[0];
        f.steps = {AffineStep{AffineStepKind::mul, norm_.name, {ChannelFactor{gamma_.name, 0}}, 0}};
        Value wv = w;
        // '+' is no name character of the format: no clash with the model's names.
        wv.name = w.name + "+" + norm_.name + (transpose_b ? "+T" : "");
        wv.fold = std::make_shared<const ParamFold>(f);
        return ids_[key] = rw_.add(std::move(wv));
    }

private:
    const Graph& g_;
    GraphRewrite& rw_;
    const Value& norm_;
    const Value& gamma_;
    std::map<std::pair<VertexId, bool>, int> ids_;
};

std::vector<bool> output_mask(const Graph& g) {
    std::vector<bool> is_output(g.size(), false);
    for (VertexId v : g.outputs) is_output[v] = true;
    return is_output;
}

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
    const std::vector<bool> is_output = output_mask(graph);
    GraphRewrite rw(graph);
    bool changed = false;
    for (VertexId n = 0; n < graph.size(); ++n) {
        if (!foldable(graph, n, is_output)) continue;
        changed = true;
        const Value& nv = graph.value(n);
        const VertexId x = graph.operands(n)[0];
        GammaScaledWeights scaled(graph, rw, n);
        for (VertexId c : graph.consumers(n)) {
            const int w_id = scaled.of(c);
            GraphRewrite::Node& m = rw.node(static_cast<int>(c));
            m.operands = {static_cast<int>(x), w_id};
            m.value.attrs.values[kMatmulRmsEpsAttr] = nv.attrs.get_float("eps");
        }
        rw.drop(static_cast<int>(n));
    }
    return changed ? rw.build("fold_rmsnorm_into_matmuls") : graph;
}

namespace {

// Whether layernorm or rmsnorm n can live in the GEMM tiles that read it.
bool tile_foldable(const Graph& g, VertexId n, const std::vector<bool>& is_output) {
    const Value& nv = g.value(n);
    if (nv.role != Role::node || (nv.op != Op::layernorm && nv.op != Op::rmsnorm) || is_output[n] ||
        boost::out_degree(n, g.g) == 0)
        return false;
    const std::vector<VertexId> ops = g.operands(n);
    const Value& x = g.value(ops[0]);
    if (!is_float(x.dtype) || x.dtype != nv.dtype || x.shape.size() < 2) return false;
    for (size_t i = 1; i < ops.size(); ++i) {  // gamma (and beta): over x's last axis alone
        const Value& p = g.value(ops[i]);
        if (ops[i] == ops[0] || p.role != Role::param || p.fold || !is_float(p.dtype) || p.shape != Shape{x.shape.back()})
            return false;
    }
    for (VertexId c : g.consumers(n)) {
        const Value& cv = g.value(c);
        if (!constant_weight_matmul(g, c) || cv.attrs.get_bool("transpose_a") || cv.attrs.has(kMatmulRmsEpsAttr) ||
            cv.attrs.has(kMatmulNormAttr) || g.operands(c)[0] != n || g.operands(c)[1] == n)
            return false;
    }
    return true;
}

// The bias param of an add that is matmul c's one reader, if any: beta @ W joins it.
std::optional<std::pair<VertexId, int>> bias_add_after(const Graph& g, VertexId c, int64_t n_cols,
                                                       const std::vector<bool>& is_output) {
    if (is_output[c] || boost::out_degree(c, g.g) != 1) return std::nullopt;
    const VertexId a = g.consumers(c).front();
    const Value& av = g.value(a);
    const std::vector<VertexId> ops = g.operands(a);
    if (av.role != Role::node || av.op != Op::add || ops.size() != 2 || ops[0] == ops[1] || av.shape != g.value(c).shape ||
        av.dtype != g.value(c).dtype)
        return std::nullopt;
    const int k = ops[0] == c ? 1 : 0;
    const Value& b = g.value(ops[static_cast<size_t>(k)]);
    if (b.role != Role::param || !is_float(b.dtype) || b.shape != Shape{n_cols}) return std::nullopt;
    return std::make_pair(a, k);
}

}  // namespace

Graph fold_norms_into_gemm_tiles(const Graph& graph) {
    const std::vector<bool> is_output = output_mask(graph);
    GraphRewrite rw(graph);
    bool changed = false;
    for (VertexId n = 0; n < graph.size(); ++n) {
        if (!tile_foldable(graph, n, is_output)) continue;
        changed = true;
        const Value& nv = graph.value(n);
        const std::vector<VertexId> nops = graph.operands(n);
        const bool layernorm = nv.op == Op::layernorm;
        GammaScaledWeights scaled(graph, rw, n);
        for (VertexId c : graph.consumers(n)) {
            const Value& cv = graph.value(c);
            const Value& w = graph.value(graph.operands(c)[1]);
            const bool tb = cv.attrs.get_bool("transpose_b");
            const int k_axis = tb ? 1 : 0;
            const int w_id = scaled.of(c);

            Value mm = cv;
            mm.attrs.values[kMatmulNormAttr] = std::string(layernorm ? "layernorm" : "rmsnorm");
            mm.attrs.values[kMatmulNormEpsAttr] = nv.attrs.get_float("eps");
            GraphRewrite::Node mm_node{mm, {static_cast<int>(nops[0]), w_id}};
            if (!layernorm) {
                rw.replace(static_cast<int>(c), std::move(mm_node));
                continue;
            }
            // beta @ W: into the bias added next, or a bias of its own.
            const int64_t n_cols = w.shape[tb ? 0 : 1];
            const auto add = bias_add_after(graph, c, n_cols, is_output);
            ParamFold bf;
            bf.part = ParamFold::Part::projection;
            bf.channel_axis = k_axis;
            bf.channels = n_cols;
            bf.pieces = {fold_source(w), fold_source(graph.value(nops[2]))};
            Value bp;
            bp.name = cv.name + "+" + nv.name + "+bias";
            bp.role = Role::param;
            bp.shape = {n_cols};
            bp.dtype = cv.dtype;
            bp.loc = cv.loc;
            if (add) {
                const Value& b = graph.value(graph.operands(add->first)[static_cast<size_t>(add->second)]);
                bf.pieces.push_back(fold_source(b));
                bp.dtype = b.dtype;
            }
            bp.fold = std::make_shared<const ParamFold>(bf);
            const int b_id = rw.add(std::move(bp));
            if (add) {
                rw.replace(static_cast<int>(c), std::move(mm_node));
                rw.node(static_cast<int>(add->first)).operands[static_cast<size_t>(add->second)] = b_id;
                continue;
            }
            // No bias to join: the matmul under a new name, then an add of the
            // projected beta under the matmul's, so its readers stay as they are.
            mm_node.value.name = cv.name + "+" + nv.name;
            const int mm_id = rw.add(std::move(mm_node.value), mm_node.operands);
            Value av = cv;
            av.op = Op::add;
            av.attrs = Attrs{};
            av.attr_locs.clear();
            av.input_locs = {cv.loc, cv.loc};
            rw.replace(static_cast<int>(c), GraphRewrite::Node{av, {mm_id, b_id}});
        }
        rw.drop(static_cast<int>(n));
    }
    return changed ? rw.build("fold_norms_into_gemm_tiles") : graph;
}

}  // namespace anvil
