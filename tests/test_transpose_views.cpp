// Transposes: the elementwise copy (rtasks/elementwise.cuh: 16-byte vectors
// where the innermost axis stays, the element walk elsewhere) over rank 3-5
// permutations at odd shapes in every dtype, and the attention heads'
// transposes as views of their matmuls (frontend/transpose_views.h): which
// fold, which must not, and that every folded schedule computes what the
// reference does, on host and simt with the race checks.
#include <catch2/catch.hpp>

#include <array>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "attention_graph.h"
#include "frontend/transpose_views.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/orders.h"
#include "schedule/race_check.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

// x -> transpose(perm) -> output (an output stays a copy).
Graph transpose_graph(const Shape& shape, const std::vector<int64_t>& perm, DType t) {
    GraphBuilder b(t);
    b.input("x", shape);
    b.node("y", Op::transpose, {"x"}, {{"perm", L(perm)}});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 3.0);
    return g;
}

// The rOps that copy one of attention()'s transposes.
int transpose_rops(const Schedule& s) {
    int n = 0;
    for (const ROp& op : s.tiles.rops)
        for (const char* t : {"q_h", "k_h", "v_h", "ctx_t"}) n += op.name == t;
    return n;
}

std::string view_of(const Graph& g, const char* name) {
    const Value& v = g.value(*g.find(name));
    return v.attrs.has(kTransposeViewAttr) ? v.attrs.get_string(kTransposeViewAttr) : "";
}

}  // namespace

TEST_CASE("transpose: rank 3-5 permutations at odd shapes in every dtype match the reference on host and simt", "[transpose][simt]") {
    struct Case {
        Shape shape;
        std::vector<int64_t> perm;
        bool vectors;  // the innermost axis stays and holds whole 16-byte vectors (f16)
    };
    const std::vector<Case> cases = {
        {{13, 3, 16}, {1, 0, 2}, true},          // attention heads, D a whole number of vectors
        {{13, 3, 5}, {1, 0, 2}, false},          // D odd: the element walk
        {{7, 9, 24}, {2, 0, 1}, false},          // the innermost axis changes
        {{3, 5, 7, 16}, {2, 0, 1, 3}, true},     // rank 4, inner kept
        {{3, 5, 7, 9}, {0, 3, 1, 2}, false},     // rank 4, inner moved
        {{2, 3, 5, 3, 32}, {4, 3, 0, 2, 1}, false},
        {{2, 3, 5, 3, 32}, {3, 1, 0, 2, 4}, true},  // rank 5, inner kept
        {{1, 300, 40}, {1, 0, 2}, true},         // several tiles, a partial last one
    };
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (const Case& c : cases) {
            INFO(dtype_name(t) << " shape " << shape_str(c.shape) << " perm " << shape_str(c.perm));
            const Graph g = transpose_graph(c.shape, c.perm, t);
            const TensorMap values = make_values(g, std::nullopt);
            const Schedule s = plan(g, "anvil", default_gpu());
            REQUIRE(s.tiles.rops.size() == 1);
            const ROp& op = s.tiles.rops[0];
            const int vec = anvil_ew_copy_vec(std::get<EwParams>(op.params), dtype_size(t), dtype_size(t));
            // f16/bf16 take 8 elements a vector, f32 4: every kept-inner case above is a multiple of 8.
            CHECK(vec == (c.vectors ? 16 / dtype_size(t) : 1));
            HostRunOptions opt;
            opt.check_races = true;
            expect_reference(g, values, run_host(s, values, opt));
            expect_reference(g, values, run_simt(s, values, opt));
        }
}

TEST_CASE("transpose: a copy between two dtypes or misaligned views takes the element walk", "[transpose]") {
    EwParams p{};
    p.op = ANVIL_EW_COPY;
    p.ninputs = 1;
    p.rank = 3;
    const int64_t shape[3] = {5, 3, 16};
    for (int d = 0; d < 3; ++d) p.shape[d] = shape[d];
    p.numel = 5 * 3 * 16;
    p.tile_elems = 4096;
    p.out_stride[0] = 48, p.out_stride[1] = 16, p.out_stride[2] = 1;
    p.in_stride[0][0] = 16, p.in_stride[0][1] = 80, p.in_stride[0][2] = 1;
    CHECK(anvil_ew_copy_vec(p, 2, 2) == 8);
    CHECK(anvil_ew_copy_vec(p, 4, 4) == 4);
    CHECK(anvil_ew_copy_vec(p, 4, 2) == 1);  // converting
    EwParams q = p;
    q.in_off[0] = 8;  // half a vector
    CHECK(anvil_ew_copy_vec(q, 2, 2) == 1);
    q = p;
    q.in_stride[0][1] = 84;  // rows of the operand start mid-vector
    CHECK(anvil_ew_copy_vec(q, 2, 2) == 1);
    q = p;
    q.tile_elems = 4092;  // tiles split a vector
    CHECK(anvil_ew_copy_vec(q, 2, 2) == 1);
    q = p;
    q.op = ANVIL_EW_ADD;
    CHECK(anvil_ew_copy_vec(q, 2, 2) == 1);
}

TEST_CASE("transpose views: attention's head transposes become matmul strides", "[transpose][views]") {
    const Graph g = attention(13, 3, 5, DType::f32);
    const Graph f = transpose_views(g);
    CHECK(view_of(f, "q_h") == kTransposeReadView);
    CHECK(view_of(f, "k_h") == kTransposeReadView);
    CHECK(view_of(f, "v_h") == kTransposeReadView);
    CHECK(view_of(f, "ctx_t") == kTransposeStoreView);
    CHECK(view_of(transpose_views(f), "ctx_t") == kTransposeStoreView);  // idempotent
    const Schedule s = plan(g, "anvil", default_gpu());
    CHECK(transpose_rops(s) == 0);
    // The score matmul reads q and k in their projections' order: a head is
    // a batch stride of D, a row H * D elements long.
    bool seen = false;
    for (const ROp& op : s.tiles.rops) {
        const auto* p = std::get_if<MatmulParams>(&op.params);
        if (!p || s.tiles.buffers[op.node].name.rfind("ctx", 0) != 0) continue;
        seen = true;
        CHECK(p->c_sb[0] == 5);
        CHECK(p->c_sm == 15);
        CHECK(p->c_sn == 1);
        CHECK(p->b_sb[0] == 5);   // v_h
        CHECK(p->b_sk == 45);     // a row of q, k and v joined (concat_siblings)
    }
    CHECK(seen);
    const Schedule kept = plan(g, "anvil", default_gpu(), false);
    CHECK(transpose_rops(kept) == 4);
}

TEST_CASE("transpose views: attention matches the reference in every float dtype, odd sizes, every policy, host and simt", "[transpose][views][simt]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16})
        for (const std::array<int64_t, 3>& shd : std::vector<std::array<int64_t, 3>>{{13, 3, 5}, {33, 2, 16}, {1, 4, 8}}) {
            const int64_t S = shd[0], H = shd[1], D = shd[2];
            INFO(dtype_name(t) << " S " << S << " H " << H << " D " << D);
            const Graph g = attention(S, H, D, t);
            const TensorMap values = make_values(g, std::nullopt);
            HostRunOptions opt;
            opt.check_races = true;
            for (const PolicyEntry& p : all_policies()) {
                INFO("policy " << p.name);
                const Schedule s = plan(g, p.name, default_gpu());
                CHECK(transpose_rops(s) == 0);
                expect_reference(g, values, run_host(s, values, opt));
            }
            expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, opt));
        }
}

TEST_CASE("transpose views: split-K matmuls read and store through the views, race-free on host and simt", "[transpose][views][split_k][simt]") {
    // K of the projections is H * D, of the context S (a slice is at least
    // kSplitKMinSlice deep): every matmul but the scores split, the
    // context's reduce writing in the transpose's order.
    for (DType t : {DType::f32, DType::f16}) {
        INFO(dtype_name(t));
        const Graph g = attention(128, 4, 32, t);
        TileGraph tg = fuse(decompose(transpose_views(g)), default_gpu());
        for (size_t r = 0; r < tg.rops.size(); ++r) {
            if (tg.rops[r].kind != TaskKind::matmul) continue;
            if (std::get<MatmulParams>(tg.rops[r].params).K < 2 * kSplitKMinSlice) continue;  // the scores: K = D
            tg.rops[r] = retile(tg.rops[r], 32, 32, deepest_bk(tg.rops[r], 32, 32, default_gpu()));
            tg = split_k_in(tg, static_cast<int>(r), 2);
            ++r;  // past the reduce
        }
        int split = 0;
        for (const ROp& op : tg.rops) split += op.split_k > 1;
        CHECK(split == 5);  // q, k, v, the context, the output
        const int blocks = 7;
        const Schedule s = persistent_schedule("test", tg, default_gpu(), round_robin_order(tg, blocks), blocks);
        CHECK(find_races(s).empty());
        const TensorMap values = make_values(g, std::nullopt);
        HostRunOptions opt;
        opt.workers = 3;
        opt.check_races = true;
        expect_reference(g, values, run_host(s, values, opt));
        opt.simt = true;
        expect_reference(g, values, run_host(s, values, opt));
    }
}

TEST_CASE("transpose views: no view for an output, a non-matmul reader, a converting copy or a view of a view", "[transpose][views]") {
    for (int variant = 0; variant < 5; ++variant) {
        INFO("variant " << variant);
        GraphBuilder b;
        b.input("x", {6, 4, 3});
        b.input("w", {6, 3, 5});
        std::optional<DType> t_dtype;
        if (variant == 2) t_dtype = DType::f16;  // a converting copy
        b.node("t", Op::transpose, {"x"}, {{"perm", L({1, 0, 2})}}, t_dtype);  // [4, 6, 3]
        std::vector<std::pair<const char*, std::string>> expect = {{"t", ""}};
        if (variant == 3) {
            // t is read by a transpose: a copy; t2 then reads contiguous bytes.
            b.node("t2", Op::transpose, {"t"}, {{"perm", L({1, 0, 2})}});
            b.node("m", Op::matmul, {"t2", "w"});
            expect.push_back({"t2", kTransposeReadView});
        } else if (variant == 4) {
            // m0's result is stored in t3's order (its only reader), and t4
            // would permute t3's bytes again: a copy. t5 reads a matmul that
            // has another reader, so it is no store view.
            b.node("m0", Op::matmul, {"w", "w"}, {{"transpose_b", B(true)}});  // [6, 3, 3]
            b.node("t3", Op::transpose, {"m0"}, {{"perm", L({1, 0, 2})}});
            b.node("t4", Op::transpose, {"t3"}, {{"perm", L({1, 0, 2})}});
            b.node("m", Op::matmul, {"t4", "w"});
            b.node("m1", Op::matmul, {"w", "w"}, {{"transpose_b", B(true)}});
            b.node("t5", Op::transpose, {"m1"}, {{"perm", L({0, 2, 1})}});
            b.node("r", Op::relu, {"m1"});
            b.node("z", Op::relu, {"t5"});
            b.output("r").output("z");
            expect = {{"t3", kTransposeStoreView}, {"t4", ""}, {"t5", ""}};
            b.output("t");
        } else {
            b.node("m", Op::matmul, {"t", "t"}, {{"transpose_b", B(true)}});  // one view read as A and B
        }
        if (variant == 0) b.output("t");
        if (variant == 1) {
            b.node("z", Op::relu, {"t"});
            b.output("z");
        }
        b.output("m");
        Graph g = infer_shapes(b.graph());
        const Graph f = transpose_views(g);
        for (const auto& [name, view] : expect) CHECK(view_of(f, name) == view);
        const TensorMap values = make_values(g, std::nullopt);
        HostRunOptions opt;
        opt.check_races = true;
        expect_reference(g, values, run_host(plan(g, "anvil", default_gpu()), values, opt));
        expect_reference(g, values, run_simt(plan(g, "anvil", default_gpu()), values, opt));
    }
}

TEST_CASE("transpose views: bert_base_small's head transposes vanish; --no-transpose-views keeps them", "[transpose][views][cli]") {
    const std::string path = "models/bert_base_small.yaml";
    const CmdResult folded = run_anvil("schedule " + path + " --dump-after fold");
    REQUIRE(folded.status == 0);
    CHECK(folded.output.find("view: read") != std::string::npos);
    CHECK(folded.output.find("view: store") != std::string::npos);
    const CmdResult kept = run_anvil("schedule " + path + " --dump-after fold --no-transpose-views");
    REQUIRE(kept.status == 0);
    CHECK(kept.output.find("view: ") == std::string::npos);
    const CmdResult run = run_anvil("run " + path + " --backend simt --check-races");
    CHECK(run.status == 0);
    CHECK(run.output.find("races       none") != std::string::npos);
}
