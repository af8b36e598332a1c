// Shape inference for conv2d, the pools, batchnorm and embedding: output
// sizes for every padding form, stride, dilation and groups, and one test
// per refusal with its exact message and place in the file.
#include <catch2/catch.hpp>

#include "frontend/graph.h"
#include "graph_builder.h"
#include "frontend/infer_shapes.h"

using namespace anvil;
using namespace anvil::test;

namespace {

Shape inferred(const GraphBuilder& b, const std::string& name) {
    Graph g = infer_shapes(b.graph());
    return g.value(*g.find(name)).shape;
}


using AttrMap = std::map<std::string, AttrValue>;

// The shape of conv2d over x and w (and a bias when `bias`), with attrs.
Shape conv_shape(const Shape& x, const Shape& w, const AttrMap& attrs, bool bias = false) {
    GraphBuilder b;
    b.input("x", x);
    b.param("w", w);
    b.param("b", {w[0]});
    b.node("y", Op::conv2d, bias ? std::vector<std::string>{"x", "w", "b"} : std::vector<std::string>{"x", "w"},
           attrs);
    return inferred(b, "y");
}

Shape pool_shape(Op op, const Shape& x, const AttrMap& attrs) {
    GraphBuilder b;
    b.input("x", x);
    b.node("y", op, {"x"}, attrs);
    return inferred(b, "y");
}

// The message of a conv2d over x and w (and bias b, if given) with attrs.
// Line 1: x, line 2: w, line 3: b (when given), then node y.
struct ConvCase {
    Shape x, w;
    std::optional<Shape> bias;
    AttrMap attrs;
};
std::pair<GraphBuilder, std::string> conv_error(const ConvCase& k) {
    GraphBuilder b;
    b.input("x", k.x);
    b.param("w", k.w);
    std::vector<std::string> ins{"x", "w"};
    if (k.bias) {
        b.param("b", *k.bias);
        ins.push_back("b");
    }
    b.node("y", Op::conv2d, ins, k.attrs);
    std::string e = error_of(b);
    return {b, e};
}

std::pair<GraphBuilder, std::string> pool_error(Op op, const Shape& x, const AttrMap& attrs) {
    GraphBuilder b;
    b.input("x", x);
    b.node("y", op, {"x"}, attrs);
    std::string e = error_of(b);
    return {b, e};
}

}  // namespace

// ---------------------------------------------------------------- conv2d shapes

TEST_CASE("infer: conv2d output size for every padding form", "[infer]") {
    const Shape x{2, 3, 8, 8}, w{4, 3, 3, 3};
    CHECK(conv_shape(x, w, {}) == Shape{2, 4, 6, 6});
    CHECK(conv_shape(x, w, {{"padding", L({1})}}) == Shape{2, 4, 8, 8});
    CHECK(conv_shape(x, w, {{"padding", L({1, 2})}}) == Shape{2, 4, 8, 10});       // [h, w]
    CHECK(conv_shape(x, w, {{"padding", L({0, 1, 2, 4})}}) == Shape{2, 4, 8, 11});  // [top, left, bottom, right]
    CHECK(conv_shape(x, w, {{"padding", L({3, 0, 0, 0})}}) == Shape{2, 4, 9, 6});   // top only
    CHECK(conv_shape(x, w, {{"padding", L({0, 0, 0, 3})}}) == Shape{2, 4, 6, 9});   // right only
}

TEST_CASE("infer: conv2d strides, odd sizes, kernels larger and smaller than the stride", "[infer]") {
    const Shape x{1, 3, 37, 37};
    CHECK(conv_shape(x, {4, 3, 3, 3}, {{"stride", L({2})}, {"padding", L({1})}}) == Shape{1, 4, 19, 19});
    CHECK(conv_shape(x, {4, 3, 3, 3}, {{"stride", L({2, 3})}, {"padding", L({1})}}) == Shape{1, 4, 19, 13});
    CHECK(conv_shape(x, {4, 3, 5, 5}, {{"stride", L({2})}}) == Shape{1, 4, 17, 17});  // (37 - 5) / 2 + 1
    CHECK(conv_shape(x, {4, 3, 1, 1}, {{"stride", L({3})}}) == Shape{1, 4, 13, 13});  // (37 - 1) / 3 + 1
    CHECK(conv_shape(x, {4, 3, 4, 2}, {{"stride", L({4, 5})}}) == Shape{1, 4, 9, 8});  // floor
    CHECK(conv_shape(x, {8, 3, 7, 7}, {{"stride", L({2})}, {"padding", L({3})}}) == Shape{1, 8, 19, 19});
}

TEST_CASE("infer: conv2d dilation", "[infer]") {
    const Shape x{1, 3, 37, 37}, w{4, 3, 3, 3};
    CHECK(conv_shape(x, w, {{"dilation", L({2})}}) == Shape{1, 4, 33, 33});     // spans 5
    CHECK(conv_shape(x, w, {{"dilation", L({2, 3})}}) == Shape{1, 4, 33, 31});  // spans 5 x 7
    CHECK(conv_shape(x, w, {{"dilation", L({2})}, {"stride", L({2})}, {"padding", L({2})}}) == Shape{1, 4, 19, 19});
    // A dilated kernel that exactly fits.
    CHECK(conv_shape({1, 3, 5, 7}, w, {{"dilation", L({2, 3})}}) == Shape{1, 4, 1, 1});
}

TEST_CASE("infer: conv2d groups, depthwise, bias and 1x1 images", "[infer]") {
    CHECK(conv_shape({1, 6, 9, 9}, {4, 3, 3, 3}, {{"groups", I(2)}}) == Shape{1, 4, 7, 7});
    CHECK(conv_shape({1, 6, 9, 9}, {6, 1, 3, 3}, {{"groups", I(6)}}, true) == Shape{1, 6, 7, 7});
    // Depthwise, C = O = groups, keeping the size.
    CHECK(conv_shape({2, 8, 5, 5}, {8, 1, 3, 3}, {{"groups", I(8)}, {"padding", L({1})}}, true) ==
          Shape{2, 8, 5, 5});
    // Depthwise with a channel multiplier of 2.
    CHECK(conv_shape({2, 8, 5, 5}, {16, 1, 3, 3}, {{"groups", I(8)}}) == Shape{2, 16, 3, 3});
    CHECK(conv_shape({1, 3, 1, 1}, {4, 3, 1, 1}, {}, true) == Shape{1, 4, 1, 1});
    CHECK(conv_shape({1, 3, 1, 1}, {4, 3, 3, 3}, {{"padding", L({1})}}) == Shape{1, 4, 1, 1});
    CHECK(conv_shape({1, 3, 1, 1}, {4, 3, 3, 3}, {{"padding", L({1})}, {"stride", L({2})}}) == Shape{1, 4, 1, 1});
}

// ---------------------------------------------------------------- pool shapes

TEST_CASE("infer: maxpool2d and avgpool2d output size, stride defaulting to the kernel", "[infer]") {
    for (Op op : {Op::maxpool2d, Op::avgpool2d}) {
        INFO(op_name(op));
        const Shape x{2, 5, 37, 37};
        CHECK(pool_shape(op, x, {{"kernel", L({2})}}) == Shape{2, 5, 18, 18});  // stride 2, floor
        CHECK(pool_shape(op, x, {{"kernel", L({3})}, {"stride", L({2})}, {"padding", L({1})}}) == Shape{2, 5, 19, 19});
        CHECK(pool_shape(op, x, {{"kernel", L({3, 2})}, {"stride", L({1, 2})}}) == Shape{2, 5, 35, 18});
        CHECK(pool_shape(op, x, {{"kernel", L({3})}, {"padding", L({1, 0})}}) == Shape{2, 5, 13, 12});
        CHECK(pool_shape(op, x, {{"kernel", L({2})}, {"stride", L({1})}, {"padding", L({1, 0, 1, 1})}}) ==
              Shape{2, 5, 38, 37});
        CHECK(pool_shape(op, x, {{"kernel", L({1})}}) == x);
        CHECK(pool_shape(op, x, {{"kernel", L({2})}, {"stride", L({3})}}) == Shape{2, 5, 12, 12});  // stride > kernel
        CHECK(pool_shape(op, {1, 1, 1, 1}, {{"kernel", L({3})}, {"padding", L({1})}}) == Shape{1, 1, 1, 1});
        CHECK(pool_shape(op, {1, 1, 1, 1}, {{"kernel", L({1})}}) == Shape{1, 1, 1, 1});
    }
    for (bool include : {false, true})
        CHECK(pool_shape(Op::avgpool2d, {1, 2, 6, 6},
                         {{"kernel", L({3})}, {"padding", L({1})}, {"count_include_pad", B(include)}}) ==
              Shape{1, 2, 2, 2});
}

TEST_CASE("infer: global_avgpool keeps N and C", "[infer]") {
    CHECK(pool_shape(Op::global_avgpool, {2, 5, 37, 37}, {}) == Shape{2, 5, 1, 1});
    CHECK(pool_shape(Op::global_avgpool, {1, 1, 1, 1}, {}) == Shape{1, 1, 1, 1});
}

// ---------------------------------------------------------------- batchnorm, embedding

TEST_CASE("infer: batchnorm keeps x's shape, of any rank from 2", "[infer]") {
    for (const Shape& x : {Shape{2, 3}, Shape{2, 3, 37}, Shape{2, 3, 5, 7}, Shape{1, 3, 1, 1, 2, 2}}) {
        GraphBuilder b;
        b.input("x", x);
        for (const char* p : {"s", "bt", "m", "v"}) b.param(p, {3});
        b.node("y", Op::batchnorm, {"x", "s", "bt", "m", "v"}, {{"eps", F(1e-3)}});
        CHECK(inferred(b, "y") == x);
    }
}

TEST_CASE("infer: embedding appends D to the shape of the ids", "[infer]") {
    for (const Shape& ids : {Shape{}, Shape{7}, Shape{2, 3}, Shape{1, 2, 1, 2, 3}}) {
        GraphBuilder b;
        b.param("table", {10, 4});
        b.input("ids", ids, DType::i32);
        b.node("y", Op::embedding, {"table", "ids"});
        Shape want = ids;
        want.push_back(4);
        CHECK(inferred(b, "y") == want);
    }
}

TEST_CASE("infer: i32 inputs and params that feed embedding ids are accepted", "[infer]") {
    GraphBuilder b(DType::f16);
    b.param("table", {10, 4});
    b.input("ids", {5}, DType::i32);
    b.param("fixed_ids", {2, 2}, DType::i32);
    b.node("a", Op::embedding, {"table", "ids"});
    b.node("b", Op::embedding, {"table", "ids"}, {}, DType::f32);  // one i32 tensor, two uses
    b.node("c", Op::embedding, {"table", "fixed_ids"});
    Graph g = infer_shapes(b.graph());
    CHECK(g.value(*g.find("a")).dtype == DType::f16);
    CHECK(g.value(*g.find("b")).dtype == DType::f32);
    CHECK(g.value(*g.find("c")).shape == Shape{2, 2, 4});
    CHECK(g.value(*g.find("ids")).dtype == DType::i32);
}

// ---------------------------------------------------------------- conv2d refusals

TEST_CASE("infer error: conv2d x and w of the wrong rank", "[infer]") {
    auto [b, e] = conv_error({{3, 8, 8}, {4, 3, 3, 3}, {}, {}});
    CHECK(e == at_operand(b, "y", 0) +
                   "conv2d x 'x' is [3, 8, 8], but it must have rank 4: [N, C, H, W] (reshape it to [1, 3, 8, 8])");
    auto [b5, e5] = conv_error({{2, 3, 4, 8, 8}, {4, 3, 3, 3}, {}, {}});
    CHECK(e5 == at_operand(b5, "y", 0) +
                    "conv2d x 'x' is [2, 3, 4, 8, 8], but it must have rank 4: [N, C, H, W] (reshape it to [6, 4, 8, "
                    "8])");
    auto [bw, ew] = conv_error({{1, 3, 8, 8}, {4, 27}, {}, {}});
    CHECK(ew == at_operand(bw, "y", 1) + "conv2d w 'w' is [4, 27], but it must have rank 4: [O, C/groups, KH, KW]");
}

TEST_CASE("infer error: conv2d stride, dilation and padding", "[infer]") {
    auto message = [](const std::string& attr, std::vector<int64_t> v) {
        auto [b, e] = conv_error({{1, 3, 8, 8}, {4, 3, 3, 3}, {}, {{attr, L(v)}}});
        std::string prefix = at_attr(b, "y", Op::conv2d, attr);
        REQUIRE(e.rfind(prefix, 0) == 0);
        return e.substr(prefix.size());
    };
    CHECK(message("stride", {1, 2, 3}) == "conv2d stride must be an int or [h, w], got [1, 2, 3]");
    CHECK(message("stride", {}) == "conv2d stride must be an int or [h, w], got []");
    CHECK(message("stride", {0}) == "conv2d stride must be positive, got 0");
    CHECK(message("stride", {1, -2}) == "conv2d stride must be positive, got [1, -2]");
    CHECK(message("dilation", {0, 1}) == "conv2d dilation must be positive, got [0, 1]");
    CHECK(message("dilation", {2, 2, 2, 2}) == "conv2d dilation must be an int or [h, w], got [2, 2, 2, 2]");
    CHECK(message("padding", {1, 1, 1}) ==
          "conv2d padding must be an int, [h, w] or [top, left, bottom, right], got [1, 1, 1]");
    CHECK(message("padding", {-1}) == "conv2d padding must be non-negative, got -1");
    CHECK(message("padding", {0, 0, 0, -2}) == "conv2d padding must be non-negative, got [0, 0, 0, -2]");
}

TEST_CASE("infer error: conv2d groups", "[infer]") {
    auto [b0, e0] = conv_error({{1, 4, 8, 8}, {4, 4, 3, 3}, {}, {{"groups", I(0)}}});
    CHECK(e0 == at_attr(b0, "y", Op::conv2d, "groups") + "conv2d groups must be at least 1, got 0");
    auto [bc, ec] = conv_error({{1, 6, 8, 8}, {8, 2, 3, 3}, {}, {{"groups", I(4)}}});
    CHECK(ec == at_attr(bc, "y", Op::conv2d, "groups") +
                    "conv2d groups 4 does not divide the channels of x [1, 6, 8, 8] (C = 6); groups must divide both "
                    "C and O");
    auto [bo, eo] = conv_error({{1, 6, 8, 8}, {8, 2, 3, 3}, {}, {{"groups", I(3)}}});
    CHECK(eo == at_attr(bo, "y", Op::conv2d, "groups") +
                    "conv2d groups 3 does not divide the output channels of w [8, 2, 3, 3] (O = 8); groups must "
                    "divide both C and O");
}

TEST_CASE("infer error: conv2d w's channels do not match x", "[infer]") {
    // A depthwise weight without groups: the hint names the groups that fit.
    auto [b, e] = conv_error({{1, 8, 5, 5}, {8, 1, 3, 3}, {}, {}});
    CHECK(e == at_operand(b, "y", 1) +
                   "conv2d w 'w' is [8, 1, 3, 3], but x 'x' is [1, 8, 5, 5] with groups 1: w's dimension 1 must be "
                   "C/groups = 8 (did you mean groups: 8?)");
    auto [bn, en] = conv_error({{1, 6, 5, 5}, {4, 5, 3, 3}, {}, {{"groups", I(2)}}});
    CHECK(en == at_operand(bn, "y", 1) +
                    "conv2d w 'w' is [4, 5, 3, 3], but x 'x' is [1, 6, 5, 5] with groups 2: w's dimension 1 must be "
                    "C/groups = 3 (w is [O, C/groups, KH, KW])");
    // C / w[1] = 3 groups would divide C but not O = 4: no groups fits.
    auto [bo, eo] = conv_error({{1, 6, 5, 5}, {4, 2, 3, 3}, {}, {}});
    CHECK(eo == at_operand(bo, "y", 1) +
                    "conv2d w 'w' is [4, 2, 3, 3], but x 'x' is [1, 6, 5, 5] with groups 1: w's dimension 1 must be "
                    "C/groups = 6 (w is [O, C/groups, KH, KW])");
}

TEST_CASE("infer error: conv2d bias shape", "[infer]") {
    auto [b, e] = conv_error({{1, 3, 8, 8}, {4, 3, 3, 3}, Shape{3}, {}});
    CHECK(e == at_operand(b, "y", 2) +
                   "conv2d bias 'b' is [3], but it must be [4]: one value per output channel of w [4, 3, 3, 3]");
    auto [b2, e2] = conv_error({{1, 3, 8, 8}, {4, 3, 3, 3}, Shape{1, 4}, {}});
    CHECK(e2 == at_operand(b2, "y", 2) +
                    "conv2d bias 'b' is [1, 4], but it must be [4]: one value per output channel of w [4, 3, 3, 3]");
}

TEST_CASE("infer error: conv2d kernel larger than the padded input", "[infer]") {
    auto [b, e] = conv_error({{1, 3, 6, 6}, {4, 3, 5, 5}, {}, {{"dilation", L({2})}}});
    CHECK(e == at_node(b, "y") +
                   "conv2d kernel does not fit: w [4, 3, 5, 5] with dilation 2 spans 9 x 9, but x [1, 3, 6, 6] with "
                   "padding 0 is 6 x 6 (add padding, or use a smaller kernel or dilation)");
    // Only W is short: 1 + 0 + 1 < 3.
    auto [bw, ew] = conv_error({{1, 3, 5, 1}, {4, 3, 3, 3}, {}, {{"padding", L({0, 0, 0, 1})}}});
    CHECK(ew == at_node(bw, "y") +
                    "conv2d kernel does not fit: w [4, 3, 3, 3] with dilation 1 spans 3 x 3, but x [1, 3, 5, 1] with "
                    "padding [0, 0, 0, 1] is 5 x 2 (add padding, or use a smaller kernel or dilation)");
}

// ---------------------------------------------------------------- pool refusals

TEST_CASE("infer error: pools need x of rank 4", "[infer]") {
    auto [b, e] = pool_error(Op::maxpool2d, {8, 8}, {{"kernel", L({2})}});
    CHECK(e == at_operand(b, "y", 0) +
                   "maxpool2d x 'x' is [8, 8], but it must have rank 4: [N, C, H, W] (reshape it to [1, 1, 8, 8])");
    auto [bg, eg] = pool_error(Op::global_avgpool, {3, 8, 8}, {});
    CHECK(eg == at_operand(bg, "y", 0) +
                    "global_avgpool x 'x' is [3, 8, 8], but it must have rank 4: [N, C, H, W] (reshape it to [1, 3, "
                    "8, 8])");
}

TEST_CASE("infer error: pool kernel, stride and padding attributes", "[infer]") {
    auto message = [](Op op, const AttrMap& attrs, const std::string& attr) {
        auto [b, e] = pool_error(op, {1, 2, 8, 8}, attrs);
        std::string prefix = at_attr(b, "y", op, attr);
        REQUIRE(e.rfind(prefix, 0) == 0);
        return e.substr(prefix.size());
    };
    CHECK(message(Op::maxpool2d, {{"kernel", L({2, 2, 2})}}, "kernel") ==
          "maxpool2d kernel must be an int or [h, w], got [2, 2, 2]");
    CHECK(message(Op::avgpool2d, {{"kernel", L({0})}}, "kernel") == "avgpool2d kernel must be positive, got 0");
    CHECK(message(Op::maxpool2d, {{"kernel", L({2})}, {"stride", L({2, 0})}}, "stride") ==
          "maxpool2d stride must be positive, got [2, 0]");
    CHECK(message(Op::avgpool2d, {{"kernel", L({2})}, {"padding", L({1, 0, 0})}}, "padding") ==
          "avgpool2d padding must be an int, [h, w] or [top, left, bottom, right], got [1, 0, 0]");
    CHECK(message(Op::maxpool2d, {{"kernel", L({2})}, {"padding", L({-1})}}, "padding") ==
          "maxpool2d padding must be non-negative, got -1");
}

TEST_CASE("infer error: pool padding more than half the kernel, as PyTorch", "[infer]") {
    auto message = [](Op op, const AttrMap& attrs) {
        auto [b, e] = pool_error(op, {1, 2, 8, 8}, attrs);
        std::string prefix = at_attr(b, "y", op, "padding");
        REQUIRE(e.rfind(prefix, 0) == 0);
        return e.substr(prefix.size());
    };
    CHECK(message(Op::maxpool2d, {{"kernel", L({3})}, {"padding", L({2})}}) ==
          "maxpool2d padding 2 is more than half the kernel 3: at most 1 along H (PyTorch refuses this too: a window "
          "could then hold only padding)");
    CHECK(message(Op::avgpool2d, {{"kernel", L({4, 3})}, {"padding", L({2, 2})}}) ==
          "avgpool2d padding [2, 2] is more than half the kernel [4, 3]: at most 1 along W (PyTorch refuses this too: "
          "a window could then hold only padding)");
    // Every side of the four-number form counts, the bottom one included.
    CHECK(message(Op::avgpool2d, {{"kernel", L({2})}, {"padding", L({1, 1, 2, 0})}}) ==
          "avgpool2d padding [1, 1, 2, 0] is more than half the kernel 2: at most 1 along H (PyTorch refuses this "
          "too: a window could then hold only padding)");
    CHECK(message(Op::maxpool2d, {{"kernel", L({1})}, {"padding", L({0, 0, 0, 1})}}) ==
          "maxpool2d padding [0, 0, 0, 1] is more than half the kernel 1: at most 0 along W (PyTorch refuses this "
          "too: a window could then hold only padding)");
    // Exactly half is accepted.
    CHECK(pool_shape(Op::maxpool2d, {1, 2, 8, 8}, {{"kernel", L({5, 4})}, {"padding", L({2, 2})}}) ==
          Shape{1, 2, 2, 3});
}

TEST_CASE("infer error: pool kernel larger than the padded input", "[infer]") {
    auto [b, e] = pool_error(Op::maxpool2d, {1, 4, 2, 9}, {{"kernel", L({3})}});
    CHECK(e == at_node(b, "y") +
                   "maxpool2d kernel 3 is larger than x [1, 4, 2, 9] with padding 0 (2 x 9); use a smaller kernel");
    auto [ba, ea] = pool_error(Op::avgpool2d, {1, 4, 9, 1}, {{"kernel", L({1, 4})}, {"padding", L({0, 0, 0, 2})}});
    CHECK(ea == at_node(ba, "y") +
                    "avgpool2d kernel [1, 4] is larger than x [1, 4, 9, 1] with padding [0, 0, 0, 2] (9 x 3); use a "
                    "smaller kernel");
}

// ---------------------------------------------------------------- batchnorm refusals

TEST_CASE("infer error: batchnorm x rank and per-channel operands", "[infer]") {
    auto build = [](const Shape& x, const Shape& mean, const Shape& var, double eps) {
        GraphBuilder b;
        b.input("x", x);
        b.param("s", {4});
        b.param("bt", {4});
        b.param("m", mean);
        b.param("v", var);
        b.node("y", Op::batchnorm, {"x", "s", "bt", "m", "v"}, {{"eps", F(eps)}});
        return b;
    };
    GraphBuilder b1 = build({4}, {4}, {4}, 1e-5);
    CHECK(error_of(b1) == at_operand(b1, "y", 0) +
                              "batchnorm x 'x' is [4], but it must have rank 2 or more: [N, C, ...] (reshape it to [1, "
                              "4])");
    GraphBuilder bs = build({2, 3, 5}, {4}, {4}, 1e-5);
    CHECK(error_of(bs) == at_operand(bs, "y", 1) +
                              "batchnorm scale 's' is [4], but it must be [3]: one value per channel of x [2, 3, 5] "
                              "(its dimension 1)");
    GraphBuilder bm = build({2, 4, 5}, {1, 4}, {4}, 1e-5);
    CHECK(error_of(bm) == at_operand(bm, "y", 3) +
                              "batchnorm mean 'm' is [1, 4], but it must be [4]: one value per channel of x [2, 4, 5] "
                              "(its dimension 1)");
    GraphBuilder bv = build({2, 4, 5}, {4}, {5}, 1e-5);
    CHECK(error_of(bv) == at_operand(bv, "y", 4) +
                              "batchnorm var 'v' is [5], but it must be [4]: one value per channel of x [2, 4, 5] "
                              "(its dimension 1)");
    GraphBuilder be = build({2, 4, 5}, {4}, {4}, -0.001);
    CHECK(error_of(be) == at_attr(be, "y", Op::batchnorm, "eps") + "batchnorm eps must be non-negative, got -0.001");
    GraphBuilder bz = build({2, 4, 5}, {4}, {4}, 0.0);
    CHECK(error_of(bz) == "");
}

TEST_CASE("infer error: batchnorm bias shape", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 4, 3, 3});
    b.param("s", {4});
    b.param("bt", {2});
    b.node("y", Op::batchnorm, {"x", "s", "bt", "s", "s"});
    CHECK(error_of(b) == at_operand(b, "y", 2) +
                             "batchnorm bias 'bt' is [2], but it must be [4]: one value per channel of x [2, 4, 3, 3] "
                             "(its dimension 1)");
}

// ---------------------------------------------------------------- embedding refusals

TEST_CASE("infer error: embedding table rank", "[infer]") {
    GraphBuilder b;
    b.param("table", {10, 4, 2});
    b.input("ids", {3}, DType::i32);
    b.node("y", Op::embedding, {"table", "ids"});
    CHECK(error_of(b) == at_operand(b, "y", 0) + "embedding table 'table' is [10, 4, 2], but it must have rank 2: [V, D]");
}

TEST_CASE("infer error: embedding ids that are not i32", "[infer]") {
    GraphBuilder b;
    b.param("table", {10, 4});
    b.input("ids", {3});
    b.node("y", Op::embedding, {"table", "ids"});
    CHECK(error_of(b) == at_operand(b, "y", 1) +
                             "embedding ids 'ids' is f32, but ids must be i32 (declare input 'ids' with dtype: i32)");
    GraphBuilder p(DType::bf16);
    p.param("table", {10, 4});
    p.param("ids", {3});
    p.node("y", Op::embedding, {"table", "ids"});
    CHECK(error_of(p) == at_operand(p, "y", 1) +
                             "embedding ids 'ids' is bf16, but ids must be i32 (declare param 'ids' with dtype: i32)");
    GraphBuilder n;
    n.param("table", {10, 4});
    n.input("x", {3});
    n.node("ids", Op::relu, {"x"});
    n.node("y", Op::embedding, {"table", "ids"});
    CHECK(error_of(n) == at_operand(n, "y", 1) +
                             "embedding ids 'ids' is f32, but ids must be i32 (a node's result is never i32; feed the "
                             "ids from an i32 input or param)");
}

TEST_CASE("infer error: an i32 embedding table, most likely swapped with the ids", "[infer]") {
    GraphBuilder b;
    b.param("table", {10, 4});
    b.input("ids", {3}, DType::i32);
    b.node("y", Op::embedding, {"ids", "table"});
    CHECK(error_of(b) == at_operand(b, "y", 0) +
                             "embedding table 'ids' is i32, but the table must be float (f32, f16, bf16); embedding "
                             "takes [table, ids]: are they swapped?");
    GraphBuilder c;
    c.param("table", {10, 4}, DType::i32);
    c.input("ids", {3}, DType::i32);
    c.node("y", Op::embedding, {"table", "ids"});
    CHECK(error_of(c) == at_operand(c, "y", 0) +
                             "embedding table 'table' is i32, but the table must be float (f32, f16, bf16)");
}

TEST_CASE("infer error: embedding ids of rank 6", "[infer]") {
    GraphBuilder b;
    b.param("table", {10, 4});
    b.input("ids", {1, 2, 1, 2, 1, 2}, DType::i32);
    b.node("y", Op::embedding, {"table", "ids"});
    CHECK(error_of(b) == at_operand(b, "y", 1) +
                             "embedding ids 'ids' is [1, 2, 1, 2, 1, 2], so the result would have rank 7; the rank of "
                             "a tensor is at most 6 (reshape the ids to fewer dimensions)");
}

TEST_CASE("infer error: i32 ids that also feed a float operand", "[infer]") {
    // One use as embedding ids does not make every other use fine.
    GraphBuilder b;
    b.param("table", {10, 4});
    b.input("ids", {1, 1, 2, 2}, DType::i32);
    b.param("w", {3, 1, 1, 1});
    b.node("e", Op::embedding, {"table", "ids"});
    b.node("y", Op::conv2d, {"ids", "w"});
    CHECK(error_of(b) == at_operand(b, "y", 0) +
                             "conv2d input 'ids' is i32, but conv2d takes only float tensors (f32, f16, bf16); i32 is "
                             "only for embedding ids");
    GraphBuilder t;  // an i32 param in the table position feeds no ids
    t.param("table", {10, 4}, DType::i32);
    t.input("x", {3});
    t.node("y", Op::relu, {"x"});
    t.node("z", Op::maxpool2d, {"table"}, {{"kernel", L({1})}});
    CHECK(error_of(t) == at_operand(t, "z", 0) +
                             "maxpool2d input 'table' is i32, but maxpool2d takes only float tensors (f32, f16, "
                             "bf16); i32 is only for embedding ids");
}
