// The facts the host and the device share (rtasks/tiling.cuh, the field
// lists of rtasks/params.cuh): a model with every tile kind emits a source
// that NVRTC (sm_90, sm_90a) and the host compiler accept, whose shared
// memory reservation holds every tile, and that runs to the reference on
// the host; the emitted params name every value, in field order.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "codegen/params_text.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "runtime/compile_host.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/host_backend.h"
#include "rtasks/tiling.cuh"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "tile/fusion.h"

using namespace anvil;

namespace {

Graph every_tile_graph() { return load_graph(std::string(ANVIL_SOURCE_DIR) + "/tests/models/every_tile_f16.yaml"); }

// "kind" or "matmul/<algo>[+row op]": the distinct device code paths.
std::string tile_path(const ROp& op) {
    std::string s = task_kind_name(op.kind);
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && op.kind == TaskKind::matmul) {
        s += p->algo == ANVIL_MM_GEMV ? "/gemv" : p->algo == ANVIL_MM_TENSOR ? "/tensor" : "/tiled";
        if (p->row_op != ANVIL_MM_ROW_NONE) s += "+row";
    }
    if (op.kind == TaskKind::conv2d && computes_on_tensor_cores(op)) s += "/tensor";
    return s;
}

// The fused tile graph of every_tile_f16 with its first plain tiled matmul
// and its last conv2d moved to tensor cores: one rOp on every device code path.
TileGraph every_tile_graph_tiles(const Graph& g) {
    TileGraph tg = fuse(decompose(g), default_gpu());
    for (ROp& op : tg.rops)
        if (tile_path(op) == "matmul/tiled") {
            op = on_tensor_cores(op, 32, 32, 32);
            break;
        }
    for (auto op = tg.rops.rbegin(); op != tg.rops.rend(); ++op)
        if (op->kind == TaskKind::conv2d) {
            *op = on_tensor_cores(*op, 32, 32, 32);
            break;
        }
    return tg;
}

}  // namespace

TEST_CASE("tiling: the every-tile model has one rOp on every device code path", "[tiling]") {
    std::set<std::string> paths;
    for (const ROp& op : every_tile_graph_tiles(every_tile_graph()).rops) paths.insert(tile_path(op));
    const std::set<std::string> want = {"elementwise",    "matmul/tiled",  "matmul/tiled+row", "matmul/gemv",
                                        "matmul/tensor",  "rowwise",       "conv2d",           "conv2d/tensor", "window",
                                        "channel",        "gather"};
    CHECK(paths == want);
}

TEST_CASE("tiling: every tile kind compiles for sm_90, sm_90a and the host, and runs on the host and simt", "[tiling][compile][simt]") {
    const Graph g = every_tile_graph();
    const TileGraph tg = every_tile_graph_tiles(g);
    const Schedule s = find_policy("topo").fn(tg, default_gpu());
    const std::string src = emit_source(s);
    // The reservation is the largest tile's need, by the same formulas the
    // device's static_asserts check against it; on the GPU it is dynamic, so
    // a kernel's static shared memory is only the reductions' few words.
    int most = 0;
    for (const ROp& op : tg.rops) most = std::max(most, tile_smem_bytes(op, s.gpu));
    CHECK(src.find("#define ANVIL_SMEM_BYTES " + std::to_string(most) + "\n") != std::string::npos);
    CHECK(src.find("#define ANVIL_SMEM_DYNAMIC 1\n") != std::string::npos);
    for (const char* arch : {"sm_90", "sm_90a"}) {
        CAPTURE(arch);
        const CubinResult r = compile_nvrtc(src, arch);
        CHECK(!r.cubin.empty());
        for (const KernelResources& k : r.kernels) CHECK(k.smem_bytes <= kMegakernelSmemExtra);
    }
    CHECK(std::filesystem::exists(compile_host(src).path));
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values), 5);
    test::expect_reference(g, values, run_simt(s, values), 5);
}

TEST_CASE("tiling: a tile shape the device refuses is refused by the tile-graph verifier", "[tiling]") {
    TileGraph tg = every_tile_graph_tiles(every_tile_graph());
    auto first = [&](const std::string& path) -> ROp& {
        auto it = std::find_if(tg.rops.begin(), tg.rops.end(), [&](const ROp& op) { return tile_path(op) == path; });
        REQUIRE(it != tg.rops.end());
        return *it;
    };
    const auto emit = [&] { verify_tile_graph(tg, default_gpu()); };
    SECTION("GEMM step") {
        std::get<WindowParams>(first("conv2d").params).bm = 24;
        CHECK_THROWS_WITH(emit(), Catch::Contains("multiples of 16"));
    }
    SECTION("shared memory") {
        std::get<WindowParams>(first("conv2d").params).bk = 256;
        CHECK_THROWS_WITH(emit(), Catch::Contains("over the budget of 115648 per tile on h100_sxm"));
    }
    SECTION("GEMV width") {
        std::get<MatmulParams>(first("matmul/gemv").params).bn = 48;
        CHECK_THROWS_WITH(emit(), Catch::Contains("not a power of two in [16, 2048]"));
    }
    SECTION("tensor-core step") {
        std::get<MatmulParams>(first("matmul/tensor").params).bk = 40;
        CHECK_THROWS_WITH(emit(), Catch::Contains("BK of 16"));
    }
}

TEST_CASE("tiling: the candidate tile shapes are all ones the device accepts", "[tiling]") {
    Gpu gpu = default_gpu();
    gpu.tensor_core_tiles = true;
    int tensor = 0, conv_tensor = 0, gemv = 0, tiled = 0;
    for (const ROp& op : decompose(every_tile_graph()).rops)
        for (const ROp& v : tile_variants(op, gpu)) {
            if (v.kind != TaskKind::matmul && v.kind != TaskKind::conv2d) continue;
            CAPTURE(v.name, tile_path(v));
            CHECK(tile_smem_bytes(v, gpu) <= tile_smem_budget(gpu));
            if (v.kind == TaskKind::conv2d) {
                const auto& w = std::get<WindowParams>(v.params);
                CHECK(anvil_gemm_tile_ok(w.bm, w.bn, w.bk));
                if (w.algo == ANVIL_MM_TENSOR) {
                    ++conv_tensor;
                    CHECK(anvil_conv_tc_tile_ok(w.bm, w.bn, w.bk));
                } else {
                    ++tiled;
                }
                continue;
            }
            const auto& p = std::get<MatmulParams>(v.params);
            if (p.algo == ANVIL_MM_GEMV) {
                ++gemv;
                CHECK(anvil_gemv_tile_ok(p.bn, dtype_size(v.dtypes[1])));
            } else if (p.algo == ANVIL_MM_TENSOR) {
                ++tensor;
                CHECK(anvil_tc_tile_ok(p.bm, p.bn, p.bk));
            } else {
                ++tiled;
                CHECK(anvil_gemm_tile_ok(p.bm, p.bn, p.bk));
            }
        }
    CHECK(tensor > 0);
    CHECK(conv_tensor > 0);
    CHECK(gemv > 0);
    CHECK(tiled > 0);
}

TEST_CASE("tiling: emitted params name every value, in field order", "[tiling]") {
    GatherParams g{};
    g.V = 20, g.D = 48, g.rows_per_tile = 85, g.rows = 6, g.table_off = 256, g.ids_off = -1, g.out_off = 1LL << 40;
    CHECK(params_text(g) == "{/*V*/ 20, /*D*/ 48, /*rows_per_tile*/ 85, /*pad_*/ 0, /*rows*/ 6LL, /*table_off*/ 256LL, "
                            "/*ids_off*/ -1LL, /*out_off*/ 1099511627776LL}");
    EwParams e{};
    e.in_stride[1][0] = 7;
    e.scalar = 0.5f;
    const std::string t = params_text(e);
    CHECK(t.find("/*in_stride*/ {{0LL, 0LL, 0LL, 0LL, 0LL, 0LL}, {7LL, 0LL, 0LL, 0LL, 0LL, 0LL}}, /*scalar*/ 0.5f, "
                 "/*pad2_*/ 0}") != std::string::npos);
    AnvilEpilogue epi{};
    epi.steps[1] = {ANVIL_EW_MUL, ANVIL_EPI_VALUE(1), ANVIL_EPI_SCALAR, 2.0f};
    CHECK(params_text(epi).find("{/*op*/ 0, /*a*/ 0, /*b*/ 0, /*scalar*/ 0.0f}, {/*op*/ 4, /*a*/ 1, /*b*/ 32, "
                                "/*scalar*/ 2.0f}") != std::string::npos);
}
