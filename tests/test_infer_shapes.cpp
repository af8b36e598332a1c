// Shape and dtype inference: the result shape of every implemented op, and
// one test per refusal with its exact message and place in the file.
#include <catch2/catch.hpp>

#include "frontend/graph.h"
#include "graph_builder.h"
#include "frontend/infer_shapes.h"

using namespace anvil;
using namespace anvil::test;

namespace {

const Value& value_named(const Graph& g, const std::string& name) {
    for (VertexId v = 0; v < g.size(); ++v)
        if (g.value(v).name == name) return g.value(v);
    throw InternalError("no tensor " + name);
}

Shape inferred(const GraphBuilder& b, const std::string& name) {
    return value_named(infer_shapes(b.graph()), name).shape;
}


}  // namespace

// ---------------------------------------------------------------- shapes

TEST_CASE("infer: constant takes its shape attribute, scalar by default", "[infer]") {
    GraphBuilder b;
    b.node("c", Op::constant, {}, {{"value", F(2.0)}, {"shape", L({2, 3})}});
    b.node("s", Op::constant, {}, {{"value", F(1.0)}});
    CHECK(inferred(b, "c") == Shape{2, 3});
    CHECK(inferred(b, "s") == Shape{});
}

TEST_CASE("infer: binary ops broadcast like numpy", "[infer]") {
    for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::max, Op::min, Op::pow}) {
        GraphBuilder b;
        b.input("a", {2, 1, 4});
        b.input("b", {3, 1});
        b.input("s", {});
        b.node("y", op, {"a", "b"});
        b.node("z", op, {"s", "y"});
        b.node("w", op, {"b", "b"});
        INFO(op_name(op));
        CHECK(inferred(b, "y") == Shape{2, 3, 4});
        CHECK(inferred(b, "z") == Shape{2, 3, 4});
        CHECK(inferred(b, "w") == Shape{3, 1});
    }
}

TEST_CASE("infer: unary ops keep the shape, and node dtypes are kept", "[infer]") {
    for (const OpInfo& info : all_ops()) {
        if (info.cls != OpClass::Unary) continue;
        GraphBuilder b(DType::bf16);
        b.input("x", {2, 3, 5}, DType::f32);
        b.node("y", info.op, {"x"});
        b.node("z", info.op, {"y"}, {}, DType::f16);
        INFO(info.name);
        Graph g = infer_shapes(b.graph());
        CHECK(value_named(g, "y").shape == Shape{2, 3, 5});
        CHECK(value_named(g, "y").dtype == DType::bf16);
        CHECK(value_named(g, "z").dtype == DType::f16);
        CHECK(value_named(g, "x").shape == Shape{2, 3, 5});
    }
}

TEST_CASE("infer: softmax accepts negative axes", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("a", Op::softmax, {"x"});
    b.node("m", Op::softmax, {"x"}, {{"axis", I(-2)}});
    b.node("f", Op::softmax, {"x"}, {{"axis", I(0)}});
    CHECK(inferred(b, "a") == Shape{2, 3, 4});
    CHECK(inferred(b, "m") == Shape{2, 3, 4});
    CHECK(inferred(b, "f") == Shape{2, 3, 4});
}

TEST_CASE("infer: layernorm gamma and beta take the trailing dims from axis", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 12, 64});
    b.param("g2", {12, 64});
    b.param("b2", {12, 64});
    b.param("g1", {64});
    b.param("b1", {64});
    b.node("n2", Op::layernorm, {"x", "g2", "b2"}, {{"axis", I(-2)}});
    b.node("n1", Op::layernorm, {"x", "g1", "b1"});
    b.node("p1", Op::layernorm, {"x", "g2", "b2"}, {{"axis", I(1)}, {"eps", F(1e-3)}});
    CHECK(inferred(b, "n2") == Shape{2, 12, 64});
    CHECK(inferred(b, "n1") == Shape{2, 12, 64});
    CHECK(inferred(b, "p1") == Shape{2, 12, 64});
}

TEST_CASE("infer: rmsnorm gamma is the last dim", "[infer]") {
    GraphBuilder b;
    b.input("x", {4, 768});
    b.param("g", {768});
    b.node("y", Op::rmsnorm, {"x", "g"});
    CHECK(inferred(b, "y") == Shape{4, 768});
}

TEST_CASE("infer: reductions drop or keep their axes", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4, 5});
    b.node("s", Op::reduce_sum, {"x"}, {{"axes", L({0, 2})}});
    b.node("k", Op::reduce_mean, {"x"}, {{"axes", L({-1, 1})}, {"keepdims", B(true)}});
    b.node("m", Op::reduce_max, {"x"}, {{"axes", L({-3})}});
    b.node("all", Op::reduce_sum, {"x"}, {{"axes", L({3, 0, 1, 2})}});
    b.node("allk", Op::reduce_max, {"x"}, {{"axes", L({0, 1, 2, 3})}, {"keepdims", B(true)}});
    CHECK(inferred(b, "s") == Shape{3, 5});
    CHECK(inferred(b, "k") == Shape{2, 1, 4, 1});
    CHECK(inferred(b, "m") == Shape{2, 4, 5});
    CHECK(inferred(b, "all") == Shape{});
    CHECK(inferred(b, "allk") == Shape{1, 1, 1, 1});
}

TEST_CASE("infer: matmul with transposes and broadcast batch dims", "[infer]") {
    GraphBuilder b;
    b.input("a", {2, 1, 4, 5});
    b.input("b", {3, 5, 6});
    b.input("at", {7, 4});  // [K=7, M=4] with transpose_a
    b.input("bt", {9, 7});  // [N=9, K=7] with transpose_b
    b.input("w", {5, 6});
    b.node("y", Op::matmul, {"a", "b"});
    b.node("t", Op::matmul, {"at", "bt"}, {{"transpose_a", B(true)}, {"transpose_b", B(true)}});
    b.node("u", Op::matmul, {"a", "w"});
    b.node("v", Op::matmul, {"bt", "at"});
    CHECK(inferred(b, "y") == Shape{2, 3, 4, 6});
    CHECK(inferred(b, "t") == Shape{4, 9});
    CHECK(inferred(b, "u") == Shape{2, 1, 4, 6});
    CHECK(inferred(b, "v") == Shape{9, 4});
}

TEST_CASE("infer: transpose permutes dims, negative entries allowed", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("y", Op::transpose, {"x"}, {{"perm", L({2, 0, 1})}});
    b.node("z", Op::transpose, {"x"}, {{"perm", L({-2, -1, 0})}});
    CHECK(inferred(b, "y") == Shape{4, 2, 3});
    CHECK(inferred(b, "z") == Shape{3, 4, 2});
}

TEST_CASE("infer: reshape fills in one -1", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.input("one", {1, 1});
    b.node("a", Op::reshape, {"x"}, {{"shape", L({4, -1})}});
    b.node("c", Op::reshape, {"x"}, {{"shape", L({-1})}});
    b.node("d", Op::reshape, {"x"}, {{"shape", L({6, 2, 2})}});
    b.node("s", Op::reshape, {"one"}, {{"shape", L({})}});
    CHECK(inferred(b, "a") == Shape{4, 6});
    CHECK(inferred(b, "c") == Shape{24});
    CHECK(inferred(b, "d") == Shape{6, 2, 2});
    CHECK(inferred(b, "s") == Shape{});
}

TEST_CASE("infer: concat adds up the axis", "[infer]") {
    GraphBuilder b;
    b.input("a", {2, 1, 3});
    b.input("b", {2, 2, 3});
    b.input("c", {2, 3, 3});
    b.node("y", Op::concat, {"a", "b", "c"}, {{"axis", I(-2)}});
    b.node("one", Op::concat, {"a"}, {{"axis", I(0)}});
    CHECK(inferred(b, "y") == Shape{2, 6, 3});
    CHECK(inferred(b, "one") == Shape{2, 1, 3});
}

TEST_CASE("infer: slice follows python slicing", "[infer]") {
    GraphBuilder b;
    b.input("x", {3, 10});
    b.node("all", Op::slice, {"x"}, {{"axis", I(1)}});
    b.node("neg", Op::slice, {"x"}, {{"axis", I(-1)}, {"start", I(-3)}});           // 7, 8, 9
    b.node("step", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(1)}, {"step", I(3)}});  // 1, 4, 7
    b.node("clamp", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(-100)}, {"end", I(100)}, {"step", I(4)}});
    b.node("negend", Op::slice, {"x"}, {{"axis", I(0)}, {"end", I(-1)}});  // rows 0, 1
    b.node("odd", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(-9)}, {"end", I(-2)}, {"step", I(2)}});  // 1,3,5,7
    CHECK(inferred(b, "all") == Shape{3, 10});
    CHECK(inferred(b, "neg") == Shape{3, 3});
    CHECK(inferred(b, "step") == Shape{3, 3});
    CHECK(inferred(b, "clamp") == Shape{3, 3});
    CHECK(inferred(b, "negend") == Shape{2, 10});
    CHECK(inferred(b, "odd") == Shape{3, 4});
}

TEST_CASE("infer: nodes may be declared before their operands", "[infer]") {
    GraphBuilder b;
    b.node("y", Op::relu, {"z"});
    b.node("z", Op::matmul, {"x", "w"});
    b.input("x", {4, 8});
    b.param("w", {8, 2});
    CHECK(inferred(b, "y") == Shape{4, 2});
}

// ---------------------------------------------------------------- refusals

TEST_CASE("infer error: operands that do not broadcast", "[infer]") {
    GraphBuilder b;
    b.input("a", {2, 3, 4});
    b.input("b", {5, 4});
    b.node("y", Op::mul, {"a", "b"});
    CHECK(error_of(b) == at_node(b, "y") +
                             "mul operands do not broadcast: a is [2, 3, 4], b is [5, 4] (a's dimension 1 is 3, "
                             "b's dimension 0 is 5; trailing dimensions must be equal or 1)");
}

TEST_CASE("infer error: an i32 operand of a float op", "[infer]") {
    GraphBuilder b;
    b.input("x", {4});
    b.input("ids", {4}, DType::i32);
    b.node("y", Op::add, {"x", "ids"});
    CHECK(error_of(b) == at_operand(b, "y", 1) +
                             "add input 'ids' is i32, but add takes only float tensors (f32, f16, bf16); i32 is "
                             "only for embedding ids");
}

TEST_CASE("infer error: an i32 node", "[infer]") {
    GraphBuilder b;
    b.input("x", {4});
    b.node("y", Op::relu, {"x"}, {}, DType::i32);
    CHECK(error_of(b) == at_node(b, "y") +
                             "a node's dtype must be f32, f16 or bf16, not i32 (i32 is only for inputs and params "
                             "that feed embedding ids)");
}

TEST_CASE("infer error: an i32 input that feeds nothing", "[infer]") {
    GraphBuilder b;
    b.input("x", {4});
    b.input("ids", {4}, DType::i32);
    b.node("y", Op::relu, {"x"});
    CHECK(error_of(b) == at(b.line("ids"), 3, "input 'ids'") +
                             "dtype i32 is only for tensors that feed embedding ids, and this one feeds none");
}

TEST_CASE("infer error: a declared shape with a zero or too many dims", "[infer]") {
    GraphBuilder b;
    b.param("w", {3, 0});
    CHECK(error_of(b) == at(1, 3, "param 'w'") + "shape [3, 0] has a dimension 0; dimensions must be positive");
    GraphBuilder c;
    c.input("x", {1, 1, 1, 1, 1, 1, 2});
    CHECK(error_of(c) == at(1, 3, "input 'x'") +
                             "shape [1, 1, 1, 1, 1, 1, 2] has rank 7; the rank of a tensor is at most 6");
}

TEST_CASE("infer error: wrong number of inputs", "[infer]") {
    GraphBuilder b;
    b.input("x", {4});
    b.node("y", Op::add, {"x", "x", "x"});
    CHECK(error_of(b) == at_node(b, "y") + "add takes 2 inputs, got 3");
    GraphBuilder c;
    c.node("z", Op::concat, {}, {{"axis", I(0)}});
    CHECK(error_of(c) == at_node(c, "z") + "concat takes at least 1 inputs, got 0");
}

TEST_CASE("infer error: constant shape", "[infer]") {
    GraphBuilder b;
    b.node("c", Op::constant, {}, {{"value", F(1.0)}, {"shape", L({2, 0})}});
    CHECK(error_of(b) == at_attr(b, "c", Op::constant, "shape") +
                             "constant shape [2, 0] has a dimension 0; dimensions must be positive");
    GraphBuilder c;
    c.node("c", Op::constant, {}, {{"value", F(1.0)}, {"shape", L({1, 1, 1, 1, 1, 1, 1})}});
    CHECK(error_of(c) == at_attr(c, "c", Op::constant, "shape") +
                             "constant shape [1, 1, 1, 1, 1, 1, 1] has rank 7; the rank of a tensor is at most 6");
}

TEST_CASE("infer error: softmax axis out of range", "[infer]") {
    GraphBuilder b;
    b.input("x", {4, 5});
    b.node("y", Op::softmax, {"x"}, {{"axis", I(2)}});
    CHECK(error_of(b) == at_attr(b, "y", Op::softmax, "axis") +
                             "softmax axis 2 is out of range for rank 2 (x is [4, 5]); valid axes are -2..1");
    GraphBuilder c;
    c.input("s", {});
    c.node("y", Op::softmax, {"s"});  // default axis: no place of its own
    CHECK(error_of(c) == at_node(c, "y") +
                             "softmax axis -1 is out of range for rank 0 (x is []); a scalar has no axes");
}

TEST_CASE("infer error: layernorm gamma and beta shapes", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 12, 64});
    b.param("g", {64});
    b.param("beta", {12, 64});
    b.node("n", Op::layernorm, {"x", "g", "beta"}, {{"axis", I(-2)}});
    CHECK(error_of(b) == at_operand(b, "n", 1) +
                             "layernorm gamma 'g' is [64], but it must be [12, 64]: the dims of x [2, 12, 64] from "
                             "axis -2 on");
    GraphBuilder c;
    c.input("x", {2, 12, 64});
    c.param("g", {64});
    c.param("beta", {12, 64});
    c.node("n", Op::layernorm, {"x", "g", "beta"});
    CHECK(error_of(c) == at_operand(c, "n", 2) +
                             "layernorm beta 'beta' is [12, 64], but it must be [64]: the dims of x [2, 12, 64] "
                             "from axis -1 on");
    GraphBuilder e;  // the same element count is not enough
    e.input("x", {2, 12, 64});
    e.param("g", {64, 12});
    e.node("n", Op::layernorm, {"x", "g", "g"}, {{"axis", I(1)}});
    CHECK(error_of(e) == at_operand(e, "n", 1) +
                             "layernorm gamma 'g' is [64, 12], but it must be [12, 64]: the dims of x [2, 12, 64] "
                             "from axis 1 on");
    GraphBuilder d;
    d.input("x", {2, 12, 64});
    d.param("g", {64});
    d.node("n", Op::layernorm, {"x", "g", "g"}, {{"axis", I(-4)}});
    CHECK(error_of(d) == at_attr(d, "n", Op::layernorm, "axis") +
                             "layernorm axis -4 is out of range for rank 3 (x is [2, 12, 64]); valid axes are -3..2");
}

TEST_CASE("infer error: rmsnorm gamma shape and scalar input", "[infer]") {
    GraphBuilder b;
    b.input("x", {4, 768});
    b.param("g", {4, 768});
    b.node("n", Op::rmsnorm, {"x", "g"});
    CHECK(error_of(b) == at_operand(b, "n", 1) +
                             "rmsnorm gamma 'g' is [4, 768], but it must be [768]: the last dimension of x [4, 768]");
    GraphBuilder c;
    c.input("s", {});
    c.param("g", {1});
    c.node("n", Op::rmsnorm, {"s", "g"});
    CHECK(error_of(c) == at_operand(c, "n", 0) + "rmsnorm needs x of rank at least 1, but x is a scalar");
}

TEST_CASE("infer error: reduction axes", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("r", Op::reduce_sum, {"x"}, {{"axes", L({0, 3})}});
    CHECK(error_of(b) == at_attr(b, "r", Op::reduce_sum, "axes") +
                             "reduce_sum axis 3 in axes [0, 3] is out of range for rank 3 (x is [2, 3, 4]); valid "
                             "axes are -3..2");
    GraphBuilder c;
    c.input("x", {2, 3, 4});
    c.node("r", Op::reduce_max, {"x"}, {{"axes", L({1, -2})}});
    CHECK(error_of(c) == at_attr(c, "r", Op::reduce_max, "axes") +
                             "reduce_max axes [1, -2] name axis 1 twice (x is [2, 3, 4])");
    GraphBuilder d;
    d.input("x", {2, 3, 4});
    d.node("r", Op::reduce_mean, {"x"}, {{"axes", L({})}});
    CHECK(error_of(d) == at_attr(d, "r", Op::reduce_mean, "axes") +
                             "reduce_mean axes is empty; name at least one axis to reduce");
}

TEST_CASE("infer error: matmul inner dimensions, with a hint", "[infer]") {
    GraphBuilder b;
    b.input("h", {128, 768});
    b.param("w", {512, 768});
    b.node("attn_out", Op::matmul, {"h", "w"});
    CHECK(error_of(b) == at_node(b, "attn_out") +
                             "matmul inner dimensions differ: a is [128, 768], b is [512, 768] (did you mean "
                             "transpose_b: true?)");

    GraphBuilder ta;
    ta.input("a", {768, 128});
    ta.param("w", {768, 512});
    ta.node("y", Op::matmul, {"a", "w"});
    CHECK(error_of(ta) == at_node(ta, "y") +
                              "matmul inner dimensions differ: a is [768, 128], b is [768, 512] (did you mean "
                              "transpose_a: true?)");

    GraphBuilder tbf;
    tbf.input("a", {3, 4});
    tbf.param("w", {4, 5});
    tbf.node("y", Op::matmul, {"a", "w"}, {{"transpose_b", B(true)}});
    CHECK(error_of(tbf) == at_node(tbf, "y") +
                               "matmul inner dimensions differ: a is [3, 4], b is [4, 5] transposed (did you mean "
                               "transpose_b: false?)");

    GraphBuilder both;
    both.input("a", {3, 4});
    both.param("w", {3, 5});
    both.node("y", Op::matmul, {"a", "w"}, {{"transpose_b", B(true)}});
    CHECK(error_of(both) == at_node(both, "y") +
                                "matmul inner dimensions differ: a is [3, 4], b is [3, 5] transposed (did you mean "
                                "transpose_a: true and transpose_b: false?)");

    GraphBuilder none;
    none.input("a", {2, 3});
    none.param("w", {4, 5});
    none.node("y", Op::matmul, {"a", "w"}, {{"transpose_a", B(true)}});
    CHECK(error_of(none) == at_node(none, "y") +
                                "matmul inner dimensions differ: a is [2, 3] transposed, b is [4, 5] (K is 2 in a "
                                "and 4 in b)");
}

TEST_CASE("infer error: matmul rank-1 operand and batch dims", "[infer]") {
    GraphBuilder b;
    b.input("v", {768});
    b.param("w", {768, 10});
    b.node("y", Op::matmul, {"v", "w"});
    CHECK(error_of(b) == at_operand(b, "y", 0) +
                             "matmul operand a 'v' is [768], but matmul needs rank 2 or more (reshape it to [1, 768] "
                             "or [768, 1])");
    GraphBuilder c;
    c.input("a", {2, 4, 5});
    c.param("w", {3, 5, 6});
    c.node("y", Op::matmul, {"a", "w"});
    CHECK(error_of(c) == at_node(c, "y") +
                             "matmul batch dimensions do not broadcast: a is [2, 4, 5], b is [3, 5, 6] (batch dims "
                             "[2] and [3]; a's dimension 0 is 2, b's dimension 0 is 3; they must be equal or 1)");
}

TEST_CASE("infer error: transpose perm", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3, 4});
    b.node("y", Op::transpose, {"x"}, {{"perm", L({1, 0})}});
    CHECK(error_of(b) == at_attr(b, "y", Op::transpose, "perm") +
                             "transpose perm [1, 0] has 2 entries, but x is [2, 3, 4] of rank 3");
    GraphBuilder c;
    c.input("x", {2, 3, 4});
    c.node("y", Op::transpose, {"x"}, {{"perm", L({0, 2, -1})}});
    CHECK(error_of(c) == at_attr(c, "y", Op::transpose, "perm") +
                             "transpose perm [0, 2, -1] is not a permutation of 0..2: axis 2 appears twice");
    GraphBuilder d;
    d.input("x", {2, 3, 4});
    d.node("y", Op::transpose, {"x"}, {{"perm", L({0, 3, 1})}});
    CHECK(error_of(d) == at_attr(d, "y", Op::transpose, "perm") +
                             "transpose axis 3 in perm [0, 3, 1] is out of range for rank 3 (x is [2, 3, 4]); valid "
                             "axes are -3..2");
}

TEST_CASE("infer error: reshape", "[infer]") {
    auto reshape_error = [](std::vector<int64_t> shape) {
        GraphBuilder b;
        b.input("x", {2, 3, 4});
        b.node("y", Op::reshape, {"x"}, {{"shape", L(shape)}});
        std::string prefix = at_attr(b, "y", Op::reshape, "shape");
        std::string e = error_of(b);
        REQUIRE(e.rfind(prefix, 0) == 0);
        return e.substr(prefix.size());
    };
    CHECK(reshape_error({5, 5}) == "reshape element count differs: x is [2, 3, 4] (24 elements), shape [5, 5] has 25");
    CHECK(reshape_error({5, -1}) ==
          "reshape cannot fill the -1 of [5, -1]: x is [2, 3, 4] (24 elements), not a multiple of 5");
    CHECK(reshape_error({-1, 4, -1}) == "reshape shape [-1, 4, -1] has more than one -1");
    CHECK(reshape_error({0, 24}) == "reshape shape [0, 24] has an entry 0; entries must be positive, or -1 once");
    CHECK(reshape_error({24, -2}) == "reshape shape [24, -2] has an entry -2; entries must be positive, or -1 once");
    CHECK(reshape_error({1, 1, 1, 2, 3, 4, 1}) ==
          "reshape shape [1, 1, 1, 2, 3, 4, 1] has rank 7; the rank of a tensor is at most 6");
}

TEST_CASE("infer error: concat", "[infer]") {
    GraphBuilder b;
    b.input("a", {2, 3});
    b.input("b", {2, 5});
    b.input("c", {2, 3, 1});
    b.node("y", Op::concat, {"a", "b", "c"}, {{"axis", I(1)}});
    CHECK(error_of(b) == at_operand(b, "y", 2) + "concat inputs differ in rank: 'a' is [2, 3], 'c' is [2, 3, 1]");
    GraphBuilder c;
    c.input("a", {2, 3});
    c.input("b", {2, 4});
    c.node("y", Op::concat, {"a", "b"}, {{"axis", I(0)}});
    CHECK(error_of(c) == at_operand(c, "y", 1) +
                             "concat inputs differ in dimension 1, which is not the concat axis 0: 'a' is [2, 3], 'b' "
                             "is [2, 4]");
    GraphBuilder d;
    d.input("a", {2, 3});
    d.node("y", Op::concat, {"a", "a"}, {{"axis", I(-3)}});
    CHECK(error_of(d) == at_attr(d, "y", Op::concat, "axis") +
                             "concat axis -3 is out of range for rank 2 (x is [2, 3]); valid axes are -2..1");
}

TEST_CASE("infer error: slice", "[infer]") {
    GraphBuilder b;
    b.input("x", {4, 8});
    b.node("y", Op::slice, {"x"}, {{"axis", I(1)}, {"step", I(0)}});
    CHECK(error_of(b) == at_attr(b, "y", Op::slice, "step") + "slice step must be positive, got 0");
    GraphBuilder c;
    c.input("x", {4, 8});
    c.node("y", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(-2)}, {"end", I(3)}});
    CHECK(error_of(c) == at_attr(c, "y", Op::slice, "start") +
                             "slice along axis 1 of x [4, 8] with start -2, end 3 is empty (that dimension has size "
                             "8); a tensor's dimensions must be positive");
    GraphBuilder d;
    d.input("x", {4, 8});
    d.node("y", Op::slice, {"x"}, {{"axis", I(0)}, {"end", I(-4)}});
    CHECK(error_of(d) == at_attr(d, "y", Op::slice, "end") +
                             "slice along axis 0 of x [4, 8] with start 0, end -4 is empty (that dimension has size "
                             "4); a tensor's dimensions must be positive");
    GraphBuilder e;
    e.input("x", {4, 8});
    e.node("y", Op::slice, {"x"}, {{"axis", I(2)}});
    CHECK(error_of(e) == at_attr(e, "y", Op::slice, "axis") +
                             "slice axis 2 is out of range for rank 2 (x is [4, 8]); valid axes are -2..1");
}

TEST_CASE("infer error: the first bad node in producer order is reported", "[infer]") {
    GraphBuilder b;
    b.input("x", {2, 3});
    b.node("bad1", Op::softmax, {"x"}, {{"axis", I(5)}});
    b.node("bad2", Op::reshape, {"bad1"}, {{"shape", L({7})}});
    std::string e = error_of(b);
    CHECK(e.find("node 'bad1'") != std::string::npos);
    CHECK(e.find("node 'bad2'") == std::string::npos);
}
