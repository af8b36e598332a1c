// The megakernel's shared memory beyond 48 KB: the per-block budget a tile
// may use (target/occupancy.h), the GEMV's staged x sized by the schedule
// within it (llama_decode's down projection, K = 11008, stages its x), the
// emitted dynamic size, NVRTC's view of it, the occupancy the report derives
// from it, and the cuda backend's refusal of more than a device allows.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include "anvil/error.h"
#include "anvil/pipeline.h"
#include "frontend/infer_shapes.h"
#include "frontend/norm_fold.h"
#include "codegen/emit.h"
#include "graph_builder.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/cuda_backend.h"
#include "runtime/cuda_driver.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
#include "schedule/orders.h"
#include "schedule/variants.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "tools/report.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;
namespace fs = std::filesystem;

namespace {

// x [M, K] -> (rmsnorm) -> x @ W [K, 40] + b: one GEMV whose weight rows are
// 16-byte aligned in every dtype, so the ring walk takes it.
Graph norm_gemv(int64_t m, int64_t k, DType t, bool norm) {
    GraphBuilder b(t);
    b.input("x", {m, k});
    b.param("g", {k});
    b.param("w", {k, 40});
    b.param("b", {40});
    if (norm) b.node("n", Op::rmsnorm, {"x", "g"}, {{"eps", F(1e-5)}});
    b.node("h", Op::matmul, {norm ? "n" : "x", "w"});
    b.node("y", Op::add, {"h", "b"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 2.0);
    set_init(g, "g", InitKind::uniform, 0.5, 1.5);
    set_init(g, "w", InitKind::normal, 0.05);
    return g;
}

// `g` (its rmsnorm folded into the GEMV where `fold` and the fold's
// conditions allow) as whole GEMV tiles of 16 columns dealt round robin to
// three blocks: the policies would split so narrow a GEMV along K.
Schedule gemv_schedule(const Graph& g, bool fold) {
    TileGraph tg = decompose(fold ? fold_rmsnorm_into_matmuls(g) : g);
    for (ROp& op : tg.rops)
        if (op.kind == TaskKind::matmul) op = as_gemv(op, 16);
    verify_tile_graph(tg, default_gpu());
    return persistent_schedule("round_robin", tg, default_gpu(), round_robin_order(tg, 3), 3);
}

// The schedule's GEMV rOp (the only matmul).
const ROp& the_gemv(const Schedule& s) {
    for (const ROp& op : s.tiles.rops)
        if (op.kind == TaskKind::matmul) return op;
    FAIL("no matmul rOp");
    return s.tiles.rops.front();
}

std::string defined(const std::string& src, const std::string& name) {
    std::smatch m;
    REQUIRE(std::regex_search(src, m, std::regex("#define " + name + " (\\d+)\n")));
    return m[1];
}

}  // namespace

TEST_CASE("dynamic smem: the budget per block is the inverse of occupancy, capped at the opt-in limit", "[dynsmem][occupancy]") {
    for (const char* name : {"a100_sxm", "h100_sxm", "h200"}) {
        const Gpu gpu = find_gpu(name);
        CAPTURE(name);
        for (int n = 1; n <= 8; ++n) {
            CAPTURE(n);
            const int b = smem_per_block_for(gpu, n);
            CHECK(b <= gpu.smem_per_block);
            CHECK(occupancy(gpu, KernelUsage{256, 0, b}).by_smem >= n);
            // One byte more costs a block, unless the opt-in limit capped it first.
            if (b < gpu.smem_per_block) CHECK(occupancy(gpu, KernelUsage{256, 0, b + 1}).by_smem < n);
        }
        CHECK(smem_per_block_for(gpu, 1) == gpu.smem_per_block);  // one block: the opt-in limit
        CHECK(tile_smem_budget(gpu) == smem_per_block_for(gpu, kCudaCoreBlocksPerSm) - kMegakernelSmemExtra);
        CHECK(megakernel_blocks_per_sm(tile_smem_budget(gpu), gpu) == kCudaCoreBlocksPerSm);
        CHECK(megakernel_blocks_per_sm(tile_smem_budget(gpu) + 1, gpu) == 1);
    }
    // The H100: 228 KiB an SM, 1 KiB reserved a block: 113 KiB for each of two.
    CHECK(smem_per_block_for(find_gpu("h100_sxm"), 2) == 113 * 1024);
    CHECK(smem_per_block_for(find_gpu("a100_sxm"), 2) == 81 * 1024);
}

TEST_CASE("dynamic smem: a GEMV stages x up to what the budget leaves, on the simt backend", "[dynsmem][gemv][simt]") {
    // llama_decode's down projection reads x of K = 11008; an odd K besides.
    // bf16 x of one row: 22 KB (over the old 14 KB), its tile 54.8 KB (over
    // 48 KB); f32 of one row 44 KB, two rows of bf16 44 KB: staged; f32 of
    // two rows 88 KB: over the H100's 82864 B of room, read from global
    // memory. Folded rmsnorm (one row, the fold's condition) and not.
    const Gpu& gpu = default_gpu();
    const DType t = GENERATE(DType::f32, DType::bf16);
    const int64_t m = GENERATE(1, 2);
    const int64_t k = GENERATE(11008, 11009);
    const bool fold = GENERATE(true, false);
    CAPTURE(dtype_name(t), m, k, fold);
    const Graph g = norm_gemv(m, k, t, true);
    const Schedule s = gemv_schedule(g, fold);
    const ROp& op = the_gemv(s);
    const auto& p = std::get<MatmulParams>(op.params);
    REQUIRE(p.algo == ANVIL_MM_GEMV);
    REQUIRE(gemv_takes_ring(op));
    CHECK(p.a_rms == (fold && m == 1 ? 1 : 0));
    const int64_t x = anvil_gemv_x_bytes(static_cast<int>(m), k, static_cast<int>(dtype_size(t)));
    const bool staged = x <= gemv_x_limit(gpu);
    CHECK(staged == !(t == DType::f32 && m == 2));
    CHECK(gemv_staged_x_bytes(op, gpu) == (staged ? x : 0));
    const std::string src = emit_source(s);
    CHECK(defined(src, "ANVIL_GEMV_X_BYTES") == std::to_string(staged ? x : 0));
    const int smem = std::stoi(defined(src, "ANVIL_SMEM_BYTES"));
    CHECK(smem == megakernel_smem_bytes(s));
    if (staged) CHECK(smem > 48 * 1024);
    CHECK(smem <= tile_smem_budget(gpu));
    HostRunOptions opt;
    opt.check_races = true;
    const TensorMap values = make_values(g, std::nullopt);
    expect_reference(g, values, run_simt(s, values, opt), 1);
}

TEST_CASE("dynamic smem: the cost model charges a staged x its round trip only where it is staged", "[dynsmem][cost]") {
    const Gpu& gpu = default_gpu();
    for (int64_t m : {1, 2}) {
        CAPTURE(m);
        const Schedule s = gemv_schedule(norm_gemv(m, 11008, DType::f32, false), false);
        const TileLatency l = tile_latency(the_gemv(s), gpu);
        CHECK(l.fill_hidden);
        CHECK(l.serial_rounds == (m == 1 ? 1 : 0));  // 44 KB staged; 88 KB read in the walk
        // A GPU whose budget leaves less room does not stage it.
        Gpu small = gpu;
        small.smem_per_sm = 128 * 1024;
        small.smem_per_block = 64 * 1024;
        CHECK(gemv_x_limit(small) < 44 * 1024);
        CHECK(tile_latency(the_gemv(s), small).serial_rounds == 0);
    }
}

TEST_CASE("dynamic smem: megakernels compile for sm_90 with their dynamic size", "[dynsmem][compile]") {
    // A GEMV over 48 KB (x of 11009 bf16 staged beside the ring): the
    // scratch is dynamic, so only the reductions' words are static.
    const Schedule wide = gemv_schedule(norm_gemv(1, 11009, DType::bf16, true), true);
    REQUIRE(megakernel_smem_bytes(wide) > 48 * 1024);
    const std::string src = emit_source(wide);
    CHECK(src.find("#define ANVIL_SMEM_DYNAMIC 1\n") != std::string::npos);
    CHECK(compile_ptx(src, "compute_90").find(".extern .shared") != std::string::npos);
    for (const KernelResources& k : compile_nvrtc(src, "sm_90").kernels) {
        CAPTURE(k.name);
        CHECK(k.smem_bytes <= kMegakernelSmemExtra);
        CHECK(k.registers <= 128);
        CHECK(k.spill_stores == 0);
    }
    // llama_decode: its largest x (the down projection's 5632 bf16, 11 KB)
    // staged, the whole kernel at 128 registers and two blocks per SM;
    // its spills (the attention walks and the row tile, docs/ARCHITECTURE.md)
    // no more than 1512 B of stores and 3516 B of loads (1336 and 3056
    // before the split-K reduce's row op added six fields to RowParams;
    // 3264 B of loads before the row tiles' flat walks, whose own spills
    // fell, 576/500 -> 236/344 B in the row tile, while ptxas spilled more
    // in the GEMV walks, their PTX unchanged: row-tiles-2026-11-28.md).
    const Graph g = load_graph((fs::path(ANVIL_SOURCE_DIR) / "models" / "llama_decode.yaml").string());
    const Schedule s = plan(g, "anvil", default_gpu());
    CHECK(gemv_x_room(s) == 5632 * 2);
    const int smem = megakernel_smem_bytes(s);
    CHECK(smem == anvil_gemv_smem_bytes(ANVIL_BLOCK_THREADS, 5632 * 2));
    const CubinResult r = compile_nvrtc(emit_source(s), "sm_90");
    REQUIRE(r.kernels.size() == 1);
    const KernelResources& k = r.kernels[0];
    INFO(k.registers << " registers, " << k.smem_bytes << " B static smem, " << k.spill_stores << "/" << k.spill_loads
                     << " B spilled");
    CHECK(k.smem_bytes <= kMegakernelSmemExtra);
    CHECK(k.registers <= 128);
    CHECK(k.spill_stores <= 1512);
    CHECK(k.spill_loads <= 3516);
    CHECK(occupancy(s.gpu, KernelUsage{256, k.registers, k.smem_bytes + smem}).blocks_per_sm == 2);
}

TEST_CASE("dynamic smem: the report's occupancy counts the dynamic shared memory", "[dynsmem][occupancy]") {
    const Schedule s = gemv_schedule(norm_gemv(1, 11008, DType::bf16, true), true);
    const int dynamic = megakernel_smem_bytes(s);
    REQUIRE(dynamic > 48 * 1024);
    const nlohmann::json estimate = schedule_json(s, predict(s));
    CHECK(estimate["max_smem_per_task"] == dynamic);
    CHECK(estimate["blocks_per_sm_source"] == "estimate");
    const std::vector<std::string> kernels = launch_kernels(s);
    REQUIRE(kernels.size() == 1);
    CHECK(launch_smem_bytes(s, 0) == dynamic);
    // NVRTC's static bytes plus the launch's dynamic ones, with the reserve:
    // 40 + 54800 + 1024 fits four times in 228 KB (two by 128 registers);
    // 70000 static beside them fits once, by shared memory.
    for (int static_bytes : {40, 70000}) {
        CAPTURE(static_bytes);
        CubinResult fake;
        fake.kernels.push_back({kernels[0], 128, static_bytes, 0, 0, 0});
        const nlohmann::json j = schedule_json(s, predict(s), &fake);
        CHECK(j["kernel_list"][0]["dynamic_smem_bytes"] == dynamic);
        CHECK(j["blocks_per_sm"] == (static_bytes == 40 ? 2 : 1));
        CHECK(j["blocks_per_sm_limited_by"] == (static_bytes == 40 ? "registers" : "shared memory"));
        CHECK(j["kernel_list"][0]["blocks_per_sm"] == j["blocks_per_sm"]);
        const std::string table = schedule_table(s, predict(s), &fake);
        CHECK(table.find(std::to_string(static_bytes) + " B smem + " + std::to_string(dynamic) + " B dynamic") !=
              std::string::npos);
    }
}

TEST_CASE("dynamic smem: a launch without matmul or conv2d tiles gets none", "[dynsmem]") {
    GraphBuilder b(DType::f32);
    b.input("x", {3, 1000});
    b.node("y", Op::exp, {"x"});
    b.output("y");
    const Schedule s = plan(infer_shapes(b.graph()), "per_op", default_gpu());
    for (size_t l = 0; l < s.launches.size(); ++l) CHECK(launch_smem_bytes(s, l) == 0);
    const Schedule gemv = plan(norm_gemv(1, 100, DType::f32, true), "per_op", default_gpu());
    int with = 0;
    for (size_t l = 0; l < gemv.launches.size(); ++l) {
        const int bytes = launch_smem_bytes(gemv, l);
        CHECK((bytes == 0 || bytes == megakernel_smem_bytes(gemv)));
        with += bytes > 0;
    }
    CHECK(with >= 1);
}

TEST_CASE("dynamic smem: the cuda backend refuses more than a block of the device may have, naming the kernel",
          "[dynsmem][backend]") {
    // The driver's own refusal (cuFuncSetAttribute) needs a device; the
    // check before it does not.
    CHECK(dynamic_smem_refusal("k0", 115712, 36, 232448, "H100").empty());
    CHECK(dynamic_smem_refusal("k0", 232448 - 36, 36, 232448, "H100").empty());
    const std::string why = dynamic_smem_refusal("anvil_mk_0", 232448 - 35, 36, 232448, "NVIDIA H100 80GB HBM3");
    CHECK_THAT(why, Catch::Contains("kernel 'anvil_mk_0' needs 232413 B of dynamic shared memory beside 36 B of static"));
    CHECK_THAT(why, Catch::Contains("over the 232448 B a block of NVIDIA H100 80GB HBM3 may use"));
    // The H100's two blocks of 113 KB do not fit a device of 99 KB a block (sm_86).
    CHECK_FALSE(dynamic_smem_refusal("k", 115712, 36, 101376, "RTX 3090").empty());
}

TEST_CASE("dynamic smem: a GEMV over 48 KB of shared memory runs on the device", "[dynsmem][gpu]") {
    REQUIRE_DEVICE();
    for (DType t : {DType::f32, DType::bf16}) {
        CAPTURE(dtype_name(t));
        const Graph g = norm_gemv(1, 11009, t, true);
        const Schedule s = gemv_schedule(g, true);
        REQUIRE(megakernel_smem_bytes(s) > 48 * 1024);
        const TensorMap values = make_values(g, std::nullopt);
        expect_reference(g, values, run_cuda(s, values), 1);
    }
}
