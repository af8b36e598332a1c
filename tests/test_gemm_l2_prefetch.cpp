// The L2 prefetch of a tensor-core matmul tile's fixed B ahead of its
// stages (`--gemm-l2-prefetch`, rtasks/matmul_tc.cuh; anvil_mm_l2_piece and
// anvil_mm_l2_ahead in rtasks/tiling.cuh): the pieces of a slice are its
// rows in memory, each a piece the bulk prefetch takes, covering exactly
// the slice's bytes (rounded up to 16 where a view's row ends inside 16
// bytes); on simt, where every copy a stage makes of B from slice
// STAGES - 1 on must read bytes the block prefetched, tiles of every
// 16-bit and TF32 format over odd shapes and both layouts of B compute the
// reference; a prefetch one slice late, a first window one slice short or
// a piece one row off is refused; NVRTC compiles it for sm_90 and sm_80
// without adding spills; the command line turns it on.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "byte_ranges.h"
#include "codegen/emit.h"
#include "matmul_cases.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/orders.h"
#include "schedule/variants.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

using test::Intervals;
using test::merged;
using test::read_file;

// Cases with K long enough for many slices past the first stages (600,
// 1000), odd M and N, both layouts of B (transpose_b: k contiguous), N = 33
// (a 16-bit B whose rows are not 16-byte multiples: staged element by
// element, so no prefetch) and a short K (no slice past the first stages).
const std::vector<test::MmCase> kCases = {{33, 600, 136, false}, {7, 1000, 72, true},  {129, 264, 40, false},
                                          {70, 600, 64, true},   {5, 129, 33, false}, {40, 48, 96, false}};

// BM x BN in `stages` stages, one per variant of each case.
struct Shape {
    int bm, bn, stages;
};
const Shape kShapes[] = {{32, 64, 3}, {64, 128, 4}, {128, 32, 3}};
const int kShapeCount = sizeof(kShapes) / sizeof(kShapes[0]);

// Every rOp on tensor cores in its variant's shape, the deepest slice that
// fits; `blocks` persistent blocks dealt round-robin, so a block runs
// several tiles.
Schedule schedule_of(const Graph& g, F32Precision precision, bool prefetch, int blocks) {
    TileGraph tg = decompose(g);
    Gpu gpu = default_gpu();
    gpu.f32_precision = precision;
    gpu.gemm_l2_prefetch = prefetch;
    for (ROp& op : tg.rops) {
        const Shape sh = kShapes[std::stoi(op.name.substr(op.name.rfind("_v") + 2))];
        const int bk = deepest_tensor_core_bk(op, sh.bm, sh.bn, gpu, sh.stages);
        REQUIRE(bk > 0);
        op = on_tensor_cores(op, sh.bm, sh.bn, bk, precision, sh.stages);
    }
    return persistent_schedule("round_robin", tg, gpu, round_robin_order(tg, blocks), blocks);
}

}  // namespace

TEST_CASE("GEMM L2 prefetch: a slice's pieces are its rows in memory, whole and 16-byte units",
          "[gemm][prefetch]") {
    // B is K x N of `elem` bytes at `pitch` bytes a row in memory (a view:
    // the pitch may exceed the row).
    struct Case {
        bool n_fast;
        int K, N, elem;
        int64_t pitch;
    };
    const Case cases[] = {{true, 600, 136, 2, 272},   {true, 129, 33, 2, 128},  {false, 1000, 72, 2, 2000},
                          {false, 37, 70, 2, 96},     {true, 264, 40, 4, 160},  {false, 33, 129, 4, 144},
                          {true, 7, 1, 2, 16}};
    for (const Case& c : cases)
        for (int bk : {16, 32, 64})
            for (int bn : {32, 64, 128})
                for (int k0 = 0; k0 < c.K + bk; k0 += bk)
                    for (int n0 = 0; n0 < c.N; n0 += bn) {
                        INFO((c.n_fast ? "n contiguous" : "k contiguous") << ", K " << c.K << ", N " << c.N << ", "
                                                                          << c.elem << " B, pitch " << c.pitch
                                                                          << "; slice at k " << k0 << " x " << bk
                                                                          << ", columns " << n0 << " x " << bn);
                        Intervals got;
                        anvil_i64 offset = 0;
                        unsigned bytes = 0;
                        int i = 0;
                        for (; anvil_mm_l2_piece(c.n_fast, c.pitch, k0, bk, c.K, n0, bn, c.N, c.elem, i, &offset,
                                                 &bytes);
                             ++i) {
                            REQUIRE(i < 100000);
                            CHECK(offset % 16 == 0);  // the pitch and the tile's corner are 16-byte multiples
                            CHECK(bytes % 16 == 0);
                            CHECK(bytes > 0);
                            got.emplace_back(offset, offset + bytes);
                        }
                        // What the slice reads, each row's bytes rounded up to 16.
                        const int k_left = std::max(0, std::min(bk, c.K - k0)), n_left = std::min(bn, c.N - n0);
                        const int rows = c.n_fast ? k_left : n_left, cols = c.n_fast ? n_left : k_left;
                        CHECK(i == (cols > 0 ? rows : 0));
                        Intervals want;
                        for (int r = 0; r < rows && cols > 0; ++r) {
                            const int64_t start = c.n_fast ? (k0 + r) * c.pitch + int64_t(n0) * c.elem
                                                           : (n0 + r) * c.pitch + int64_t(k0) * c.elem;
                            want.emplace_back(start, start + (cols * c.elem + 15) / 16 * 16);
                        }
                        CHECK(merged(got) == merged(want));
                    }
    // Slices ahead: the 32 KB distance in whole slices, at least one.
    CHECK(anvil_mm_l2_ahead(2048) == 16);   // 32 x 32 x 32 of f16
    CHECK(anvil_mm_l2_ahead(8192) == 4);    // 64 x 64 of f16
    CHECK(anvil_mm_l2_ahead(3000) == 10);
    CHECK(anvil_mm_l2_ahead(32768) == 1);
    CHECK(anvil_mm_l2_ahead(65536) == 1);
}

TEST_CASE("GEMM L2 prefetch: tiles on simt compute the reference, every stage's copy of B past the first stages "
          "coming from bytes the block prefetched",
          "[gemm][prefetch][simt][tensor]") {
    struct Format {
        DType dtype;
        F32Precision precision;
    };
    const Format f = GENERATE(Format{DType::f16, F32Precision::f32}, Format{DType::bf16, F32Precision::f32},
                              Format{DType::f32, F32Precision::tf32});
    CAPTURE(dtype_name(f.dtype));
    const Graph g = test::matmul_cases_graph("gemm_l2", f.dtype, kCases, kShapeCount, 17);
    const Schedule s = schedule_of(g, f.precision, true, 3);
    CHECK(emit_source(s).find("#define ANVIL_GEMM_L2_PREFETCH 1\n") != std::string::npos);
    HostRunOptions opt;
    opt.check_races = true;
    const TensorMap values = make_values(g, std::nullopt);
    const auto checks = check_outputs(g, run_simt(s, values, opt), reference_execute(g, values), &values, f.precision);
    REQUIRE(checks.size() == kCases.size() * kShapeCount);
    for (const OutputCheck& c : checks) {
        INFO(c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
        CHECK(c.ok());
    }
    // Off by default: the header's 0 alone.
    const std::string off = emit_source(schedule_of(g, f.precision, false, 3));
    const std::string define = "#define ANVIL_GEMM_L2_PREFETCH ";
    CHECK(off.find(define) == off.rfind(define));
    CHECK(off.find(define + "0\n") != std::string::npos);
}

TEST_CASE("GEMM L2 prefetch: simt refuses a stage's copy of B the prefetch should have covered and did not",
          "[gemm][prefetch][simt][mutation]") {
    const Graph g = test::matmul_cases_graph("gemm_l2", DType::f16, kCases, kShapeCount, 17);
    const TensorMap values = make_values(g, std::nullopt);
    const Schedule s = schedule_of(g, F32Precision::f32, true, 2);
    auto refused = [&](const std::string& from, const std::string& to) {
        INFO(from << " -> " << to);
        CHECK_THROWS_WITH(run_simt(s, values, test::with_mutation(from, to)),
                          Catch::Contains("the tile's stage of B copies") &&
                              Catch::Contains("that the block did not prefetch into L2"));
    };
    // Each slice one later than the distance: slice STAGES - 1 + ahead is never prefetched.
    refused("prefetch_b(s + STAGES - 1 + ahead);", "prefetch_b(s + STAGES + ahead);");
    // The first window one slice short at its start.
    refused("for (int w = STAGES - 1; w < STAGES - 1 + ahead; ++w) prefetch_b(w);",
            "for (int w = STAGES; w < STAGES - 1 + ahead; ++w) prefetch_b(w);");
    // Each piece a row off (both layouts, then the row piece both prefetches share).
    refused("const anvil_i64 first = n_fast ? k0 * pitch", "const anvil_i64 first = n_fast ? (k0 + 1) * pitch");
    refused(": n0 * pitch + (anvil_i64)k0 * elem;", ": (n0 + 1) * pitch + (anvil_i64)k0 * elem;");
    refused("*offset = first + (anvil_i64)i * pitch;", "*offset = first + (anvil_i64)(i + 1) * pitch;");
}

TEST_CASE("GEMM L2 prefetch: compiles with NVRTC for sm_90 and sm_80, and adds no spills",
          "[gemm][prefetch][compile]") {
    const Graph g = test::matmul_cases_graph("gemm_l2", DType::bf16, kCases, kShapeCount, 17);
    for (const char* arch : {"sm_90", "sm_80"}) {
        INFO(arch);
        const CubinResult off = compile_nvrtc(emit_source(schedule_of(g, F32Precision::f32, false, 2)), arch);
        const CubinResult on = compile_nvrtc(emit_source(schedule_of(g, F32Precision::f32, true, 2)), arch);
        CHECK(!on.cubin.empty());
        REQUIRE(on.kernels.size() == off.kernels.size());
        for (size_t k = 0; k < on.kernels.size(); ++k) {
            INFO(on.kernels[k].name << ": " << on.kernels[k].spill_stores << " bytes of spill stores against "
                                    << off.kernels[k].spill_stores << ", " << on.kernels[k].registers
                                    << " registers against " << off.kernels[k].registers);
            CHECK(on.kernels[k].spill_stores <= off.kernels[k].spill_stores);
        }
    }
}

TEST_CASE("GEMM L2 prefetch: the command line turns it on, and a model runs with it on simt", "[gemm][prefetch][cli]") {
    const std::string path = (std::filesystem::temp_directory_path() / "anvil_gemm_l2.cu").string();
    const test::CmdResult r = test::run_anvil("schedule models/bert_base_small.yaml --gemm-l2-prefetch --emit " + path);
    CHECK(r.status == 0);
    CHECK(read_file(path).find("#define ANVIL_GEMM_L2_PREFETCH 1\n") != std::string::npos);
    const test::CmdResult plain = test::run_anvil("schedule models/bert_base_small.yaml --emit " + path);
    CHECK(plain.status == 0);
    CHECK(read_file(path).find("#define ANVIL_GEMM_L2_PREFETCH 1\n") == std::string::npos);
    std::filesystem::remove(path);
    const test::CmdResult run = test::run_anvil("run models/bert_base_small.yaml --backend simt --gemm-l2-prefetch");
    CHECK(run.status == 0);
    CHECK_THAT(run.output, Catch::Contains(") ok") && !Catch::Contains("FAILED"));
}
