// Folding affine chains into weights (frontend/affine_fold.h): which chains
// fold (batchnorm after a conv with and without bias, after a matmul, with
// constant mul/add/sub/div, f16 weights) and which must not (an
// intermediate with two readers or that is an output, a non-constant
// scale, a per-row batchnorm after a batched matmul); every folded schedule
// computes what the unfolded reference does, under every policy.
#include <catch2/catch.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/affine_fold.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "runtime/arena_io.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// Batchnorm statistics far from the identity, so a fold that drops or
// misapplies a factor cannot pass: scale in [0.5, 2], var in [0.3, 3].
void bn_params(GraphBuilder& b, const std::string& p, int64_t c, std::optional<DType> t = std::nullopt) {
    for (const char* s : {"s", "b", "m", "v"}) b.param(p + s, {c}, t);
}
void bn_init(Graph& g, const std::string& p) {
    set_init(g, p + "s", InitKind::uniform, 0.5, 2.0);
    set_init(g, p + "b", InitKind::uniform, -1.0, 1.0);
    set_init(g, p + "m", InitKind::uniform, -0.5, 0.5);
    set_init(g, p + "v", InitKind::uniform, 0.3, 3.0);
}

// Every policy, host backend, folded schedule vs the unfolded reference.
void check_every_policy(const Graph& g) {
    const TensorMap values = make_values(g, std::nullopt);
    for (const PolicyEntry& p : all_policies()) {
        INFO("policy " << p.name);
        expect_reference(g, values, run_host(plan(g, p.name, default_gpu()), values));
    }
}

// x [2, 5, 11, 9] -> conv (7 filters, optional bias) -> bn -> relu.
Graph conv_bn(bool with_bias, DType t = DType::f32) {
    GraphBuilder b(t);
    b.input("x", {2, 5, 11, 9});
    b.param("w", {7, 5, 3, 3});
    if (with_bias) b.param("cb", {7});
    bn_params(b, "n", 7);
    std::vector<std::string> conv_in{"x", "w"};
    if (with_bias) conv_in.push_back("cb");
    b.node("c", Op::conv2d, conv_in, {{"padding", L({1})}, {"stride", L({1, 2})}});
    b.node("n", Op::batchnorm, {"c", "ns", "nb", "nm", "nv"});
    b.node("y", Op::relu, {"n"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.3);
    if (with_bias) set_init(g, "cb", InitKind::uniform, -1.0, 1.0);
    bn_init(g, "n");
    return g;
}

}  // namespace

TEST_CASE("fold: batchnorm after a conv without bias becomes the conv's weight and a new bias", "[fold]") {
    const Graph g = conv_bn(false);
    const Graph f = fold_affine_chains(g);
    CHECK(count_op(f, Op::batchnorm) == 0);
    const VertexId n = *f.find("n");  // the chain's last node keeps its name
    CHECK(f.value(n).op == Op::conv2d);
    REQUIRE(f.operands(n).size() == 3);
    CHECK(f.value(f.operands(n)[1]).name == "w+n");
    CHECK(f.value(f.operands(n)[2]).name == "n+bias");
    CHECK(f.value(f.operands(n)[2]).fold);
    CHECK(!f.find("c"));   // the unfolded conv is gone
    CHECK(!f.find("ns"));  // and the statistics only the chain read
    check_every_policy(g);
}

TEST_CASE("fold: batchnorm after a conv with bias, then constant mul and sub, folds into weight and bias", "[fold]") {
    GraphBuilder b;
    b.input("x", {1, 6, 9, 13});
    b.param("w", {10, 3, 3, 3});  // 2 groups
    b.param("cb", {10});
    bn_params(b, "n", 10);
    b.param("k", {10, 1, 1});
    b.param("d", {1, 10, 1, 1});
    b.node("half", Op::constant, {}, {{"value", F(0.75)}});
    b.node("c", Op::conv2d, {"x", "w", "cb"}, {{"groups", I(2)}, {"dilation", L({2})}, {"padding", L({2})}});
    b.node("n", Op::batchnorm, {"c", "ns", "nb", "nm", "nv"}, {{"eps", F(0.01)}});
    b.node("m1", Op::mul, {"k", "n"});
    b.node("m2", Op::mul, {"m1", "half"});
    b.node("s", Op::sub, {"m2", "d"});
    b.node("t", Op::sub, {"d", "s"});  // d - s: the scale changes sign
    b.node("q", Op::div, {"t", "half"});
    b.node("y", Op::tanh, {"q"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.3);
    set_init(g, "cb", InitKind::uniform, -1.0, 1.0);
    set_init(g, "k", InitKind::uniform, -2.0, 2.0);
    set_init(g, "d", InitKind::uniform, -1.0, 1.0);
    bn_init(g, "n");
    const Graph f = fold_affine_chains(g);
    CHECK(count_op(f, Op::batchnorm) == 0);
    CHECK(count_op(f, Op::mul) == 0);
    CHECK(count_op(f, Op::sub) == 0);
    CHECK(count_op(f, Op::div) == 0);
    CHECK(f.value(*f.find("q")).op == Op::conv2d);
    CHECK(f.value(f.operands(*f.find("q"))[2]).fold->source == "cb");
    check_every_policy(g);
}

TEST_CASE("fold: batchnorm after a linear layer (matmul + bias) folds into its columns and one add", "[fold]") {
    for (bool transpose : {false, true}) {
        INFO("transpose_b " << transpose);
        GraphBuilder b;
        b.input("x", {13, 21});
        b.param("w", transpose ? Shape{10, 21} : Shape{21, 10});
        b.param("lb", {10});
        bn_params(b, "n", 10);
        b.node("h", Op::matmul, {"x", "w"}, {{"transpose_b", B(transpose)}});
        b.node("a", Op::add, {"h", "lb"});
        b.node("n", Op::batchnorm, {"a", "ns", "nb", "nm", "nv"});
        b.output("n");  // the last node may be an output
        Graph g = infer_shapes(b.graph());
        set_init(g, "x", InitKind::normal, 1.0);
        set_init(g, "w", InitKind::normal, 0.3);
        set_init(g, "lb", InitKind::uniform, -1.0, 1.0);
        bn_init(g, "n");
        const Graph f = fold_affine_chains(g);
        CHECK(count_op(f, Op::batchnorm) == 0);
        CHECK(count_op(f, Op::add) == 1);
        const VertexId n = *f.find("n");
        CHECK(f.value(n).op == Op::add);
        CHECK(f.value(f.operands(n)[0]).name == "h");
        CHECK(f.value(f.operands(*f.find("h"))[1]).name == "w+n");
        CHECK(!f.find("a"));
        check_every_policy(g);
    }
}

TEST_CASE("fold: a matmul scaled by constants alone needs no bias", "[fold]") {
    GraphBuilder b;
    b.input("x", {3, 5, 17});
    b.param("w", {17, 9});
    b.param("k", {9});
    b.node("h", Op::matmul, {"x", "w"});
    b.node("y", Op::mul, {"h", "k"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.3);
    set_init(g, "k", InitKind::uniform, 0.5, 3.0);
    const Graph f = fold_affine_chains(g);
    CHECK(count_op(f, Op::mul) == 0);
    CHECK(f.value(*f.find("y")).op == Op::matmul);
    CHECK(f.of_role(Role::param).size() == 1);
    check_every_policy(g);
}

TEST_CASE("fold: no fold through an intermediate with two readers or that is an output", "[fold]") {
    for (int variant = 0; variant < 2; ++variant) {
        GraphBuilder b;
        b.input("x", {2, 5, 11, 9});
        b.param("w", {7, 5, 3, 3});
        bn_params(b, "n", 7);
        b.node("c", Op::conv2d, {"x", "w"}, {{"padding", L({1})}});
        b.node("n", Op::batchnorm, {"c", "ns", "nb", "nm", "nv"});
        if (variant == 0) {
            b.node("y", Op::add, {"n", "c"});  // c has two readers
            b.output("y");
        } else {
            b.output("c").output("n");  // c is an output
        }
        Graph g = infer_shapes(b.graph());
        set_init(g, "x", InitKind::normal, 1.0);
        set_init(g, "w", InitKind::normal, 0.3);
        bn_init(g, "n");
        const Graph f = fold_affine_chains(g);
        CHECK(count_op(f, Op::batchnorm) == 1);
        CHECK(f.size() == g.size());
        check_every_policy(g);
    }
}

TEST_CASE("fold: no fold with a non-constant scale or a per-row batchnorm", "[fold]") {
    {
        GraphBuilder b;  // the scale is an input of the model
        b.input("x", {2, 5, 11, 9});
        b.input("ns", {7});
        b.param("w", {7, 5, 3, 3});
        for (const char* s : {"b", "m", "v"}) b.param(std::string("n") + s, {7});
        b.node("c", Op::conv2d, {"x", "w"}, {{"padding", L({1})}});
        b.node("n", Op::batchnorm, {"c", "ns", "nb", "nm", "nv"});
        b.output("n");
        Graph g = infer_shapes(b.graph());
        set_init(g, "ns", InitKind::uniform, 0.5, 2.0);
        bn_init(g, "n");
        const Graph f = fold_affine_chains(g);
        CHECK(count_op(f, Op::batchnorm) == 1);
        check_every_policy(g);
    }
    {
        GraphBuilder b;  // mul by a computed tensor, and a factor that varies along the rows
        b.input("x", {6, 17});
        b.param("w", {17, 9});
        b.param("r", {6, 1});
        b.param("p", {9});
        b.node("e", Op::exp, {"p"});
        b.node("h", Op::matmul, {"x", "w"});
        b.node("m", Op::mul, {"h", "e"});
        b.node("h2", Op::matmul, {"x", "w"});
        b.node("m2", Op::mul, {"h2", "r"});
        b.node("y", Op::add, {"m", "m2"});
        b.output("y");
        Graph g = infer_shapes(b.graph());
        set_init(g, "w", InitKind::normal, 0.3);
        set_init(g, "r", InitKind::uniform, -2.0, 2.0);
        const Graph f = fold_affine_chains(g);
        CHECK(count_op(f, Op::mul) == 2);
        check_every_policy(g);
    }
    {
        GraphBuilder b;  // batchnorm's channel axis is a batched matmul's rows, not its columns
        b.input("x", {2, 6, 17});
        b.param("w", {17, 9});
        bn_params(b, "n", 6);
        b.node("h", Op::matmul, {"x", "w"});
        b.node("n", Op::batchnorm, {"h", "ns", "nb", "nm", "nv"});
        b.output("n");
        Graph g = infer_shapes(b.graph());
        set_init(g, "w", InitKind::normal, 0.3);
        bn_init(g, "n");
        CHECK(count_op(fold_affine_chains(g), Op::batchnorm) == 1);
        check_every_policy(g);
    }
}

TEST_CASE("fold: f16 weights are folded in float64 and rounded once to f16", "[fold]") {
    const Graph g = conv_bn(true, DType::f16);
    const Graph f = fold_affine_chains(g);
    REQUIRE(count_op(f, Op::batchnorm) == 0);
    const VertexId w = *f.find("w+n");
    CHECK(f.value(w).dtype == DType::f16);
    // The folded weight, element by element, is the f16 rounding of w * s.
    const TensorMap values = make_values(g, std::nullopt);
    const HostTensor fw = folded_value(*f.value(w).fold, DType::f16, f.value(w).shape, values);
    const auto at = [&](const char* n, int64_t i) { return values.at(n).get(i); };
    for (int64_t i : {int64_t{0}, int64_t{44}, int64_t{100}, int64_t{314}}) {
        const int64_t c = i / 45;
        const double s = at("ns", c) / std::sqrt(at("nv", c) + 1e-5);
        HostTensor want(DType::f16, {1});
        want.set(0, at("w", i) * s);
        CHECK(fw.get(i) == want.get(0));
    }
    check_every_policy(g);
}

TEST_CASE("fold: the per_op schedule of a folded conv block has fewer rOps, and --dump-after fold shows it", "[fold]") {
    const Graph g = conv_bn(false);
    const Schedule folded = plan(g, "per_op", default_gpu());
    const Schedule unfolded = plan(g, "per_op", default_gpu(), false);
    CHECK(folded.tiles.rops.size() + 1 == unfolded.tiles.rops.size());
    CHECK(folded.tiles.param_folds.size() == 2);

    Compilation c = from_graph(g);
    PipelineOptions opt;
    run_to(c, Stage::fold, opt);
    REQUIRE(c.folded);
    CHECK(count_op(*c.graph, Op::batchnorm) == 1);  // the reference's graph is left as it was
    CHECK(count_op(*c.folded, Op::batchnorm) == 0);
}

TEST_CASE("fold: a shift alone becomes a conv's bias and keeps its weight; after a matmul it stays an add", "[fold]") {
    GraphBuilder b;
    b.input("x", {2, 5, 11, 9});
    b.param("w", {7, 5, 3, 3});
    b.param("k", {7, 1, 1});
    b.input("v", {13, 21});
    b.param("mw", {21, 10});
    b.param("mb", {10});
    b.node("c", Op::conv2d, {"x", "w"}, {{"padding", L({1})}});
    b.node("y", Op::add, {"c", "k"});
    b.node("h", Op::matmul, {"v", "mw"});
    b.node("z", Op::sub, {"h", "mb"});
    b.output("y").output("z");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.3);
    set_init(g, "k", InitKind::uniform, -1.0, 1.0);
    set_init(g, "mb", InitKind::uniform, -1.0, 1.0);
    const Graph f = fold_affine_chains(g);
    const VertexId y = *f.find("y");
    CHECK(f.value(y).op == Op::conv2d);
    REQUIRE(f.operands(y).size() == 3);
    CHECK(f.value(f.operands(y)[1]).name == "w");
    CHECK(f.value(f.operands(y)[2]).name == "y+bias");
    CHECK(f.value(*f.find("z")).op == Op::sub);
    check_every_policy(g);
}

TEST_CASE("fold: every batchnorm of the CNN zoo folds; --dump-after fold shows the recipes, --no-fold keeps them", "[fold][cli]") {
    for (const char* model : {"resnet18_small", "mobilenet_v2_small"}) {
        INFO(model);
        const std::string path = std::string("models/") + model + ".yaml";
        const CmdResult folded = run_anvil("schedule " + path + " --dump-after fold");
        REQUIRE(folded.status == 0);
        CHECK(folded.output.find("= batchnorm(") == std::string::npos);
        CHECK(folded.output.find("= fold: weight") != std::string::npos);
        const CmdResult unfolded = run_anvil("schedule " + path + " --dump-after fold --no-fold");
        REQUIRE(unfolded.status == 0);
        CHECK(unfolded.output.find("= batchnorm(") != std::string::npos);
        CHECK(unfolded.output.find("= fold:") == std::string::npos);

        const Graph g = load_graph(std::string(ANVIL_SOURCE_DIR) + "/" + path);
        const int bns = count_op(g, Op::batchnorm);
        CHECK(bns > 0);
        CHECK(plan(g, "per_op", default_gpu()).tiles.rops.size() + bns ==
              plan(g, "per_op", default_gpu(), false).tiles.rops.size());
    }
}

TEST_CASE("fold: the arena holds the same folded params whether computed on the fly or once beforehand", "[fold]") {
    const Graph g = conv_bn(true, DType::bf16);
    const Schedule s = plan(g, "anvil", default_gpu());
    REQUIRE(s.tiles.param_folds.size() == 2);
    const TensorMap values = make_values(g, std::nullopt);
    const TensorMap once = with_folded_params(s.tiles, values);
    CHECK(once.size() == values.size() + 2);
    CHECK(arena_image(s.tiles, values) == arena_image(s.tiles, once));
}
