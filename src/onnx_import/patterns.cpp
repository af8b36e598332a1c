// GELU and SiLU written out elementwise (as exporters write them) become
// anvil's one op. A candidate is found by shape of the graph (a chain of
// elementwise ops with scalar constants around an Erf, Tanh or Sigmoid,
// reading one tensor x; the steps of a normalisation after a ReduceMean),
// and accepted only if evaluating that chain on
// probe values reproduces the op's formula: never by node names.
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "onnx_import/fold.h"
#include "onnx_import/importer.h"

namespace anvil {

namespace {

bool elementwise(const std::string& op) {
    return op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Pow" || op == "Erf" || op == "Tanh" ||
           op == "Sigmoid";
}

struct Candidate {
    std::string x, end;
    std::set<int> nodes;
};

// The nodes between x and `end`, when every operand on the way is x, a
// scalar constant, or computed inside; nullopt otherwise.
std::optional<std::set<int>> region(const Importer& im, const std::string& x, const std::string& end) {
    std::set<int> nodes;
    std::vector<std::string> stack = {end};
    std::set<std::string> seen;
    while (!stack.empty()) {
        std::string t = stack.back();
        stack.pop_back();
        if (t == x || !seen.insert(t).second) continue;
        if (im.is_const(t)) {
            if (im.constant_of(t)->numel() != 1) return std::nullopt;
            continue;
        }
        const int p = im.producer(t);
        if (p < 0 || !elementwise(im.node_at(p).op_type())) return std::nullopt;
        nodes.insert(p);
        for (const auto& in : im.node_at(p).input()) stack.push_back(in);
        if (nodes.size() > 12) return std::nullopt;
    }
    return nodes;
}

// Evaluates `end` with tensor `x` bound to `probe`, through the ONNX nodes
// between them, in float64.
ConstTensor evaluate_from(const Importer& im, const std::string& x, const ConstTensor& probe, const std::string& end,
                          bool scalar_constants) {
    std::map<std::string, ConstTensor> memo;
    memo[x] = probe;
    std::function<ConstTensor(const std::string&)> eval = [&](const std::string& t) -> ConstTensor {
        auto it = memo.find(t);
        if (it != memo.end()) return it->second;
        if (im.is_const(t)) {
            ConstTensor c = *im.constant_of(t);
            c.type = OnnxType::float64;  // the probe is computed exactly
            if (scalar_constants) c.shape = {};
            return c;
        }
        const onnx::NodeProto& p = im.node_at(im.producer(t));
        std::vector<std::optional<ConstTensor>> in;
        for (const auto& i : p.input()) in.push_back(eval(i));
        ConstTensor r = fold(OnnxNode(p, im.path()), in)[0];
        memo[t] = r;
        return r;
    };
    return eval(end);
}

std::vector<double> evaluate(const Importer& im, const Candidate& cand, const std::vector<double>& probe) {
    const ConstTensor p{OnnxType::float64, {static_cast<int64_t>(probe.size())}, probe};
    return evaluate_from(im, cand.x, p, cand.end, true).v;
}

double gelu_erf(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh(double x) {
    return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
double silu(double x) { return x / (1 + std::exp(-x)); }

bool matches(const std::vector<double>& got, const std::vector<double>& probe, double (*f)(double)) {
    for (size_t i = 0; i < probe.size(); ++i) {
        const double want = f(probe[i]);
        if (!(std::fabs(got[i] - want) <= 1e-5 * (1 + std::fabs(want)))) return false;
    }
    return true;
}

}  // namespace

bool match_activation(Importer& im, const OnnxNode& n, int index) {
    // The tensors x may be: the core's input and what it is computed from
    // through elementwise ops, nearest first.
    std::vector<std::string> xs;
    {
        std::vector<std::string> frontier = {n.input(0)};
        std::set<std::string> seen;
        for (int depth = 0; depth < 5 && !frontier.empty(); ++depth) {
            std::vector<std::string> next;
            for (const std::string& t : frontier) {
                if (im.is_const(t) || !seen.insert(t).second) continue;
                xs.push_back(t);
                const int p = im.producer(t);
                if (p >= 0 && elementwise(im.node_at(p).op_type()))
                    for (const auto& in : im.node_at(p).input()) next.push_back(in);
            }
            frontier = next;
        }
    }
    // The ends: the core's output, then its single elementwise consumer, and so on.
    std::vector<std::string> ends = {n.output(0)};
    for (int step = 0; step < 5; ++step) {
        const std::string& e = ends.back();
        const auto& users = im.consumers(e);
        if (users.size() != 1 || im.is_graph_output(e)) break;
        const onnx::NodeProto& u = im.node_at(users[0]);
        if (!elementwise(u.op_type()) || u.output_size() != 1) break;
        ends.push_back(u.output(0));
    }
    std::vector<double> probe;
    for (int i = -40; i <= 40; ++i) probe.push_back(i * 0.15);
    probe.push_back(9.5);
    probe.push_back(-9.5);
    for (auto e = ends.rbegin(); e != ends.rend(); ++e) {
        for (const std::string& x : xs) {
            auto nodes = region(im, x, *e);
            if (!nodes || !nodes->count(index)) continue;
            // Every value inside must be used only inside: nothing else may need it.
            bool closed = true;
            for (int p : *nodes)
                for (const auto& o : im.node_at(p).output())
                    if (o != *e) {
                        if (im.is_graph_output(o)) closed = false;
                        for (int u : im.consumers(o)) closed = closed && nodes->count(u);
                    }
            if (!closed) continue;
            const std::vector<double> got = evaluate(im, Candidate{x, *e, *nodes}, probe);
            std::optional<Op> op;
            std::string approx;
            if (matches(got, probe, gelu_erf)) op = Op::gelu, approx = "none";
            else if (matches(got, probe, gelu_tanh)) op = Op::gelu, approx = "tanh";
            else if (matches(got, probe, silu)) op = Op::silu;
            if (!op) continue;
            const OnnxValue& xv = im.value(n, x);
            const Shape shape = xv.shape;
            std::map<std::string, AttrValue> attrs;
            if (*op == Op::gelu) attrs["approximate"] = approx;
            const std::string r = im.emit(*op, {im.runtime(n, x)}, attrs, *e);
            im.define(*e, r, shape);
            for (int p : *nodes)
                if (p != index) im.skip(p);
            return true;
        }
    }
    return false;
}

}  // namespace anvil

// ---------------------------------------------------------------------------
// LayerNorm and RMSNorm written out (ReduceMean, Sub, Pow, Add eps, Sqrt,
// Div, then a scale and a shift), as exporters before opset 17 write them.

namespace anvil {

namespace {

// The only consumer of `t` when it is one node of type `op` (and t is no graph output).
std::optional<int> only_user(const Importer& im, const std::string& t, const std::string& op) {
    const auto& users = im.consumers(t);
    if (users.size() != 1 || im.is_graph_output(t) || im.node_at(users[0]).op_type() != op) return std::nullopt;
    return users[0];
}

// The other operand of binary node `i` when one of its operands is `t`.
std::optional<std::string> other_operand(const Importer& im, int i, const std::string& t) {
    const auto& n = im.node_at(i);
    if (n.input_size() != 2) return std::nullopt;
    if (n.input(0) == t) return n.input(1);
    if (n.input(1) == t) return n.input(0);
    return std::nullopt;
}

// A squaring of `t`: Pow(t, 2) or Mul(t, t).
bool squares(const Importer& im, int i, const std::string& t) {
    const auto& n = im.node_at(i);
    if (n.op_type() == "Mul") return n.input_size() == 2 && n.input(0) == t && n.input(1) == t;
    if (n.op_type() != "Pow" || n.input(0) != t) return false;
    const ConstTensor* e = im.constant_of(n.input(1));
    return e && e->numel() == 1 && e->v[0] == 2;
}

// The trailing axes a ReduceMean node normalises over (keepdims), or nothing.
std::optional<int> trailing_axes_start(const Importer& im, const OnnxNode& n, int rank) {
    if (n.get_int("keepdims", 1) != 1) return std::nullopt;
    std::optional<std::vector<int64_t>> axes = n.get_ints("axes");
    if (n.num_inputs() > 1 && !n.input(1).empty()) {
        const ConstTensor* a = im.constant_of(n.input(1));
        if (!a) return std::nullopt;
        axes = a->ints();
    }
    if (!axes || axes->empty()) return std::nullopt;
    std::vector<int> norm;
    for (int64_t a : *axes) {
        auto x = normalize_axis(a, rank);
        if (!x) return std::nullopt;
        norm.push_back(*x);
    }
    std::sort(norm.begin(), norm.end());
    for (size_t k = 0; k < norm.size(); ++k)
        if (norm[k] != rank - static_cast<int>(norm.size()) + static_cast<int>(k)) return std::nullopt;
    return norm.front();
}

struct NormMatch {
    Op op;
    std::string x, end;
    int axis;
    double eps;
    std::optional<std::string> gamma, beta;  // constant tensors
    std::set<int> nodes;
};

// From the variance's mean `v` on: Add(v, eps) -> Sqrt -> s, then `x` / s
// (Div, or Mul by Reciprocal); returns the normalised tensor.
std::optional<std::string> root_and_divide(const Importer& im, const std::string& v, const std::string& x,
                                           NormMatch& m) {
    auto add = only_user(im, v, "Add");
    if (!add) return std::nullopt;
    auto eps_name = other_operand(im, *add, v);
    const ConstTensor* eps = eps_name ? im.constant_of(*eps_name) : nullptr;
    if (!eps || eps->numel() != 1) return std::nullopt;
    m.eps = eps->v[0];
    const std::string ve = im.node_at(*add).output(0);
    auto sq = only_user(im, ve, "Sqrt");
    if (!sq) return std::nullopt;
    m.nodes.insert({*add, *sq});
    const std::string s = im.node_at(*sq).output(0);
    if (auto div = only_user(im, s, "Div")) {
        if (im.node_at(*div).input(0) != x) return std::nullopt;
        m.nodes.insert(*div);
        return im.node_at(*div).output(0);
    }
    auto rec = only_user(im, s, "Reciprocal");
    if (!rec) return std::nullopt;
    auto mul = only_user(im, im.node_at(*rec).output(0), "Mul");
    if (!mul || other_operand(im, *mul, im.node_at(*rec).output(0)) != x) return std::nullopt;
    m.nodes.insert({*rec, *mul});
    return im.node_at(*mul).output(0);
}

// The optional scale (Mul by a constant) and shift (Add of a constant) after the normalisation.
void affine_tail(const Importer& im, std::string t, NormMatch& m, bool shift) {
    m.end = t;
    if (auto mul = only_user(im, t, "Mul")) {
        auto g = other_operand(im, *mul, t);
        if (g && im.constant_of(*g)) {
            m.gamma = *g;
            m.nodes.insert(*mul);
            m.end = t = im.node_at(*mul).output(0);
        }
    }
    if (!shift || !m.gamma) return;
    if (auto add = only_user(im, t, "Add")) {
        auto b = other_operand(im, *add, t);
        if (b && im.constant_of(*b)) {
            m.beta = *b;
            m.nodes.insert(*add);
            m.end = im.node_at(*add).output(0);
        }
    }
}

std::optional<NormMatch> find_norm(const Importer& im, const OnnxNode& n, int index) {
    const std::string& in = n.input(0);
    if (!im.known(in) || im.is_const(in)) return std::nullopt;
    const int rank = static_cast<int>(im.value(n, in).shape.size());
    auto axis = trailing_axes_start(im, n, rank);
    if (!axis) return std::nullopt;
    NormMatch m;
    m.axis = *axis;
    m.nodes.insert(index);
    const std::string mean = n.output(0);
    const int p = im.producer(in);
    if (p >= 0 && im.node_at(p).input_size() >= 1 && squares(im, p, im.node_at(p).input(0)) &&
        im.consumers(in).size() == 1) {
        // RMSNorm: mean(x^2) over the last dim.
        m.op = Op::rmsnorm;
        m.x = im.node_at(p).input(0);
        if (*axis != rank - 1) return std::nullopt;
        m.nodes.insert(p);
        auto normed = root_and_divide(im, mean, m.x, m);
        if (!normed) return std::nullopt;
        affine_tail(im, *normed, m, false);
        return m;
    }
    // LayerNorm: d = x - mean(x); d / sqrt(mean(d^2) + eps).
    m.op = Op::layernorm;
    m.x = in;
    auto sub = only_user(im, mean, "Sub");
    if (!sub || im.node_at(*sub).input(0) != in) return std::nullopt;
    const std::string d = im.node_at(*sub).output(0);
    m.nodes.insert(*sub);
    const auto& users = im.consumers(d);
    if (users.size() != 2 || im.is_graph_output(d)) return std::nullopt;
    std::optional<int> square;
    for (int u : users)
        if (squares(im, u, d)) square = u;
    if (!square) return std::nullopt;
    m.nodes.insert(*square);
    auto var = only_user(im, im.node_at(*square).output(0), "ReduceMean");
    if (!var) return std::nullopt;
    const OnnxNode vn(im.node_at(*var), im.path());
    if (trailing_axes_start(im, vn, rank) != axis) return std::nullopt;
    m.nodes.insert(*var);
    auto normed = root_and_divide(im, im.node_at(*var).output(0), d, m);
    if (!normed) return std::nullopt;
    affine_tail(im, *normed, m, true);
    return m;
}

// `t` as a tensor of the normalised dims' shape, or nothing when it varies
// along other dims.
std::optional<ConstTensor> over_trailing(const OnnxNode& n, const ConstTensor& t, const Shape& trailing) {
    auto b = broadcast_shapes(t.shape, trailing);
    if (!b || *b != trailing) return std::nullopt;
    ConstTensor zero{OnnxType::float64, trailing, std::vector<double>(numel(trailing), 0.0)};
    return broadcast_binary(n, t, zero, OnnxType::float64, [](double a, double z) { return a + z; });
}

}  // namespace

bool match_norm(Importer& im, const OnnxNode& n, int index) {
    auto m = find_norm(im, n, index);
    if (!m) return false;
    const Shape xs = im.value(n, m->x).shape;
    const Shape trailing(xs.begin() + m->axis, xs.end());
    auto param = [&](const std::optional<std::string>& name, double fill) -> std::optional<ConstTensor> {
        if (!name) return ConstTensor{OnnxType::float64, trailing, std::vector<double>(numel(trailing), fill)};
        return over_trailing(n, *im.constant_of(*name), trailing);
    };
    auto gamma = param(m->gamma, 1.0), beta = param(m->beta, 0.0);
    if (!gamma || !beta || m->eps < 0) return false;
    // Every value inside is used only inside.
    for (int p : m->nodes)
        for (const auto& o : im.node_at(p).output())
            if (o != m->end) {
                if (im.is_graph_output(o)) return false;
                for (int u : im.consumers(o))
                    if (!m->nodes.count(u)) return false;
            }
    // The numeric check: the written-out graph on a probe against the op's formula.
    Shape probe_shape = {3};
    probe_shape.insert(probe_shape.end(), trailing.begin(), trailing.end());
    ConstTensor probe{OnnxType::float64, probe_shape, {}};
    for (int64_t i = 0; i < numel(probe_shape); ++i) probe.v.push_back(std::sin(1.7 * i + 0.3) * (1 + i % 5));
    const ConstTensor got = evaluate_from(im, m->x, probe, m->end, false);
    const int64_t row = numel(trailing);
    if (got.numel() != probe.numel()) return false;
    for (int64_t r = 0; r < 3; ++r) {
        const double* x = &probe.v[r * row];
        double mean = 0, sq = 0;
        for (int64_t i = 0; i < row; ++i) mean += x[i] / row, sq += x[i] * x[i] / row;
        double var = 0;
        for (int64_t i = 0; i < row; ++i) var += (x[i] - mean) * (x[i] - mean) / row;
        for (int64_t i = 0; i < row; ++i) {
            const double want = m->op == Op::layernorm ? (x[i] - mean) / std::sqrt(var + m->eps) * gamma->v[i] + beta->v[i]
                                                       : x[i] / std::sqrt(sq + m->eps) * gamma->v[i];
            if (!(std::fabs(got.v[r * row + i] - want) <= 1e-6 * (1 + std::fabs(want)))) return false;
        }
    }
    const std::string g = im.const_param(cast_to(*gamma, OnnxType::float32), m->end + "_gamma");
    std::string r;
    if (m->op == Op::layernorm) {
        const std::string b = im.const_param(cast_to(*beta, OnnxType::float32), m->end + "_beta");
        r = im.emit(Op::layernorm, {im.runtime(n, m->x), g, b}, {{"axis", int64_t(m->axis)}, {"eps", m->eps}}, m->end);
    } else {
        r = im.emit(Op::rmsnorm, {im.runtime(n, m->x), g}, {{"eps", m->eps}}, m->end);
    }
    im.define(m->end, r, xs);
    for (int p : m->nodes)
        if (p != index) im.skip(p);
    return true;
}

}  // namespace anvil
