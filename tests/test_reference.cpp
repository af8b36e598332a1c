// The float64 reference executor, op by op, against values computed here by
// naive index loops over small random inputs (never zero, so that a dropped
// term or a wrong index shows).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>

#include "reference/reference.h"
#include "graph_builder.h"
#include "reference_expect.h"
#include "frontend/infer_shapes.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// Random values in +-[0.2, 1.5] (only positive ones when asked), stored in
// each tensor's dtype.
TensorMap random_values(const Graph& g, unsigned seed, bool positive) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> magnitude(0.2, 1.5);
    TensorMap m;
    for (VertexId v = 0; v < g.size(); ++v) {
        const Value& val = g.value(v);
        if (val.role == Role::node) continue;
        HostTensor t(val.dtype, val.shape);
        for (int64_t i = 0; i < t.numel(); ++i) {
            double x = magnitude(rng);
            if (!positive && rng() % 2) x = -x;
            t.set(i, x);
        }
        m[val.name] = t;
    }
    return m;
}

struct Run {
    TensorMap values;
    std::map<std::string, RefTensor> out;
    // An input's or param's stored values, as the reference must read them.
    std::vector<double> in(const std::string& name) const { return values.at(name).to_doubles(); }
};

Run run(const GraphBuilder& b, bool positive = false, unsigned seed = 1) {
    Graph g = infer_shapes(b.graph());
    Run r;
    r.values = random_values(g, seed, positive);
    r.out = reference_execute(g, r.values);
    return r;
}


}  // namespace

TEST_CASE("reference: constant", "[reference]") {
    GraphBuilder b;
    b.node("c", Op::constant, {}, {{"value", F(-2.5)}, {"shape", L({2, 3})}});
    b.node("s", Op::constant, {}, {{"value", I(3)}});
    Run r = run(b);
    check_values(r.out.at("c"), {2, 3}, std::vector<double>(6, -2.5));
    check_values(r.out.at("s"), {}, {3.0});
}

TEST_CASE("reference: binary ops with broadcasting", "[reference]") {
    std::vector<std::pair<Op, std::function<double(double, double)>>> ops = {
        {Op::add, [](double a, double b) { return a + b; }},
        {Op::sub, [](double a, double b) { return a - b; }},
        {Op::mul, [](double a, double b) { return a * b; }},
        {Op::div, [](double a, double b) { return a / b; }},
        {Op::max, [](double a, double b) { return a > b ? a : b; }},
        {Op::min, [](double a, double b) { return a < b ? a : b; }},
        {Op::pow, [](double a, double b) { return std::exp(b * std::log(a)); }},
    };
    for (auto& [op, f] : ops) {
        INFO(op_name(op));
        GraphBuilder b;
        b.input("a", {2, 1, 4});
        b.input("b", {3, 1});
        b.node("y", op, {"a", "b"});
        b.node("z", op, {"b", "a"});
        Run r = run(b, op == Op::pow, 7);
        std::vector<double> a = r.in("a"), bb = r.in("b"), y, z;
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 3; ++j)
                for (int k = 0; k < 4; ++k) {
                    y.push_back(f(a[i * 4 + k], bb[j]));
                    z.push_back(f(bb[j], a[i * 4 + k]));
                }
        check_values(r.out.at("y"), {2, 3, 4}, y);
        check_values(r.out.at("z"), {2, 3, 4}, z);
    }
}

TEST_CASE("reference: unary ops", "[reference]") {
    const double pi = std::acos(-1.0);
    auto sigmoid = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
    struct Case {
        Op op;
        std::map<std::string, AttrValue> attrs;
        bool positive;
        std::function<double(double)> f;
    };
    std::vector<Case> cases = {
        {Op::relu, {}, false, [](double x) { return x < 0 ? 0.0 : x; }},
        {Op::sigmoid, {}, false, sigmoid},
        {Op::tanh, {}, false, [](double x) { return (std::exp(2 * x) - 1) / (std::exp(2 * x) + 1); }},
        {Op::exp, {}, false, [](double x) { return std::exp(x); }},
        {Op::log, {}, true, [](double x) { return std::log(x); }},
        {Op::sqrt, {}, true, [](double x) { return std::pow(x, 0.5); }},
        {Op::rsqrt, {}, true, [](double x) { return std::pow(x, -0.5); }},
        {Op::neg, {}, false, [](double x) { return 0.0 - x; }},
        {Op::abs, {}, false, [](double x) { return x < 0 ? -x : x; }},
        {Op::silu, {}, false, [&](double x) { return x * sigmoid(x); }},
        {Op::gelu, {}, false, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
        {Op::gelu, {{"approximate", S("none")}}, false,
         [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }},
        {Op::gelu, {{"approximate", S("tanh")}}, false,
         [&](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / pi) * (x + 0.044715 * x * x * x))); }},
        {Op::erf, {}, false, [](double x) { return 1 - std::erfc(x); }},
    };
    for (const Case& c : cases) {
        INFO(op_name(c.op));
        GraphBuilder b;
        b.input("x", {3, 5});
        b.node("y", c.op, {"x"}, c.attrs);
        Run r = run(b, c.positive, 3);
        std::vector<double> want;
        for (double x : r.in("x")) want.push_back(c.f(x));
        check_values(r.out.at("y"), {3, 5}, want);
    }
    // The two gelu forms are close but not equal: the attribute is read.
    GraphBuilder b;
    b.input("x", {8});
    b.node("e", Op::gelu, {"x"});
    b.node("t", Op::gelu, {"x"}, {{"approximate", S("tanh")}});
    Run r = run(b);
    CHECK(r.out.at("e").data != r.out.at("t").data);
}

TEST_CASE("reference: softmax along a middle axis", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("y", Op::softmax, {"x"}, {{"axis", I(1)}});
    Run r = run(b);
    std::vector<double> x = r.in("x"), want(24);
    auto at = [](int i, int j, int k) { return (i * 3 + j) * 4 + k; };
    for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 4; ++k) {
            double sum = 0;
            for (int j = 0; j < 3; ++j) sum += std::exp(x[at(i, j, k)]);
            for (int j = 0; j < 3; ++j) want[at(i, j, k)] = std::exp(x[at(i, j, k)]) / sum;
        }
    check_values(r.out.at("y"), {2, 3, 4}, want);
}

TEST_CASE("reference: softmax subtracts the max, so large inputs do not overflow", "[reference]") {
    GraphBuilder b;
    b.input("x", {3});
    b.node("y", Op::softmax, {"x"});
    Graph g = infer_shapes(b.graph());
    HostTensor x(DType::f32, {3});
    x.set(0, 1000);
    x.set(1, 1001);
    x.set(2, 999);
    auto out = reference_execute(g, {{"x", x}});
    double d = 1 + std::exp(-1.0) + std::exp(-2.0);
    check_values(out.at("y"), {3}, {std::exp(-1.0) / d, 1 / d, std::exp(-2.0) / d});
}

TEST_CASE("reference: layernorm over the last two dims (axis -2)", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.param("g", {3, 4});
    b.param("bt", {3, 4});
    b.node("y", Op::layernorm, {"x", "g", "bt"}, {{"axis", I(-2)}, {"eps", F(1e-3)}});
    Run r = run(b);
    std::vector<double> x = r.in("x"), g = r.in("g"), bt = r.in("bt"), want(24);
    for (int i = 0; i < 2; ++i) {
        double mean = 0, var = 0;
        for (int j = 0; j < 12; ++j) mean += x[i * 12 + j] / 12;
        for (int j = 0; j < 12; ++j) var += (x[i * 12 + j] - mean) * (x[i * 12 + j] - mean) / 12;  // biased
        for (int j = 0; j < 12; ++j) want[i * 12 + j] = (x[i * 12 + j] - mean) / std::sqrt(var + 1e-3) * g[j] + bt[j];
    }
    check_values(r.out.at("y"), {2, 3, 4}, want);
}

TEST_CASE("reference: layernorm over the last dim with the default eps", "[reference]") {
    GraphBuilder b;
    b.input("x", {3, 5});
    b.param("g", {5});
    b.param("bt", {5});
    b.node("y", Op::layernorm, {"x", "g", "bt"});
    Run r = run(b, false, 11);
    std::vector<double> x = r.in("x"), g = r.in("g"), bt = r.in("bt"), want(15);
    for (int i = 0; i < 3; ++i) {
        double s = 0, s2 = 0;
        for (int j = 0; j < 5; ++j) s += x[i * 5 + j], s2 += x[i * 5 + j] * x[i * 5 + j];
        double mean = s / 5, var = s2 / 5 - mean * mean;
        for (int j = 0; j < 5; ++j) want[i * 5 + j] = (x[i * 5 + j] - mean) / std::sqrt(var + 1e-5) * g[j] + bt[j];
    }
    check_values(r.out.at("y"), {3, 5}, want, 1e-10);
}

TEST_CASE("reference: rmsnorm", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 2, 5});
    b.param("g", {5});
    b.node("y", Op::rmsnorm, {"x", "g"});
    b.node("z", Op::rmsnorm, {"x", "g"}, {{"eps", F(0.5)}});
    Run r = run(b);
    std::vector<double> x = r.in("x"), g = r.in("g");
    for (double eps : {1e-6, 0.5}) {
        std::vector<double> want(20);
        for (int row = 0; row < 4; ++row) {
            double ms = 0;
            for (int j = 0; j < 5; ++j) ms += x[row * 5 + j] * x[row * 5 + j] / 5;
            for (int j = 0; j < 5; ++j) want[row * 5 + j] = x[row * 5 + j] / std::sqrt(ms + eps) * g[j];
        }
        check_values(r.out.at(eps == 0.5 ? "z" : "y"), {2, 2, 5}, want);
    }
}

TEST_CASE("reference: reductions over non-adjacent axes", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4, 5});
    b.node("sum", Op::reduce_sum, {"x"}, {{"axes", L({0, 2})}});
    b.node("mean", Op::reduce_mean, {"x"}, {{"axes", L({-1, 1})}, {"keepdims", B(true)}});
    b.node("max", Op::reduce_max, {"x"}, {{"axes", L({2, 0})}, {"keepdims", B(true)}});
    b.node("all", Op::reduce_sum, {"x"}, {{"axes", L({0, 1, 2, 3})}});
    Run r = run(b);
    std::vector<double> x = r.in("x");
    auto X = [&](int i, int j, int k, int l) { return x[((i * 3 + j) * 4 + k) * 5 + l]; };
    std::vector<double> sum, max, mean, all(1, 0.0);
    for (int j = 0; j < 3; ++j)
        for (int l = 0; l < 5; ++l) {
            double s = 0, m = X(0, j, 0, l);
            for (int i = 0; i < 2; ++i)
                for (int k = 0; k < 4; ++k) s += X(i, j, k, l), m = std::max(m, X(i, j, k, l));
            sum.push_back(s);
            max.push_back(m);
            all[0] += s;
        }
    for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 4; ++k) {
            double s = 0;
            for (int j = 0; j < 3; ++j)
                for (int l = 0; l < 5; ++l) s += X(i, j, k, l);
            mean.push_back(s / 15);
        }
    check_values(r.out.at("sum"), {3, 5}, sum);
    check_values(r.out.at("max"), {1, 3, 1, 5}, max);
    check_values(r.out.at("mean"), {2, 1, 4, 1}, mean);
    check_values(r.out.at("all"), {}, all);
}

TEST_CASE("reference: reduce_max of negative values", "[reference]") {
    // All inputs negative, so a max that started from 0 would show.
    GraphBuilder b;
    b.input("x", {3, 4});
    b.node("n", Op::neg, {"x"});
    b.node("m", Op::reduce_max, {"n"}, {{"axes", L({1})}});
    Run r = run(b, true);
    std::vector<double> x = r.in("x"), want;
    for (int i = 0; i < 3; ++i) {
        double m = -x[i * 4];
        for (int j = 1; j < 4; ++j) m = std::max(m, -x[i * 4 + j]);
        want.push_back(m);
    }
    check_values(r.out.at("m"), {3}, want);
}

TEST_CASE("reference: matmul transposes of square matrices", "[reference]") {
    // Square operands: a transpose flag that is ignored cannot hide behind a shape error.
    GraphBuilder b;
    b.input("a", {3, 3});
    b.param("w", {3, 3});
    b.node("ta", Op::matmul, {"a", "w"}, {{"transpose_a", B(true)}});
    b.node("tb", Op::matmul, {"a", "w"}, {{"transpose_b", B(true)}});
    Run r = run(b);
    std::vector<double> a = r.in("a"), w = r.in("w"), ta, tb;
    for (int m = 0; m < 3; ++m)
        for (int n = 0; n < 3; ++n) {
            double sa = 0, sb = 0;
            for (int k = 0; k < 3; ++k) {
                sa += a[k * 3 + m] * w[k * 3 + n];
                sb += a[m * 3 + k] * w[n * 3 + k];
            }
            ta.push_back(sa);
            tb.push_back(sb);
        }
    check_values(r.out.at("ta"), {3, 3}, ta);
    check_values(r.out.at("tb"), {3, 3}, tb);
}

TEST_CASE("reference: matmul with both transposes and broadcast batch dims", "[reference]") {
    GraphBuilder b;
    b.input("a", {2, 1, 5, 4});  // stored [K, M], transpose_a
    b.param("w", {3, 6, 5});     // stored [N, K], transpose_b
    b.node("y", Op::matmul, {"a", "w"}, {{"transpose_a", B(true)}, {"transpose_b", B(true)}});
    Run r = run(b);
    std::vector<double> a = r.in("a"), w = r.in("w"), want;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int m = 0; m < 4; ++m)
                for (int n = 0; n < 6; ++n) {
                    double s = 0;
                    for (int k = 0; k < 5; ++k) s += a[(i * 5 + k) * 4 + m] * w[(j * 6 + n) * 5 + k];
                    want.push_back(s);
                }
    check_values(r.out.at("y"), {2, 3, 4, 6}, want);
}

TEST_CASE("reference: matmul plain, and a batched a against a 2-d b", "[reference]") {
    GraphBuilder c;
    c.input("x", {2, 3, 4});
    c.param("w", {4, 5});
    c.param("v", {5, 4});
    c.node("y", Op::matmul, {"x", "w"});
    c.node("z", Op::matmul, {"x", "v"}, {{"transpose_b", B(true)}});
    c.node("t", Op::matmul, {"w", "w"}, {{"transpose_a", B(true)}});  // w^T w: [5, 5]
    Run r = run(c);
    std::vector<double> x = r.in("x"), w = r.in("w"), v = r.in("v"), y, z, t;
    for (int i = 0; i < 2; ++i)
        for (int m = 0; m < 3; ++m)
            for (int n = 0; n < 5; ++n) {
                double sy = 0, sz = 0;
                for (int k = 0; k < 4; ++k) {
                    sy += x[(i * 3 + m) * 4 + k] * w[k * 5 + n];
                    sz += x[(i * 3 + m) * 4 + k] * v[n * 4 + k];
                }
                y.push_back(sy);
                z.push_back(sz);
            }
    for (int m = 0; m < 5; ++m)
        for (int n = 0; n < 5; ++n) {
            double s = 0;
            for (int k = 0; k < 4; ++k) s += w[k * 5 + m] * w[k * 5 + n];
            t.push_back(s);
        }
    check_values(r.out.at("y"), {2, 3, 5}, y);
    check_values(r.out.at("z"), {2, 3, 5}, z);
    check_values(r.out.at("t"), {5, 5}, t);
}

TEST_CASE("reference: transpose", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("y", Op::transpose, {"x"}, {{"perm", L({2, 0, 1})}});
    Run r = run(b);
    std::vector<double> x = r.in("x"), want;
    for (int p = 0; p < 4; ++p)
        for (int q = 0; q < 2; ++q)
            for (int s = 0; s < 3; ++s) want.push_back(x[(q * 3 + s) * 4 + p]);
    check_values(r.out.at("y"), {4, 2, 3}, want);
}

TEST_CASE("reference: reshape keeps the data", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("y", Op::reshape, {"x"}, {{"shape", L({4, -1})}});
    Run r = run(b);
    check_values(r.out.at("y"), {4, 6}, r.in("x"));
}

TEST_CASE("reference: concat of three inputs on a middle axis", "[reference]") {
    GraphBuilder b;
    b.input("a", {2, 1, 3});
    b.input("b", {2, 2, 3});
    b.param("c", {2, 3, 3});
    b.node("y", Op::concat, {"a", "b", "c"}, {{"axis", I(-2)}});
    Run r = run(b);
    std::vector<double> a = r.in("a"), bb = r.in("b"), c = r.in("c"), want;
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 6; ++j)
            for (int k = 0; k < 3; ++k) {
                if (j < 1) want.push_back(a[(i * 1 + j) * 3 + k]);
                else if (j < 3) want.push_back(bb[(i * 2 + (j - 1)) * 3 + k]);
                else want.push_back(c[(i * 3 + (j - 3)) * 3 + k]);
            }
    check_values(r.out.at("y"), {2, 6, 3}, want);
}

TEST_CASE("reference: slice with step 2 and a negative start", "[reference]") {
    GraphBuilder b;
    b.input("x", {3, 7, 2});
    b.node("y", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(-6)}, {"step", I(2)}});             // 1, 3, 5
    b.node("z", Op::slice, {"x"}, {{"axis", I(0)}, {"start", I(-100)}, {"end", I(-1)}});          // 0, 1
    b.node("w", Op::slice, {"x"}, {{"axis", I(-2)}, {"start", I(2)}, {"end", I(99)}, {"step", I(3)}});  // 2, 5
    Run r = run(b);
    std::vector<double> x = r.in("x"), y, z, w;
    auto X = [&](int i, int j, int k) { return x[(i * 7 + j) * 2 + k]; };
    for (int i = 0; i < 3; ++i)
        for (int j : {1, 3, 5})
            for (int k = 0; k < 2; ++k) y.push_back(X(i, j, k));
    for (int i : {0, 1})
        for (int j = 0; j < 7; ++j)
            for (int k = 0; k < 2; ++k) z.push_back(X(i, j, k));
    for (int i = 0; i < 3; ++i)
        for (int j : {2, 5})
            for (int k = 0; k < 2; ++k) w.push_back(X(i, j, k));
    check_values(r.out.at("y"), {3, 3, 2}, y);
    check_values(r.out.at("z"), {2, 7, 2}, z);
    check_values(r.out.at("w"), {3, 2, 2}, w);
}

TEST_CASE("reference: intermediates are not rounded to their storage dtype", "[reference]") {
    // 1 + 2^-12 is exact in f32 but not in f16: a reference that rounded
    // the f16 node h would give exactly 2 for y.
    GraphBuilder b(DType::f16);
    b.input("x", {1}, DType::f32);
    b.node("one", Op::constant, {}, {{"value", F(1.0)}});
    b.node("h", Op::mul, {"x", "one"});
    b.node("y", Op::add, {"h", "one"});
    Graph g = infer_shapes(b.graph());
    HostTensor x(DType::f32, {1});
    x.set(0, 1.0 + std::ldexp(1.0, -12));
    auto out = reference_execute(g, {{"x", x}});
    CHECK(out.at("h").data[0] == 1.0 + std::ldexp(1.0, -12));
    CHECK(out.at("y").data[0] == 2.0 + std::ldexp(1.0, -12));
}

TEST_CASE("reference: returns every tensor, inputs and params as stored", "[reference]") {
    GraphBuilder b(DType::bf16);
    b.input("x", {2, 4});
    b.param("w", {4, 3}, DType::f16);
    b.param("bias", {3});
    b.node("h", Op::matmul, {"x", "w"});
    b.node("hb", Op::add, {"h", "bias"});
    b.node("y", Op::gelu, {"hb"});
    b.output("y");
    Run r = run(b, false, 5);
    REQUIRE(r.out.size() == 6);
    check_values(r.out.at("x"), {2, 4}, r.in("x"), 0);
    check_values(r.out.at("w"), {4, 3}, r.in("w"), 0);
    check_values(r.out.at("bias"), {3}, r.in("bias"), 0);
    // The whole chain, by hand.
    std::vector<double> x = r.in("x"), w = r.in("w"), bias = r.in("bias"), want;
    for (int m = 0; m < 2; ++m)
        for (int n = 0; n < 3; ++n) {
            double s = bias[n];
            for (int k = 0; k < 4; ++k) s += x[m * 4 + k] * w[k * 3 + n];
            want.push_back(0.5 * s * (1 + std::erf(s / std::sqrt(2.0))));
        }
    check_values(r.out.at("y"), {2, 3}, want);
}
