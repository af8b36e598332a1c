// rmsnorm computed inside the batch-1 matmuls that read it
// (frontend/norm_fold.h): which norms fold (every reader a constant-weight
// GEMV, weights in either layout, so both GEMV walks compute the row's RMS)
// and which must not; only GEMV tiles may carry it; every folded schedule
// computes what the unfolded reference does, on host and simt, under every
// policy, at odd sizes and in every float dtype.
#include <catch2/catch.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/norm_fold.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/footprint.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

// x [1, K] -> rmsnorm -> a matmul over W [K, N1] with a bias epilogue and
// one over W^T [N2, K]. x is far from unit RMS (std 3) so a missing r shows.
Graph norm_then_gemvs(int64_t K, int64_t n1, int64_t n2, DType t) {
    GraphBuilder b(t);
    b.input("x", {1, K}, DType::f32);
    b.param("g", {K});
    b.param("w1", {K, n1});
    b.param("w2", {n2, K});
    b.param("b1", {n1});
    b.node("n", Op::rmsnorm, {"x", "g"}, {{"eps", F(1e-3)}});
    b.node("h1", Op::matmul, {"n", "w1"});
    b.node("y1", Op::add, {"h1", "b1"});
    b.node("y2", Op::matmul, {"n", "w2"}, {{"transpose_b", B(true)}});
    b.output("y1").output("y2");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 3.0);
    set_init(g, "g", InitKind::uniform, 0.5, 1.5);
    for (const char* w : {"w1", "w2", "b1"}) set_init(g, w, InitKind::normal, 0.5);
    return g;
}

// g's outputs against the reference on the host under every policy, and on
// simt under anvil's, races checked.
void expect_reference_everywhere(const Graph& g) {
    const TensorMap values = make_values(g, std::nullopt);
    HostRunOptions opt;
    opt.check_races = true;
    for (const PolicyEntry& p : all_policies()) {
        INFO("policy " << p.name);
        expect_reference(g, values, run_host(plan(g, p.name, default_gpu()), values, opt));
    }
    expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, opt));
}

}  // namespace

TEST_CASE("norm fold: an rmsnorm read only by GEMVs disappears into them", "[normfold]") {
    const Graph g = norm_then_gemvs(33, 7, 129, DType::f32);
    const Graph f = fold_rmsnorm_into_matmuls(g);
    CHECK(count_op(f, Op::rmsnorm) == 0);
    for (const char* m : {"h1", "y2"}) {
        INFO(m);
        const VertexId v = *f.find(m);
        CHECK(f.value(v).attrs.get_float(kMatmulRmsEpsAttr) == 1e-3);
        CHECK(f.value(f.operands(v)[0]).name == "x");
        const Value& w = f.value(f.operands(v)[1]);
        REQUIRE(w.fold);
        CHECK(w.fold->channel_axis == (std::string(m) == "y2" ? 1 : 0));  // the weight's K axis
    }
    CHECK(!f.find("g"));
    // Only GEMV tiles carry the norm: every variant of the folded rOps is one.
    const Schedule s = plan(g, "anvil", default_gpu());
    int folded = 0;
    for (const ROp& op : s.tiles.rops) {
        const auto* p = std::get_if<MatmulParams>(&op.params);
        if (!p || !p->a_rms) continue;
        ++folded;
        for (const ROp& v : tile_variants(op, default_gpu())) CHECK(std::get<MatmulParams>(v.params).algo == ANVIL_MM_GEMV);
        ROp tiled = op;
        std::get<MatmulParams>(tiled.params).algo = ANVIL_MM_TILED;
        TileGraph tg = s.tiles;
        for (ROp& r : tg.rops)
            if (r.name == op.name) r = tiled;
        CHECK_THROWS_AS(verify_tile_graph(tg, default_gpu()), InternalError);
    }
    CHECK(folded == 2);
}

TEST_CASE("norm fold: a GEMV with a folded rmsnorm is never split along K", "[normfold][splitk]") {
    // Its 1/RMS is over the whole row of x: a slice would compute its own.
    // The same GEMV over the norm's output, unfolded, may split (K = 4096).
    const Graph g = norm_then_gemvs(4096, 64, 8, DType::f32);
    for (const bool fold : {true, false}) {
        INFO("fold " << fold);
        const Schedule s = plan(g, "anvil", default_gpu(), fold);
        const ROp* h1 = nullptr;
        for (const ROp& op : s.tiles.rops)
            if (op.name.rfind("h1", 0) == 0 && op.kind == TaskKind::matmul) h1 = &op;
        REQUIRE(h1);
        CHECK(std::get<MatmulParams>(h1->params).a_rms == fold);
        CHECK(split_k_ways(*h1, 264).empty() == fold);
    }
}

TEST_CASE("norm fold: folded GEMVs match the reference in every dtype and odd size, every policy, host and simt", "[normfold]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (int64_t K : {1, 7, 33, 129}) {
            INFO(dtype_name(t) << " K " << K);
            const Graph g = norm_then_gemvs(K, 7, 33, t);
            expect_reference_everywhere(g);
        }
}

TEST_CASE("norm fold: through the GEMV ring the RMS comes from the staged x, or from global memory past its room", "[normfold][simt]") {
    // N1 = 40: W's rows 16-byte aligned in every dtype, so the ring walk
    // takes the x @ W GEMV and computes the RMS from its staged x (f32 x: K up
    // to gemv_x_limit / 4) or, at K one past that, from global memory.
    const int64_t k_past = gemv_x_limit(default_gpu()) / 4 + 1;
    CHECK(anvil_gemv_x_bytes(1, k_past, 4) > gemv_x_limit(default_gpu()));
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (int64_t K : {int64_t{1}, int64_t{7}, int64_t{129}, int64_t{1000}, k_past}) {
            INFO(dtype_name(t) << " K " << K);
            const Graph g = norm_then_gemvs(K, 40, 9, t);
            const TensorMap values = make_values(g, std::nullopt);
            HostRunOptions opt;
            opt.check_races = true;
            expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, opt));
        }
}

TEST_CASE("norm fold: no fold when the norm is an output, has another reader, many rows, or a computed gamma", "[normfold]") {
    for (int variant = 0; variant < 4; ++variant) {
        INFO("variant " << variant);
        GraphBuilder b;
        b.input("x", {variant == 2 ? int64_t{3} : int64_t{1}, 9});
        b.param("w", {9, 5});
        b.param("g0", {9});
        b.node("g", Op::exp, {"g0"});  // variant 3 reads a computed gamma
        b.node("n", Op::rmsnorm, {"x", variant == 3 ? "g" : "g0"});
        b.node("y", Op::matmul, {"n", "w"});
        b.output("y");
        if (variant == 0) b.output("n");
        if (variant == 1) {
            b.node("z", Op::relu, {"n"});
            b.output("z");
        }
        if (variant != 3) b.output("g");
        Graph g = infer_shapes(b.graph());
        set_init(g, "x", InitKind::normal, 2.0);
        const Graph f = fold_rmsnorm_into_matmuls(g);
        CHECK(count_op(f, Op::rmsnorm) == 1);
        const TensorMap values = make_values(g, std::nullopt);
        expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values));
    }
}

TEST_CASE("norm fold: llama_decode's rmsnorms all fold; --no-norm-fold keeps them", "[normfold][cli]") {
    const std::string path = "models/llama_decode_small.yaml";
    const CmdResult folded = run_anvil("schedule " + path + " --dump-after fold");
    REQUIRE(folded.status == 0);
    CHECK(folded.output.find("= rmsnorm(") == std::string::npos);
    CHECK(folded.output.find("l0_k+l0_v+l0_qs = matmul(x, ") != std::string::npos);
    CHECK(folded.output.find("a_rms_eps: 1e-05") != std::string::npos);
    const CmdResult kept = run_anvil("schedule " + path + " --dump-after fold --no-norm-fold");
    REQUIRE(kept.status == 0);
    CHECK(kept.output.find("l0_attn_norm = rmsnorm(") != std::string::npos);
    const CmdResult run = run_anvil("run " + path + " --backend simt --check-races");
    CHECK(run.status == 0);
    CHECK(run.output.find("races       none") != std::string::npos);
}

TEST_CASE("norm fold: readers that share a weight share its one folded copy (fuzz: gate and up reading one weight)",
          "[normfold][normtile]") {
    // n = norm(x); a = n @ w, b = n @ w (the same weight), c = n @ w^T (w
    // square): two folded weights, w along its rows and w along its columns,
    // each one tensor. Before, each reader got a copy under the same name
    // and one of them was never filled (fuzz seed 20261129: y off by 78%).
    struct Case {
        const char* what;
        Op norm;
        int64_t M;
    };
    for (const Case& k : {Case{"batch 1: the GEMV fold", Op::rmsnorm, 1}, Case{"33 rows: the tile fold", Op::rmsnorm, 33},
                          Case{"33 rows: the tile fold of a layernorm", Op::layernorm, 33}}) {
        INFO(k.what);
        const int64_t K = 40;
        GraphBuilder b(DType::f32);
        b.input("x", {k.M, K});
        b.param("g", {K});
        b.param("w", {K, K});
        if (k.norm == Op::layernorm) {
            b.param("beta", {K});
            b.node("n", Op::layernorm, {"x", "g", "beta"}, {{"eps", F(1e-3)}});
        } else {
            b.node("n", Op::rmsnorm, {"x", "g"}, {{"eps", F(1e-3)}});
        }
        b.node("a", Op::matmul, {"n", "w"});
        b.node("b", Op::matmul, {"n", "w"});
        b.node("c", Op::matmul, {"n", "w"}, {{"transpose_b", B(true)}});
        b.output("a").output("b").output("c");
        Graph g = infer_shapes(b.graph());
        set_init(g, "x", InitKind::normal, 3.0);
        set_init(g, "g", InitKind::uniform, 0.5, 1.5);
        if (k.norm == Op::layernorm) set_init(g, "beta", InitKind::uniform, -1.0, 1.0);
        set_init(g, "w", InitKind::normal, 0.5);
        const Graph f = k.M == 1 ? fold_rmsnorm_into_matmuls(g) : fold_norms_into_gemm_tiles(g);
        CHECK(count_op(f, k.norm) == 0);
        // The matmuls' weights (a layernorm's readers are renamed: each is
        // now the add of its projected beta, over the matmul).
        const auto weight_of = [&](const std::string& name) {
            VertexId m = *f.find(name);
            if (f.value(m).op == Op::add) m = f.operands(m)[0];
            REQUIRE(f.value(m).op == Op::matmul);
            return f.operands(m)[1];
        };
        const VertexId wa = weight_of("a"), wb = weight_of("b"), wc = weight_of("c");
        CHECK(wa == wb);
        CHECK(wa != wc);
        CHECK(f.value(wa).fold->channel_axis == 0);
        CHECK(f.value(wc).fold->channel_axis == 1);
        expect_reference_everywhere(g);
    }
}
