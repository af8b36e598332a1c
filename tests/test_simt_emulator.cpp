// The simt emulation layer itself (rtasks/simt.cuh through platform.cuh's
// simt branch, compiled into this test): the mma.sync m16n8k16 fragment
// layout against lane -> element examples transcribed from the PTX ISA's
// figures, the emulated mma against a plain product, the ldmatrix fragment
// (x1, x2, x4, .trans) against the ISA's figure on random data and its
// reads through the checks, the block reductions and shuffles, cp.async.cg
// and cp.async.ca (4, 8, 16 bytes, zero-fill) landing at their wait_group,
// and the reports of a divergent barrier and a shuffle whose lanes did not
// arrive.
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
#include "runtime/tensor_map.h"

using anvil::encode_tma_simt;
using anvil::TmaView;

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

namespace {

struct LdWhere {
    bool trans;
    int lane, half, row, col;
};
// From the PTX ISA, ldmatrix: the figure of the fragment of one 8x8 matrix
// of 16-bit elements labels row r's elements, two per thread, with threads
// T(4r) .. T(4r+3) (T0 holds row 0 columns 0 and 1, T1 columns 2 and 3, ...,
// T31 row 7 columns 6 and 7); with .trans the matrix is read column-major,
// so the same labels fall on the transpose (T0 holds rows 0 and 1 of
// column 0, T1 rows 2 and 3, T4 rows 0 and 1 of column 1).
const LdWhere kLdmatrixFigure[] = {
    {false, 0, 0, 0, 0},  {false, 0, 1, 0, 1},  {false, 1, 0, 0, 2},  {false, 3, 1, 0, 7},  {false, 4, 0, 1, 0},
    {false, 7, 1, 1, 7},  {false, 13, 0, 3, 2}, {false, 22, 1, 5, 5}, {false, 31, 0, 7, 6}, {false, 31, 1, 7, 7},
    {true, 0, 0, 0, 0},   {true, 0, 1, 1, 0},   {true, 1, 0, 2, 0},   {true, 3, 1, 7, 0},   {true, 4, 0, 0, 1},
    {true, 7, 1, 7, 1},   {true, 13, 0, 2, 3},  {true, 22, 1, 5, 5},  {true, 31, 0, 6, 7},  {true, 31, 1, 7, 7},
};

// Rows of matrix i, row r of warp w in shared memory: 32 slots of 16 bytes
// per warp, scattered (slot (8i + r) * 5 % 32), so that each lane's address
// matters.
int ld_slot(int i, int r) { return (8 * i + r) * 5 % 32; }

}  // namespace

TEST_CASE("simt emulator: the ldmatrix fragment layout is the PTX ISA's", "[simt][emulator]") {
    for (const LdWhere& w : kLdmatrixFigure) {
        int row = -1, col = -1;
        anvil_simt::ldmatrix_frag(w.lane, w.half, w.trans, &row, &col);
        INFO((w.trans ? ".trans " : "") << "half " << w.half << " of lane " << w.lane);
        CHECK(row == w.row);
        CHECK(col == w.col);
    }
    // The addresses: threads 0-7 give matrix 0's rows, 8-15 matrix 1's, ...
    CHECK(anvil_simt::ldmatrix_addr_lane(0, 0) == 0);
    CHECK(anvil_simt::ldmatrix_addr_lane(0, 7) == 7);
    CHECK(anvil_simt::ldmatrix_addr_lane(1, 0) == 8);
    CHECK(anvil_simt::ldmatrix_addr_lane(3, 7) == 31);
    // Every element of the matrix belongs to exactly one (lane, half).
    for (bool trans : {false, true}) {
        int seen[8][8] = {};
        for (int lane = 0; lane < 32; ++lane)
            for (int h = 0; h < 2; ++h) {
                int r, c;
                anvil_simt::ldmatrix_frag(lane, h, trans, &r, &c);
                ++seen[r][c];
            }
        for (int r = 0; r < 8; ++r)
            for (int c = 0; c < 8; ++c) CHECK(seen[r][c] == 1);
    }
}

TEST_CASE("simt emulator: ldmatrix x1, x2, x4, with and without .trans", "[simt][emulator]") {
    std::mt19937 rng(1207);
    std::uniform_int_distribution<int> bits(0, 0xffff);
    static unsigned short M[8][4][8][8];  // warp, matrix, row, column
    for (auto& w : M)
        for (auto& m : w)
            for (auto& r : m)
                for (unsigned short& e : r) e = (unsigned short)bits(rng);
    static unsigned got[6][256][4];
    const std::string report = run([&]() -> bool {
        const int t = anvil_thread(), w = t / 32, lane = t % 32;
        unsigned short* smem = (unsigned short*)anvil_block_smem() + w * 256;
        // Lane l stores row l % 8 of matrix l / 8 into its slot.
        const int i = lane / 8, r = lane % 8;
        for (int c = 0; c < 8; ++c) anvil_sts(smem + ld_slot(i, r) * 8 + c, M[w][i][r][c]);
        anvil_barrier();
        for (int v = 0; v < 6; ++v) {
            const int num = v % 3 == 0 ? 1 : v % 3 == 1 ? 2 : 4;
            const int l = lane % (8 * num);  // higher lanes repeat the lower addresses
            const unsigned short* row = smem + ld_slot(l / 8, l % 8) * 8;
            unsigned* o = got[v][t];
            if (v == 0) anvil_ldmatrix_x1(o, row);
            if (v == 1) anvil_ldmatrix_x2(o, row);
            if (v == 2) anvil_ldmatrix_x4(o, row);
            if (v == 3) anvil_ldmatrix_x1_trans(o, row);
            if (v == 4) anvil_ldmatrix_x2_trans(o, row);
            if (v == 5) anvil_ldmatrix_x4_trans(o, row);
        }
        return true;
    });
    CHECK(report == "");
    for (int v = 0; v < 6; ++v) {
        const int num = v % 3 == 0 ? 1 : v % 3 == 1 ? 2 : 4;
        const bool trans = v >= 3;
        for (int t = 0; t < 256; ++t)
            for (int i = 0; i < num; ++i) {
                const int w = t / 32, lane = t % 32;
                INFO("x" << num << (trans ? ".trans" : "") << " thread " << t << " matrix " << i);
                // The elements the figure names, then every element by ldmatrix_frag.
                for (const LdWhere& f : kLdmatrixFigure)
                    if (f.trans == trans && f.lane == lane)
                        CHECK((got[v][t][i] >> (16 * f.half) & 0xffffu) == M[w][i][f.row][f.col]);
                int r, c;
                unsigned expect = 0;
                for (int h = 0; h < 2; ++h) {
                    anvil_simt::ldmatrix_frag(lane, h, trans, &r, &c);
                    expect |= (unsigned)M[w][i][r][c] << (16 * h);
                }
                CHECK(got[v][t][i] == expect);
            }
    }
}

TEST_CASE("simt emulator: ldmatrix reads through the checks", "[simt][emulator]") {
    // A row no thread wrote: lane 5 of warp 2 skips its store.
    std::string report = run([&]() -> bool {
        const int t = anvil_thread(), lane = t % 32;
        unsigned short* smem = (unsigned short*)anvil_block_smem() + (t / 32) * 256;
        if (t != 2 * 32 + 5)
            for (int c = 0; c < 8; ++c) anvil_sts(smem + lane * 8 + c, (unsigned short)c);
        anvil_barrier();
        unsigned r[4];
        anvil_ldmatrix_x4(r, smem + lane * 8);
        return true;
    });
    CHECK_THAT(report, Catch::Contains("thread 69 (warp 2 lane 5) read (ldmatrix) byte 1104 of shared region 'smem'") &&
                           Catch::Contains("which no thread wrote since the task began"));

    // Another warp's store with no barrier before the ldmatrix.
    report = run([&]() -> bool {
        const int t = anvil_thread(), lane = t % 32;
        unsigned short* smem = (unsigned short*)anvil_block_smem();
        if (t / 32 == 1)
            for (int c = 0; c < 8; ++c) anvil_sts(smem + lane * 8 + c, (unsigned short)c);
        if (t / 32 == 0) {
            unsigned r[2];
            anvil_ldmatrix_x2_trans(r, smem + (lane % 16) * 8);
        }
        return true;
    });
    CHECK_THAT(report, Catch::Contains("shared-memory race") && Catch::Contains("(ldmatrix)") &&
                           Catch::Contains("warp 1") && Catch::Contains("region 'smem'"));

    // A row address that is not 16-byte aligned, and one out of bounds.
    report = run([&]() -> bool {
        unsigned short* smem = (unsigned short*)anvil_block_smem();
        for (int c = 0; c < 16; ++c) anvil_sts(smem + anvil_thread() * 16 + c, (unsigned short)c);
        anvil_barrier();
        unsigned r[1];
        anvil_ldmatrix_x1(r, smem + (anvil_thread() % 32) * 8 + (anvil_thread() == 3 ? 4 : 0));
        return true;
    });
    CHECK_THAT(report, Catch::Contains("thread 3 (warp 0 lane 3)") && Catch::Contains("not 16-byte aligned"));
    report = run([&]() -> bool {
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        unsigned r[2];
        anvil_ldmatrix_x2(r, smem + ANVIL_SMEM_BYTES - 16 + (anvil_thread() % 32 == 12 ? 16 : 0));
        return true;
    });
    CHECK_THAT(report, Catch::Contains("lane 12) read (ldmatrix) 16 bytes") && Catch::Contains("out of bounds"));

    // The lanes of a warp at different ldmatrix shapes.
    report = run([&]() -> bool {
        unsigned short* smem = (unsigned short*)anvil_block_smem();
        for (int c = 0; c < 16; ++c) anvil_sts(smem + anvil_thread() * 16 + c, (unsigned short)c);
        anvil_barrier();
        unsigned r[4];
        if (anvil_thread() % 32 == 9) anvil_ldmatrix_x4_trans(r, smem + 9 * 8);
        else anvil_ldmatrix_x4(r, smem + (anvil_thread() % 32) * 8);
        return true;
    });
    CHECK_THAT(report, Catch::Contains("lane 9): ldmatrix.x4.trans while lane 0 of its warp runs ldmatrix.x4"));
}

TEST_CASE("simt emulator: cp.async.ca of 4, 8 and 16 bytes with zero-fill", "[simt][emulator]") {
    alignas(16) static unsigned char global[256 * 32];
    for (int i = 0; i < 256 * 32; ++i) global[i] = (unsigned char)(i * 13 + 5);
    static int sizes[256][3];
    std::mt19937 rng(3);
    for (int t = 0; t < 256; ++t) {
        sizes[t][0] = std::uniform_int_distribution<int>(0, 16)(rng);
        sizes[t][1] = std::uniform_int_distribution<int>(0, 8)(rng);
        sizes[t][2] = std::uniform_int_distribution<int>(0, 4)(rng);
    }
    static unsigned char seen[256][28];
    // Thread t's 32 bytes: 16 at +0, 8 at +16 (first group), 4 at +24
    // (second group); each thread reads its neighbour's after the barriers.
    std::string report = run([&]() -> bool {
        const int t = anvil_thread(), n = (t + 37) % 256;
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        anvil_cp_async_ca(smem + t * 32, global + t * 32, 16, sizes[t][0]);
        anvil_cp_async_ca(smem + t * 32 + 16, global + t * 32 + 16, 8, sizes[t][1]);
        anvil_cp_async_commit();
        anvil_cp_async_ca(smem + t * 32 + 24, global + t * 32 + 24, 4, sizes[t][2]);
        anvil_cp_async_commit();
        anvil_cp_async_wait<1>();
        anvil_barrier();
        for (int i = 0; i < 24; ++i) seen[t][i] = anvil_lds(smem + n * 32 + i);
        anvil_cp_async_wait<0>();
        anvil_barrier();
        for (int i = 24; i < 28; ++i) seen[t][i] = anvil_lds(smem + n * 32 + i);
        return true;
    });
    CHECK(report == "");
    for (int t = 0; t < 256; ++t) {
        const int n = (t + 37) % 256;
        for (int i = 0; i < 28; ++i) {
            const int part = i < 16 ? 0 : i < 24 ? 1 : 2, at = i - (part == 0 ? 0 : part == 1 ? 16 : 24);
            INFO("thread " << t << " byte " << i);
            CHECK(seen[t][i] == (at < sizes[n][part] ? global[n * 32 + i] : 0));
        }
    }

    // The 4-byte copy read before the wait that covers it.
    report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        anvil_cp_async_ca(smem + t * 4, global + t * 4, 4, 4);
        anvil_cp_async_commit();
        anvil_barrier();
        (void)anvil_lds(smem + ((t + 1) % 256) * 4 + 3);
        anvil_cp_async_wait<0>();
        return true;
    });
    CHECK_THAT(report, Catch::Contains("before the cp.async.wait_group") && Catch::Contains("region 'smem'"));

    // A size the instruction does not have, a misaligned 8-byte copy.
    report = run([&]() -> bool {
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        if (anvil_thread() == 0) anvil_cp_async_ca(smem + 4, global, 8, 8);
        anvil_cp_async_wait<0>();
        return true;
    });
    CHECK_THAT(report, Catch::Contains("cp.async.ca of 8 bytes") && Catch::Contains("aligned"));
}

// ---- wgmma, mbarriers and cp.async.bulk (sm_90a)
namespace {

// A K-major operand of R rows x 16 k in wgmma's canonical unswizzled layout
// at `base`: core matrix (r / 8, k / 8) at (r / 8) sbo + (k / 8) lbo bytes,
// its row r % 8 16 bytes at (r % 8) 16. Written by the block's threads.
void stage_operand(unsigned char* base, const unsigned short (*v)[16], int R, int lbo, int sbo) {
    for (int e = anvil_thread(); e < R * 16; e += ANVIL_THREADS) {
        const int r = e / 16, k = e % 16;
        anvil_sts((unsigned short*)(base + (r / 8) * sbo + (k / 8) * lbo + (r % 8) * 16 + (k % 8) * 2), v[r][k]);
    }
}
// The same operand MN-major (the PTX ISA's unswizzled canonical layout,
// read with imm-trans-b): core matrix (r / 8, k / 8) at the same offsets,
// its row k % 8 (8 values r) 16 bytes at (k % 8) 16.
void stage_operand_mn(unsigned char* base, const unsigned short (*v)[16], int R, int lbo, int sbo) {
    for (int e = anvil_thread(); e < R * 16; e += ANVIL_THREADS) {
        const int r = e / 16, k = e % 16;
        anvil_sts((unsigned short*)(base + (r / 8) * sbo + (k / 8) * lbo + (k % 8) * 16 + (r % 8) * 2), v[r][k]);
    }
}

// D[row][col] of warpgroup thread t's accumulator i, from the PTX ISA's
// figure of the m64nNk16 D fragment: rows 16w + l / 4 (+ 8 for i % 4 >= 2),
// columns 8 (i / 4) + 2 (l % 4) (+ 1 for odd i).
void d_fragment(int t, int i, int* row, int* col) {
    const int w = (t % 128) / 32, l = t % 32;
    *row = 16 * w + l / 4 + ((i % 4) >= 2 ? 8 : 0);
    *col = 8 * (i / 4) + 2 * (l % 4) + (i % 2);
}

template <int N, bool MN_B = false>
void check_wgmma(bool bf16) {
    CAPTURE(N, bf16, MN_B);
    std::mt19937 rng(21 + N);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    static unsigned short A[64][16], B[256][16];
    static float C[2][64][256], D[2][64][256];
    for (int r = 0; r < 64; ++r)
        for (int k = 0; k < 16; ++k) A[r][k] = half_bits(dist(rng), bf16);
    for (int c = 0; c < N; ++c)
        for (int k = 0; k < 16; ++k) B[c][k] = half_bits(dist(rng), bf16);
    for (int g = 0; g < 2; ++g)
        for (int r = 0; r < 64; ++r)
            for (int c = 0; c < N; ++c) C[g][r][c] = dist(rng);
    // A: k halves side by side (lbo 128, sbo 256); B: all row groups of k
    // half 0, then of k half 1 (lbo N / 8 x 128, sbo 128), K-major, or
    // MN-major with the k halves side by side (lbo 128, sbo 256).
    // Warpgroup 0 accumulates onto C, warpgroup 1 (scale-d 0) does not.
    const std::string report = run([&]() -> bool {
        const int t = anvil_thread(), g = t / 128;
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        stage_operand(smem, A, 64, 128, 256);
        const int lbo = MN_B ? 128 : N / 8 * 128, sbo = MN_B ? 256 : 128;
        (MN_B ? stage_operand_mn : stage_operand)(smem + 2048, B, N, lbo, sbo);
        anvil_fence_proxy_async();
        anvil_barrier();
        float d[N / 2];
        int row, col;
        for (int i = 0; i < N / 2; ++i) d_fragment(t, i, &row, &col), d[i] = C[g][row][col];
        anvil_wgmma_fence();
        anvil_wgmma<N, MN_B>(d, anvil_wgmma_desc(smem, 128, 256), anvil_wgmma_desc(smem + 2048, lbo, sbo), bf16, g == 0);
        anvil_wgmma_commit();
        anvil_wgmma_wait<0>();
        anvil_wgmma_ready<N>(d);
        for (int i = 0; i < N / 2; ++i) d_fragment(t, i, &row, &col), D[g][row][col] = d[i];
        return true;
    });
    CHECK(report == "");
    int wrong = 0;
    for (int g = 0; g < 2; ++g)
        for (int r = 0; r < 64; ++r)
            for (int c = 0; c < N; ++c) {
                double s = g == 0 ? C[g][r][c] : 0.0;
                for (int k = 0; k < 16; ++k) s += (double)half_value(A[r][k], bf16) * half_value(B[c][k], bf16);
                wrong += D[g][r][c] != (float)s;
            }
    CHECK(wrong == 0);
}

}  // namespace

TEST_CASE("simt emulator: a matrix descriptor decodes as the PTX ISA lays it out", "[simt][emulator][wgmma]") {
    // Bits 0-13: start >> 4; 16-29: leading byte offset >> 4; 32-45: stride
    // byte offset >> 4; 49-51 base offset; 62-63 swizzle.
    const unsigned long long d = 0x123ull | 0x8ull << 16 | 0x40ull << 32 | 1ull << 62;
    const anvil_simt::Descriptor x = anvil_simt::decode_descriptor(d);
    CHECK(x.start == 0x1230);
    CHECK(x.lbo == 128);
    CHECK(x.sbo == 1024);
    CHECK(x.base == 0);
    CHECK(x.swizzle == 1);
    // Element (r, k): row r % 8 of core matrix (r / 8, k / 8).
    CHECK(anvil_simt::core_row_address(x, 0, 0) == 0x1230);
    CHECK(anvil_simt::core_row_address(x, 9, 1) == 0x1230 + 1024 + 128 + 16);
    CHECK(anvil_simt::core_row_address(x, 63, 0) == 0x1230 + 7 * 1024 + 7 * 16);
    // MN-major, the ISA's unswizzled bf16 example ((8,1,2),(8,2)):((1,8,64),(8,128))
    // elements: sbo 128 B, lbo 256 B; element (n 9, k 10) at element
    // 1 + 64 + 2 x 8 + 128 = 209: its core row (n 8..15 at k 10) at byte 416.
    const anvil_simt::Descriptor mn = anvil_simt::decode_descriptor(16ull << 16 | 8ull << 32);
    CHECK(anvil_simt::mn_core_row_address(mn, 1, 10) + 1 * 2 == 209 * 2);
    CHECK(anvil_simt::mn_core_row_address(mn, 0, 7) == 7 * 16);
    // anvil_wgmma_desc encodes a shared address and both offsets.
    unsigned long long made = 0;
    unsigned at = 0;
    const std::string report = run([&]() -> bool {
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        if (anvil_thread() == 0) made = anvil_wgmma_desc(smem + 256, 128, 2048), at = anvil_shared_address(smem + 256);
        return true;
    });
    CHECK(report == "");
    CHECK(made == ((unsigned long long)(at >> 4) | 8ull << 16 | 128ull << 32));
    // The accumulator fragment, from the ISA's m64nNk16 D figure: thread 0
    // holds D[0][0], D[0][1], D[8][0], D[8][1], D[0][8]; thread 37 (warp 1
    // lane 5) D[17][2]; thread 127's last of N = 64 D[63][63].
    int row, col;
    anvil_simt::wgmma_frag(0, 4, &row, &col);
    CHECK((row == 0 && col == 8));
    anvil_simt::wgmma_frag(0, 2, &row, &col);
    CHECK((row == 8 && col == 0));
    anvil_simt::wgmma_frag(37, 0, &row, &col);
    CHECK((row == 17 && col == 2));
    anvil_simt::wgmma_frag(127, 31, &row, &col);
    CHECK((row == 63 && col == 63));
}

TEST_CASE("simt emulator: wgmma m64n64k16 and m64n128k16 compute A x B + C per warpgroup", "[simt][emulator][wgmma]") {
    const bool bf16 = GENERATE(false, true);
    check_wgmma<64>(bf16);
    check_wgmma<128>(bf16);
}

TEST_CASE("simt emulator: wgmma with imm-trans-b reads B N-major", "[simt][emulator][wgmma]") {
    const bool bf16 = GENERATE(false, true);
    check_wgmma<64, true>(bf16);
    check_wgmma<128, true>(bf16);
}

TEST_CASE("simt emulator: chained wgmma land at the wait_group that covers them", "[simt][emulator][wgmma]") {
    static unsigned short A[64][16], B[64][16];
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int r = 0; r < 64; ++r)
        for (int k = 0; k < 16; ++k) A[r][k] = half_bits(dist(rng), false), B[r][k] = half_bits(dist(rng), false);
    static float after_first[256], final_d[256][32];
    // Two groups on the same accumulators: after wait<1> the second is in
    // flight and the registers are still its (poison); after wait<0> they
    // hold A B + A B. (`same_group`: both in one group, one wait<0>.)
    const bool same_group = GENERATE(false, true);
    CAPTURE(same_group);
    const std::string report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        stage_operand(smem, A, 64, 128, 256);
        stage_operand(smem + 2048, B, 64, 128, 256);
        anvil_fence_proxy_async();
        anvil_barrier();
        float d[32];
        const unsigned long long da = anvil_wgmma_desc(smem, 128, 256), db = anvil_wgmma_desc(smem + 2048, 128, 256);
        anvil_wgmma_fence();
        anvil_wgmma<64>(d, da, db, false, false);
        if (!same_group) anvil_wgmma_commit();
        anvil_wgmma<64>(d, da, db, false, true);
        anvil_wgmma_commit();
        anvil_wgmma_wait<1>();
        after_first[t] = d[0];
        anvil_wgmma_wait<0>();
        for (int i = 0; i < 32; ++i) final_d[t][i] = d[i];
        return true;
    });
    CHECK(report == "");
    int wrong = 0, unpoisoned = 0;
    for (int t = 0; t < 256; ++t) {
        unpoisoned += !std::isnan(after_first[t]);
        for (int i = 0; i < 32; ++i) {
            int row, col;
            d_fragment(t, i, &row, &col);
            double s = 0;
            for (int k = 0; k < 16; ++k) s += (double)half_value(A[row][k], false) * half_value(B[col][k], false);
            const float once = (float)s;
            wrong += final_d[t][i] != (float)((double)once + s);
        }
    }
    CHECK(unpoisoned == 0);  // one group or two: wait<1> leaves the last in flight
    CHECK(wrong == 0);
}

TEST_CASE("simt emulator: wgmma misuse is refused", "[simt][emulator][wgmma]") {
    static unsigned short A[64][16];
    for (int r = 0; r < 64; ++r)
        for (int k = 0; k < 16; ++k) A[r][k] = half_bits(0.25f * (float)((r + k) % 7), false);
    // mutation: what the otherwise correct body does wrong.
    const std::string mutation = GENERATE(as<std::string>{}, "misaligned", "no fence", "early read", "no wait",
                                          "overwrite", "swizzle", "missing thread", "unwritten", "no proxy fence");
    CAPTURE(mutation);
    const std::string report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        if (mutation != "unwritten") stage_operand(smem, A, 64, 128, 256);
        if (mutation != "no proxy fence") anvil_fence_proxy_async();  // the stores reach the tensor cores
        anvil_barrier();
        float d[32];
        for (int i = 0; i < 32; ++i) d[i] = 0.0f;
        unsigned long long da = anvil_wgmma_desc(smem + (mutation == "misaligned" ? 8 : 0), 128, 256);
        if (mutation == "swizzle") da |= 2ull << 62;  // 64-byte: not emulated
        if (mutation == "missing thread" && t == 5) return true;
        if (mutation != "no fence") anvil_wgmma_fence();
        anvil_wgmma<64>(d, da, da, false, true);
        anvil_wgmma_commit();
        if (mutation == "early read") anvil_wgmma_ready<64>(d);
        if (mutation == "overwrite") {
            anvil_barrier();
            if (t == 0) anvil_sts((unsigned short*)smem, (unsigned short)0x3c00);
        }
        if (mutation == "no wait") return true;
        anvil_wgmma_wait<0>();
        return true;
    });
    const char* expected = mutation == "misaligned"       ? "each must be a multiple of 16"
                           : mutation == "no fence"       ? "without a wgmma.fence"
                           : mutation == "early read"     ? "reads its wgmma accumulators before the wgmma.wait_group"
                           : mutation == "no wait"        ? "wgmma.wait_group missing"
                           : mutation == "overwrite"      ? "changed before the wgmma.wait_group"
                           : mutation == "swizzle"        ? "with swizzle mode 2 and base offset 0: only the unswizzled"
                           : mutation == "missing thread" ? "had ended the task while its warpgroup waits at wgmma.fence"
                           : mutation == "no proxy fence" ? "through the generic proxy with no fence.proxy.async"
                                                          : "which no thread wrote";
    CHECK_THAT(report, Catch::Contains(expected));
}

TEST_CASE("simt emulator: cp.async.bulk lands when its mbarrier's phase completes", "[simt][emulator][bulk]") {
    alignas(16) static unsigned char global[4096];
    for (int i = 0; i < 4096; ++i) global[i] = (unsigned char)(i * 13 + 5);
    static unsigned char seen[256][16], second[256][16];
    // Thread 0 announces 2 x 2048 bytes; threads 0 and 1 each copy 2048;
    // everyone waits on phase 0, reads, then phase 1 brings 16 bytes more.
    std::string report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        unsigned long long* bar = (unsigned long long*)(smem + 4096 + 64);
        if (t == 0) anvil_mbarrier_init(bar, 1), anvil_fence_mbarrier_init();
        anvil_barrier();
        if (t == 0) anvil_mbarrier_arrive_expect_tx(bar, 4096);
        if (t < 2) anvil_bulk_copy(smem + t * 2048, global + t * 2048, 2048, bar);
        anvil_mbarrier_wait_parity(bar, 0);
        for (int i = 0; i < 16; ++i) seen[t][i] = anvil_lds(smem + ((t + 1) % 256) * 16 + i);
        anvil_barrier();  // everyone read before the second phase's copy overwrites
        if (t == 3) {
            anvil_bulk_copy(smem + 4096, global + 16, 16, bar);
            anvil_mbarrier_arrive_expect_tx(bar, 16);
        }
        anvil_mbarrier_wait_parity(bar, 1);
        for (int i = 0; i < 16; ++i) second[t][i] = anvil_lds(smem + 4096 + i);
        return true;
    });
    CHECK(report == "");
    int wrong = 0;
    for (int t = 0; t < 256; ++t)
        for (int i = 0; i < 16; ++i) {
            wrong += seen[t][i] != global[((t + 1) % 256) * 16 + i];
            wrong += second[t][i] != global[16 + i];
        }
    CHECK(wrong == 0);

    // Misuse: a size not a multiple of 16; a read before the phase
    // completes (bytes still expected); a copy whose phase never completes.
    const std::string mutation = GENERATE(as<std::string>{}, "size", "early read", "never completes");
    CAPTURE(mutation);
    report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        unsigned long long* bar = (unsigned long long*)(smem + 4096 + 64);
        if (t == 0) anvil_mbarrier_init(bar, 1);
        anvil_barrier();
        if (t == 0) {
            anvil_mbarrier_arrive_expect_tx(bar, mutation == "size" ? 40 : 64);
            anvil_bulk_copy(smem, global, mutation == "size" ? 40 : 32, bar);
        }
        anvil_barrier();
        if (mutation == "early read" && t == 1) (void)anvil_lds(smem + 4);
        return true;
    });
    const char* expected = mutation == "size"         ? "the size must be a non-zero multiple of 16"
                           : mutation == "early read" ? "before the completion of the mbarrier phase of thread 0"
                                                      : "never landed";
    CHECK_THAT(report, Catch::Contains(expected));
}

TEST_CASE("simt emulator: a TMA tiled copy lands its box, swizzled, when its mbarrier's phase completes",
          "[simt][emulator][bulk][tma]") {
    // A 9 x 40 tensor of 16-bit values, rows 96 bytes apart (48 elements).
    alignas(64) static unsigned short tensor[9 * 48];
    for (int i = 0; i < 9 * 48; ++i) tensor[i] = (unsigned short)(i * 7 + 3);
    TmaView v;
    v.base = reinterpret_cast<std::uintptr_t>(tensor);
    v.cols = 40;
    v.rows = 9;
    v.row_bytes = 96;
    v.box_cols = 64;
    v.box_rows = 12;
    v.swizzle_128b = true;
    alignas(64) static AnvilTensorMap map;
    map = encode_tma_simt(v);
    static unsigned short seen[12][64];
    // Box at (x -3, y 2): columns -3..60, rows 2..13; inside the tensor only
    // columns 0..39 of rows 2..8. Its 1024-byte aligned start in the window.
    std::string report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        unsigned char* box = smem + (1024 - anvil_shared_address(smem) % 1024) % 1024;
        unsigned long long* bar = (unsigned long long*)(box + 12 * 128);
        if (t == 0) anvil_mbarrier_init(bar, 1), anvil_fence_mbarrier_init();
        anvil_barrier();
        if (t == 0) {
            anvil_tma_acquire_map(&map);
            anvil_mbarrier_arrive_expect_tx(bar, 12 * 128);
            anvil_tma_load_2d(box, &map, -3, 2, bar);
        }
        anvil_mbarrier_wait_parity(bar, 0);
        // Read back through the swizzle: chunk c of row r is at c ^ (r % 8).
        for (int e = t; e < 12 * 64; e += ANVIL_THREADS) {
            const int r = e / 64, x = e % 64, at = r * 128 + ((((x * 2) >> 4) ^ (r % 8)) << 4) + (x * 2) % 16;
            seen[r][x] = anvil_lds((unsigned short*)(box + at));
        }
        return true;
    });
    CHECK(report == "");
    int wrong = 0;
    for (int r = 0; r < 12; ++r)
        for (int x = 0; x < 64; ++x) {
            const int gx = x - 3, gy = r + 2;
            const unsigned short want = gx >= 0 && gx < 40 && gy < 9 ? tensor[gy * 48 + gx] : 0;
            wrong += seen[r][x] != want;
        }
    CHECK(wrong == 0);

    // Misuse: a swizzled box not 1024-byte aligned; a map the host never
    // encoded; a map the thread did not acquire (the H200 stopped on that
    // with an illegal instruction); a read of the box before its phase
    // completes; a swizzled descriptor whose start is not in its atom's first row.
    const std::string mutation =
        GENERATE(as<std::string>{}, "unaligned box", "no map", "not acquired", "early read", "descriptor row");
    CAPTURE(mutation);
    alignas(64) static AnvilTensorMap blank;
    report = run([&]() -> bool {
        const int t = anvil_thread();
        unsigned char* smem = (unsigned char*)anvil_block_smem();
        unsigned char* box = smem + (1024 - anvil_shared_address(smem) % 1024) % 1024;
        unsigned long long* bar = (unsigned long long*)(box + 12 * 128);
        if (mutation == "descriptor row") {
            (void)anvil_wgmma_desc_sw128(box + 128, 1024);
            return true;
        }
        if (t == 0) anvil_mbarrier_init(bar, 1);
        anvil_barrier();
        if (t == 0) {
            // An early read: the phase still expects 16 bytes more, so the box has not landed.
            const AnvilTensorMap* m = mutation == "no map" ? &blank : &map;
            if (mutation != "not acquired") anvil_tma_acquire_map(m);
            anvil_mbarrier_arrive_expect_tx(bar, 12 * 128 + (mutation == "early read" ? 16 : 0));
            anvil_tma_load_2d(mutation == "unaligned box" ? box + 128 : box, m, 0, 0, bar);
        }
        anvil_barrier();  // the copy is in flight for every thread
        if (mutation == "early read" && t == 9) (void)anvil_lds(box + 200);
        anvil_mbarrier_wait_parity(bar, 0);
        return true;
    });
    const char* expected = mutation == "unaligned box" ? "a 128-byte swizzled box must start 1024-byte aligned"
                           : mutation == "no map"      ? "no map the host encoded"
                           : mutation == "not acquired" ? "which this thread has not acquired in this task"
                           : mutation == "early read"  ? "before the completion of the mbarrier phase"
                                                       : "within the first 128 bytes of a 1024-byte atom";
    CHECK_THAT(report, Catch::Contains(expected));
}

TEST_CASE("tensor maps: a view the TMA engine would refuse is refused, naming the rule", "[tma]") {
    TmaView ok;
    ok.base = 4096;
    ok.cols = 100;
    ok.rows = 7;
    ok.row_bytes = 224;
    ok.box_cols = 64;
    ok.box_rows = 33;
    ok.swizzle_128b = true;
    CHECK(encode_tma_simt(ok).simt.magic == ANVIL_TMA_MAGIC);
    struct Bad {
        const char* why;
        TmaView v;
    };
    std::vector<Bad> bad;
    auto with = [&](const char* why, auto change) {
        TmaView v = ok;
        change(v);
        bad.push_back({why, v});
    };
    with("not 16-byte aligned", [](TmaView& v) { v.base = 4104; });
    with("elements of 3 bytes", [](TmaView& v) { v.elem_bytes = 3; });
    with("rows 200 bytes apart for 100 elements", [](TmaView& v) { v.row_bytes = 200; });
    with("rows 232 bytes apart", [](TmaView& v) { v.row_bytes = 232; });
    with("a 7 x 0 tensor", [](TmaView& v) { v.cols = 0; });
    with("a 257 x 64 box", [](TmaView& v) { v.box_rows = 257; });
    with("box rows of 14 bytes", [](TmaView& v) { v.box_cols = 7, v.swizzle_128b = false; });
    with("a 128-byte swizzled box with rows of 64 bytes", [](TmaView& v) { v.box_cols = 32; });
    for (const Bad& b : bad) {
        CAPTURE(b.why);
        CHECK_THROWS_WITH(encode_tma_simt(b.v), Catch::Contains(b.why));
    }
}
