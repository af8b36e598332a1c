// Tensor-core matmul tiles (rtasks/matmul_tc.cuh): emitted for every tile
// shape in f16 and bf16, over odd shapes, transposes and broadcast batches,
// with a fused epilogue. NVRTC must compile them for sm_90 without spills;
// the host backend runs their fallback (the shared-memory GEMM) against the
// reference; on a device ([gpu]) the mma.sync code itself is checked.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "runtime/cuda_backend.h"
#include "codegen/emit.h"
#include "tile/fusion.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "schedule/variants.h"
#include "schedule/builders.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "tile/decompose.h"
#include "tile/verify_tile_graph.h"
#include "frontend/load_model.h"
#include "frontend/infer_shapes.h"

using namespace anvil;

namespace {

const char* kCases = R"(anvil: 1
name: tc_cases
dtype: {dtype}
seed: 9
inputs:
  - {{name: x, shape: [37, 70]}}
  - {{name: xt, shape: [70, 45]}}
  - {{name: h, shape: [3, 33, 24]}}
params:
  - {{name: w, shape: [70, 45]}}
  - {{name: wt, shape: [45, 70]}}
  - {{name: k, shape: [3, 50, 24]}}
  - {{name: wb, shape: [24, 40]}}
  - {{name: b, shape: [45]}}
nodes:
  - {{name: y0, op: matmul, inputs: [x, w]}}
  - {{name: y1, op: add, inputs: [y0, b]}}
  - {{name: y, op: gelu, inputs: [y1]}}
  - {{name: yt, op: matmul, inputs: [x, wt], transpose_b: true}}
  - {{name: ya, op: matmul, inputs: [xt, w], transpose_a: true}}
  - {{name: s, op: matmul, inputs: [h, k], transpose_b: true}}
  - {{name: hb, op: matmul, inputs: [h, wb]}}
outputs: [y, yt, ya, s, hb]
)";

Graph cases_graph(DType dtype) {
    const std::string text = fmt::format(kCases, fmt::arg("dtype", dtype_name(dtype)));
    return infer_shapes(build_graph(load_model_from_string(text, "tc_cases.yaml")));
}

Gpu with_tensor_cores() {
    Gpu g = default_gpu();
    g.tensor_core_tiles = true;
    return g;
}

// The fused tile graph with every matmul on tensor cores, BM x BN.
TileGraph on_tensor_cores_all(const Graph& g, int bm, int bn) {
    TileGraph tg = fuse(decompose(g), default_gpu());
    for (ROp& op : tg.rops)
        if (op.kind == TaskKind::matmul) op = on_tensor_cores(op, bm, bn, deepest_tensor_core_bk(bm, bn, default_gpu()));
    return tg;
}

}  // namespace

TEST_CASE("tensor-core tiles: every shape compiles for sm_90 without spills, and runs on the host", "[tensor][compile]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    for (int bm : {32, 64, 128})
        for (int bn : {32, 64, 128}) {
            CAPTURE(dtype_name(dtype), bm, bn);
            const Graph g = cases_graph(dtype);
            const Schedule s = launch_per_rop("per_op", on_tensor_cores_all(g, bm, bn), default_gpu(), "op_");
            const std::string src = emit_source(s);
            CHECK(src.find("anvil_matmul_tc_tile<") != std::string::npos);
            // With the kernel asking for two blocks per SM (at most 128
            // registers): as emitted with __launch_bounds__(256) alone, ptxas
            // holds a tile that calls the epilogue to 64 registers and the
            // 64 x 128 tile spills 32 bytes (docs/perf/tile-resources.md).
            std::string two_blocks = src;
            for (size_t at; (at = two_blocks.find("__launch_bounds__(256)")) != std::string::npos;)
                two_blocks.replace(at, 22, "__launch_bounds__(256, 2)");
            const CubinResult r = compile_nvrtc(two_blocks, "sm_90");
            for (const KernelResources& k : r.kernels) {
                INFO(k.name);
                CHECK(k.spill_stores == 0);
            }
            const TensorMap values = make_values(g, std::nullopt);
            test::expect_reference(g, values, run_host(s, values), 5);
            if (bm == 128 && bn == 128) CHECK(!compile_nvrtc(src, "sm_90a").cubin.empty());  // Hopper's own target
        }
}

int tensor_rops(const Schedule& s) {
    int n = 0;
    for (const ROp& op : s.tiles.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) n += p->algo == ANVIL_MM_TENSOR;
    return n;
}

TEST_CASE("by default the policies pick tensor-core tiles for compute-bound f16 GEMMs", "[tensor]") {
    // BERT-base's GEMMs (128 x 768 x 768 and up) are compute-bound on CUDA cores.
    const Graph bert = load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/bert_base.yaml");
    const std::string policy = GENERATE(as<std::string>{}, "anvil", "rammer", "welder");
    CAPTURE(policy);
    CHECK(default_gpu().tensor_core_tiles);
    CHECK(tensor_rops(plan(bert, policy, default_gpu())) > 0);
    // Turned off (--no-tensor-cores): never.
    Gpu off = default_gpu();
    off.tensor_core_tiles = false;
    CHECK(tensor_rops(plan(bert, policy, off)) == 0);
}

TEST_CASE("a schedule that picked tensor-core tiles runs on the host", "[tensor][host]") {
    const Graph g = load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/transformer_encoder_f16.yaml");
    const Schedule s = plan(g, "rammer", with_tensor_cores());
    REQUIRE(tensor_rops(s) > 0);
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values));
}

TEST_CASE("a matmul tensor cores cannot take is refused", "[tensor]") {
    const TileGraph f32 = decompose(cases_graph(DType::f32));
    CHECK_THROWS_WITH(on_tensor_cores(f32.rops.front(), 64, 64, 32), Catch::Contains("cannot use them"));
    TileGraph tg = decompose(cases_graph(DType::f16));
    tg.rops.front() = on_tensor_cores(tg.rops.front(), 64, 64, 32);
    std::get<MatmulParams>(tg.rops.front().params).bm = 48;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("multiples of 32"));
}

TEST_CASE("tensor-core tiles agree with the reference on the device", "[tensor][gpu]") {
    REQUIRE_DEVICE();
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    for (int bm : {32, 64, 128})
        for (int bn : {32, 64, 128}) {
            CAPTURE(dtype_name(dtype), bm, bn);
            const Graph g = cases_graph(dtype);
            const TensorMap values = make_values(g, std::nullopt);
            const TileGraph tg = on_tensor_cores_all(g, bm, bn);
            test::expect_reference(g, values, run_cuda(launch_per_rop("per_op", tg, default_gpu(), "op_"), values), 5);
        }
}
