// The float64 reference for conv2d, the pools, batchnorm and embedding,
// against values computed here another way: the input copied into an
// explicitly padded buffer (padding marked, not bounds-checked), then naive
// loops over it. Inputs are random and never zero, so a dropped term, a
// wrong index or a padded cell that counts shows.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <set>

#include "reference/reference.h"
#include "graph_builder.h"
#include "reference_expect.h"
#include "frontend/infer_shapes.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// Random values in +-[0.2, 1.5], only positive for the tensors named in
// `positive`, stored in each tensor's dtype.
TensorMap random_values(const Graph& g, unsigned seed, const std::set<std::string>& positive = {}) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> magnitude(0.2, 1.5);
    TensorMap m;
    for (VertexId v = 0; v < g.size(); ++v) {
        const Value& val = g.value(v);
        if (val.role == Role::node) continue;
        HostTensor t(val.dtype, val.shape);
        for (int64_t i = 0; i < t.numel(); ++i) {
            double x = magnitude(rng);
            if (!positive.count(val.name) && rng() % 2) x = -x;
            t.set(i, x);
        }
        m[val.name] = t;
    }
    return m;
}

struct Run {
    TensorMap values;
    std::map<std::string, RefTensor> out;
    std::vector<double> in(const std::string& name) const { return values.at(name).to_doubles(); }
};

Run run(const GraphBuilder& b, unsigned seed = 1, const std::set<std::string>& positive = {}) {
    Graph g = infer_shapes(b.graph());
    Run r;
    r.values = random_values(g, seed, positive);
    r.out = reference_execute(g, r.values);
    return r;
}


// An [N, C, H, W] tensor copied into a buffer with `pad` = {top, left,
// bottom, right} extra rows and columns, which hold NaN: a padded cell that
// is ever read as a value shows up as a NaN in the result.
struct Padded {
    int64_t N, C, H, W;  // of the padded buffer
    std::vector<double> v;
    double at(int64_t n, int64_t c, int64_t h, int64_t w) const { return v[((n * C + c) * H + h) * W + w]; }
    bool is_pad(int64_t n, int64_t c, int64_t h, int64_t w) const { return std::isnan(at(n, c, h, w)); }
};
Padded pad_nchw(const std::vector<double>& x, const Shape& s, std::array<int64_t, 4> pad) {
    Padded p{s[0], s[1], s[2] + pad[0] + pad[2], s[3] + pad[1] + pad[3], {}};
    p.v.assign(static_cast<size_t>(p.N * p.C * p.H * p.W), std::nan(""));
    for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t c = 0; c < s[1]; ++c)
            for (int64_t h = 0; h < s[2]; ++h)
                for (int64_t w = 0; w < s[3]; ++w)
                    p.v[((n * p.C + c) * p.H + h + pad[0]) * p.W + w + pad[1]] = x[((n * s[1] + c) * s[2] + h) * s[3] + w];
    return p;
}

struct ConvSpec {
    Shape x, w;
    bool bias;
    std::array<int64_t, 2> stride{1, 1}, dilation{1, 1};
    std::array<int64_t, 4> pad{0, 0, 0, 0};  // top, left, bottom, right
    int64_t groups = 1;
};

// Cross-correlation over the padded buffer; padding reads as 0.
std::vector<double> naive_conv(const ConvSpec& k, const std::vector<double>& x, const std::vector<double>& w,
                               const std::vector<double>& bias, Shape& out_shape) {
    Padded p = pad_nchw(x, k.x, k.pad);
    const int64_t O = k.w[0], CperG = k.w[1], KH = k.w[2], KW = k.w[3];
    const int64_t OperG = O / k.groups;
    const int64_t OH = (p.H - (KH - 1) * k.dilation[0] - 1) / k.stride[0] + 1;
    const int64_t OW = (p.W - (KW - 1) * k.dilation[1] - 1) / k.stride[1] + 1;
    out_shape = {p.N, O, OH, OW};
    std::vector<double> y;
    for (int64_t n = 0; n < p.N; ++n)
        for (int64_t o = 0; o < O; ++o)
            for (int64_t r = 0; r < OH; ++r)
                for (int64_t s = 0; s < OW; ++s) {
                    double sum = k.bias ? bias[o] : 0.0;
                    int64_t g = o / OperG;
                    for (int64_t ci = 0; ci < CperG; ++ci)
                        for (int64_t a = 0; a < KH; ++a)
                            for (int64_t b = 0; b < KW; ++b) {
                                int64_t h = r * k.stride[0] + a * k.dilation[0], ww = s * k.stride[1] + b * k.dilation[1];
                                int64_t c = g * CperG + ci;
                                double xv = p.is_pad(n, c, h, ww) ? 0.0 : p.at(n, c, h, ww);
                                sum += xv * w[((o * CperG + ci) * KH + a) * KW + b];
                            }
                    y.push_back(sum);
                }
    return y;
}

void check_conv(const ConvSpec& k, unsigned seed) {
    GraphBuilder b;
    b.input("x", k.x);
    b.param("w", k.w);
    b.param("bias", {k.w[0]});
    std::vector<std::string> ins{"x", "w"};
    if (k.bias) ins.push_back("bias");
    b.node("y", Op::conv2d, ins,
           {{"stride", L({k.stride[0], k.stride[1]})},
            {"dilation", L({k.dilation[0], k.dilation[1]})},
            {"padding", L({k.pad[0], k.pad[1], k.pad[2], k.pad[3]})},
            {"groups", I(k.groups)}});
    Run r = run(b, seed);
    Shape shape;
    std::vector<double> want = naive_conv(k, r.in("x"), r.in("w"), r.in("bias"), shape);
    check_values(r.out.at("y"), shape, want);
}

struct PoolSpec {
    Op op;
    Shape x;
    std::array<int64_t, 2> kernel, stride;
    std::array<int64_t, 4> pad{0, 0, 0, 0};
    bool include_pad = false;
    std::array<int64_t, 2> dilation{1, 1};  // maxpool2d only
};

// Max over the real cells of each window; average over them, divided by
// their count or by the kernel area.
std::vector<double> naive_pool(const PoolSpec& k, const std::vector<double>& x, Shape& out_shape) {
    Padded p = pad_nchw(x, k.x, k.pad);
    const int64_t span_h = k.dilation[0] * (k.kernel[0] - 1) + 1, span_w = k.dilation[1] * (k.kernel[1] - 1) + 1;
    const int64_t OH = (p.H - span_h) / k.stride[0] + 1, OW = (p.W - span_w) / k.stride[1] + 1;
    out_shape = {p.N, p.C, OH, OW};
    std::vector<double> y;
    for (int64_t n = 0; n < p.N; ++n)
        for (int64_t c = 0; c < p.C; ++c)
            for (int64_t r = 0; r < OH; ++r)
                for (int64_t s = 0; s < OW; ++s) {
                    std::vector<double> cells;
                    for (int64_t a = 0; a < k.kernel[0] * k.dilation[0]; a += k.dilation[0])
                        for (int64_t b = 0; b < k.kernel[1] * k.dilation[1]; b += k.dilation[1])
                            if (!p.is_pad(n, c, r * k.stride[0] + a, s * k.stride[1] + b))
                                cells.push_back(p.at(n, c, r * k.stride[0] + a, s * k.stride[1] + b));
                    REQUIRE((!cells.empty() || k.op == Op::maxpool2d));
                    if (k.op == Op::maxpool2d) {
                        y.push_back(cells.empty() ? -INFINITY : *std::max_element(cells.begin(), cells.end()));
                    } else {
                        double sum = 0;
                        for (double v : cells) sum += v;
                        y.push_back(sum / double(k.include_pad ? k.kernel[0] * k.kernel[1] : int64_t(cells.size())));
                    }
                }
    return y;
}

// Pools x, or -|x| (every value negative, so that a padded 0 would win a
// max) when `negative`.
void check_pool(const PoolSpec& k, unsigned seed, bool negative = false) {
    GraphBuilder b;
    b.input("x", k.x);
    b.node("nx", Op::neg, {"x"});
    std::map<std::string, AttrValue> attrs{{"kernel", L({k.kernel[0], k.kernel[1]})},
                                           {"stride", L({k.stride[0], k.stride[1]})},
                                           {"padding", L({k.pad[0], k.pad[1], k.pad[2], k.pad[3]})}};
    if (k.op == Op::avgpool2d) attrs["count_include_pad"] = B(k.include_pad);
    if (k.op == Op::maxpool2d) attrs["dilation"] = L({k.dilation[0], k.dilation[1]});
    b.node("y", k.op, {negative ? "nx" : "x"}, attrs);
    Run r = run(b, seed, negative ? std::set<std::string>{"x"} : std::set<std::string>{});
    std::vector<double> x = r.in("x");
    if (negative)
        for (double& v : x) v = -v;
    Shape shape;
    std::vector<double> want = naive_pool(k, x, shape);
    check_values(r.out.at("y"), shape, want);
}

}  // namespace

// ---------------------------------------------------------------- conv2d

TEST_CASE("reference: conv2d with bias, no padding", "[reference]") {
    check_conv({{2, 3, 7, 6}, {4, 3, 3, 2}, true}, 1);
}

TEST_CASE("reference: conv2d with every attribute: groups, stride, dilation, asymmetric padding", "[reference]") {
    ConvSpec k{{1, 4, 9, 8}, {6, 2, 3, 3}, true};
    k.groups = 2;
    k.stride = {2, 1};
    k.dilation = {1, 2};
    k.pad = {1, 0, 2, 3};
    check_conv(k, 2);
    k.bias = false;
    k.pad = {0, 3, 1, 0};
    check_conv(k, 3);
}

TEST_CASE("reference: conv2d depthwise, with and without a channel multiplier", "[reference]") {
    ConvSpec d{{2, 5, 6, 6}, {5, 1, 3, 3}, true};
    d.groups = 5;
    d.pad = {1, 1, 1, 1};
    check_conv(d, 4);
    ConvSpec m{{1, 3, 5, 5}, {6, 1, 2, 2}, false};
    m.groups = 3;
    m.stride = {2, 2};
    check_conv(m, 5);
}

TEST_CASE("reference: conv2d on odd sizes, 1x1 images, kernels larger than the stride", "[reference]") {
    ConvSpec odd{{1, 2, 37, 37}, {3, 2, 5, 5}, true};
    odd.stride = {2, 3};
    odd.pad = {2, 1, 2, 1};
    check_conv(odd, 6);
    ConvSpec one{{2, 3, 1, 1}, {4, 3, 3, 3}, true};  // only the centre tap meets x
    one.pad = {1, 1, 1, 1};
    check_conv(one, 7);
    ConvSpec big_pad{{1, 2, 3, 3}, {2, 2, 2, 2}, true};  // windows of only padding: bias alone
    big_pad.pad = {3, 3, 3, 3};
    big_pad.stride = {2, 2};
    check_conv(big_pad, 8);
}

TEST_CASE("reference: conv2d with the int forms of its attributes", "[reference]") {
    GraphBuilder b;
    b.input("x", {1, 2, 6, 5});
    b.param("w", {3, 2, 3, 3});
    b.node("y", Op::conv2d, {"x", "w"}, {{"stride", L({2})}, {"padding", L({1})}, {"dilation", L({2})}});
    Run r = run(b, 9);
    ConvSpec k{{1, 2, 6, 5}, {3, 2, 3, 3}, false};
    k.stride = {2, 2};
    k.dilation = {2, 2};
    k.pad = {1, 1, 1, 1};
    Shape shape;
    std::vector<double> want = naive_conv(k, r.in("x"), r.in("w"), {}, shape);
    check_values(r.out.at("y"), shape, want);
    // And [h, w] padding.
    GraphBuilder c;
    c.input("x", {1, 2, 6, 5});
    c.param("w", {3, 2, 3, 3});
    c.node("y", Op::conv2d, {"x", "w"}, {{"padding", L({2, 1})}});
    Run rc = run(c, 10);
    ConvSpec kc{{1, 2, 6, 5}, {3, 2, 3, 3}, false};
    kc.pad = {2, 1, 2, 1};
    want = naive_conv(kc, rc.in("x"), rc.in("w"), {}, shape);
    check_values(rc.out.at("y"), shape, want);
}

// ---------------------------------------------------------------- pools

TEST_CASE("reference: maxpool2d, padded cells never win", "[reference]") {
    check_pool({Op::maxpool2d, {2, 3, 7, 5}, {3, 3}, {2, 2}, {1, 1, 1, 1}}, 1, true);
    check_pool({Op::maxpool2d, {1, 2, 6, 7}, {2, 3}, {1, 2}, {1, 0, 0, 1}}, 2, true);
    check_pool({Op::maxpool2d, {1, 2, 37, 37}, {3, 2}, {1, 2}}, 3);
    check_pool({Op::maxpool2d, {1, 1, 1, 1}, {3, 3}, {3, 3}, {1, 1, 1, 1}}, 4, true);
}

TEST_CASE("reference: maxpool2d with dilation; a window that skips every cell of x is -inf", "[reference]") {
    PoolSpec k{Op::maxpool2d, {2, 3, 9, 7}, {3, 2}, {1, 2}, {2, 1, 1, 1}};
    k.dilation = {2, 3};
    check_pool(k, 11, true);
    // x 1 wide, kernel 2 dilated by 3, padding 2: every window's two cells lie in the padding.
    PoolSpec empty{Op::maxpool2d, {1, 2, 1, 1}, {1, 2}, {1, 1}, {0, 2, 0, 2}};
    empty.dilation = {1, 3};
    check_pool(empty, 12);
}

TEST_CASE("reference: avgpool2d, count_include_pad both ways", "[reference]") {
    for (bool include : {false, true}) {
        INFO("count_include_pad " << include);
        check_pool({Op::avgpool2d, {2, 3, 7, 5}, {3, 3}, {2, 2}, {1, 1, 1, 1}, include}, 5);
        check_pool({Op::avgpool2d, {1, 2, 6, 7}, {2, 3}, {1, 2}, {0, 1, 1, 0}, include}, 6);
        check_pool({Op::avgpool2d, {1, 1, 1, 1}, {3, 3}, {3, 3}, {1, 1, 1, 1}, include}, 7);
        check_pool({Op::avgpool2d, {1, 2, 37, 37}, {2, 2}, {3, 3}, {1, 1, 1, 1}, include}, 8);  // stride > kernel
    }
}

TEST_CASE("reference: avgpool2d default stride and count_include_pad", "[reference]") {
    GraphBuilder b;
    b.input("x", {1, 2, 5, 5});
    b.node("y", Op::avgpool2d, {"x"}, {{"kernel", L({2})}, {"padding", L({1})}});
    Run r = run(b, 11);
    Shape shape;
    std::vector<double> want = naive_pool({Op::avgpool2d, {1, 2, 5, 5}, {2, 2}, {2, 2}, {1, 1, 1, 1}}, r.in("x"), shape);
    check_values(r.out.at("y"), shape, want);
    // The corner window holds one cell of x, so it is that cell (not a quarter of it).
    CHECK(r.out.at("y").data[0] == r.in("x")[0]);
}

TEST_CASE("reference: global_avgpool", "[reference]") {
    GraphBuilder b;
    b.input("x", {2, 3, 5, 7});
    b.node("y", Op::global_avgpool, {"x"});
    Run r = run(b, 12);
    std::vector<double> x = r.in("x"), want;
    for (int plane = 0; plane < 6; ++plane) {
        double sum = 0;
        for (int h = 0; h < 5; ++h)
            for (int w = 0; w < 7; ++w) sum += x[(plane * 5 + h) * 7 + w];
        want.push_back(sum / 35);
    }
    check_values(r.out.at("y"), {2, 3, 1, 1}, want);
}

// ---------------------------------------------------------------- batchnorm

TEST_CASE("reference: batchnorm over channel dimension 1, any rank", "[reference]") {
    for (const Shape& xs : {Shape{2, 3, 4, 5}, Shape{4, 3}, Shape{2, 3, 5}}) {
        INFO(shape_str(xs));
        GraphBuilder b;
        b.input("x", xs);
        for (const char* p : {"scale", "bias", "mean", "var"}) b.param(p, {3});
        b.node("y", Op::batchnorm, {"x", "scale", "bias", "mean", "var"}, {{"eps", F(0.25)}});
        b.node("d", Op::batchnorm, {"x", "scale", "bias", "mean", "var"});  // eps 1e-5
        Run r = run(b, 13, {"var"});
        std::vector<double> x = r.in("x"), s = r.in("scale"), bt = r.in("bias"), m = r.in("mean"), v = r.in("var");
        int64_t inner = numel(xs) / (xs[0] * 3);
        for (double eps : {0.25, 1e-5}) {
            std::vector<double> want;
            for (int64_t n = 0; n < xs[0]; ++n)
                for (int c = 0; c < 3; ++c)
                    for (int64_t k = 0; k < inner; ++k) {
                        double xv = x[(n * 3 + c) * inner + k];
                        want.push_back(s[c] * (xv - m[c]) / std::sqrt(v[c] + eps) + bt[c]);
                    }
            check_values(r.out.at(eps == 0.25 ? "y" : "d"), xs, want, 1e-10);
        }
    }
}

// ---------------------------------------------------------------- embedding

namespace {

// table [6, 3] (random), ids [2, 4] i32 with the given values; node y.
struct EmbeddingRun {
    GraphBuilder b;
    Graph g;
    TensorMap values;
};
EmbeddingRun embedding_run(const Shape& ids_shape, const std::vector<int>& ids) {
    EmbeddingRun e;
    e.b.param("table", {6, 3});
    e.b.input("ids", ids_shape, DType::i32);
    e.b.node("y", Op::embedding, {"table", "ids"});
    e.g = infer_shapes(e.b.graph());
    e.values = random_values(e.g, 14);
    HostTensor t(DType::i32, ids_shape);
    for (size_t i = 0; i < ids.size(); ++i) t.set(int64_t(i), ids[i]);
    e.values["ids"] = t;
    return e;
}

std::string embedding_error(const EmbeddingRun& e) {
    try {
        reference_execute(e.g, e.values);
    } catch (const UserError& err) {
        return err.what();
    }
    return "";
}

}  // namespace

TEST_CASE("reference: embedding gathers rows, the first and last included", "[reference]") {
    std::vector<int> ids{0, 5, 2, 2, 4, 1, 3, 0};
    EmbeddingRun e = embedding_run({2, 4}, ids);
    auto out = reference_execute(e.g, e.values);
    std::vector<double> table = e.values.at("table").to_doubles(), want;
    for (int id : ids)
        for (int d = 0; d < 3; ++d) want.push_back(table[id * 3 + d]);
    check_values(out.at("y"), {2, 4, 3}, want, 0);
    EmbeddingRun s = embedding_run({}, {4});
    out = reference_execute(s.g, s.values);
    check_values(out.at("y"), {3}, {table[12], table[13], table[14]}, 0);
}

TEST_CASE("reference: an embedding id outside the table is a user error at run time", "[reference]") {
    std::string at = "test.yaml:3:" + std::to_string(operand_col(1)) + ": node 'y': ";
    CHECK(embedding_error(embedding_run({2, 4}, {0, 1, 2, 3, 4, 5, 6, 0})) ==
          at + "embedding id 6 at position [1, 2] of ids 'ids' is outside [0, 6): table 'table' has 6 rows");
    CHECK(embedding_error(embedding_run({2, 4}, {-1, 1, 2, 3, 4, 5, 0, 0})) ==
          at + "embedding id -1 at position [0, 0] of ids 'ids' is outside [0, 6): table 'table' has 6 rows");
    CHECK(embedding_error(embedding_run({}, {100000})) ==
          at + "embedding id 100000 at position [] of ids 'ids' is outside [0, 6): table 'table' has 6 rows");
}
