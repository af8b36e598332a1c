// The streaming GEMV tile (rtasks/gemv.cuh) for matmuls of at most 4 rows:
// both walks (B's columns contiguous, B's k contiguous), with and without
// 16-byte vector loads, every tile width, every float dtype, batches with a
// broadcast operand and a fused epilogue, over shapes that are no multiple
// of the vector or the tile; on the host backend against the float64
// reference, and compiled with NVRTC for sm_90.
#include <map>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "codegen/emit.h"
#include "tile/footprint.h"
#include "../rtasks/tiling.cuh"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "schedule/variants.h"
#include "schedule/orders.h"
#include "schedule/builders.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "tile/decompose.h"
#include "tile/verify_tile_graph.h"
#include "frontend/load_model.h"
#include "frontend/infer_shapes.h"

using namespace anvil;

namespace {

// Each case is one matmul (plus, for the epilogue case, bias and relu);
// all of one dtype form one model.
const char* kCases = R"(anvil: 1
name: gemv_cases
dtype: {dtype}
seed: 5
inputs:
  - {{name: x1, shape: [1, 37]}}
  - {{name: x3, shape: [3, 64]}}
  - {{name: x2, shape: [2, 130]}}
  - {{name: x4, shape: [4, 256]}}
  - {{name: q, shape: [4, 1, 24]}}
  - {{name: xb, shape: [1, 40]}}
  - {{name: xe, shape: [1, 72]}}
params:
  - {{name: w1, shape: [37, 129]}}
  - {{name: w3, shape: [64, 136]}}
  - {{name: w2, shape: [75, 130]}}
  - {{name: w4, shape: [40, 256]}}
  - {{name: k, shape: [4, 33, 24]}}
  - {{name: wb, shape: [3, 40, 20]}}
  - {{name: we, shape: [72, 48]}}
  - {{name: be, shape: [48]}}
nodes:
  - {{name: y1, op: matmul, inputs: [x1, w1]}}
  - {{name: y3, op: matmul, inputs: [x3, w3]}}
  - {{name: y2, op: matmul, inputs: [x2, w2], transpose_b: true}}
  - {{name: y4, op: matmul, inputs: [x4, w4], transpose_b: true}}
  - {{name: s, op: matmul, inputs: [q, k], transpose_b: true}}
  - {{name: yb, op: matmul, inputs: [xb, wb]}}
  - {{name: ye0, op: matmul, inputs: [xe, we]}}
  - {{name: ye1, op: add, inputs: [ye0, be]}}
  - {{name: ye, op: relu, inputs: [ye1]}}
outputs: [y1, y3, y2, y4, s, yb, ye]
)";

Graph cases_graph(DType dtype) {
    const std::string text = fmt::format(kCases, fmt::arg("dtype", dtype_name(dtype)));
    return infer_shapes(build_graph(load_model_from_string(text, "gemv_cases.yaml")));
}

void check_run(const Graph& g, const Schedule& s) {
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), 7);
}

}  // namespace

TEST_CASE("matmuls of at most 4 rows decompose into GEMV tiles", "[gemv]") {
    const TileGraph tg = decompose(cases_graph(DType::f16));
    int gemv = 0;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) {
            CHECK(p->algo == ANVIL_MM_GEMV);
            CHECK(p->tiles_m == 1);
            ++gemv;
        }
    CHECK(gemv == 7);
    // Five rows: the shared-memory tile.
    TileSizes none;
    none.gemv_max_m = 0;
    for (const ROp& op : decompose(cases_graph(DType::f16), none).rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) CHECK(p->algo == ANVIL_MM_TILED);
}

TEST_CASE("GEMV variants stop at the narrowest tile that holds all of N", "[gemv]") {
    std::map<std::string, std::vector<int>> widths;  // rOp -> the GEMV widths offered
    for (const ROp& op : decompose(cases_graph(DType::f16)).rops) {
        if (op.kind != TaskKind::matmul) continue;
        const std::vector<ROp> variants = tile_variants(op, default_gpu());
        for (size_t i = 1; i < variants.size(); ++i) {  // [0] is decompose's own
            const auto& p = std::get<MatmulParams>(variants[i].params);
            if (p.algo == ANVIL_MM_GEMV) widths[op.name].push_back(p.bn);
        }
    }
    CHECK(widths.at("y1") == std::vector<int>{16, 32, 64, 128, 256});  // N 129
    CHECK(widths.at("s") == std::vector<int>{16, 32, 64});              // N 33
    CHECK(widths.at("yb") == std::vector<int>{16, 32});                 // N 20, three batches
}

TEST_CASE("GEMV tiles of every width agree with the reference", "[gemv][host]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    const int bn = GENERATE(16, 32, 64, 128, 256);
    DYNAMIC_SECTION(dtype_name(dtype) << ", BN " << bn) {
        const Graph g = cases_graph(dtype);
        TileGraph tg = decompose(g);
        for (ROp& op : tg.rops)
            if (op.kind == TaskKind::matmul) op = as_gemv(op, bn);
        // One launch per rOp, and one persistent launch of 3 blocks.
        check_run(g, launch_per_rop("per_op", tg, default_gpu(), "op_"));
        std::vector<Placed> order;
        for (size_t r = 0; r < tg.rops.size(); ++r)
            for (int t = 0; t < tg.rops[r].tiles; ++t)
                order.push_back(Placed{static_cast<int>(r), t, static_cast<int>(order.size() % 3)});
        check_run(g, persistent_schedule("topo", tg, default_gpu(), order, 3));
    }
}

TEST_CASE("every policy runs GEMV models correctly, with fusion", "[gemv][host]") {
    const Graph g = cases_graph(DType::bf16);
    const std::string policy = GENERATE(as<std::string>{}, "anvil", "rammer", "welder", "topo", "per_op");
    CAPTURE(policy);
    check_run(g, plan(g, policy, default_gpu()));
}

TEST_CASE("GEMV tiles compile with NVRTC for sm_90", "[gemv][compile]") {
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
        TileGraph tg = decompose(cases_graph(dtype));
        int k = 0;
        for (ROp& op : tg.rops)
            if (op.kind == TaskKind::matmul) op = as_gemv(op, 16 << (k++ % 5));
        const CubinResult r = compile_nvrtc(emit_source(launch_per_rop("per_op", tg, default_gpu(), "op_")), "sm_90");
        CHECK(!r.cubin.empty());
        for (const KernelResources& kr : r.kernels) {
            const ROp& op = tg.rops.at(std::stoul(kr.name.substr(3)));  // kernel "op_<rOp>"
            INFO(dtype_name(dtype) << " " << kr.name << " " << op.name);
            if (op.kind == TaskKind::matmul) CHECK(kr.spill_stores == 0);
        }
    }
}

TEST_CASE("the deepest GEMV weight ring compiles with NVRTC for sm_90", "[gemv][compile]") {
    // --gemv-ring-stages at its bound: wait_group's count is an immediate.
    TileGraph tg = decompose(cases_graph(DType::bf16));
    for (ROp& op : tg.rops)
        if (op.kind == TaskKind::matmul) op = as_gemv(op, 64);
    Gpu gpu = default_gpu();
    gpu.gemv_ring_stages = max_gemv_ring_stages();
    const Schedule s = launch_per_rop("per_op", tg, gpu, "op_");
    const std::string src = emit_source(s);
    REQUIRE(src.find("#define ANVIL_GEMV_RING_STAGES " + std::to_string(max_gemv_ring_stages())) != std::string::npos);
    const CubinResult r = compile_nvrtc(src, "sm_90");
    CHECK(!r.cubin.empty());
    CHECK(megakernel_smem_bytes(s) >= max_gemv_ring_stages() * ANVIL_GEMV_STAGE_BYTES);
}

TEST_CASE("a GEMV rOp the tile cannot take is refused", "[gemv]") {
    TileGraph tg = decompose(cases_graph(DType::f16));
    ROp& op = tg.rops.front();
    auto& p = std::get<MatmulParams>(op.params);
    p.bn = 48;  // not a power of two
    CHECK_THROWS_AS(verify_tile_graph(tg, default_gpu()), InternalError);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("GEMV tile width 48"));
    p.bn = 64;
    p.M = 5;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("at most 4 rows"));
    CHECK_THROWS_WITH(as_gemv(op, 64), Catch::Contains("is not a GEMV"));
}
