// The simt backend runs the CUDA code itself (256 threads a block, warps,
// shared memory, mma.sync, cp.async) on CPU fibers with the thread-level
// checks on: every small zoo model and test model (the f16/bf16 ones also
// under rammer and welder, which pick tensor-core tiles for some of their
// GEMMs), the tensor-core tile
// in f16 and bf16 over odd shapes, both B layouts and every tile shape the
// policies may pick, and the GEMV in every width and both B layouts, all
// against the float64 reference.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "matmul_cases.h"
#include "run_checks.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
namespace fs = std::filesystem;

namespace {

// Every model CI runs: the _small variants and the models that have none,
// from models/ and tests/models/.
std::vector<std::string> ci_models() {
    std::vector<std::string> out;
    for (const char* dir : {"/models", "/tests/models"})
        for (const auto& e : fs::directory_iterator(std::string(ANVIL_SOURCE_DIR) + dir)) {
            const fs::path p = e.path();
            if (p.extension() != ".yaml") continue;
            if (fs::exists(p.parent_path() / (p.stem().string() + "_small.yaml"))) continue;  // full size
            out.push_back(p.string());
        }
    std::sort(out.begin(), out.end());
    return out;
}

// Whether some tensor of g is f16 or bf16: a model tensor-core tiles may serve.
bool has_half(const Graph& g) {
    for (size_t v = 0; v < g.size(); ++v)
        if (g.value(v).dtype == DType::f16 || g.value(v).dtype == DType::bf16) return true;
    return false;
}

int rops_with(const Schedule& s, int algo) {
    int n = 0;
    for (const ROp& op : s.tiles.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) n += p->algo == algo;
    return n;
}

using test::MmCase;

Graph cases_graph(const char* name, DType dtype, const std::vector<MmCase>& cases, int variants) {
    return test::matmul_cases_graph(name, dtype, cases, variants, 17);
}
int case_index(const ROp& op) { return std::stoi(op.name.substr(op.name.rfind("_v") + 2)); }

}  // namespace

TEST_CASE("simt: every CI model matches the reference with the thread-level checks on", "[simt]") {
    const std::vector<std::string> models = ci_models();
    REQUIRE(models.size() >= 20);
    for (const std::string& path : models)
        for (const char* policy : {"anvil", "rammer", "welder"})
            DYNAMIC_SECTION(fs::path(path).filename().string() << " under " << policy) {
                const Graph g = load_graph(path);
                if (std::string(policy) != "anvil" && !has_half(g)) continue;  // f32: anvil's schedule only
                // The default target: tensor-core tiles where the policy finds
                // they pay (rammer's for the transformer encoders and the
                // Llama MLPs; the next test requires them).
                const Schedule s = plan(g, policy, default_gpu());
                const TensorMap values = make_values(g, std::nullopt);
                test::expect_reference(g, values, run_simt(s, values));
            }
}

TEST_CASE("simt: --check-races applies to the simt backend", "[simt]") {
    const Graph g = load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/transformer_encoder_f16.yaml");
    const Schedule s = plan(g, "rammer", default_gpu());
    REQUIRE(rops_with(s, ANVIL_MM_TENSOR) > 0);
    HostRunOptions opt;
    opt.check_races = true;
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_simt(s, values, opt));
}

TEST_CASE("simt: the tensor-core tile over odd shapes, both B layouts, every tile shape", "[simt][tensor]") {
    // M, N and K take 1, 7, 33 and 129 in every position; K = 40 and 72 take
    // cp.async (16-byte rows) with a zero-filled tail, and so does N = 72 for
    // an n-contiguous B (staged [BK][BN], read with ldmatrix.trans).
    std::vector<MmCase> cases;
    for (bool t : {false, true})
        for (MmCase c : {MmCase{1, 33, 7}, MmCase{7, 129, 1}, MmCase{33, 1, 129}, MmCase{129, 7, 33},
                         MmCase{129, 129, 129}, MmCase{33, 40, 7}, MmCase{70, 72, 45}, MmCase{37, 48, 72}}) {
            c.transpose_b = t;
            cases.push_back(c);
        }
    const int shapes[9][2] = {{32, 32}, {32, 64}, {32, 128}, {64, 32}, {64, 64},
                              {64, 128}, {128, 32}, {128, 64}, {128, 128}};
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = cases_graph("tc_simt", dtype, cases, 9);
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) {
        const int v = case_index(op);
        op = on_tensor_cores(op, shapes[v][0], shapes[v][1], deepest_tensor_core_bk(shapes[v][0], shapes[v][1], default_gpu()));
    }
    const Schedule s = launch_per_rop("per_op", tg, default_gpu(), "op_");
    REQUIRE(rops_with(s, ANVIL_MM_TENSOR) == static_cast<int>(cases.size() * 9));
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_simt(s, values), cases.size() * 9);
}

TEST_CASE("simt: the weight ring runs on from a block's task to its next", "[simt][gemv]") {
    // Persistent blocks holding several GEMV tiles each (round robin), every
    // width, both layouts, odd K and N. The ring takes B's rows 16-byte
    // aligned (N = 88, 136, 40; 300 in f32), last tiles part full: K = 600
    // and 1000 give slices of 3 stages and more, whose walks issue the
    // block's next tile's first stages (weight_ring.cuh), across widths and
    // dtypes of A; K = 40 and 129 mostly fewer (the next tile's prologue is
    // its own). N = 77 (rows unaligned) and x @ W^T take no ring and are
    // handed nothing. One block: one simt worker plays the queue; three: a
    // worker plays two blocks, merged. The ring's depth (--gemv-ring-stages)
    // the default 4, the shallowest 2 and a deep 9: a walk hands on from 1
    // or 8 stages on, and K = 129 or 600 is shorter than the deep ring.
    const std::vector<MmCase> cases = {{1, 600, 88, false}, {3, 129, 136, false}, {1, 1000, 40, false},
                                       {2, 600, 75, true},  {1, 40, 300, false},  {1, 600, 77, false}};
    const int widths[] = {16, 32, 64, 128, 256};
    const DType dtype = GENERATE(DType::f32, DType::bf16);
    const int blocks = GENERATE(1, 3);
    const int ring = GENERATE(0, 2, 9);
    CAPTURE(dtype_name(dtype), blocks, ring);
    const Graph g = cases_graph("ring_on", dtype, cases, 5);
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) op = as_gemv(op, widths[case_index(op)]);
    Gpu gpu = default_gpu();
    gpu.gemv_ring_stages = ring;
    const Schedule s = persistent_schedule("round_robin", tg, gpu, round_robin_order(tg, blocks), blocks);
    // The program's ring is the one asked for, and its footprint the tiles'.
    const std::string src = emit_source(s);
    CHECK((src.find("#define ANVIL_GEMV_RING_STAGES " + std::to_string(ring) + "\n") != std::string::npos) == (ring != 0));
    CHECK(megakernel_smem_bytes(s) >= anvil_gemv_ring_bytes(ring ? ring : ANVIL_GEMV_RING_STAGES));
    HostRunOptions opt;
    opt.check_races = true;
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_simt(s, values, opt), cases.size() * 5);
}

TEST_CASE("simt: the ring walk stages x in shared memory when it fits, reads it from global memory when not", "[simt][gemv]") {
    // Rows of x at the edge of the room the GPU's budget leaves a GEMV
    // (gemv_x_limit: 82864 bytes on the H100, over 48 KB of shared memory
    // for the tile) and on either side of it, in f32 and bf16: one row of
    // the largest K that fits, four rows; one element more does not (the
    // walk then reads x from global memory). Odd K, rows of x that are not
    // 16-byte aligned (M > 1, K odd: their staging is scalar), K below one
    // stage, N past the last full tile; B's rows 16-byte aligned, so the ring
    // takes them all.
    const DType dtype = GENERATE(DType::f32, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Gpu& gpu = default_gpu();
    const int e = static_cast<int>(dtype_size(dtype)), room = gemv_x_limit(gpu);
    const int full = room / 16 * 16 / e, full4 = room / 4 / 16 * 16 / e;  // the largest K of one row, of four
    const std::vector<MmCase> cases = {{1, full, 40, false},     {1, full + 1, 40, false}, {4, full4, 24, false},
                                       {4, full4 + 1, 24, false}, {3, 1001, 8, false},   {2, 7, 136, false},
                                       {1, 1, 16, false}};
    const int widths[] = {16, 64};
    const Graph g = cases_graph("x_staged", dtype, cases, 2);
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) {
        op = as_gemv(op, widths[case_index(op)]);
        const auto& p = std::get<MatmulParams>(op.params);
        const bool edge_past = (p.M == 1 && p.K == full + 1) || (p.M == 4 && p.K == full4 + 1);
        CAPTURE(op.name, p.M, p.K);
        CHECK(gemv_staged_x_bytes(op, gpu) == (edge_past ? 0 : anvil_gemv_x_bytes(p.M, p.K, e)));
    }
    // Three blocks round robin: a block's tasks alternate staged and global x
    // while the ring runs on across them.
    const Schedule s = persistent_schedule("round_robin", tg, gpu, round_robin_order(tg, 3), 3);
    CHECK(emit_source(s).find("#define ANVIL_GEMV_X_BYTES " + std::to_string(room / 16 * 16) + "\n") != std::string::npos);
    HostRunOptions opt;
    opt.check_races = true;
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_simt(s, values, opt), cases.size() * 2);
}

TEST_CASE("simt: the GEMV in every width, both B layouts", "[simt][gemv]") {
    const std::vector<MmCase> cases = {{1, 37, 129, false}, {3, 64, 136, false}, {2, 130, 75, true},
                                       {4, 256, 40, true},  {1, 40, 1000, false}, {1, 1000, 24, true}};
    const int widths[] = {16, 32, 64, 128, 256};
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = cases_graph("gemv_simt", dtype, cases, 5);
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) op = as_gemv(op, widths[case_index(op)]);
    const Schedule s = launch_per_rop("per_op", tg, default_gpu(), "op_");
    REQUIRE(rops_with(s, ANVIL_MM_GEMV) == static_cast<int>(cases.size() * 5));
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_simt(s, values), cases.size() * 5);
}
