// Blocked GEMV weights (frontend/blocked_weights.h): the recipe lays W [K, N]
// out as [N / B, K, B]; the pass rewrites only the batch-1 matmuls it may,
// takes their pointwise chain (bias, activation, residual) along so that it
// still fuses, and leaves the readers the row they had; every blocked
// schedule computes what the reference does, on host and simt, under every
// policy, at odd K and in every float dtype.
#include <catch2/catch.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/affine_fold.h"
#include "frontend/blocked_weights.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// x [1, K] through y = r - s * gelu(x @ w1 + b1) (r an input [1, N], s a
// one-element param; y's chain value second, so an operand swap shows),
// then z = y @ w2 scaled by a one-element constant (which the fold puts
// into w2). N = 3 blocks of 16 by default; 192 for the pipeline's blocks of
// kWeightBlockColumns.
Graph chain(int64_t K, DType t, int64_t N = 48) {
    GraphBuilder b(t);
    b.input("x", {1, K});
    b.input("r", {1, N});
    b.param("w1", {K, N});
    b.param("b1", {N});
    b.param("s", {1});
    b.param("w2", {N, N});
    b.node("two", Op::constant, {}, {{"value", F(2.0)}});
    b.node("h", Op::matmul, {"x", "w1"});
    b.node("hb", Op::add, {"h", "b1"});
    b.node("g", Op::gelu, {"hb"});
    b.node("gs", Op::mul, {"g", "s"});
    b.node("y", Op::sub, {"r", "gs"});
    b.node("z0", Op::matmul, {"y", "w2"});
    b.node("z", Op::mul, {"z0", "two"});
    b.output("z");
    Graph g = infer_shapes(b.graph());
    for (const char* v : {"x", "r"}) set_init(g, v, InitKind::normal, 1.0);
    for (const char* w : {"w1", "b1", "w2"}) set_init(g, w, InitKind::normal, 0.3);
    set_init(g, "s", InitKind::uniform, 1.5, 2.5);
    return g;
}

// Two GEMVs that meet in one pointwise op: a GLU, silu(x @ wg) * (x @ wu),
// then @ wd; and a recurrent cell's tanh(x @ wx + h @ wh), whose weights
// read different activations (concat never joins them).
Graph meeting(int64_t K, DType t, int64_t N) {
    GraphBuilder b(t);
    b.input("x", {1, K});
    b.input("h", {1, K});
    b.param("wg", {K, N});
    b.param("wu", {K, N});
    b.param("wd", {N, K});
    b.param("wx", {K, N});
    b.param("wh", {K, N});
    b.node("a", Op::matmul, {"x", "wg"});
    b.node("u", Op::matmul, {"x", "wu"});
    b.node("sa", Op::silu, {"a"});
    b.node("glu", Op::mul, {"sa", "u"});
    b.node("o", Op::matmul, {"glu", "wd"});
    b.node("p", Op::matmul, {"x", "wx"});
    b.node("q", Op::matmul, {"h", "wh"});
    b.node("pq", Op::add, {"p", "q"});
    b.node("cell", Op::tanh, {"pq"});
    b.output("o").output("cell");
    Graph g = infer_shapes(b.graph());
    for (const char* v : {"x", "h"}) set_init(g, v, InitKind::normal, 1.0);
    for (const char* w : {"wg", "wu", "wd", "wx", "wh"}) set_init(g, w, InitKind::normal, 0.3);
    return g;
}

PipelineOptions blocked_options(const std::string& policy, int64_t block = kWeightBlockColumns) {
    PipelineOptions opt;
    opt.policy = policy;
    opt.blocked_weights = block;
    return opt;
}

}  // namespace

TEST_CASE("blocked weights: the recipe puts column block b of W [K, N] in one run", "[blocked]") {
    GraphBuilder b(DType::f32);
    b.param("w", {3, 8});
    Graph g = infer_shapes(b.graph());
    set_init(g, "w", InitKind::normal, 1.0);
    const TensorMap values = make_values(g, std::nullopt);
    ParamFold fold;
    fold.part = ParamFold::Part::blocked;
    fold.channels = 4;
    fold.pieces = {fold_source(g.value(*g.find("w")))};
    const std::vector<double> w = values.at("w").to_doubles();
    const std::vector<double> out = folded_value(fold, DType::f32, {2, 3, 4}, values).to_doubles();
    REQUIRE(out.size() == w.size());
    for (int64_t k = 0; k < 3; ++k)
        for (int64_t n = 0; n < 8; ++n) {
            INFO("k " << k << " n " << n);
            CHECK(out[static_cast<size_t>(((n / 4) * 3 + k) * 4 + n % 4)] == w[static_cast<size_t>(k * 8 + n)]);
        }
    CHECK(describe_fold(fold) == "blocks of 4 columns of w");
    CHECK_THROWS_WITH(folded_value(fold, DType::f32, {4, 3, 2}, values), Catch::Contains("does not match its source"));
}

TEST_CASE("blocked weights: a batch-1 matmul and its pointwise chain move onto the blocks; readers see the row",
          "[blocked]") {
    const Graph g = chain(7, DType::f32);
    const Graph f = block_gemv_weights(g, 16);
    // h's chain (bias add, gelu, scale, residual sub) runs on [3, 1, 16]; y is the row again, by its name.
    const Value& y = f.value(*f.find("y"));
    CHECK(y.op == Op::reshape);
    CHECK(y.shape == Shape{1, 48});
    const VertexId yb = f.operands(*f.find("y"))[0];
    CHECK(f.value(yb).op == Op::sub);
    CHECK(f.value(yb).shape == Shape{3, 1, 16});
    // r - gs keeps its order: r (through a reshape to the blocks) first, the chain's value second.
    CHECK(f.value(f.operands(yb)[0]).op == Op::reshape);
    CHECK(f.value(f.operands(f.operands(yb)[0])[0]).name == "r");
    CHECK(f.value(f.operands(yb)[1]).name == "gs+blocks");
    CHECK(f.value(f.operands(*f.find("gs+blocks"))[1]).name == "s");  // one element: broadcast as it is
    for (const char* gone : {"h", "hb", "g", "gs"}) {
        INFO(gone);
        CHECK_FALSE(f.find(gone));  // taken into the chain, no longer a value of its own
    }
    const VertexId h = *f.find("h+blocks");
    CHECK(f.value(h).op == Op::matmul);
    const Value& w = f.value(f.operands(h)[1]);
    CHECK(w.shape == Shape{3, 7, 16});
    REQUIRE(w.fold);
    CHECK(w.fold->part == ParamFold::Part::blocked);
    CHECK(w.fold->pieces.at(0).name == "w1");
    // The bias [48] is read as the blocks (a view); the constant 2 broadcasts as it is.
    const VertexId hb = f.operands(*f.find("g+blocks"))[0];
    CHECK(f.value(f.operands(hb)[1]).op == Op::reshape);
    const VertexId z = *f.find("z");
    CHECK(f.value(z).op == Op::reshape);
    const VertexId zb = f.operands(z)[0];
    CHECK(f.value(f.operands(zb)[1]).name == "two");
    // In the pipeline (blocks of 64) the chain still fuses: as many rOps as without the blocks.
    const Graph wide = chain(7, DType::f32, 3 * kWeightBlockColumns);
    PipelineOptions plain;
    plain.policy = "anvil";
    const Schedule s = plan(wide, blocked_options("anvil"));
    CHECK(buffer_of(s.tiles, "w1+blocked").bytes == 7 * 3 * kWeightBlockColumns * 4);
    CHECK(s.tiles.rops.size() == plan(wide, plain).tiles.rops.size());
}

TEST_CASE("blocked weights: matmuls the blocks do not fit are left as they are", "[blocked]") {
    GraphBuilder b(DType::f32);
    b.input("x", {1, 8});
    b.input("x3", {3, 8});
    b.param("w_odd", {8, 40});     // not a multiple of 16
    b.param("w_one", {8, 16});     // one block: nothing to gain
    b.param("w_shared", {8, 32});  // read by two matmuls
    b.param("w_rows", {8, 32});    // three rows of x
    b.param("w_t", {32, 8});       // transposed
    b.param("w_out", {8, 32});     // an output itself
    b.node("a", Op::matmul, {"x", "w_odd"});
    b.node("c", Op::matmul, {"x", "w_one"});
    b.node("d", Op::matmul, {"x", "w_shared"});
    b.node("e", Op::matmul, {"x", "w_shared"});
    b.node("h", Op::matmul, {"x3", "w_rows"});
    b.node("t", Op::matmul, {"x", "w_t"}, {{"transpose_b", B(true)}});
    b.node("o", Op::matmul, {"x", "w_out"});
    for (const char* out : {"a", "c", "d", "e", "h", "t", "o", "w_out"}) b.output(out);
    const Graph g = infer_shapes(b.graph());
    const Graph f = block_gemv_weights(g, 16);
    CHECK(f.size() == g.size());
    for (const char* m : {"a", "c", "d", "e", "h", "t", "o"}) {
        INFO(m);
        CHECK(f.value(*f.find(m)).op == Op::matmul);
    }
    // Each guard alone: a square weight (so the shapes would allow it) read transposed, or with A transposed.
    for (const char* attr : {"transpose_b", "transpose_a"}) {
        INFO(attr);
        GraphBuilder t(DType::f32);
        t.input(std::string(attr) == "transpose_a" ? "xt" : "x", std::string(attr) == "transpose_a" ? Shape{32, 1} : Shape{1, 32});
        t.param("w", {32, 32});
        t.node("m", Op::matmul, {std::string(attr) == "transpose_a" ? "xt" : "x", "w"}, {{attr, B(true)}});
        t.output("m");
        const Graph f = block_gemv_weights(infer_shapes(t.graph()), 16);
        CHECK(f.value(*f.find("m")).op == Op::matmul);
    }
}

TEST_CASE("blocked weights: an output in the chain ends it, and keeps its value", "[blocked]") {
    GraphBuilder b(DType::f32);
    b.input("x", {1, 8});
    b.param("w", {8, 32});
    b.node("h", Op::matmul, {"x", "w"});
    b.node("g", Op::relu, {"h"});
    b.node("e", Op::exp, {"g"});
    b.output("g").output("e");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.5);
    const Graph f = block_gemv_weights(g, 16);
    CHECK(f.value(*f.find("g")).op == Op::reshape);  // the row, under its name, still an output
    CHECK(f.value(*f.find("e")).op == Op::exp);      // after the output: not taken
    CHECK(f.value(f.operands(*f.find("g"))[0]).name == "g+blocks");
    const TensorMap values = make_values(g, std::nullopt);
    HostRunOptions opt;
    opt.check_races = true;
    expect_reference(g, values, run_simt(plan(g, blocked_options("anvil", 16)), values, opt));
}

TEST_CASE("blocked weights: two GEMVs that meet in one pointwise op (a GLU, a recurrent cell), host and simt",
          "[blocked][simt]") {
    for (DType t : {DType::f32, DType::bf16})
        for (int64_t block : {int64_t{16}, kWeightBlockColumns}) {
            INFO(dtype_name(t) << " block " << block);
            const Graph g = meeting(2 * kWeightBlockColumns, t, 3 * kWeightBlockColumns);
            PipelineOptions opt = blocked_options("anvil", block);
            opt.concat_siblings = false;  // the GLU's two GEMVs stay apart and meet in the mul
            const Graph f = block_gemv_weights(g, block);
            for (const char* w : {"wg+blocked", "wu+blocked", "wd+blocked", "wx+blocked", "wh+blocked"}) {
                INFO(w);
                CHECK(f.find(w));
            }
            CHECK(f.value(*f.find("glu")).op == Op::reshape);
            CHECK(f.value(*f.find("cell")).op == Op::reshape);
            const TensorMap values = make_values(g, std::nullopt);
            HostRunOptions run;
            run.check_races = true;
            expect_reference(g, values, run_host(plan(g, opt), values, run));
            expect_reference(g, values, run_simt(plan(g, opt), values, run));
        }
}

TEST_CASE("blocked weights: llama_decode_small matches the reference in blocks of 64 and 16, joined or not, host and simt",
          "[blocked][simt][cli]") {
    for (const char* flags : {"--blocked-weights", "--blocked-weights=16", "--blocked-weights=16 --no-concat"})
        for (const char* backend : {"host --check-races", "simt"}) {
            INFO(flags << " on " << backend);
            const test::CmdResult r =
                test::run_anvil(std::string("run models/llama_decode_small.yaml --backend ") + backend + " " + flags);
            CHECK(r.status == 0);
            CHECK_THAT(r.output, Catch::Contains("output lm_head") && Catch::Contains(") ok") &&
                                     !Catch::Contains("FAILED"));
        }
}

TEST_CASE("blocked weights: every policy computes the reference, host and simt, odd K, every float dtype",
          "[blocked][simt]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (int64_t K : {1, 7, 33, 129}) {
            INFO(dtype_name(t) << " K " << K);
            const Graph g = chain(K, t, 3 * kWeightBlockColumns);
            const TensorMap values = make_values(g, std::nullopt);
            REQUIRE(plan(g, blocked_options("anvil")).tiles.rops.size() > 0);
            HostRunOptions opt;
            opt.check_races = true;
            for (const PolicyEntry& p : all_policies()) {
                INFO("policy " << p.name);
                expect_reference(g, values, run_host(plan(g, blocked_options(p.name)), values, opt));
            }
            expect_reference(g, values, run_simt(plan(g, blocked_options("anvil")), values, opt));
            // Blocks of 16: every GEMV tile's slice is its whole block, one run.
            const Schedule s16 = plan(g, blocked_options("anvil", 16));
            CHECK(buffer_of(s16.tiles, "w1+blocked").bytes == K * 3 * kWeightBlockColumns * dtype_size(t));
            expect_reference(g, values, run_host(s16, values, opt));
            expect_reference(g, values, run_simt(s16, values, opt));
        }
}

TEST_CASE("blocked weights: the command line takes the block width, and refuses one it does not offer",
          "[blocked][cli]") {
    const test::CmdResult on = test::run_anvil("schedule models/llama_decode_small.yaml --blocked-weights --dump-after fold");
    CHECK(on.status == 0);
    CHECK_THAT(on.output, Catch::Contains("lm_head_w+final_norm+blocked : bf16 [4, 64, 64]"));
    const test::CmdResult narrow =
        test::run_anvil("schedule models/llama_decode_small.yaml --blocked-weights=16 --dump-after fold");
    CHECK(narrow.status == 0);
    CHECK_THAT(narrow.output, Catch::Contains("lm_head_w+final_norm+blocked : bf16 [16, 64, 16]"));
    const test::CmdResult off = test::run_anvil("schedule models/llama_decode_small.yaml --dump-after fold");
    CHECK(off.status == 0);
    CHECK_THAT(off.output, !Catch::Contains("+blocked"));
    const test::CmdResult odd = test::run_anvil("schedule models/llama_decode_small.yaml --blocked-weights=24");
    CHECK(odd.status == 2);
    CHECK_THAT(odd.output, Catch::Contains("--blocked-weights") && Catch::Contains("24"));
}
