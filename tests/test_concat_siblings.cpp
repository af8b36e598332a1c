// Joining sibling batch-1 matmuls (frontend/concat_siblings.h): which
// siblings join (one activation, constant weights of one K, layout and dtype,
// one output row) and which must not; the slices are views, not copies; the
// joined weight's recipe nests the fold's; every joined schedule computes what
// the unjoined reference does, on host and simt, under every policy, at odd
// sizes and in every float dtype.
#include <catch2/catch.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/affine_fold.h"
#include "frontend/concat_siblings.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// x [1, K] feeds three projections of widths n0, n1, n2 (the first scaled by
// a constant, which the fold puts into its weight first), a fourth with its
// weight transposed, and a matmul whose weight is a computed tensor. q and k
// meet in an add (both read as views), v is an output.
Graph qkv(int64_t K, int64_t n0, int64_t n1, int64_t n2, DType t) {
    GraphBuilder b(t);
    b.input("x", {1, K});
    b.param("wq", {K, n0});
    b.param("wk", {K, n1});
    b.param("wv", {K, n2});
    b.param("wt", {n1, K});
    b.input("wx", {K, n1});
    b.node("scale", Op::constant, {}, {{"value", F(0.25)}});
    b.node("q", Op::matmul, {"x", "wq"});
    b.node("qs", Op::mul, {"q", "scale"});
    b.node("k", Op::matmul, {"x", "wk"});
    b.node("v", Op::matmul, {"x", "wv"});
    b.node("kt", Op::matmul, {"x", "wt"}, {{"transpose_b", B(true)}});
    b.node("kx", Op::matmul, {"x", "wx"});
    b.node("q0", Op::slice, {"qs"}, {{"axis", I(1)}, {"start", I(0)}, {"end", I(1)}});
    b.node("k0", Op::slice, {"k"}, {{"axis", I(1)}, {"start", I(0)}, {"end", I(1)}});
    b.node("qk", Op::add, {"q0", "k0"});
    b.node("y", Op::mul, {"kt", "kx"});
    b.output("qk").output("v").output("y").output("k");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    for (const char* w : {"wq", "wk", "wv", "wt", "wx"}) set_init(g, w, InitKind::normal, 0.5);
    return g;
}

}  // namespace

TEST_CASE("concat siblings: q, k, v join into one matmul read back as views; other layouts stay apart", "[concat]") {
    const Graph g = qkv(33, 7, 33, 1, DType::f32);
    const Graph f = concat_sibling_matmuls(fold_affine_chains(g));
    // q (folded scale), k and v join; kt (transposed) and kx (computed weight) do not.
    CHECK(count_op(f, Op::matmul) == 3);
    const VertexId j = f.operands(*f.find("k"))[0];
    CHECK(f.value(j).op == Op::matmul);
    CHECK(f.value(j).shape == Shape{1, 41});
    CHECK(f.value(j).name == "qs+k+v");  // in the order of the file
    const Value& w = f.value(f.operands(j)[1]);
    REQUIRE(w.fold);
    CHECK(w.fold->part == ParamFold::Part::concat);
    REQUIRE(w.fold->pieces.size() == 3);
    CHECK(w.fold->pieces[0].fold);  // q's weight is the fold's recipe, nested
    CHECK(w.fold->pieces[1].name == "wk");
    for (const char* s : {"qs", "k", "v"}) {
        INFO(s);
        CHECK(f.value(*f.find(s)).op == Op::slice);
    }
    CHECK(f.value(*f.find("kt")).op == Op::matmul);
    // Decompose makes the slices views of the joined output: no copy rOps.
    const Schedule s = plan(g, "per_op", default_gpu());
    const TileGraph& tg = s.tiles;
    for (const char* name : {"qs", "k", "v"}) {
        const TensorBuffer& b = buffer_of(tg, name);
        CHECK(b.alias);
        CHECK(b.storage == buffer_of(tg, "qs+k+v").storage);
        for (const ROp& op : tg.rops) CHECK(op.name != name);
    }
    CHECK(buffer_of(tg, "v").offset == buffer_of(tg, "qs+k+v").offset + (7 + 33) * 4);
    // Unjoined: two more matmuls, q's mul and its constant.
    CHECK(plan(g, "per_op", default_gpu(), false).tiles.rops.size() == tg.rops.size() + 4);
}

TEST_CASE("concat siblings: joined projections match the reference in every dtype and odd size, every policy, host and simt", "[concat]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (int64_t K : {1, 7, 33, 129}) {
            INFO(dtype_name(t) << " K " << K);
            const Graph g = qkv(K, 7, 129, 1, t);
            const TensorMap values = make_values(g, std::nullopt);
            for (const PolicyEntry& p : all_policies()) {
                INFO("policy " << p.name);
                HostRunOptions opt;
                opt.check_races = true;
                expect_reference(g, values, run_host(plan(g, p.name, default_gpu()), values, opt));
            }
            HostRunOptions opt;
            opt.check_races = true;
            expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, opt));
        }
}

TEST_CASE("concat siblings: no join across rows, K, dtypes, or a single matmul", "[concat]") {
    GraphBuilder b;
    b.input("x", {3, 9});   // three rows: a column range is strided
    b.input("z", {1, 9});
    b.param("w1", {9, 4});
    b.param("w2", {9, 5});
    b.param("w3", {9, 6}, DType::f16);  // another weight dtype
    b.input("u", {1, 8});
    b.param("w4", {8, 3});  // the only matmul of u
    b.node("a", Op::matmul, {"x", "w1"});
    b.node("c", Op::matmul, {"x", "w2"});
    b.node("d", Op::matmul, {"z", "w2"});
    b.node("e", Op::matmul, {"z", "w3"});
    b.node("h", Op::matmul, {"u", "w4"});
    b.output("a").output("c").output("d").output("e").output("h");
    Graph g = infer_shapes(b.graph());
    const Graph f = concat_sibling_matmuls(g);
    CHECK(count_op(f, Op::matmul) == 5);
    CHECK(f.size() == g.size());
    const TensorMap values = make_values(g, std::nullopt);
    expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values));
}

TEST_CASE("concat siblings: the joined weight is the pieces side by side, each rounded once", "[concat]") {
    const Graph g = qkv(7, 3, 5, 2, DType::bf16);
    const Graph f = concat_sibling_matmuls(fold_affine_chains(g));
    const Value& w = f.value(f.operands(*f.find("qs+k+v"))[1]);
    const TensorMap values = make_values(g, std::nullopt);
    const HostTensor joined = folded_value(*w.fold, w.dtype, w.shape, values);
    REQUIRE(joined.shape == Shape{7, 10});
    for (int64_t k = 0; k < 7; ++k) {
        HostTensor want(DType::bf16, {1});
        want.set(0, values.at("wq").get(k * 3 + 2) * 0.25);
        CHECK(joined.get(k * 10 + 2) == want.get(0));
        CHECK(joined.get(k * 10 + 3) == values.at("wk").get(k * 5 + 0));
        CHECK(joined.get(k * 10 + 7) == values.at("wk").get(k * 5 + 4));
        CHECK(joined.get(k * 10 + 9) == values.at("wv").get(k * 2 + 1));
    }
}

TEST_CASE("concat siblings: llama_decode's q/k/v and gate/up join; --no-concat keeps them", "[concat][cli]") {
    const std::string path = "models/llama_decode_small.yaml";
    const CmdResult joined = run_anvil("schedule " + path + " --dump-after fold");
    REQUIRE(joined.status == 0);
    CHECK(joined.output.find("l0_k+l0_v+l0_qs = matmul(") != std::string::npos);  // qs: the folded scale's place
    CHECK(joined.output.find("l1_gate+l1_up = matmul(") != std::string::npos);
    CHECK(joined.output.find("concat along axis 1 of") != std::string::npos);  // inside the norm fold's recipe
    const CmdResult apart = run_anvil("schedule " + path + " --dump-after fold --no-concat");
    REQUIRE(apart.status == 0);
    CHECK(apart.output.find("= fold: concat") == std::string::npos);
    CHECK(apart.output.find("l0_k = matmul(") != std::string::npos);
    const CmdResult run = run_anvil("run " + path + " --backend host --check-races");
    CHECK(run.status == 0);
}
