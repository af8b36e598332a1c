// A layernorm or rmsnorm computed inside the GEMM tiles that read it
// (frontend/norm_fold.h fold_norms_into_gemm_tiles, rtasks/a_norm.cuh):
// which norms fold (every reader a constant-weight matmul reading it as A)
// and which must not; gamma in the weights and beta @ W in the bias; the
// folded GEMMs never become GEMVs nor split along K; every folded schedule
// computes what the unfolded reference does, on host and simt (CUDA-core
// and tensor-core tiles, race checks on), under every policy, at sizes that
// are no tile multiples, in every float dtype, on rows whose mean is many
// times their spread; and a tile that skips the normalisation or its barrier
// is caught.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/norm_fold.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "schedule/builders.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

// x [M, K] -> norm (layernorm or rmsnorm over K) -> three readers as in an
// attention block: q = n @ wq + bq (a bias add to join), k = n @ wk (no
// bias: beta @ wk gets an add of its own), v = n @ wv^T. x's rows have mean
// about 10 and spread about 0.58: the mean is 17 times the std, where
// E[x^2] - mean^2 or a mean * colsum(W) correction would lose digits.
Graph norm_then_qkv(Op norm, int64_t M, int64_t K, int64_t N, DType t) {
    GraphBuilder b(t);
    b.input("x", {M, K});
    b.param("g", {K});
    if (norm == Op::layernorm) b.param("beta", {K});
    b.param("wq", {K, N});
    b.param("bq", {N});
    b.param("wk", {K, N});
    b.param("wv", {N, K});
    if (norm == Op::layernorm) b.node("n", Op::layernorm, {"x", "g", "beta"}, {{"eps", F(1e-5)}});
    else b.node("n", Op::rmsnorm, {"x", "g"}, {{"eps", F(1e-5)}});
    b.node("q0", Op::matmul, {"n", "wq"});
    b.node("q", Op::add, {"q0", "bq"});
    b.node("k", Op::matmul, {"n", "wk"});
    b.node("v", Op::matmul, {"n", "wv"}, {{"transpose_b", B(true)}});
    b.output("q").output("k").output("v");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::uniform, 9.0, 11.0);
    set_init(g, "g", InitKind::uniform, 0.5, 1.5);
    if (norm == Op::layernorm) set_init(g, "beta", InitKind::uniform, -1.0, 1.0);
    for (const char* w : {"wq", "wk", "wv"}) set_init(g, w, InitKind::normal, 1.0 / std::sqrt(double(K)));
    set_init(g, "bq", InitKind::uniform, -0.5, 0.5);
    return g;
}

// The matmul rOps of a tile graph that normalise A.
std::vector<const ROp*> normed(const TileGraph& tg) {
    std::vector<const ROp*> out;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->a_norm) out.push_back(&op);
    return out;
}

// The folded, fused tiles with every normed matmul recast by `as`, one launch per rOp.
Schedule forced(const Graph& g, const std::function<ROp(const ROp&)>& as) {
    TileGraph tg = fuse(decompose(fold_norms_into_gemm_tiles(g)), default_gpu());
    for (ROp& op : tg.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->a_norm) op = as(op);
    verify_tile_graph(tg, default_gpu());
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}
ROp cuda_cores(const ROp& op) { return retile(op, 32, 32, 16); }
ROp tensor_cores(const ROp& op) { return on_tensor_cores(op, 32, 64, 32); }

// M, K, N: each of 1, 7, 33, 129, 197, 768 in each place (no tile multiples).
struct Dims {
    int64_t M, K, N;
};
const Dims kDims[] = {{1, 7, 33}, {7, 33, 1}, {33, 768, 129}, {129, 1, 197}, {197, 129, 768}, {768, 197, 7}};

}  // namespace

TEST_CASE("norm tile fold: a layernorm read by q, k, v GEMMs disappears into them", "[normfold][normtile]") {
    const Graph g = norm_then_qkv(Op::layernorm, 33, 129, 7, DType::f32);
    const Graph f = fold_norms_into_gemm_tiles(g);
    CHECK(count_op(f, Op::layernorm) == 0);
    CHECK(!f.find("g"));
    CHECK(!f.find("beta"));
    for (const char* m : {"q0", "k+n", "v+n"}) {
        INFO(m);
        REQUIRE(f.find(m));
        const Value& mv = f.value(*f.find(m));
        CHECK(mv.op == Op::matmul);
        CHECK(mv.attrs.get_string(kMatmulNormAttr) == "layernorm");
        CHECK(mv.attrs.get_float(kMatmulNormEpsAttr) == 1e-5);
        CHECK(f.value(f.operands(*f.find(m))[0]).name == "x");
        const Value& w = f.value(f.operands(*f.find(m))[1]);
        REQUIRE(w.fold);
        CHECK(w.fold->part == ParamFold::Part::weight);
        CHECK(w.fold->channel_axis == (std::string(m) == "v+n" ? 1 : 0));  // the weight's K axis
    }
    // q's bias add takes bq + beta @ wq; k (no bias) becomes an add of beta @ wk
    // under its own name; v is an output: no add can join it, so it gets one too.
    const Value& qb = f.value(f.operands(*f.find("q"))[1]);
    REQUIRE(qb.fold);
    CHECK(qb.fold->part == ParamFold::Part::projection);
    REQUIRE(qb.fold->pieces.size() == 3);
    CHECK(qb.fold->pieces[2].name == "bq");
    for (const char* m : {"k", "v"}) {
        INFO(m);
        const Value& a = f.value(*f.find(m));
        CHECK(a.op == Op::add);
        const Value& b = f.value(f.operands(*f.find(m))[1]);
        REQUIRE(b.fold);
        CHECK(b.fold->pieces.size() == 2);
        CHECK(b.fold->pieces[1].name == "beta");
    }
    // The folded rOps: never a GEMV, never split along K.
    const TileGraph tg = decompose(f);
    REQUIRE(normed(tg).size() == 3);
    for (const ROp* op : normed(tg)) {
        INFO(op->name);
        for (const ROp& v : tile_variants(*op, default_gpu())) CHECK(std::get<MatmulParams>(v.params).algo != ANVIL_MM_GEMV);
        const SplitChoice split = choose_split_k(*op, default_gpu(), WaveLoad{1 << 20, 0, 0});
        CHECK(split.ways == 1);
        CHECK(split.why_not.find("whole rows of A") != std::string::npos);
        // An unknown norm, or an eps that is not finite and positive.
        for (int broken = 0; broken < 3; ++broken) {
            TileGraph b2 = tg;
            for (ROp& r : b2.rops) {
                if (r.name != op->name) continue;
                auto& p = std::get<MatmulParams>(r.params);
                if (broken == 0) p.a_norm = 7;
                if (broken == 1) p.a_norm_eps = 0;
                if (broken == 2) p.a_norm_eps = INFINITY;
            }
            CHECK_THROWS_WITH(verify_tile_graph(b2, default_gpu()), Catch::Contains(op->name) &&
                                                                        Catch::Contains("norm of A's rows"));
        }
    }
    CHECK_NOTHROW(verify_tile_graph(tg, default_gpu()));
    // A norm at one row folds too (a layernorm has no GEMV path): GEMM tiles only.
    const TileGraph one = decompose(fold_norms_into_gemm_tiles(norm_then_qkv(Op::layernorm, 1, 33, 7, DType::f32)));
    REQUIRE(normed(one).size() == 3);
    for (const ROp* op : normed(one)) {
        INFO(op->name);
        CHECK(std::get<MatmulParams>(op->params).algo == ANVIL_MM_TILED);
        for (const ROp& v : tile_variants(*op, default_gpu())) CHECK(std::get<MatmulParams>(v.params).algo != ANVIL_MM_GEMV);
        TileGraph bad = one;
        for (ROp& r : bad.rops)
            if (r.name == op->name) r = as_gemv(*op, 32);
        CHECK_THROWS_WITH(verify_tile_graph(bad, default_gpu()), Catch::Contains("no norm of A's rows"));
    }
}

TEST_CASE("norm tile fold: a batch-1 rmsnorm stays in the GEMV; wider ones fold into the tiles", "[normfold][normtile]") {
    const CmdResult one = run_anvil("schedule models/llama_decode_small.yaml --dump-after fold");
    REQUIRE(one.status == 0);
    CHECK(one.output.find("a_rms_eps") != std::string::npos);
    CHECK(one.output.find("a_norm:") == std::string::npos);
    const Graph g = norm_then_qkv(Op::rmsnorm, 7, 33, 9, DType::f32);
    const Graph f = fold_norms_into_gemm_tiles(fold_rmsnorm_into_matmuls(g));
    CHECK(count_op(f, Op::rmsnorm) == 0);
    CHECK(count_op(f, Op::add) == 1);  // no beta: q's bias add alone
    CHECK(f.value(*f.find("q0")).attrs.get_string(kMatmulNormAttr) == "rmsnorm");
}

TEST_CASE("norm tile fold: folded GEMMs match the reference in every float dtype and odd size, every policy, host",
          "[normfold][normtile]") {
    for (Op norm : {Op::layernorm, Op::rmsnorm})
        for (DType t : {DType::f32, DType::f16, DType::bf16})
            for (const Dims& d : kDims) {
                INFO(op_name(norm) << " " << dtype_name(t) << " M " << d.M << " K " << d.K << " N " << d.N);
                const Graph g = norm_then_qkv(norm, d.M, d.K, d.N, t);
                const TensorMap values = make_values(g, std::nullopt);
                HostRunOptions opt;
                opt.check_races = true;
                for (const PolicyEntry& p : all_policies()) {
                    INFO("policy " << p.name);
                    const Schedule s = plan(g, p.name, default_gpu());
                    // At one row q and k join first (concat_siblings), and an rmsnorm stays in the GEMVs.
                    CHECK(normed(s.tiles).size() == (d.M > 1 ? 3u : norm == Op::layernorm ? 2u : 0u));
                    expect_reference(g, values, run_host(s, values, opt), 3);
                }
            }
}

TEST_CASE("norm tile fold: CUDA-core and tensor-core tiles match the reference on simt, race checks on",
          "[normfold][normtile][simt]") {
    for (Op norm : {Op::layernorm, Op::rmsnorm})
        for (DType t : {DType::f32, DType::f16, DType::bf16})
            for (const Dims& d : kDims) {
                if (d.M * d.N > 33 * 768) continue;  // simt's fibers: the largest case runs on the host above
                INFO(op_name(norm) << " " << dtype_name(t) << " M " << d.M << " K " << d.K << " N " << d.N);
                const Graph g = norm_then_qkv(norm, d.M, d.K, d.N, t);
                const TensorMap values = make_values(g, std::nullopt);
                HostRunOptions opt;
                opt.check_races = true;
                expect_reference(g, values, run_simt(forced(g, cuda_cores), values, opt), 3);
                if (t != DType::f32) expect_reference(g, values, run_simt(forced(g, tensor_cores), values, opt), 3);
            }
}

TEST_CASE("norm tile fold: on rows whose mean is 17 times their spread, f32 keeps the unfolded run's accuracy",
          "[normfold][normtile]") {
    // The unfolded layernorm computes (x - mean) * rstd in f32 too; the fold
    // must not lose more (a mean * colsum(W) correction would lose about
    // (mean / std)^2 ulps).
    for (Op norm : {Op::layernorm, Op::rmsnorm})
        for (const Dims& d : {Dims{33, 768, 129}, Dims{197, 129, 33}}) {
            INFO(op_name(norm) << " M " << d.M << " K " << d.K << " N " << d.N);
            const Graph g = norm_then_qkv(norm, d.M, d.K, d.N, DType::f32);
            const TensorMap values = make_values(g, std::nullopt);
            const auto ref = reference_execute(g, values);
            const auto unfolded = check_outputs(g, run_host(plan(g, "anvil", default_gpu(), false), values), ref);
            const auto folded = check_outputs(g, run_simt(forced(g, cuda_cores), values), ref);
            REQUIRE(folded.size() == unfolded.size());
            for (size_t i = 0; i < folded.size(); ++i) {
                INFO(folded[i].name << ": folded " << folded[i].rel_l2 << ", unfolded " << unfolded[i].rel_l2);
                CHECK(folded[i].rel_l2 <= std::max(4 * unfolded[i].rel_l2, 1e-6));
            }
        }
}

TEST_CASE("norm tile fold: no fold when the norm is an output, has another reader, is read as B or through a "
          "transposed A, or has a computed gamma",
          "[normfold][normtile]") {
    for (int variant = 0; variant < 5; ++variant) {
        INFO("variant " << variant);
        GraphBuilder b;
        b.input("x", {9, 9});
        b.param("w", {9, 5});
        b.param("g0", {9});
        b.param("beta", {9});
        b.node("g", Op::exp, {"g0"});  // variant 4 reads a computed gamma
        b.node("n", Op::layernorm, {"x", variant == 4 ? "g" : "g0", "beta"});
        if (variant == 2) b.node("y", Op::matmul, {"x", "n"});
        else if (variant == 3) b.node("y", Op::matmul, {"n", "w"}, {{"transpose_a", B(true)}});
        else b.node("y", Op::matmul, {"n", "w"});
        b.output("y");
        if (variant == 0) b.output("n");
        if (variant == 1) {
            b.node("z", Op::relu, {"n"});
            b.output("z");
        }
        if (variant != 4) b.output("g");
        Graph g = infer_shapes(b.graph());
        set_init(g, "x", InitKind::uniform, 9.0, 11.0);
        const Graph f = fold_norms_into_gemm_tiles(g);
        CHECK(count_op(f, Op::layernorm) == 1);
        const TensorMap values = make_values(g, std::nullopt);
        expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values));
    }
}

TEST_CASE("norm tile fold: a tile that skips the normalisation, or its barrier, is caught", "[normfold][normtile][simt][mutation]") {
    const Graph g = norm_then_qkv(Op::layernorm, 33, 40, 45, DType::f16);
    const TensorMap values = make_values(g, std::nullopt);
    auto mutant = [&](const Schedule& s, const std::string& from, const std::string& to) {
        HostRunOptions opt;
        opt.edit_source = [&](std::string& src) {
            const size_t at = src.find(from);
            REQUIRE(at != std::string::npos);
            src.replace(at, from.size(), to);
        };
        return run_simt(s, values, opt);
    };
    auto matches = [&](const TensorMap& out) {
        for (const OutputCheck& c : check_outputs(g, out, reference_execute(g, values)))
            if (!c.ok()) return false;
        return true;
    };
    CHECK(matches(run_simt(forced(g, cuda_cores), values)));
    CHECK(matches(run_simt(forced(g, tensor_cores), values)));
    CHECK_FALSE(matches(mutant(forced(g, cuda_cores), "if (A_NORM) {  // normalise slice", "if (0) {  // normalise slice")));
    CHECK_FALSE(matches(mutant(forced(g, tensor_cores), "if (A_NORM) anvil_a_norm_tc_slice", "if (0) anvil_a_norm_tc_slice")));
    // The statistics without their centring (rmsnorm's) on a layernorm: wrong.
    CHECK_FALSE(matches(mutant(forced(g, cuda_cores), "const bool centred = p.a_norm == ANVIL_MM_A_LAYERNORM;",
                               "const bool centred = false;")));
    // The multiply reading a slice while other threads still normalise it.
    CHECK_THROWS_WITH(mutant(forced(g, cuda_cores), "anvil_a_norm_slice<BM, BK>(As, stats, kt * BK, p.K);\n            anvil_barrier();",
                             "anvil_a_norm_slice<BM, BK>(As, stats, kt * BK, p.K);"),
                      Catch::Contains("shared-memory race"));
    CHECK_THROWS_WITH(mutant(forced(g, tensor_cores), "if (landed(As, s)) anvil_barrier();", "landed(As, s);"),
                      Catch::Contains("shared-memory race"));
}

TEST_CASE("norm tile fold: vit_b16_small's pre-LN norms all fold into their GEMMs; --no-norm-fold keeps them",
          "[normfold][normtile][cli]") {
    const std::string path = "models/vit_b16_small.yaml";
    const CmdResult folded = run_anvil("schedule " + path + " --dump-after fold");
    REQUIRE(folded.status == 0);
    CHECK(folded.output.find("l0_ln1 = layernorm(") == std::string::npos);
    CHECK(folded.output.find("l0_ln2 = layernorm(") == std::string::npos);
    CHECK(folded.output.find("a_norm: layernorm") != std::string::npos);
    const CmdResult kept = run_anvil("schedule " + path + " --dump-after fold --no-norm-fold");
    REQUIRE(kept.status == 0);
    CHECK(kept.output.find("l0_ln1 = layernorm(") != std::string::npos);
    const CmdResult run = run_anvil("run " + path + " --backend host --check-races");
    CHECK(run.status == 0);
    CHECK(run.output.find("races       none") != std::string::npos);
}
