// The simt emulation layer itself (rtasks/simt.cuh through platform.cuh's
// simt branch, compiled into this test): the mma.sync m16n8k16 fragment
// layout against lane -> element examples transcribed from the PTX ISA's
// figures, the emulated mma against a plain product, the block
// reductions and shuffles, cp.async landing at its wait_group, and the
// reports of a divergent barrier and a shuffle whose lanes did not arrive.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>

#define ANVIL_SIMT 1
#define ANVIL_SMEM_BYTES 8192
#include "rtasks/params.cuh"
#include "rtasks/simt.cuh"
#include "rtasks/platform.cuh"

namespace {

// Runs body as one block of 256 fibers; returns the report ("" when none).
template <class F>
std::string run(F body, bool* ok = nullptr) {
    anvil_simt_configure(1);
    AnvilStatus status{};
    const bool r = anvil_as_block(7, 3, 0, &status, body);
    if (ok) *ok = r;
    char msg[1024];
    const int task = anvil_simt_report(msg, sizeof msg);
    if (task < 0) return "";
    CHECK(task == 7);
    CHECK(status.code == ANVIL_SIMT_CHECK);
    return msg;
}

struct Where {
    char operand;  // 'a', 'b' or 'c' (C and D)
    int lane, element, row, col;
};
// From the PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point
// type": the figures label each element of A (16 x 16), B (16 x 8) and C/D
// (16 x 8) with the lane T<n> and the fragment element a<i>, b<i>, c<i>.
const Where kPtxFigures[] = {
    {'a', 0, 0, 0, 0},   {'a', 0, 1, 0, 1},   {'a', 1, 0, 0, 2},  {'a', 3, 1, 0, 7},   {'a', 0, 2, 8, 0},
    {'a', 0, 3, 8, 1},   {'a', 0, 4, 0, 8},   {'a', 0, 5, 0, 9},  {'a', 0, 6, 8, 8},   {'a', 0, 7, 8, 9},
    {'a', 4, 0, 1, 0},   {'a', 29, 0, 7, 2},  {'a', 30, 5, 7, 13}, {'a', 31, 7, 15, 15}, {'a', 17, 2, 12, 2},
    {'b', 0, 0, 0, 0},   {'b', 0, 1, 1, 0},   {'b', 1, 0, 2, 0},  {'b', 3, 1, 7, 0},   {'b', 0, 2, 8, 0},
    {'b', 0, 3, 9, 0},   {'b', 4, 0, 0, 1},   {'b', 28, 0, 0, 7}, {'b', 31, 3, 15, 7}, {'b', 13, 2, 10, 3},
    {'c', 0, 0, 0, 0},   {'c', 0, 1, 0, 1},   {'c', 1, 0, 0, 2},  {'c', 0, 2, 8, 0},   {'c', 0, 3, 8, 1},
    {'c', 4, 0, 1, 0},   {'c', 31, 0, 7, 6},  {'c', 31, 3, 15, 7}, {'c', 18, 1, 4, 5},
};

unsigned short half_bits(float f, bool bf16) { return bf16 ? anvil_f32_to_bf16(f) : anvil_f32_to_f16(f); }
float half_value(unsigned short h, bool bf16) { return bf16 ? anvil_bf16_to_f32(h) : anvil_f16_to_f32(h); }

}  // namespace

TEST_CASE("simt emulator: the mma fragment layout is the PTX ISA's", "[simt][emulator]") {
    for (const Where& w : kPtxFigures) {
        int row = -1, col = -1;
        if (w.operand == 'a') anvil_simt::frag_a(w.lane, w.element, &row, &col);
        if (w.operand == 'b') anvil_simt::frag_b(w.lane, w.element, &row, &col);
        if (w.operand == 'c') anvil_simt::frag_c(w.lane, w.element, &row, &col);
        INFO(w.operand << w.element << " of lane " << w.lane);
        CHECK(row == w.row);
        CHECK(col == w.col);
    }
    // Every element of each matrix belongs to exactly one (lane, element).
    int a[16][16] = {}, b[16][8] = {}, c[16][8] = {};
    for (int lane = 0; lane < 32; ++lane) {
        int r, k;
        for (int i = 0; i < 8; ++i) anvil_simt::frag_a(lane, i, &r, &k), ++a[r][k];
        for (int i = 0; i < 4; ++i) anvil_simt::frag_b(lane, i, &r, &k), ++b[r][k];
        for (int i = 0; i < 4; ++i) anvil_simt::frag_c(lane, i, &r, &k), ++c[r][k];
    }
    for (int r = 0; r < 16; ++r)
        for (int k = 0; k < 16; ++k) {
            CHECK(a[r][k] == 1);
            if (k < 8) CHECK((b[r][k] == 1 && c[r][k] == 1));
        }
}

TEST_CASE("simt emulator: mma.sync m16n8k16 computes A x B + C per warp", "[simt][emulator]") {
    const bool bf16 = GENERATE(false, true);
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    // Per warp its own A, B (stored as halves) and C.
    static unsigned short A[8][16][16], B[8][16][8];
    static float C[8][16][8], D[8][16][8];
    for (int w = 0; w < 8; ++w)
        for (int r = 0; r < 16; ++r)
            for (int k = 0; k < 16; ++k) {
                A[w][r][k] = half_bits(dist(rng), bf16);
                if (k < 8) B[w][r][k] = half_bits(dist(rng), bf16), C[w][r][k] = dist(rng);
            }
    const std::string report = run([&]() -> bool {
        const int w = anvil_thread() / 32, lane = anvil_thread() % 32;
        unsigned a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
        float d[4];
        int r, k;
        for (int i = 0; i < 8; ++i) anvil_simt::frag_a(lane, i, &r, &k), a[i / 2] |= (unsigned)A[w][r][k] << (16 * (i % 2));
        for (int i = 0; i < 4; ++i) anvil_simt::frag_b(lane, i, &r, &k), b[i / 2] |= (unsigned)B[w][r][k] << (16 * (i % 2));
        for (int i = 0; i < 4; ++i) anvil_simt::frag_c(lane, i, &r, &k), d[i] = C[w][r][k];
        anvil_mma_16816(d, a, b, bf16);
        for (int i = 0; i < 4; ++i) anvil_simt::frag_c(lane, i, &r, &k), D[w][r][k] = d[i];
        return true;
    });
    CHECK(report == "");
    for (int w = 0; w < 8; ++w)
        for (int r = 0; r < 16; ++r)
            for (int n = 0; n < 8; ++n) {
                double s = C[w][r][n];
                for (int k = 0; k < 16; ++k) s += (double)half_value(A[w][r][k], bf16) * half_value(B[w][k][n], bf16);
                INFO("warp " << w << " D[" << r << "][" << n << "]");
                CHECK(D[w][r][n] == (float)s);
            }
}

TEST_CASE("simt emulator: block reductions, warp sums and the broadcast", "[simt][emulator]") {
    static float sums[256], maxes[256], warps[256];
    static int casts[256];
    const std::string report = run([&]() -> bool {
        const int t = anvil_thread();
        sums[t] = anvil_block_sum((float)(t + 1));
        maxes[t] = anvil_block_max((float)((t * 37) % 256));
        warps[t] = anvil_warp_sum((float)t);
        casts[t] = anvil_block_broadcast(t == 0 ? 4242 : t);
        return true;
    });
    CHECK(report == "");
    for (int t = 0; t < 256; ++t) {
        CHECK(sums[t] == 256.0f * 257.0f / 2.0f);
        CHECK(maxes[t] == 255.0f);
        const int w0 = t / 32 * 32;
        CHECK(warps[t] == (float)(32 * w0 + 31 * 32 / 2));
        CHECK(casts[t] == 4242);
    }
}

TEST_CASE("simt emulator: cp.async lands at the wait_group that covers it", "[simt][emulator]") {
    alignas(16) static unsigned char global[256 * 16];
    for (int i = 0; i < 256 * 16; ++i) global[i] = (unsigned char)(i * 7 + 1);
    static unsigned char seen[256][16], second[256][16];
    // Two groups; wait<1> lands the first only; each thread reads its
    // neighbour's first copy after a barrier, then its own second after wait<0>.
    std::string report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        anvil_cp_async16(smem + t * 16, global + t * 16, 16);
        anvil_cp_async_commit();
        anvil_cp_async16(smem + 4096 + t * 16, global + t * 16, 5);  // 11 bytes zero-filled
        anvil_cp_async_commit();
        anvil_cp_async_wait<1>();
        anvil_barrier();
        const int n = (t + 1) % 256;
        for (int i = 0; i < 16; ++i) seen[t][i] = anvil_lds(smem + n * 16 + i);
        anvil_cp_async_wait<0>();
        for (int i = 0; i < 16; ++i) second[t][i] = anvil_lds(smem + 4096 + t * 16 + i);
        return true;
    });
    CHECK(report == "");
    for (int t = 0; t < 256; ++t)
        for (int i = 0; i < 16; ++i) {
            CHECK(seen[t][i] == global[((t + 1) % 256) * 16 + i]);
            CHECK(second[t][i] == (i < 5 ? global[t * 16 + i] : 0));
        }

    // Without the wait the data has not landed: the read is refused.
    report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        anvil_cp_async16(smem + t * 16, global + t * 16, 16);
        anvil_cp_async_commit();
        anvil_barrier();
        (void)anvil_lds(smem + ((t + 1) % 256) * 16);
        anvil_cp_async_wait<0>();
        return true;
    });
    CHECK_THAT(report, Catch::Contains("before the cp.async.wait_group") && Catch::Contains("region 'smem'"));
}

TEST_CASE("simt emulator: divergence at a barrier and at a shuffle is reported", "[simt][emulator]") {
    bool ok = true;
    std::string report = run(
        [&]() -> bool {
            if (anvil_thread() != 3) anvil_barrier();
            return true;
        },
        &ok);
    CHECK_FALSE(ok);
    CHECK_THAT(report, Catch::Contains("255 threads wait at a block barrier") && Catch::Contains("thread 3"));

    report = run([&]() -> bool {
        if (anvil_thread() % 32 != 9) (void)anvil_warp_sum(1.0f);
        return true;
    });
    CHECK_THAT(report, Catch::Contains("lane 9") && Catch::Contains("did not all arrive") ||
                           Catch::Contains("names lane 9, which had ended the task"));
}

TEST_CASE("simt emulator: a race between two threads names both and the offset", "[simt][emulator]") {
    const std::string report = run([&]() -> bool {
        float* smem = (float*)anvil_block_smem();
        if (anvil_thread() == 5) anvil_sts(smem + 10, 1.0f);
        if (anvil_thread() == 200) (void)anvil_lds(smem + 10);
        return true;
    });
    CHECK_THAT(report, Catch::Contains("shared-memory race") && Catch::Contains("thread 200") &&
                           Catch::Contains("thread 5") && Catch::Contains("byte 40 of shared region 'smem'"));
}
