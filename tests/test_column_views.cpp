// q, k and v of many rows joined into one GEMM (frontend/concat_siblings.h):
// each becomes a strided column view of the joined [S, 3E] output, read in
// place by the heads' reshapes and transposes and the score and context
// matmuls (decompose's slice_read_view), the biases joined into one epilogue
// add. Which groups join and which stay apart (and why), that the footprints
// give a score tile only the joined tiles of its head's columns to wait for,
// that every joined schedule computes what the reference does (host and simt,
// race-checked, odd sizes, f32 and f16), and that a wrong view is caught.
#include <catch2/catch.hpp>

#include <array>

#include "anvil/pipeline.h"
#include "attention_graph.h"
#include "base/reshape_strides.h"
#include "frontend/affine_fold.h"
#include "frontend/concat_siblings.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "runtime/host_backend.h"
#include "schedule/task_graph.h"
#include "tile/footprint.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

Graph joined_graph(const Graph& g, std::vector<std::string>* why = nullptr) {
    return concat_sibling_matmuls(fold_affine_chains(g), why);
}

// The rOp computing the joined GEMM (fused with its bias add, or not).
const ROp* joined_rop(const Schedule& s) {
    for (const ROp& op : s.tiles.rops) {
        const std::string& name = s.tiles.buffers[op.node].name;
        if ((name == "q+k+v" || name == "q_mm+k_mm+v_mm") && op.kind == TaskKind::matmul) return &op;
    }
    return nullptr;
}

HostRunOptions race_checked() {
    HostRunOptions opt;
    opt.check_races = true;
    return opt;
}

}  // namespace

TEST_CASE("column views: reshape strides exist where a run of dims is one run of memory", "[concat][views]") {
    // A column view [5, 6] of rows 18 wide split into heads, and flattened (no strides).
    CHECK(reshape_strides({5, 6}, {18, 1}, {5, 2, 3}) == Strides{18, 3, 1});
    CHECK(reshape_strides({5, 6}, {18, 1}, {5, 1, 6, 1}) == Strides{18, 6, 1, 1});
    CHECK(!reshape_strides({5, 6}, {18, 1}, {30}).has_value());
    CHECK(!reshape_strides({5, 6}, {18, 1}, {3, 10}).has_value());
    CHECK(reshape_strides({5, 6}, {6, 1}, {30}) == Strides{1});  // contiguous: anything goes
    CHECK(reshape_strides({1, 6}, {99, 1}, {6}) == Strides{1});  // a size-1 dim's stride is free
    CHECK(!reshape_strides({5, 6}, {18, 1}, {31}).has_value());  // counts differ
}

TEST_CASE("column views: BERT's q, k, v with biases join into one GEMM read in place", "[concat][views]") {
    const int64_t S = 33, H = 3, D = 5, E = H * D;
    const Graph g = attention(S, H, D, DType::f32);
    std::vector<std::string> why;
    const Graph f = joined_graph(g, &why);
    CHECK(why.empty());
    const VertexId j = *f.find("q+k+v");
    CHECK(f.value(j).op == Op::add);
    CHECK(f.value(j).shape == Shape{S, 3 * E});
    const VertexId mm = f.operands(j)[0];
    CHECK(f.value(mm).name == "q_mm+k_mm+v_mm");
    CHECK(f.value(mm).shape == Shape{S, 3 * E});
    const Value& bias = f.value(f.operands(j)[1]);
    REQUIRE(bias.fold);
    CHECK(bias.fold->part == ParamFold::Part::concat);
    CHECK(bias.shape == Shape{3 * E});
    int64_t at = 0;
    for (const char* n : {"q", "k", "v"}) {
        INFO(n);
        const Value& v = f.value(*f.find(n));
        CHECK(v.op == Op::slice);
        CHECK(v.attrs.get_int("start") == at);
        at += E;
        CHECK(!f.find(std::string(n) + "_mm"));
    }
    CHECK(count_op(f, Op::matmul) == 4);  // joined, scores, context, output projection

    const Schedule s = plan(g, "anvil", default_gpu());
    const TileGraph& tg = s.tiles;
    for (const char* n : {"q", "k", "v", "q_r", "k_r", "v_r"}) {
        INFO(n);
        CHECK(buffer_of(tg, n).alias);
        CHECK(buffer_of(tg, n).storage == buffer_of(tg, "q+k+v").storage);
        for (const ROp& op : tg.rops) CHECK(op.name != n);  // no copy
    }
    REQUIRE(joined_rop(s));
    CHECK(joined_rop(s)->epilogue.nsteps > 0);  // the bias add, fused
    // The score matmul reads head h of q at column h * D of rows 3E long,
    // k at E + h * D; the context reads v at 2E + h * D.
    for (const ROp& op : tg.rops) {
        const auto* p = std::get_if<MatmulParams>(&op.params);
        if (!p) continue;
        const std::string& name = tg.buffers[op.node].name;
        const int64_t base = buffer_of(tg, "q+k+v").offset;
        if (name.rfind("scores", 0) == 0 || name.rfind("probs", 0) == 0) {
            CHECK(p->a_sm == 3 * E);
            CHECK(p->a_sb[0] == D);
            CHECK(p->a_off == base);
            CHECK(p->b_sn == 3 * E);
            CHECK(p->b_off == base + E * 4);
        }
        if (name.rfind("ctx", 0) == 0) {
            CHECK(p->b_sk == 3 * E);
            CHECK(p->b_off == base + 2 * E * 4);
        }
    }
    // Unjoined: two more projections.
    const Schedule apart = plan(g, "anvil", default_gpu(), false);
    int mm_apart = 0, mm_joined = 0;
    for (const ROp& op : apart.tiles.rops) mm_apart += op.kind == TaskKind::matmul;
    for (const ROp& op : tg.rops) mm_joined += op.kind == TaskKind::matmul;
    CHECK(mm_apart >= mm_joined + 2);
}

TEST_CASE("column views: joined attention matches the reference at odd sizes in f32 and f16, every policy, host and simt", "[concat][views][simt]") {
    for (DType t : {DType::f32, DType::f16})
        for (const std::array<int64_t, 3>& shd : std::vector<std::array<int64_t, 3>>{{33, 3, 5}, {129, 2, 24}, {7, 4, 3}}) {
            const int64_t S = shd[0], H = shd[1], D = shd[2];
            INFO(dtype_name(t) << " S " << S << " H " << H << " D " << D);
            const Graph g = attention(S, H, D, t);
            const TensorMap values = make_values(g, std::nullopt);
            for (const PolicyEntry& p : all_policies()) {
                INFO("policy " << p.name);
                const Schedule s = plan(g, p.name, default_gpu());
                CHECK(joined_rop(s) != nullptr);
                expect_reference(g, values, run_host(s, values, race_checked()));
            }
            expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, race_checked()));
        }
}

TEST_CASE("column views: a score tile waits only for the joined tiles of its head's columns", "[concat][views]") {
    // Heads 64 wide in a joined row of 768: a GEMM tile covers at most a few heads' columns.
    const int64_t S = 129, H = 4, D = 64, E = H * D;
    const Graph g = attention(S, H, D, DType::f16);
    const TensorMap values = make_values(g, std::nullopt);
    for (const char* policy : {"per_op", "anvil"}) {
        INFO(policy);
        const Schedule s = plan(g, policy, default_gpu());
        VertexId joined = 0;
        for (size_t v = 0; v < s.tiles.buffers.size(); ++v)
            if (s.tiles.buffers[v].name == "q+k+v") joined = v;
        int checked = 0;
        // The footprints' dependencies (the schedule keeps the waits that cover them).
        const std::vector<Task> tasks = task_graph(s.tiles);
        for (size_t t = 0; t < tasks.size(); ++t) {
            const ROp& op = s.tiles.rops[tasks[t].rop];
            const auto* p = std::get_if<MatmulParams>(&op.params);
            const std::string& name = s.tiles.buffers[op.node].name;
            if (!p || (name.rfind("scores", 0) != 0 && name.rfind("probs", 0) != 0)) continue;
            const AnvilMmPlace at = anvil_mm_place(*p, tasks[t].tile, p->bm, p->bn);
            const int64_t h = at.ab / D;  // the head: q's batch offset is h * D
            const int64_t m1 = std::min<int64_t>(S, at.m0 + p->bm);
            // Whether element (m, n) of the joined output is one this tile reads.
            auto read = [&](int64_t m, int64_t n) {
                return (n >= h * D && n < (h + 1) * D && m >= at.m0 && m < m1) || (n >= E + h * D && n < E + (h + 1) * D);
            };
            int deps = 0;
            for (int d : tasks[t].deps) {
                const ROp& dep = s.tiles.rops[tasks[d].rop];
                if (dep.node != joined) continue;
                ++deps;
                bool any = false;  // of the elements the producer writes (from its params, not its footprint)
                if (const auto* jp = std::get_if<MatmulParams>(&dep.params)) {
                    const AnvilMmPlace jt = anvil_mm_place(*jp, tasks[d].tile, jp->bm, jp->bn);
                    for (int64_t m = jt.m0; m < std::min<int64_t>(S, jt.m0 + jp->bm); ++m)
                        for (int64_t n = jt.n0; n < std::min<int64_t>(3 * E, jt.n0 + jp->bn); ++n) any = any || read(m, n);
                } else {  // the bias add (unfused) or a split-K reduce: a run of output elements
                    const bool ew = dep.kind == TaskKind::elementwise;
                    const AnvilSpan sp = ew ? anvil_tile_span(tasks[d].tile, std::get<EwParams>(dep.params).tile_elems,
                                                              std::get<EwParams>(dep.params).numel)
                                            : anvil_tile_span(tasks[d].tile, std::get<RowParams>(dep.params).rows_per_tile,
                                                              std::get<RowParams>(dep.params).rows);
                    for (int64_t e = sp.begin; e < sp.end && !any; ++e) any = read(e / (3 * E), e % (3 * E));
                }
                INFO("scores tile " << tasks[t].tile << " (head " << h << ", rows " << at.m0 << ".." << m1
                                    << ") waits for " << dep.name << " tile " << tasks[d].tile);
                CHECK(any);
            }
            checked += deps > 0;
        }
        CHECK(checked > 0);
        expect_reference(g, values, run_host(s, values, race_checked()));
    }
}

TEST_CASE("column views: groups read row-major, outputs, mixed bias dtypes or computed weights stay apart", "[concat][views]") {
    struct Case {
        const char* what;
        AttentionVariant var;
        const char* reason;  // in the not-joined line
    };
    const std::vector<Case> cases = {
        {"v read by an add", {true, false, false, false}, "v_mm: 'y1' (add) reads 'v' row-major"},
        {"k an output", {false, true, false, false}, "k_mm: 'k' is an output"},
        {"biases of two dtypes", {false, false, false, true}, "v_mm: its bias is f16, the joined ones' f32"},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        const Graph g = attention(17, 2, 8, DType::f32, c.var);
        std::vector<std::string> why;
        const Graph f = joined_graph(g, &why);
        // The other two join; the odd one keeps its own matmul.
        const bool odd_v = c.var.v_residual || c.var.bias_f16;
        const char* odd = odd_v ? "v_mm" : "k_mm";
        REQUIRE(f.find(odd).has_value());
        CHECK(f.value(*f.find(odd)).op == Op::matmul);
        CHECK(f.find(odd_v ? "q+k" : "q+v").has_value());
        REQUIRE(why.size() == 1);
        CHECK(why[0] == c.reason);
        // The member left out says why in the folded graph (--dump-after fold).
        const Value& left = f.value(*f.find(odd));
        REQUIRE(left.attrs.has(kNotJoinedAttr));
        CHECK(std::string(odd) + ": " + left.attrs.get_string(kNotJoinedAttr) == c.reason);
        // ... and `anvil schedule` lists it (not_joined_members): that one member, nothing joined.
        const std::map<std::string, std::string> listed = not_joined_members(f);
        REQUIRE(listed.size() == 1);
        CHECK(listed.begin()->first + ": " + listed.begin()->second == c.reason);
        const TensorMap values = make_values(g, std::nullopt);
        expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values, race_checked()));
    }
    {  // Two left out of three: nothing joins, each says why.
        const Graph g = attention(17, 2, 8, DType::f32, AttentionVariant{true, true, false, false});
        std::vector<std::string> why;
        const Graph f = joined_graph(g, &why);
        CHECK(count_op(f, Op::matmul) == count_op(fold_affine_chains(g), Op::matmul));
        REQUIRE(why.size() == 3);
        CHECK(why[2] == "q_mm: no other member reads alike");
        CHECK(not_joined_members(f).size() == 3);
        CHECK(not_joined_members(f).at("q_mm") == "no other member reads alike");
    }
    // A computed weight (x @ x^T's sibling) and a weight also read elsewhere.
    {
        const Graph g = attention(17, 2, 8, DType::f32, AttentionVariant{false, false, true, false});
        const Graph f = joined_graph(g);
        CHECK(f.find("q+k+v").has_value());
        CHECK(f.find("wq").has_value());  // still read by q2
        const TensorMap values = make_values(g, std::nullopt);
        expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values, race_checked()));
        expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, race_checked()));
    }
    {
        GraphBuilder b;
        b.input("x", {9, 6});
        b.input("wc", {6, 6});  // computed at run time: no recipe can join it
        b.param("wp", {6, 6});
        b.node("a", Op::matmul, {"x", "wc"});
        b.node("c", Op::matmul, {"x", "wp"});
        b.node("y", Op::matmul, {"a", "c"}, {{"transpose_b", B(true)}});
        b.output("y");
        const Graph g = infer_shapes(b.graph());
        CHECK(count_op(concat_sibling_matmuls(g), Op::matmul) == 3);
        CHECK(concat_sibling_matmuls(g).size() == g.size());
    }
}

TEST_CASE("column views: a wrong column offset or row stride in the view is caught", "[concat][views][simt]") {
    const int64_t S = 33, H = 3, D = 8, E = H * D;
    const Graph g = attention(S, H, D, DType::f32);
    const TensorMap values = make_values(g, std::nullopt);
    const Schedule s = plan(g, "per_op", default_gpu());
    expect_reference(g, values, run_host(s, values, race_checked()));
    auto mutated = [&](auto edit) {
        Schedule m = s;
        int edited = 0;
        for (ROp& op : m.tiles.rops) {
            auto* p = std::get_if<MatmulParams>(&op.params);
            if (p && m.tiles.buffers[op.node].name.rfind("scores", 0) == 0) edited += edit(*p);
        }
        REQUIRE(edited == 1);
        const auto checks = check_outputs(g, run_host(m, values), reference_execute(g, values));
        REQUIRE(checks.size() == 1);
        INFO("relative L2 error " << checks[0].rel_l2);
        CHECK(!checks[0].ok());
    };
    mutated([&](MatmulParams& p) { return p.a_off += D * 4, 1; });  // q of the next head
    mutated([&](MatmulParams& p) { return p.a_sm = E, 1; });        // the unjoined row stride
    mutated([&](MatmulParams& p) { return p.b_sn = E, 1; });        // k's rows read as if apart
}

TEST_CASE("column views: a matmul tile narrower than its matrix reads and writes one range per row", "[concat][views][footprint]") {
    const int64_t S = 33, H = 3, D = 8, E = H * D;
    const Graph g = attention(S, H, D, DType::f32);
    const Schedule s = plan(g, "per_op", default_gpu());
    const TileGraph& tg = s.tiles;
    const int64_t base = buffer_of(tg, "q+k+v").offset;
    for (const ROp& op : tg.rops) {
        const auto* p = std::get_if<MatmulParams>(&op.params);
        if (!p) continue;
        const std::string& name = tg.buffers[op.node].name;
        if (name == "q+k+v" || name == "q_mm+k_mm+v_mm") {
            // C [33, 72]: a tile narrower than 72 columns writes each of its rows apart.
            for (int tile = 0; tile < op.tiles; ++tile) {
                const AnvilMmPlace at = anvil_mm_place(*p, tile, p->bm, p->bn);
                const int64_t rows = std::min<int64_t>(p->bm, S - at.m0), cols = std::min<int64_t>(p->bn, 3 * E - at.n0);
                const std::vector<ByteRange> w = tile_writes_all(op, tile);
                INFO("tile " << tile << " rows " << rows << " cols " << cols);
                if (cols == 3 * E) {
                    REQUIRE(w.size() == 1);  // whole rows: one run
                    CHECK(w[0].end - w[0].begin == rows * cols * 4);
                    continue;
                }
                REQUIRE(w.size() == static_cast<size_t>(rows));
                for (int64_t m = 0; m < rows; ++m) {
                    CHECK(w[m].begin == p->c_off + ((at.m0 + m) * 3 * E + at.n0) * 4);
                    CHECK(w[m].end == w[m].begin + cols * 4);
                }
            }
            // B, a weight no task writes: one range however narrow the tile.
            CHECK(tile_reads(op, 0).size() >= 1);
        }
        if (name.rfind("scores", 0) == 0) {
            // Head h's q: D elements of each of the tile's rows; k: D of each key.
            for (int tile = 0; tile < op.tiles; ++tile) {
                const AnvilMmPlace at = anvil_mm_place(*p, tile, p->bm, p->bn);
                const int64_t rows = std::min<int64_t>(p->bm, S - at.m0), keys = std::min<int64_t>(p->bn, S - at.n0);
                const std::vector<ByteRange> r = tile_reads(op, tile);
                REQUIRE(r.size() >= static_cast<size_t>(rows + keys));
                for (int64_t m = 0; m < rows; ++m) {
                    CHECK(r[m].begin == base + ((at.m0 + m) * 3 * E + at.ab) * 4);
                    CHECK(r[m].end == r[m].begin + D * 4);
                }
                for (int64_t n = 0; n < keys; ++n) {
                    CHECK(r[rows + n].begin == base + ((at.n0 + n) * 3 * E + E + at.bb) * 4);
                    CHECK(r[rows + n].end == r[rows + n].begin + D * 4);
                }
            }
        }
    }
}
