// The L2 prefetch of a GEMV task's fixed weights before its waits
// (`--gemv-l2-prefetch`, rtasks/weight_ring.cuh, anvil_gemv_l2_piece in
// rtasks/tiling.cuh): the pieces cover exactly the rows past the ring's first
// stages, up to the limit, each a piece the bulk prefetch takes (16-byte
// aligned, a multiple of 16 bytes, inside its row); on simt, whose ring
// checks that every stage the prefetch covers was prefetched before the
// task's waits, blocks running several ring tiles on compute the reference,
// a missing or misplaced prefetch is refused, and so is a piece of the wrong
// size; NVRTC compiles it
// for sm_90 (bulk prefetch) and sm_80 (a prefetch per line) without adding
// spills; the command
// line takes the size in KB.
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
#include "tile/decompose.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

using test::Intervals;
using test::merged;
using test::read_file;

struct Stream {
    int64_t pitch;
    int row_shift, valid, K;
};

// Every piece of `s` from stage `from` on up to `limit`, each checked as the
// bulk prefetch needs it and inside its row; their bytes, merged.
Intervals pieces(const Stream& s, int from, int limit, int* count) {
    Intervals out;
    anvil_i64 offset = 0;
    unsigned bytes = 0;
    for (*count = 0; anvil_gemv_l2_piece(s.pitch, s.row_shift, s.valid, s.K, from, limit, *count, &offset, &bytes);
         ++*count) {
        INFO("piece " << *count << " at " << offset << ", " << bytes << " bytes");
        REQUIRE(*count < 1000000);
        CHECK(bytes > 0);
        CHECK(bytes % 16 == 0);
        CHECK(offset % 16 == 0);
        CHECK(bytes <= ANVIL_GEMV_L2_PIECE_BYTES);
        out.emplace_back(offset, offset + bytes);
    }
    return merged(out);
}

// What the pieces must cover: rows k0 .. k0 + rows - 1, each its valid bytes
// rounded up to 16, where k0 is stage `from`'s first row and rows as many as
// the limit allows.
Intervals expected(const Stream& s, int from, int limit) {
    const int k0 = from * ((ANVIL_GEMV_STAGE_BYTES / 16) >> s.row_shift), piece = (s.valid + 15) / 16 * 16;
    Intervals out;
    for (int r = k0; r < s.K && (r - k0 + 1) * piece <= limit; ++r) out.emplace_back(r * s.pitch, r * s.pitch + piece);
    return merged(out);
}

const int kAll = 1 << 30;

// The ring cases of test_simt.cpp's "runs on" test: several GEMV tiles a
// block, every width, K long enough for a walk to run past the ring's first
// stages (600, 1000), an unaligned N and x @ W^T that take no ring; and
// N = 64, whose BN-64 tile's rows are one run of memory (4 KB pieces).
const std::vector<test::MmCase> kRingCases = {{1, 600, 88, false}, {3, 129, 136, false}, {1, 1000, 40, false},
                                              {2, 600, 75, true},  {1, 40, 300, false},  {1, 600, 77, false},
                                              {1, 1000, 64, false}};

// Each case once per width (its node y<case>_v<width index>).
int width_index(const ROp& op) { return std::stoi(op.name.substr(op.name.rfind("_v") + 2)); }

Schedule ring_schedule(const Graph& g, int prefetch_bytes, int blocks) {
    const int widths[] = {16, 32, 64, 128, 256};
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) op = as_gemv(op, widths[width_index(op)]);
    Gpu gpu = default_gpu();
    gpu.gemv_l2_prefetch_bytes = prefetch_bytes;
    return persistent_schedule("round_robin", tg, gpu, round_robin_order(tg, blocks), blocks);
}


}  // namespace

TEST_CASE("GEMV L2 prefetch: the pieces cover the rows past the ring's first stages, up to the limit",
          "[gemv][prefetch]") {
    const int from = ANVIL_GEMV_RING_STAGES - 1;
    struct Case {
        const char* what;
        Stream s;
        int limit;
    };
    const Case cases[] = {
        // A BN 16 bf16 tile of a [4096, 4096] weight: 32-byte pieces of rows 8 KB apart.
        {"strided rows", {8192, 1, 32, 4096}, kAll},
        {"strided rows, 8 KB of them", {8192, 1, 32, 4096}, 8192},
        // The last tile of N = 4100 in f32: 16 valid bytes of a 64-byte row.
        {"a row part inside N", {16400, 2, 16, 1001}, kAll},
        // 40 valid bytes of 64: 48 prefetched, inside the row's pitch.
        {"valid bytes not a multiple of 16", {8192, 2, 40, 777}, kAll},
        // A blocked weight's block (rows one run): 4 KB pieces.
        {"one run of rows", {32, 1, 32, 4096}, kAll},
        {"one run of rows, 10000 bytes of it", {32, 1, 32, 4096}, 10000},
        {"one run of 512-byte rows", {512, 5, 512, 333}, kAll},
        // Rows one pitch apart but only part of each inside N: per row.
        {"a run's rows part inside N", {64, 2, 48, 900}, kAll},
        // K ends within the ring's first stages: nothing to prefetch.
        {"K within the first stages", {8192, 1, 32, 100}, kAll},
    };
    for (const Case& c : cases) {
        INFO(c.what);
        int count = 0;
        const Intervals got = pieces(c.s, from, c.limit, &count);
        CHECK(got == expected(c.s, from, c.limit));
        for (const auto& iv : got) {  // inside the stream's rows, never past K
            CHECK(iv.first >= 0);
            CHECK(iv.second <= (c.s.K - 1) * c.s.pitch + (16 << c.s.row_shift));
        }
        if (std::string(c.what) == "strided rows") CHECK(count == 4096 - from * 256);  // a piece per row
        if (std::string(c.what) == "one run of rows") CHECK(count == ((4096 - from * 256) * 32 + 4095) / 4096);
        if (std::string(c.what) == "K within the first stages") CHECK(count == 0);
    }
    // Nothing before stage 0's rows, nothing past the last.
    anvil_i64 offset = 0;
    unsigned bytes = 0;
    CHECK_FALSE(anvil_gemv_l2_piece(8192, 1, 32, 4096, from, kAll, -1, &offset, &bytes));
    CHECK(anvil_gemv_l2_piece(8192, 1, 32, 4096, 0, kAll, 0, &offset, &bytes));
    CHECK(offset == 0);
}

TEST_CASE("GEMV L2 prefetch: blocks running ring tiles on compute the reference on simt with races and coverage checked",
          "[gemv][prefetch][simt]") {
    for (DType dtype : {DType::f32, DType::bf16})
        for (int prefetch : {8192, 1 << 20}) {
            INFO(dtype_name(dtype) << ", " << prefetch << " bytes");
            const Graph g = test::matmul_cases_graph("l2_prefetch", dtype, kRingCases, 5, 5);
            const Schedule s = ring_schedule(g, prefetch, 3);
            CHECK(emit_source(s).find("#define ANVIL_GEMV_L2_PREFETCH_BYTES " + std::to_string(prefetch) + "\n") !=
                  std::string::npos);
            HostRunOptions opt;
            opt.check_races = true;
            const TensorMap values = make_values(g, std::nullopt);
            test::expect_reference(g, values, run_simt(s, values, opt), kRingCases.size() * 5);
        }
    // Off by default: no define, no prefetch.
    const Graph g = test::matmul_cases_graph("l2_prefetch", DType::bf16, kRingCases, 5, 5);
    const std::string off = emit_source(ring_schedule(g, 0, 3));
    const std::string define = "#define ANVIL_GEMV_L2_PREFETCH_BYTES ";
    CHECK(off.find(define) == off.rfind(define));  // tiling.cuh's default of 0 alone
    CHECK(off.find(define + "0\n") != std::string::npos);
}

TEST_CASE("GEMV L2 prefetch: a piece the bulk prefetch cannot take is refused by simt", "[gemv][prefetch][simt][mutation]") {
    const Graph g = test::matmul_cases_graph("l2_prefetch", DType::bf16, kRingCases, 5, 5);
    const HostRunOptions odd = test::with_mutation("return (valid + 15) / 16 * 16;", "return valid + 1;");
    CHECK_THROWS_WITH(run_simt(ring_schedule(g, 1 << 20, 3), make_values(g, std::nullopt), odd),
                      Catch::Contains("cp.async.bulk.prefetch.L2 of") &&
                          Catch::Contains("the size must be a non-zero multiple of 16"));
}

TEST_CASE("GEMV L2 prefetch: simt refuses a ring stage the prefetch should have covered and did not",
          "[gemv][prefetch][simt][mutation]") {
    // One block runs every tile: a walk hands its ring to the next task, whose
    // prefetch then comes from ring.next (the else branch).
    const Graph g = test::matmul_cases_graph("l2_prefetch", DType::bf16, kRingCases, 5, 5);
    const TensorMap values = make_values(g, std::nullopt);
    auto refused = [&](const std::string& from, const std::string& to) {
        CHECK_THROWS_WITH(run_simt(ring_schedule(g, 1 << 20, 1), values, test::with_mutation(from, to)),
                          Catch::Contains("that the block did not prefetch into L2 before the task's waits"));
    };
    // The task's own stream when the previous task issued its first stages: none.
    refused("anvil_ring_prefetch_l2(ring.next, ", "anvil_ring_prefetch_l2(anvil_ring_none(), ");
    // ... or when it issues them itself.
    refused("anvil_ring_prefetch_l2(own, ", "anvil_ring_prefetch_l2(anvil_ring_none(), ");
    // A row short: each piece's row one below.
    refused("return anvil_l2_row_piece(k0 * pitch, pitch,", "return anvil_l2_row_piece((k0 + 1) * pitch, pitch,");
    // A run's pieces of 4 KB skipping every other one.
    refused("const anvil_i64 run = (anvil_i64)rows * row_bytes, o = (anvil_i64)i * ANVIL_GEMV_L2_PIECE_BYTES;",
            "const anvil_i64 run = (anvil_i64)rows * row_bytes, o = (anvil_i64)i * 2 * ANVIL_GEMV_L2_PIECE_BYTES;");
}

TEST_CASE("GEMV L2 prefetch: compiles with NVRTC for sm_90 and sm_80, and adds no spills",
          "[gemv][prefetch][compile]") {
    // The persistent loop of two blocks, every GEMV width inlined beside it:
    // each kernel's spills with the prefetch are at most those without.
    const Graph g = test::matmul_cases_graph("l2_prefetch", DType::bf16, kRingCases, 5, 5);
    for (const char* arch : {"sm_90", "sm_80"}) {
        INFO(arch);
        const CubinResult off = compile_nvrtc(emit_source(ring_schedule(g, 0, 2)), arch);
        const CubinResult on = compile_nvrtc(emit_source(ring_schedule(g, 256 * 1024, 2)), arch);
        CHECK(!on.cubin.empty());
        REQUIRE(on.kernels.size() == off.kernels.size());
        for (size_t k = 0; k < on.kernels.size(); ++k) {
            INFO(on.kernels[k].name << ": " << on.kernels[k].spill_stores << " bytes of spill stores against "
                                    << off.kernels[k].spill_stores);
            CHECK(on.kernels[k].spill_stores <= off.kernels[k].spill_stores);
        }
    }
}

TEST_CASE("GEMV L2 prefetch: the command line takes KB, 256 by default, and refuses a size out of range",
          "[gemv][prefetch][cli]") {
    const std::string path = (std::filesystem::temp_directory_path() / "anvil_l2_prefetch.cu").string();
    for (const auto& [flag, bytes] : std::vector<std::pair<std::string, int>>{{"--gemv-l2-prefetch", 262144},
                                                                                 {"--gemv-l2-prefetch=64", 65536}}) {
        INFO(flag);
        const test::CmdResult r = test::run_anvil("schedule models/llama_decode_small.yaml " + flag + " --emit " + path);
        CHECK(r.status == 0);
        CHECK(read_file(path).find("#define ANVIL_GEMV_L2_PREFETCH_BYTES " + std::to_string(bytes) + "\n") !=
              std::string::npos);
    }
    const test::CmdResult small = test::run_anvil("schedule models/llama_decode_small.yaml --gemv-l2-prefetch=4");
    CHECK(small.status == 2);
    CHECK_THAT(small.output, Catch::Contains("--gemv-l2-prefetch") && Catch::Contains("4 not in range"));
    // Given twice, the last one counts (not their sum).
    const test::CmdResult twice =
        test::run_anvil("schedule models/llama_decode_small.yaml --gemv-l2-prefetch --gemv-l2-prefetch=64 --emit " + path);
    CHECK(twice.status == 0);
    CHECK(read_file(path).find("#define ANVIL_GEMV_L2_PREFETCH_BYTES 65536\n") != std::string::npos);
    std::filesystem::remove(path);
    const test::CmdResult run =
        test::run_anvil("run models/llama_decode_small.yaml --backend simt --gemv-l2-prefetch=16");
    CHECK(run.status == 0);
    CHECK_THAT(run.output, Catch::Contains("output lm_head") && Catch::Contains(") ok") && !Catch::Contains("FAILED"));
}
