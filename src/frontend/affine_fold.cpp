// fold_affine_chains: conv/matmul + batchnorm and constant mul/add/sub/div
// become the producer alone with folded params (see affine_fold.h).
#include "frontend/affine_fold.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "anvil/error.h"
#include "frontend/graph_rewrite.h"

namespace anvil {

const char* affine_step_name(AffineStepKind k) {
    switch (k) {
        case AffineStepKind::batchnorm: return "batchnorm";
        case AffineStepKind::mul: return "mul";
        case AffineStepKind::add: return "add";
        case AffineStepKind::sub: return "sub";
        case AffineStepKind::sub_from: return "sub_from";
        case AffineStepKind::div: return "div";
    }
    return "?";
}

namespace {

// Whether a tensor of shape `s`, broadcast against `out`, varies at most
// along `axis` of `out` (so one value per output channel describes it).
bool per_channel(const Shape& s, const Shape& out, int axis) {
    if (s.size() > out.size()) return false;
    const size_t off = out.size() - s.size();
    for (size_t i = 0; i < s.size(); ++i)
        if (s[i] != 1 && (static_cast<int>(off + i) != axis || s[i] != out[off + i])) return false;
    return true;
}

// A float param or a constant node, as a chain step's factor.
std::optional<ChannelFactor> constant_factor(const Graph& g, VertexId u) {
    const Value& v = g.value(u);
    if (v.role == Role::param && is_float(v.dtype) && !v.fold) return ChannelFactor{v.name, 0};
    if (v.role == Role::node && v.op == Op::constant) return ChannelFactor{"", v.attrs.get_float("value")};
    return std::nullopt;
}

// One chain found: producer -> chain[0] -> ... -> chain.back() (the last node).
struct Chain {
    VertexId producer = 0;
    VertexId weight = 0;
    std::optional<VertexId> bias;  // a conv's own bias
    int weight_axis = 0;
    int64_t channels = 0;
    std::vector<VertexId> nodes;  // the folded nodes, in order
    std::vector<AffineStep> steps;
    bool additive = false;  // the folded map has a shift: a bias is needed
    bool scales = false;    // the folded map has a scale: the weight changes
};

// The step that consumer `n` applies to `cur` (producer's output channel axis
// `axis`), or none when it is not an affine map on constants.
std::optional<AffineStep> step_of(const Graph& g, VertexId n, VertexId cur, int axis, int rank) {
    const Value& nv = g.value(n);
    const std::vector<VertexId> ops = g.operands(n);
    const Shape& out = g.value(cur).shape;
    AffineStep st;
    st.node = nv.name;
    if (nv.op == Op::batchnorm) {
        // batchnorm's channel is axis 1: a matmul's columns only for [M, N].
        if (ops[0] != cur || axis != 1 || (rank != 4 && rank != 2)) return std::nullopt;
        for (size_t k = 1; k < ops.size(); ++k) {
            if (ops[k] == cur) return std::nullopt;
            // Its statistics are [C] along axis 1 by definition (infer_shapes checked them).
            auto f = constant_factor(g, ops[k]);
            if (!f || numel(g.value(ops[k]).shape) != out[1]) return std::nullopt;
            st.factors.push_back(*f);
        }
        st.kind = AffineStepKind::batchnorm;
        st.eps = nv.attrs.get_float("eps");
        return st;
    }
    if (nv.op != Op::add && nv.op != Op::sub && nv.op != Op::mul && nv.op != Op::div) return std::nullopt;
    if (ops.size() != 2 || ops[0] == ops[1] || nv.shape != out) return std::nullopt;
    const bool left = ops[0] == cur;
    const VertexId other = left ? ops[1] : ops[0];
    auto f = constant_factor(g, other);
    if (!f || !per_channel(g.value(other).shape, out, axis)) return std::nullopt;
    st.factors.push_back(*f);
    switch (nv.op) {
        case Op::add: st.kind = AffineStepKind::add; break;
        case Op::mul: st.kind = AffineStepKind::mul; break;
        case Op::sub: st.kind = left ? AffineStepKind::sub : AffineStepKind::sub_from; break;
        case Op::div:
            if (!left) return std::nullopt;  // c / x is not affine
            st.kind = AffineStepKind::div;
            break;
        default: return std::nullopt;
    }
    return st;
}

// The chain that starts at producer `p`, if any step can fold into it.
std::optional<Chain> chain_from(const Graph& g, VertexId p, const std::set<VertexId>& outputs) {
    const Value& pv = g.value(p);
    if (pv.role != Role::node || (pv.op != Op::conv2d && pv.op != Op::matmul)) return std::nullopt;
    const std::vector<VertexId> ops = g.operands(p);
    const Value& w = g.value(ops[1]);
    if (w.role != Role::param || !is_float(w.dtype) || w.fold || ops[0] == ops[1]) return std::nullopt;
    Chain c;
    c.producer = p;
    c.weight = ops[1];
    int axis = 0;
    const int rank = static_cast<int>(pv.shape.size());
    if (pv.op == Op::conv2d) {
        axis = 1;
        c.weight_axis = 0;
        if (ops.size() > 2) {
            const Value& b = g.value(ops[2]);
            if (b.role != Role::param || !is_float(b.dtype) || b.fold || ops[2] == ops[1]) return std::nullopt;
            c.bias = ops[2];
            c.additive = true;
        }
    } else {
        if (w.shape.size() != 2) return std::nullopt;  // a batched weight: channels are not its columns alone
        axis = rank - 1;
        c.weight_axis = pv.attrs.get_bool("transpose_b") ? 0 : 1;
    }
    c.channels = pv.shape[static_cast<size_t>(axis)];
    VertexId cur = p;
    for (;;) {
        if (outputs.count(cur) || boost::out_degree(cur, g.g) != 1) break;
        const VertexId n = g.consumers(cur).front();
        if (g.value(n).dtype != pv.dtype) break;
        auto st = step_of(g, n, cur, axis, rank);
        if (!st) break;
        if (st->kind != AffineStepKind::mul && st->kind != AffineStepKind::div) c.additive = true;
        if (st->kind != AffineStepKind::add && st->kind != AffineStepKind::sub) c.scales = true;
        c.steps.push_back(*st);
        c.nodes.push_back(n);
        cur = n;
    }
    // A matmul's shift alone stays its add: folding would change nothing.
    if (c.steps.empty() || (pv.op == Op::matmul && !c.scales)) return std::nullopt;
    return c;
}

}  // namespace

Graph fold_affine_chains(const Graph& graph) {
    const size_t n = graph.size();
    const std::set<VertexId> outputs(graph.outputs.begin(), graph.outputs.end());
    std::vector<Chain> chains;
    std::vector<bool> taken(n, false);  // a node already in a chain
    for (VertexId v : graph.topological_order()) {
        if (taken[v]) continue;
        auto c = chain_from(graph, v, outputs);
        if (!c) continue;
        taken[v] = true;
        for (VertexId u : c->nodes) taken[u] = true;
        chains.push_back(std::move(*c));
    }
    if (chains.empty()) return graph;

    GraphRewrite rw(graph);
    for (const Chain& c : chains) {
        const Value& p = graph.value(c.producer);
        const Value& w = graph.value(c.weight);
        const VertexId last = c.nodes.back();
        const Value& lv = graph.value(last);

        ParamFold wf;
        wf.part = ParamFold::Part::weight;
        wf.source = w.name;
        wf.channel_axis = c.weight_axis;
        wf.channels = c.channels;
        wf.steps = c.steps;
        int new_w = static_cast<int>(c.weight);  // a shift alone keeps the weight
        if (c.scales) {
            Value wp = w;
            wp.name = w.name + "+" + lv.name;  // '+' is no name character of the format: no clash
            wp.fold = std::make_shared<const ParamFold>(wf);
            new_w = rw.add(std::move(wp));
        }

        int new_b = -1;
        if (c.additive) {
            ParamFold bf = wf;
            bf.part = ParamFold::Part::bias;
            bf.source = c.bias ? graph.value(*c.bias).name : "";
            bf.channel_axis = 0;
            Value bp;
            bp.name = lv.name + "+bias";
            bp.role = Role::param;
            bp.shape = {c.channels};
            bp.dtype = c.bias ? graph.value(*c.bias).dtype : p.dtype;
            bp.loc = lv.loc;
            bp.fold = std::make_shared<const ParamFold>(bf);
            new_b = rw.add(std::move(bp));
        }

        for (VertexId u : c.nodes) rw.drop(static_cast<int>(u));
        const int x = rw.node(static_cast<int>(c.producer)).operands[0];
        if (p.op == Op::conv2d || !c.additive) {
            // The producer itself, under the last node's name, with the folded params.
            GraphRewrite::Node nn{p, {x, new_w}};
            if (new_b >= 0) nn.operands.push_back(new_b);
            nn.value.name = lv.name;
            nn.value.dtype = lv.dtype;
            if (nn.value.input_locs.size() < nn.operands.size()) nn.value.input_locs.resize(nn.operands.size(), p.loc);
            rw.drop(static_cast<int>(c.producer));
            rw.replace(static_cast<int>(last), std::move(nn));
        } else {
            // A matmul has no bias operand: the shift stays one add, which fusion absorbs.
            rw.node(static_cast<int>(c.producer)).operands[1] = new_w;
            Value add = lv;
            add.op = Op::add;
            add.attrs = Attrs{};
            add.attr_locs.clear();
            add.input_locs = {lv.loc, lv.loc};
            rw.replace(static_cast<int>(last), GraphRewrite::Node{add, {static_cast<int>(c.producer), new_b}});
        }
    }
    return rw.build("fold_affine_chains");
}

namespace {

// Factor `f` at channel c: a param holds one value or one per channel.
double factor_at(const ChannelFactor& f, const std::vector<double>& data, int64_t c) {
    if (f.param.empty()) return f.scalar;
    return data.size() == 1 ? data[0] : data.at(static_cast<size_t>(c));
}

const HostTensor& value_of(const TensorMap& values, const std::string& name) {
    auto it = values.find(name);
    if (it == values.end()) throw UserError("no value was given for tensor '" + name + "'");
    return it->second;
}

}  // namespace

namespace {

std::vector<double> recipe_doubles(const ParamFold& fold, const Shape& shape, const TensorMap& values);

// The float64 value of a recipe's source: the run's value or a nested recipe's.
std::vector<double> source_doubles(const std::string& name, const std::shared_ptr<const ParamFold>& fold,
                                   const Shape& shape, const TensorMap& values) {
    if (fold) return recipe_doubles(*fold, shape, values);
    const HostTensor& t = value_of(values, name);
    ANVIL_CHECK(t.shape == shape, "folded_value: param '" + name + "' is " + shape_str(t.shape) + ", its recipe reads " +
                                      shape_str(shape));
    return t.to_doubles();
}

// Pieces joined along `axis`: each outer index takes every piece's block in turn.
std::vector<double> concat_doubles(const ParamFold& fold, const Shape& shape, const TensorMap& values) {
    const size_t axis = static_cast<size_t>(fold.channel_axis);
    int64_t outer = 1, inner = 1, joined = 0;
    for (size_t d = 0; d < axis; ++d) outer *= shape[d];
    for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
    std::vector<std::vector<double>> parts;
    for (const FoldSource& p : fold.pieces) {
        parts.push_back(source_doubles(p.name, p.fold, p.shape, values));
        joined += p.shape[axis];
    }
    ANVIL_CHECK(joined == shape[axis], "folded_value: the pieces of a concatenated param do not fill it");
    std::vector<double> out;
    out.reserve(static_cast<size_t>(numel(shape)));
    for (int64_t o = 0; o < outer; ++o)
        for (size_t k = 0; k < parts.size(); ++k) {
            const int64_t block = fold.pieces[k].shape[axis] * inner;
            out.insert(out.end(), parts[k].begin() + o * block, parts[k].begin() + (o + 1) * block);
        }
    return out;
}

// b + v @ W over W's K axis (`channel_axis`), in float64.
std::vector<double> projection_doubles(const ParamFold& fold, const TensorMap& values) {
    ANVIL_CHECK(fold.pieces.size() >= 2 && fold.pieces[0].shape.size() == 2,
                "folded_value: a projection needs a 2-D weight and a vector");
    const FoldSource& wp = fold.pieces[0];
    const bool k_rows = fold.channel_axis == 0;
    const int64_t K = wp.shape[k_rows ? 0 : 1], N = wp.shape[k_rows ? 1 : 0];
    ANVIL_CHECK(N == fold.channels, "folded_value: a projection's weight does not match its length");
    const std::vector<double> w = source_doubles(wp.name, wp.fold, wp.shape, values);
    const std::vector<double> v = source_doubles(fold.pieces[1].name, fold.pieces[1].fold, Shape{K}, values);
    std::vector<double> out(static_cast<size_t>(N), 0.0);
    if (fold.pieces.size() > 2) out = source_doubles(fold.pieces[2].name, fold.pieces[2].fold, Shape{N}, values);
    for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
            out[static_cast<size_t>(n)] += v[static_cast<size_t>(k)] * w[static_cast<size_t>(k_rows ? k * N + n : n * K + k)];
    return out;
}

// W [K, N] as [N / B, K, B] (B = `channels`): element (k, n) to (n / B, k, n % B).
std::vector<double> blocked_doubles(const ParamFold& fold, const Shape& shape, const TensorMap& values) {
    ANVIL_CHECK(fold.pieces.size() == 1 && fold.pieces[0].shape.size() == 2 && shape.size() == 3,
                "folded_value: a blocked weight needs a 2-D weight and a 3-D shape");
    const FoldSource& wp = fold.pieces[0];
    const int64_t K = wp.shape[0], N = wp.shape[1], B = fold.channels;
    ANVIL_CHECK(B > 0 && N % B == 0 && shape == Shape({N / B, K, B}),
                "folded_value: a blocked weight's shape does not match its source's");
    const std::vector<double> w = source_doubles(wp.name, wp.fold, wp.shape, values);
    std::vector<double> out(w.size());
    for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
            out[static_cast<size_t>(((n / B) * K + k) * B + n % B)] = w[static_cast<size_t>(k * N + n)];
    return out;
}

std::vector<double> recipe_doubles(const ParamFold& fold, const Shape& shape, const TensorMap& values) {
    if (fold.part == ParamFold::Part::concat) return concat_doubles(fold, shape, values);
    if (fold.part == ParamFold::Part::blocked) return blocked_doubles(fold, shape, values);
    if (fold.part == ParamFold::Part::projection) return projection_doubles(fold, values);
    const int64_t C = fold.channels;
    std::vector<double> s(static_cast<size_t>(C), 1.0), t(static_cast<size_t>(C), 0.0);
    if (fold.part == ParamFold::Part::bias && !fold.source.empty()) t = value_of(values, fold.source).to_doubles();
    ANVIL_CHECK(static_cast<int64_t>(t.size()) == C, "folded_value: the bias of '" + fold.source + "' is not per channel");
    for (const AffineStep& st : fold.steps) {
        std::vector<std::vector<double>> data;
        for (const ChannelFactor& f : st.factors)
            data.push_back(f.param.empty() ? std::vector<double>{} : value_of(values, f.param).to_doubles());
        for (int64_t c = 0; c < C; ++c) {
            auto f = [&](size_t k) { return factor_at(st.factors[k], data[k], c); };
            double& sc = s[static_cast<size_t>(c)];
            double& tc = t[static_cast<size_t>(c)];
            switch (st.kind) {
                case AffineStepKind::batchnorm: {
                    const double k = f(0) / std::sqrt(f(3) + st.eps);
                    sc *= k;
                    tc = (tc - f(2)) * k + f(1);
                    break;
                }
                case AffineStepKind::mul: sc *= f(0), tc *= f(0); break;
                case AffineStepKind::add: tc += f(0); break;
                case AffineStepKind::sub: tc -= f(0); break;
                case AffineStepKind::sub_from: sc = -sc, tc = f(0) - tc; break;
                case AffineStepKind::div: sc /= f(0), tc /= f(0); break;
            }
        }
    }
    if (fold.part == ParamFold::Part::bias) return t;
    std::vector<double> w = source_doubles(fold.source, fold.source_fold, shape, values);
    ANVIL_CHECK(fold.channel_axis < static_cast<int>(shape.size()) &&
                    shape[static_cast<size_t>(fold.channel_axis)] == C,
                "folded_value: weight '" + fold.source + "' does not match its fold");
    int64_t inner = 1;  // elements between two channels of the weight
    for (size_t d = static_cast<size_t>(fold.channel_axis) + 1; d < shape.size(); ++d) inner *= shape[d];
    for (size_t i = 0; i < w.size(); ++i) w[i] *= s[static_cast<size_t>((static_cast<int64_t>(i) / inner) % C)];
    return w;
}

}  // namespace

HostTensor folded_value(const ParamFold& fold, DType dtype, const Shape& shape, const TensorMap& values) {
    const std::vector<double> v = recipe_doubles(fold, fold.part == ParamFold::Part::bias ? Shape{fold.channels} : shape,
                                                 values);
    HostTensor out(dtype, shape);
    ANVIL_CHECK(static_cast<int64_t>(v.size()) == out.numel(), "folded_value: a recipe's size differs from its param's");
    for (int64_t i = 0; i < out.numel(); ++i) out.set(i, v[static_cast<size_t>(i)]);
    return out;
}

std::string describe_fold(const ParamFold& fold) {
    if (fold.part == ParamFold::Part::projection) {
        const auto name = [](const FoldSource& p) { return p.fold ? "(" + describe_fold(*p.fold) + ")" : p.name; };
        std::string o = name(fold.pieces.at(1)) + " @ " + name(fold.pieces.at(0)) + (fold.channel_axis ? "^T" : "");
        if (fold.pieces.size() > 2) o += " + " + name(fold.pieces[2]);
        return o;
    }
    if (fold.part == ParamFold::Part::blocked) {
        const FoldSource& p = fold.pieces.at(0);
        return "blocks of " + std::to_string(fold.channels) + " columns of " +
               (p.fold ? "(" + describe_fold(*p.fold) + ")" : p.name);
    }
    if (fold.part == ParamFold::Part::concat) {
        std::string o = "concat along axis " + std::to_string(fold.channel_axis) + " of";
        for (const FoldSource& p : fold.pieces) o += " " + (p.fold ? "(" + describe_fold(*p.fold) + ")" : p.name);
        return o;
    }
    const std::string src = fold.source_fold ? "(" + describe_fold(*fold.source_fold) + ")" : fold.source;
    std::string o = fold.part == ParamFold::Part::weight
                        ? "weight " + src + " scaled along axis " + std::to_string(fold.channel_axis)
                        : "bias " + (fold.source.empty() ? std::string("0") : fold.source);
    o += " by";
    for (const AffineStep& st : fold.steps) o += std::string(" ") + affine_step_name(st.kind) + "(" + st.node + ")";
    return o;
}

FoldSource fold_source(const Value& param) { return FoldSource{param.name, param.fold, param.shape}; }

}  // namespace anvil
