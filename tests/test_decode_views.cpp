// Batch-1 decode attention without copies (src/tile/decompose.cpp): the
// concat of the cache's and the new token's scores is stored in place by
// their matmuls, and the slices of the probabilities are read by the
// context matmuls through strides. Which graphs take the views, which keep
// the copies, that every schedule computes what the reference does (host
// and simt, race-checked), and what it saves in counter polls.
#include <catch2/catch.hpp>

#include <array>
#include <set>

#include "anvil/pipeline.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "runtime/host_backend.h"
#include "schedule/cost_model.h"
#include "schedule/race_check.h"
#include "schedule/sync_counters.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

struct DecodeShape {
    int64_t G, R, D, T;  // KV heads, query heads per KV head, head size, cached positions
    int layers = 1;
};

// `layers` decode layers of llama_decode.yaml's attention over x [1, G*R*D]:
// q, k, v projections, the scores of the cache (an input) and of the new
// key, their concat, softmax, the slices of the probabilities, both
// contexts, their sum, the output projection and a residual.
Graph decode(const DecodeShape& s, DType t) {
    const int64_t E = s.G * s.R * s.D, KV = s.G * s.D;
    GraphBuilder b(t);
    b.input("x", {1, E});
    std::string h = "x";
    for (int l = 0; l < s.layers; ++l) {
        const std::string p = "l" + std::to_string(l) + "_";
        b.input(p + "k_cache", {s.G, s.T, s.D});
        b.input(p + "v_cache", {s.G, s.T, s.D});
        b.param(p + "wq", {E, E});
        b.param(p + "wk", {E, KV});
        b.param(p + "wv", {E, KV});
        b.param(p + "wo", {E, E});
        b.node(p + "q", Op::matmul, {h, p + "wq"});
        b.node(p + "k", Op::matmul, {h, p + "wk"});
        b.node(p + "v", Op::matmul, {h, p + "wv"});
        b.node(p + "qh", Op::reshape, {p + "q"}, {{"shape", L({s.G, s.R, s.D})}});
        b.node(p + "kh", Op::reshape, {p + "k"}, {{"shape", L({s.G, 1, s.D})}});
        b.node(p + "vh", Op::reshape, {p + "v"}, {{"shape", L({s.G, 1, s.D})}});
        b.node(p + "s_cache", Op::matmul, {p + "qh", p + "k_cache"}, {{"transpose_b", B(true)}});
        b.node(p + "s_new", Op::matmul, {p + "qh", p + "kh"}, {{"transpose_b", B(true)}});
        b.node(p + "scores", Op::concat, {p + "s_cache", p + "s_new"}, {{"axis", I(2)}});
        b.node(p + "probs", Op::softmax, {p + "scores"}, {{"axis", I(-1)}});
        b.node(p + "p_cache", Op::slice, {p + "probs"}, {{"axis", I(2)}, {"start", I(0)}, {"end", I(s.T)}});
        b.node(p + "p_new", Op::slice, {p + "probs"}, {{"axis", I(2)}, {"start", I(s.T)}, {"end", I(s.T + 1)}});
        b.node(p + "ctx_cache", Op::matmul, {p + "p_cache", p + "v_cache"});
        b.node(p + "ctx_new", Op::matmul, {p + "p_new", p + "vh"});
        b.node(p + "ctx", Op::add, {p + "ctx_cache", p + "ctx_new"});
        b.node(p + "ctx_m", Op::reshape, {p + "ctx"}, {{"shape", L({1, E})}});
        b.node(p + "o", Op::matmul, {p + "ctx_m", p + "wo"});
        b.node(p + "res", Op::add, {h, p + "o"});
        h = p + "res";
    }
    b.output(h);
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    for (int l = 0; l < s.layers; ++l) {
        const std::string p = "l" + std::to_string(l) + "_";
        for (const char* c : {"k_cache", "v_cache"}) set_init(g, p + c, InitKind::normal, 1.0);
        for (const char* w : {"wq", "wk", "wv", "wo"}) set_init(g, p + w, InitKind::normal, 0.3);
    }
    return g;
}

// The rOps named after one of `names` (a copy of a concat part is "name#k").
int rops_named(const TileGraph& tg, const std::set<std::string>& names) {
    int n = 0;
    for (const ROp& op : tg.rops) n += names.count(op.name.substr(0, op.name.find('#'))) > 0;
    return n;
}

const ROp& rop(const TileGraph& tg, const std::string& name) {
    for (const ROp& op : tg.rops)
        if (op.name == name) return op;
    FAIL("no rOp " << name);
    throw;
}

const TensorBuffer& buffer(const TileGraph& tg, const std::string& name) {
    for (const TensorBuffer& b : tg.buffers)
        if (b.name == name) return b;
    FAIL("no buffer " << name);
    throw;
}

const std::set<std::string> kCopies = {"l0_scores", "l0_p_cache", "l0_p_new"};

}  // namespace

TEST_CASE("decode views: the scores concat is stored by its matmuls, the probability slices read through strides", "[decode_views]") {
    const DecodeShape s{3, 2, 12, 37};
    for (DType t : {DType::f32, DType::bf16}) {
        INFO(dtype_name(t));
        const TileGraph tg = decompose(decode(s, t));
        CHECK(rops_named(tg, kCopies) == 0);
        const int64_t row = s.T + 1, size = dtype_size(t);
        const TensorBuffer& scores = buffer(tg, "l0_scores");
        const TensorBuffer& probs = buffer(tg, "l0_probs");
        const auto& sc = std::get<MatmulParams>(rop(tg, "l0_s_cache").params);
        CHECK(sc.c_off == scores.offset);
        CHECK(sc.c_sm == row);
        CHECK(sc.c_sn == 1);
        CHECK(sc.c_sb[0] == s.R * row);
        const auto& sn = std::get<MatmulParams>(rop(tg, "l0_s_new").params);
        CHECK(sn.c_off == scores.offset + s.T * size);
        CHECK(sn.c_sm == row);
        CHECK(buffer(tg, "l0_s_cache").storage == scores.storage);
        const auto& cc = std::get<MatmulParams>(rop(tg, "l0_ctx_cache").params);
        CHECK(cc.a_off == probs.offset);
        CHECK(cc.a_sm == row);
        CHECK(cc.a_sk == 1);
        CHECK(cc.a_sb[0] == s.R * row);
        const auto& cn = std::get<MatmulParams>(rop(tg, "l0_ctx_new").params);
        CHECK(cn.a_off == probs.offset + s.T * size);
        CHECK(cn.a_sm == row);
    }
}

TEST_CASE("decode views: odd sizes in every float dtype match the reference under every policy, host and simt", "[decode_views][simt]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (const DecodeShape& s : {DecodeShape{3, 2, 12, 37}, DecodeShape{2, 4, 8, 5, 2}, DecodeShape{1, 1, 16, 1}}) {
            INFO(dtype_name(t) << " G " << s.G << " R " << s.R << " D " << s.D << " T " << s.T);
            const Graph g = decode(s, t);
            const TensorMap values = make_values(g, std::nullopt);
            HostRunOptions opt;
            opt.check_races = true;
            for (const PolicyEntry& p : all_policies()) {
                INFO("policy " << p.name);
                const Schedule sched = plan(g, p.name, default_gpu());
                CHECK(rops_named(sched.tiles, kCopies) == 0);
                CHECK(find_races(sched).empty());
                expect_reference(g, values, run_host(sched, values, opt));
            }
            expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, opt));
        }
}

TEST_CASE("decode views: copies stay for an output part, a shared part, a converting or non-matmul read, an output slice", "[decode_views]") {
    // Each variant breaks one condition of one view; the other stays.
    for (int variant = 0; variant < 6; ++variant) {
        INFO("variant " << variant);
        GraphBuilder b;
        b.input("q", {2, 3, 4});
        b.input("kc", {2, 5, 4});
        b.input("kn", {2, 1, 4});
        b.input("vc", {2, 5, 4});
        b.node("s_cache", Op::matmul, {"q", "kc"}, {{"transpose_b", B(true)}});
        b.node("s_new", Op::matmul, {"q", "kn"}, {{"transpose_b", B(true)}});
        // 2: a part that is not a matmul (a scaled copy of s_new).
        if (variant == 2) b.node("s_new2", Op::mul, {"s_new", "s_new"});
        b.node("scores", Op::concat, {"s_cache", variant == 2 ? "s_new2" : "s_new"}, {{"axis", I(2)}});
        b.node("probs", Op::softmax, {"scores"}, {{"axis", I(-1)}});
        std::optional<DType> slice_t;
        if (variant == 3) slice_t = DType::f16;  // a converting slice
        b.node("p_cache", Op::slice, {"probs"}, {{"axis", I(2)}, {"start", I(0)}, {"end", I(5)}}, slice_t);
        b.node("ctx", Op::matmul, {"p_cache", "vc"});
        std::vector<std::string> outs = {"ctx"};
        if (variant == 0) outs.push_back("s_cache");  // an output part
        if (variant == 1) {                          // a part read twice
            b.node("s_twice", Op::add, {"s_cache", "s_cache"});
            outs.push_back("s_twice");
        }
        if (variant == 4) {  // a slice also read by a non-matmul
            b.node("p_sum", Op::add, {"p_cache", "p_cache"});
            outs.push_back("p_sum");
        }
        if (variant == 5) outs.push_back("p_cache");  // an output slice
        for (const std::string& o : outs) b.output(o);
        Graph g = infer_shapes(b.graph());
        for (const char* in : {"q", "kc", "kn", "vc"}) set_init(g, in, InitKind::normal, 1.0);
        const TileGraph tg = decompose(g);
        const bool concat_copied = variant <= 2, slice_copied = variant >= 3;
        CHECK(rops_named(tg, {"scores"}) == (concat_copied ? 2 : 0));
        CHECK(rops_named(tg, {"p_cache"}) == (slice_copied ? 1 : 0));
        const TensorMap values = make_values(g, std::nullopt);
        HostRunOptions opt;
        opt.check_races = true;
        expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values, opt));
    }
}

TEST_CASE("decode views: a layer's softmax and context wait for the score and probability producers themselves", "[decode_views][waits]") {
    const Graph g = decode(DecodeShape{4, 4, 16, 200, 3}, DType::bf16);
    const Schedule s = plan(g, "anvil", default_gpu());
    const SyncCounters c = sync_counters(s);
    std::set<std::string> probs_waits, ctx_waits;
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        const std::string& name = s.tiles.rops[s.tasks[t].rop].name;
        for (int k : c.waits[t]) {
            const std::string& of = s.tiles.rops[s.tasks[c.members[k].front()].rop].name;
            if (name == "l1_probs") probs_waits.insert(of);
            if (name.rfind("l1_ctx_cache", 0) == 0) ctx_waits.insert(of);
        }
    }
    // No copy between: the softmax polls the score matmuls, the context (where
    // its block does not know them complete already) the softmax.
    CHECK(probs_waits.size() <= 2);
    for (const std::string& p : probs_waits) CHECK((p == "l1_s_cache" || p == "l1_s_new"));
    for (const std::string& p : ctx_waits) CHECK((p == "l1_probs" || p == "l1_ctx_new"));
    CHECK_FALSE(probs_waits.empty());
}

TEST_CASE("fastest_alone: of two shapes nearly as fast, the one with fewer tasks (llama_decode's q.K tiles)", "[decode_views][gemv]") {
    // llama_decode's scores of the cache: [8, 4, 64] x [8, 1024, 64]^T in bf16.
    GraphBuilder b(DType::bf16);
    b.input("q", {8, 4, 64});
    b.input("kc", {8, 1024, 64});
    b.node("s", Op::matmul, {"q", "kc"}, {{"transpose_b", B(true)}});
    b.output("s");
    const TileGraph tg = decompose(infer_shapes(b.graph()));
    const Gpu gpu = default_gpu();
    const ROp& op = tg.rops.at(0);
    const ROp chosen = fastest_alone(op, gpu, gpu.sm_count);
    // The fastest alone by time only.
    double best_s = INFINITY;
    int best_tiles = 0;
    for (const ROp& v : tile_variants(op, gpu)) {
        const int per_sm = std::max(1, std::min(kCudaCoreBlocksPerSm, blocks_per_sm(gpu, ANVIL_BLOCK_THREADS, tile_smem_bytes(v, gpu))));
        const double t = rop_seconds_alone(gpu, v, gpu.sm_count, per_sm);
        if (t < best_s) best_s = t, best_tiles = v.tiles;
    }
    const int chosen_per_sm =
        std::max(1, std::min(kCudaCoreBlocksPerSm, blocks_per_sm(gpu, ANVIL_BLOCK_THREADS, tile_smem_bytes(chosen, gpu))));
    const double chosen_s = rop_seconds_alone(gpu, chosen, gpu.sm_count, chosen_per_sm);
    INFO("fastest by time " << best_tiles << " tiles, chosen " << chosen.tiles);
    CHECK(chosen.tiles < best_tiles);
    CHECK(chosen.tiles * 2 <= gpu.sm_count * kCudaCoreBlocksPerSm);  // not every block joins the wave
    // It gives up less time than the fixed cost of the tasks it saves.
    CHECK(chosen_s - best_s < (best_tiles - chosen.tiles) * gpu.task_overhead_s / (gpu.sm_count * 2.0));
}
