// A softmax, layernorm or rmsnorm fused into the matmul before it, in a
// tile that holds whole rows (src/tile/fusion.cpp, rtasks/matmul.cuh's
// anvil_mm_rows_finish): fusion widens the tile to BN >= N whenever such a
// tile fits, the variants stage offers only whole-row shapes for it,
// CUDA-core and tensor-core (f16, bf16, f32 as TF32 and 3xTF32), and every
// one computes what the float64 reference does on the host and simt
// backends, over rows of 1 to 197 (ViT's keys), batch dims, masks and the
// chains before and after the row op. Attention-like logits reach ~+-200,
// so a softmax without its max subtraction overflows (f32's exp too).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include "anvil/error.h"
#include "anvil/pipeline.h"
#include "graph_builder.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

struct RowCase {
    int64_t m, n;
};

// One chain per case: q [2, 3, M, 24] @ k [2, 3, N, 24]^T (attention's
// scores, batch dims, k contiguous), then, by `row`, a mask (or, `scaled`,
// a constant scale, as BERT's 1/sqrt(d)) and a softmax over the keys, or a
// bias, the norm (gamma, beta) and a residual add after it. `hot`: logits
// of ~+-100 (q and k of std 4); else of ~+-2.
Graph row_model(DType t, Op row, const std::vector<RowCase>& cases, bool hot, bool scaled = false) {
    GraphBuilder b(t);
    if (scaled) b.node("scale", Op::constant, {}, {{"value", F(0.5)}});
    for (size_t c = 0; c < cases.size(); ++c) {
        const std::string i = std::to_string(c);
        const int64_t m = cases[c].m, n = cases[c].n;
        b.input("q" + i, {2, 3, m, 24});
        b.param("k" + i, {2, 3, n, 24});
        b.node("s" + i, Op::matmul, {"q" + i, "k" + i}, {{"transpose_b", B(true)}});
        if (row == Op::softmax) {
            if (scaled) {
                b.node("sm" + i, Op::mul, {"s" + i, "scale"});
            } else {
                b.param("mask" + i, {m, n});
                b.node("sm" + i, Op::add, {"s" + i, "mask" + i});
            }
            b.node("y" + i, Op::softmax, {"sm" + i});
        } else {
            b.param("bias" + i, {n});
            b.param("g" + i, {n});
            b.input("res" + i, {2, 3, m, n});
            b.node("sm" + i, Op::add, {"s" + i, "bias" + i});
            if (row == Op::layernorm) {
                b.param("be" + i, {n});
                b.node("nrm" + i, Op::layernorm, {"sm" + i, "g" + i, "be" + i});
            } else {
                b.node("nrm" + i, Op::rmsnorm, {"sm" + i, "g" + i});
            }
            b.node("y" + i, Op::add, {"nrm" + i, "res" + i});  // the row epilogue
        }
        b.output("y" + i);
    }
    Graph g = infer_shapes(b.graph());
    for (size_t c = 0; c < cases.size(); ++c) {
        const std::string i = std::to_string(c);
        set_init(g, "q" + i, InitKind::normal, hot ? 4.0 : 0.5);
        set_init(g, "k" + i, InitKind::normal, hot ? 4.0 : 0.5);
        if (row == Op::softmax) {
            if (!scaled) set_init(g, "mask" + i, InitKind::uniform, -3.0, 0.0);
        } else {
            set_init(g, "bias" + i, InitKind::normal, 1.0);
            set_init(g, "g" + i, InitKind::uniform, 0.5, 2.0);
            set_init(g, "res" + i, InitKind::normal, 1.0);
            if (row == Op::layernorm) set_init(g, "be" + i, InitKind::normal, 1.0);
        }
    }
    return g;
}

// M = 1 is a GEMV (decode), whose row op stays apart (below).
const std::vector<RowCase> kCases = {{7, 1}, {7, 7}, {33, 33}, {129, 129}, {197, 197}, {33, 197}, {129, 1}};

const char* row_name(Op row) { return row == Op::softmax ? "softmax" : row == Op::layernorm ? "layernorm" : "rmsnorm"; }

int mm_row_code(Op row) {
    return row == Op::softmax ? ANVIL_MM_ROW_SOFTMAX : row == Op::layernorm ? ANVIL_MM_ROW_LAYERNORM : ANVIL_MM_ROW_RMSNORM;
}

const MatmulParams& mm(const ROp& op) { return std::get<MatmulParams>(op.params); }

int algo_of(const ROp& op) { return mm(op).algo; }

// Each fused rOp of `fused` on its variant number `pick(variants)`: the
// rOps side by side in one per-op schedule.
template <class Pick>
Schedule on_variants(const TileGraph& fused, const Gpu& gpu, Pick pick) {
    TileGraph tg = fused;
    for (ROp& op : tg.rops) {
        REQUIRE(op.kind == TaskKind::matmul);
        const std::vector<ROp> vs = tile_variants(op, gpu);
        op = vs.at(pick(vs));
    }
    verify_tile_graph(tg, gpu);
    return launch_per_rop("per_op", tg, gpu, "op_");
}

// The first variant of `algo` (and BM, when given), or the op itself.
size_t first_with(const std::vector<ROp>& vs, int algo, int bm = 0) {
    for (size_t i = 1; i < vs.size(); ++i)
        if (algo_of(vs[i]) == algo && (bm == 0 || mm(vs[i]).bm == bm)) return i;
    FAIL("no variant of algo " << algo << " and BM " << bm);
    return 0;
}

}  // namespace

TEST_CASE("whole rows: fusion absorbs the row op whenever a tile of the matmul can hold whole rows", "[fusion][rowtile]") {
    const Op row = GENERATE(Op::softmax, Op::layernorm, Op::rmsnorm);
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(row_name(row), dtype_name(dtype));
    const Graph g = row_model(dtype, row, kCases, false);
    const TileGraph tg = fuse(decompose(g), default_gpu());
    REQUIRE(tg.rops.size() == kCases.size());  // one rOp a chain: the row op and its neighbours inside the matmul
    for (const ROp& op : tg.rops) {
        CAPTURE(op.name);
        const MatmulParams& p = mm(op);
        CHECK(op.fusion == FusionLevel::shared);
        CHECK(p.row_op == mm_row_code(row));
        CHECK(p.tiles_n == 1);
        CHECK(p.N <= p.bn);
        CHECK(p.bn <= ANVIL_MM_ROW_MAX_BN);
        CHECK(op.tiles == 6 * p.tiles_m);
        CHECK(op.epilogue.nsteps == 1);                            // the mask or the bias
        CHECK(op.row_epilogue.nsteps == (row == Op::softmax ? 0 : 1));  // the residual add
    }
    // decompose's 64-wide tile: the 129- and 197-wide rows were widened.
    CHECK(mm(tg.rops[4]).bn == 208);
    CHECK(mm(tg.rops[3]).bn == 144);
    CHECK(mm(tg.rops[1]).bn == 64);  // 7 keys: decompose's tile already held them
}

TEST_CASE("whole rows: a row wider than the widest tile, or a tile over the shared memory, stays apart", "[fusion][rowtile]") {
    const Graph wide = row_model(DType::f16, Op::softmax, {{33, ANVIL_MM_ROW_MAX_BN + 1}}, false);
    const TileGraph tg = fuse(decompose(wide), default_gpu());
    REQUIRE(tg.rops.size() == 2);
    CHECK(mm(tg.rops[0]).row_op == ANVIL_MM_ROW_NONE);
    CHECK(tg.rops[1].kind == TaskKind::rowwise);

    // 256 keys fit (16 x 256 CUDA-core tile: 16.6 KB of finished rows).
    const Graph widest = row_model(DType::f16, Op::softmax, {{33, ANVIL_MM_ROW_MAX_BN}}, false);
    CHECK(fuse(decompose(widest), default_gpu()).rops.size() == 1);

    // One row a batch: a GEMV, which applies no row op.
    const TileGraph gemv = fuse(decompose(row_model(DType::f16, Op::softmax, {{1, 129}}, false)), default_gpu());
    REQUIRE(gemv.rops.size() == 2);
    CHECK(mm(gemv.rops[0]).algo == ANVIL_MM_GEMV);

    Gpu small = default_gpu();
    small.smem_per_block = 8 * 1024;  // no 16 x 208 tile with its stages fits
    CHECK(fuse(decompose(row_model(DType::f16, Op::layernorm, {{33, 197}}, false)), small).rops.size() == 2);
    CHECK(fuse(decompose(row_model(DType::f16, Op::layernorm, {{33, 7}}, false)), small).rops.size() == 1);
}

TEST_CASE("whole rows: the fusion predicate decides, and sees both sides", "[fusion][rowtile]") {
    const Graph g = row_model(DType::f16, Op::softmax, {{129, 197}}, false);
    FusionOptions never;
    int asked = 0;
    never.row_fusion_pays = [&](const ROp& fused, const ROp& matmul, const ROp& row) {
        ++asked;
        CHECK(mm(fused).row_op == ANVIL_MM_ROW_SOFTMAX);
        CHECK(mm(fused).tiles_n == 1);
        CHECK(mm(matmul).row_op == ANVIL_MM_ROW_NONE);
        CHECK(matmul.epilogue.nsteps == 1);  // the mask, in either
        CHECK(row.kind == TaskKind::rowwise);
        return false;
    };
    const TileGraph apart = fuse(decompose(g), default_gpu(), never);
    CHECK(asked == 1);
    REQUIRE(apart.rops.size() == 2);
    CHECK(mm(apart.rops[0]).row_op == ANVIL_MM_ROW_NONE);
    const TensorMap values = make_values(g, std::nullopt);
    expect_reference(g, values, run_host(find_policy("topo").fn(apart, default_gpu()), values));
}

TEST_CASE("whole rows: the variants of a row-op matmul all hold whole rows, on CUDA cores and tensor cores", "[rowtile]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    Gpu gpu = default_gpu();
    if (dtype == DType::f32) gpu.f32_precision = F32Precision::tf32;
    const TileGraph tg = fuse(decompose(row_model(dtype, Op::softmax, kCases, false)), gpu);
    const int tensor_algo = dtype == DType::f32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR;
    for (const ROp& op : tg.rops) {
        CAPTURE(op.name, mm(op).N);
        int tensor = 0, cuda_cores = 0;
        for (const ROp& v : tile_variants(op, gpu)) {
            const MatmulParams& p = mm(v);
            CHECK(p.row_op == ANVIL_MM_ROW_SOFTMAX);
            CHECK(p.tiles_n == 1);
            CHECK(p.N <= p.bn);
            CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu) - ANVIL_SMALL_TILE_SMEM_BYTES);
            tensor += p.algo == tensor_algo;
            cuda_cores += p.algo == ANVIL_MM_TILED;
            if (p.algo == tensor_algo) CHECK(p.bn == anvil_mm_row_bn(p.N, 32));
            TileGraph one = tg;
            one.rops = {v};
            CHECK_NOTHROW(verify_tile_graph(one, gpu));
        }
        CHECK(tensor >= 1);  // 32 x 224 (BK 16) for ViT's 197 keys
        CHECK(cuda_cores >= 2);  // BM 16 and 32 at least (and the op itself)
    }
    // With --no-tensor-cores: CUDA cores only.
    Gpu off = gpu;
    off.tensor_core_tiles = false;
    for (const ROp& v : tile_variants(tg.rops[4], off)) CHECK(algo_of(v) == ANVIL_MM_TILED);
}

TEST_CASE("whole rows: a tensor-core tile past the shared memory or its accumulators is refused", "[rowtile]") {
    const Graph g = row_model(DType::f16, Op::softmax, {{129, 197}}, false);
    TileGraph tg = fuse(decompose(g), default_gpu());
    REQUIRE(tg.rops.size() == 1);
    TileGraph t = tg;
    t.rops[0] = on_tensor_cores(tg.rops[0], 64, 224, 16);  // 64 x 228 floats of finished rows: 58 KB
    CHECK_NOTHROW(verify_tile_graph(t, default_gpu()));      // within the H100's budget (dynamic shared memory)
    Gpu small = default_gpu();
    small.smem_per_block = 48 * 1024;  // a GPU whose blocks take 48 KB at most
    REQUIRE(tile_smem_budget(small) < 58 * 1024);
    CHECK_THROWS_WITH(verify_tile_graph(t, small), Catch::Contains("bytes of shared memory, over the budget"));
    CHECK(!anvil_tc_tile_ok(128, 256, 16));  // 32 m16n8 products a warp: 128 accumulators
    t.rops[0] = on_tensor_cores(tg.rops[0], 32, 160, 32);
    CHECK_THROWS_WITH(verify_tile_graph(t, default_gpu()), Catch::Contains("whole rows"));
    t.rops[0] = on_tensor_cores(tg.rops[0], 32, 224, 16);
    CHECK_NOTHROW(verify_tile_graph(t, default_gpu()));
}

// Every case on a tensor-core variant (BM 32 and 64 where they fit) and on
// a CUDA-core one, in f16 and bf16, host and simt (race checks on), with
// hot and mild logits.
TEST_CASE("whole rows: tensor-core and CUDA-core tiles apply every row op on host and simt", "[rowtile][simt][tensor]") {
    const Op row = GENERATE(Op::softmax, Op::layernorm, Op::rmsnorm);
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    const bool hot = row == Op::softmax;
    CAPTURE(row_name(row), dtype_name(dtype));
    const Graph g = row_model(dtype, row, kCases, hot);
    const TileGraph tg = fuse(decompose(g), default_gpu());
    REQUIRE(tg.rops.size() == kCases.size());
    const TensorMap values = make_values(g, std::nullopt);
    HostRunOptions races;
    races.check_races = true;
    for (int bm : {32, 64}) {
        CAPTURE(bm);
        // BM 64 with 197 keys is past the shared memory: those cases take BM 32.
        const Schedule tc = on_variants(tg, default_gpu(), [&](const std::vector<ROp>& vs) {
            for (size_t i = 1; i < vs.size(); ++i)
                if (algo_of(vs[i]) == ANVIL_MM_TENSOR && mm(vs[i]).bm == bm) return i;
            return first_with(vs, ANVIL_MM_TENSOR, 32);
        });
        expect_reference(g, values, run_host(tc, values), kCases.size());
        expect_reference(g, values, run_simt(tc, values, races), kCases.size());
    }
    const Schedule cc = on_variants(tg, default_gpu(), [&](const std::vector<ROp>& vs) { return first_with(vs, ANVIL_MM_TILED, 16); });
    expect_reference(g, values, run_host(cc, values), kCases.size());
    expect_reference(g, values, run_simt(cc, values, races), kCases.size());
}

TEST_CASE("whole rows: f32 on tensor cores as TF32 and 3xTF32 applies the row op", "[rowtile][simt][tf32]") {
    const F32Precision precision = GENERATE(F32Precision::tf32, F32Precision::tf32x3);
    const Op row = GENERATE(Op::softmax, Op::layernorm);
    CAPTURE(row_name(row), precision_name(precision));
    Gpu gpu = default_gpu();
    gpu.f32_precision = precision;
    const std::vector<RowCase> cases = {{7, 7}, {33, 129}, {33, 197}};
    const Graph g = row_model(DType::f32, row, cases, false);
    const int algo = precision == F32Precision::tf32 ? ANVIL_MM_TENSOR_TF32 : ANVIL_MM_TENSOR_3XTF32;
    const Schedule s = on_variants(fuse(decompose(g), gpu), gpu, [&](const std::vector<ROp>& vs) { return first_with(vs, algo, 32); });
    const TensorMap values = make_values(g, std::nullopt);
    const auto check = [&](const TensorMap& out) {
        for (const OutputCheck& c : check_outputs(g, out, reference_execute(g, values), &values, precision)) {
            INFO("output " << c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
            CHECK(c.ok());
        }
    };
    check(run_host(s, values));
    HostRunOptions races;
    races.check_races = true;
    check(run_simt(s, values, races));
}

TEST_CASE("whole rows: every policy fuses the scores' softmax where it pays and matches the reference", "[rowtile][policies]") {
    // Scaled by a constant, as BERT's and ViT's scores: anvil's cost model
    // finds the fused tile faster for all three.
    const Graph g = row_model(DType::f16, Op::softmax, {{33, 129}, {129, 197}, {129, 33}}, true, true);
    const TensorMap values = make_values(g, std::nullopt);
    for (const PolicyEntry& entry : all_policies()) {
        CAPTURE(entry.name);
        const Schedule s = plan(g, entry.name, default_gpu());
        int fused = 0;
        for (const ROp& op : s.tiles.rops)
            if (const auto* p = std::get_if<MatmulParams>(&op.params)) fused += p->row_op == ANVIL_MM_ROW_SOFTMAX;
        if (!entry.fuses) CHECK(fused == 0);
        if (std::string(entry.name) == "anvil") CHECK(fused == 3);
        expect_reference(g, values, run_host(s, values), 3);
    }
    const Schedule anvil = plan(g, "anvil", default_gpu());
    HostRunOptions races;
    races.check_races = true;
    expect_reference(g, values, run_simt(anvil, values, races), 3);
}

// A mutation each must be caught by the reference check: the TC tile's row
// op skipped (raw scores stored), and the softmax's max subtraction dropped
// (hot logits overflow).
TEST_CASE("whole rows: a skipped row op or a softmax without its max is caught", "[rowtile][simt][mutation]") {
    const Graph g = row_model(DType::f16, Op::softmax, {{33, 129}, {7, 197}}, true);
    const TileGraph tg = fuse(decompose(g), default_gpu());
    const Schedule tc = on_variants(tg, default_gpu(), [&](const std::vector<ROp>& vs) { return first_with(vs, ANVIL_MM_TENSOR, 32); });
    const TensorMap values = make_values(g, std::nullopt);
    const auto wrong = [&](const TensorMap& out) {
        bool any = false;
        for (const OutputCheck& c : check_outputs(g, out, reference_execute(g, values), &values)) any |= !c.ok();
        return any;
    };
    REQUIRE(!wrong(run_simt(tc, values)));
    const auto mutated = [&](const std::string& from, const std::string& to) {
        HostRunOptions opt;
        opt.edit_source = [&](std::string& src) {
            const size_t at = src.find(from);
            REQUIRE(at != std::string::npos);
            src.replace(at, from.size(), to);
        };
        return run_simt(tc, values, opt);
    };
    CHECK(wrong(mutated("    if (p.row_op) {\n        const AnvilEpilogue* epi", "    if (false) {\n        const AnvilEpilogue* epi")));
    CHECK(wrong(mutated("v[i][q] = expf(v[i][q] - mx);", "v[i][q] = expf(v[i][q]);")));
}

TEST_CASE("whole rows: the cost model charges the row op inside the tile", "[rowtile][cost]") {
    // BERT-base's scores and softmax: 12 heads, 128 x 128 over K = 64.
    GraphBuilder b(DType::f16);
    b.input("q", {12, 128, 64});
    b.param("k", {12, 128, 64});
    b.node("s", Op::matmul, {"q", "k"}, {{"transpose_b", B(true)}});
    b.node("p", Op::softmax, {"s"});
    b.output("p");
    const Graph g = infer_shapes(b.graph());
    const Gpu gpu = default_gpu();
    std::vector<ROp> sides;
    FusionOptions record;
    record.row_fusion_pays = [&](const ROp& fused, const ROp& matmul, const ROp& row) {
        sides = {fused, matmul, row};
        return true;
    };
    const TileGraph tg = fuse(decompose(g), gpu, record);
    REQUIRE(sides.size() == 3);
    const RowFusionTimes t = row_fusion_times(sides[0], sides[1], sides[2], gpu, true);
    WARN(fmt::format("bert scores + softmax on {}: fused {:.2f} us, apart {:.2f} us", gpu.name, t.fused_s * 1e6,
                     t.apart_s * 1e6));
    CHECK(t.fused_s > 0);
    CHECK(t.apart_s > 0);
    // The row pass is charged: the same tile without its row op is faster.
    ROp bare = fastest_alone(sides[0], gpu, gpu.sm_count);
    const double with_row = tile_seconds_alone(gpu, bare);
    std::get<MatmulParams>(bare.params).row_op = ANVIL_MM_ROW_NONE;
    CHECK(tile_seconds_alone(gpu, bare) < with_row);
}
