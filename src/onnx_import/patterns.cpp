// GELU and SiLU written out elementwise (as exporters write them) become
// anvil's one op. A candidate is found by shape of the graph (a chain of
// elementwise ops with scalar constants around an Erf, Tanh or Sigmoid,
// reading one tensor x), and accepted only if evaluating that chain on
// probe values reproduces the op's formula: never by node names.
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

// Evaluates the region on probe values of x.
std::vector<double> evaluate(const Importer& im, const Candidate& cand, const std::vector<double>& probe) {
    std::map<std::string, ConstTensor> memo;
    const Shape s = {static_cast<int64_t>(probe.size())};
    memo[cand.x] = ConstTensor{OnnxType::float64, s, probe};
    std::function<ConstTensor(const std::string&)> eval = [&](const std::string& t) -> ConstTensor {
        auto it = memo.find(t);
        if (it != memo.end()) return it->second;
        if (im.is_const(t)) {
            ConstTensor c = *im.constant_of(t);
            c.type = OnnxType::float64;  // the probe is computed exactly
            c.shape = {};
            return c;
        }
        const onnx::NodeProto& p = im.node_at(im.producer(t));
        std::vector<std::optional<ConstTensor>> in;
        for (const auto& i : p.input()) in.push_back(eval(i));
        ConstTensor r = fold(OnnxNode(p, im.path()), in)[0];
        memo[t] = r;
        return r;
    };
    return eval(cand.end).v;
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
