// The tensor-core GEMM pipeline that matmul_tc.cuh and conv2d_tc.cuh share,
// as gemm_stages.cuh is the CUDA cores': a block computes a BM x BN tile
// C = A B into f32 accumulators from f16 or bf16 operands, or from f32 ones
// as TF32 or 3xTF32 (FMT, tiling.cuh). Its 8 warps form
// a 2 x 4 grid, each owning a (BM/2) x (BN/4) block of m16n8k16 products
// (anvil_mma_16816): 64 x 32 for a 128 x 128 tile. The operands stream
// through S shared-memory stages (S - 1 slices in flight while the warps
// multiply one; S = ANVIL_TC_STAGES, 3, or 4 where the variants chose it)
// as raw 16-bit values, read as mma
// fragments with ldmatrix, four 8 x 8 matrices per instruction:
//   A as [BM][BK + 8] (k contiguous), ldmatrix.x4: one A fragment;
//   B as [BK][BN + 8] (n contiguous, "k-major"), ldmatrix.x4.trans, or as
//   [BN][BK + 8] (k contiguous), ldmatrix.x4; either way two B fragments.
// The 8 halves of padding put the 8 rows an ldmatrix phase reads in 8
// different 16-byte bank groups. f32 operands are staged the same way,
// their rows twice as many bytes: an ldmatrix 8 x 8 matrix of 16-bit
// elements is then 8 x 4 f32, and lane l receives row l / 4, f32 column
// l % 4, which is the m16n8k8 tf32 fragment's element (A and a k-contiguous
// B alike; there is no 32-bit .trans, so an f32 B is always staged
// [BN][BK + pad]). The fragments are converted to tf32 after they are read
// (3xTF32: x = big + small, big = tf32(x), small = tf32(x - big); the
// products small x big, big x small, big x big accumulate in that order,
// the small terms first). The tile stages each slice itself (callbacks: a
// strided block with anvil_tc_stage, or a gather) and reads its results by
// pairs of neighbouring columns (anvil_tc_pairs). Staging has two phases
// around a multiply, issue before and land after: cp.async needs only the
// first; a gather through registers (16-bit elements, too small for
// cp.async) loads in the first and stores in the second, so its loads are
// in flight while the warps multiply (one slice ahead, where cp.async
// keeps S - 1).
#ifndef ANVIL_RTASKS_TC_STAGES_CUH
#define ANVIL_RTASKS_TC_STAGES_CUH

#include "primitives.cuh"
#include "tiling.cuh"
#include "trace_marks.cuh"

template <class T> struct anvil_is_bf16 { static const bool value = false; };
template <> struct anvil_is_bf16<anvil_bf16> { static const bool value = true; };

#if ANVIL_HAS_MMA
// One element of a staged slice, zero where !in: a 16-bit value through
// registers (cp.async moves 4 bytes at least), an f32 by a 4-byte cp.async
// (`any`: a valid address of the operand for the empty copy).
template <class T>
ANVIL_DEVICE void anvil_tc_stage_elem(unsigned short* dst, const T* src, bool in, const T*) {
    anvil_sts(dst, in ? src->bits : (unsigned short)0);
}
ANVIL_DEVICE void anvil_tc_stage_elem(unsigned short* dst, const float* src, bool in, const float* any) {
    anvil_cp_async_ca(dst, in ? src : any, 4, in ? 4 : 0);
}

// Starts dst[r][c] = src(r0 + r, c0 + c) for r < R, c < C as raw bits
// (rows of C elements plus ANVIL_TC_PAD halves), zero outside rows x
// cols; src(r, c) = base[r * s_r + c * s_c] (32-bit offsets:
// verify_tile_graph). A row that is contiguous and 16-byte aligned is
// copied by 16-byte cp.async (zero-filled past its edges), any other
// element alone, walking the contiguous axis; what cp.async copies lands
// after anvil_cp_async_wait.
template <class T, int R, int C>
ANVIL_DEVICE void anvil_tc_stage(unsigned short* dst, const T* base, anvil_i64 s_r, anvil_i64 s_c, int r0, int rows,
                                 int c0, int cols) {
    const int E = sizeof(T), H = E / 2;  // bytes, halves of an element
    const int LD = C * H + ANVIL_TC_PAD, tid = anvil_thread(), sr = (int)s_r, sc = (int)s_c;
    const int per_row = C * E / 16;  // 16-byte chunks per row
    const bool chunked = sc == 1 && (sr * E) % 16 == 0 && anvil_aligned16(base);
    if (per_row > 0 && ANVIL_THREADS % per_row == 0 && chunked) {
        // A thread's chunks share one column and lie STEP rows apart (chunk
        // tid + j * ANVIL_THREADS in row-major order), so the column's bytes
        // and the first chunk's offset are worked out once and the copies
        // unrolled; the general loop below spends a division, a modulo and
        // both bounds on each chunk (docs/perf/staging-2026-11-28.md).
        const int STEP = ANVIL_THREADS / per_row, r = tid / per_row, c = (tid % per_row) * (16 / E);
        const int left = (cols - (c0 + c)) * E, col_bytes = anvil_chunk_bytes(left);
        const int first = (r0 + r) * sr + c0 + c;  // the first chunk's element
        unsigned short* const d = dst + r * LD + c * H;
#pragma unroll
        for (int j = 0; j < (R + STEP - 1) / STEP; ++j) {
            if (R % STEP != 0 && r + j * STEP >= R) break;
            const int bytes = r0 + r + j * STEP < rows ? col_bytes : 0;
            anvil_cp_async16(d + j * STEP * LD, bytes ? (const void*)(base + (first + j * STEP * sr)) : (const void*)base,
                             bytes);
        }
        return;
    }
    if (chunked) {
#pragma unroll 1
        for (int e = tid; e < R * per_row; e += ANVIL_THREADS) {
            const int r = e / per_row, c = (e % per_row) * (16 / E), gr = r0 + r, gc = c0 + c;
            const int left = gr < rows ? (cols - gc) * E : 0;  // bytes of the chunk inside the operand
            const int bytes = anvil_chunk_bytes(left);
            // Rows are 16-byte multiples; an empty chunk still needs a valid address.
            anvil_cp_async16(dst + r * LD + c * H, bytes ? (const void*)(base + (gr * sr + gc)) : (const void*)base, bytes);
        }
        return;
    }
    // Walk the axis that is contiguous in memory, so a warp's loads coalesce.
    const bool r_fast = sr == 1 && sc != 1;
#pragma unroll 1
    for (int e = tid; e < R * C; e += ANVIL_THREADS) {
        const int r = r_fast ? e % R : e / C, c = r_fast ? e / R : e % C, gr = r0 + r, gc = c0 + c;
        anvil_tc_stage_elem(dst + r * LD + c * H, base + (gr * sr + gc * sc), gr < rows && gc < cols, base);
    }
}

// An f32 fragment register as tf32, and as the tf32 of its remainder.
ANVIL_DEVICE unsigned anvil_tf32_big(unsigned x) { return anvil_f32_to_tf32(anvil_bits_float(x)); }
ANVIL_DEVICE unsigned anvil_tf32_small(unsigned x, unsigned big) {
    return anvil_f32_to_tf32(anvil_bits_float(x) - anvil_bits_float(big));
}

// acc += A B for one m16n8 product and one k step of FMT's operands
// (a: 4 registers, b: 2; f32 bits for the TF32 formats).
template <int FMT>
ANVIL_DEVICE void anvil_tc_mma(float* acc, const unsigned* a, const unsigned* b) {
    if (FMT == ANVIL_TC_F16 || FMT == ANVIL_TC_BF16) {
        anvil_mma_16816(acc, a, b, FMT == ANVIL_TC_BF16);
        return;
    }
    unsigned ab[4], bb[2];
    for (int q = 0; q < 4; ++q) ab[q] = anvil_tf32_big(a[q]);
    for (int q = 0; q < 2; ++q) bb[q] = anvil_tf32_big(b[q]);
    if (FMT == ANVIL_TC_3XTF32) {
        unsigned as[4], bs[2];
        for (int q = 0; q < 4; ++q) as[q] = anvil_tf32_small(a[q], ab[q]);
        for (int q = 0; q < 2; ++q) bs[q] = anvil_tf32_small(b[q], bb[q]);
        anvil_mma_1688_tf32(acc, as, bb);
        anvil_mma_1688_tf32(acc, ab, bs);
    }
    anvil_mma_1688_tf32(acc, ab, bb);
}

// acc += the product of one staged slice (As: its stage, A then B, LDA and
// LDB their row pitches in halves): each warp its (BM/2) x (BN/4) block,
// k step by k step. landed(As, s) first (anvil_tc_gemm).
template <int BM, int BN, int BK, int FMT, class Landed>
ANVIL_DEVICE void anvil_tc_multiply(unsigned short* As, int LDB, bool b_kmajor, float (*acc)[BN / 32][4],
                                    const Landed& landed, int s) {
    const int WTM = BM / 2, WTN = BN / 4;  // a warp's block of C
    const int MI = WTM / 16, NI = WTN / 8;  // its m16n8 products
    const int BKH = BK * anvil_tc_elem_bytes(FMT) / 2;  // a slice row's halves
    const int LDA = BKH + ANVIL_TC_PAD;
    const int warp = anvil_thread() / 32, lane = anvil_thread() % 32;
    const int wm = warp / 4, wn = warp % 4;
    if (landed(As, s)) anvil_barrier();
    const unsigned short* Bs = As + BM * LDA;
    for (int kk = 0; kk < BKH; kk += 16) {
        unsigned a[BM / 32][4], b[BN / 32 + 1][2];
        // Lane l addresses row l % 16 of the warp's 16 rows, k half l / 16:
        // matrices (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15).
        for (int i = 0; i < MI; ++i)
            anvil_ldmatrix_x4(a[i], As + (wm * WTM + i * 16 + lane % 16) * LDA + kk + (lane / 16) * 8);
        for (int j = 0; j < NI; j += 2) {
            const int n = wn * WTN + j * 8;
            // .x2 reads lanes 0-15's addresses; the others repeat them (valid, written).
            const int l = j + 1 < NI ? lane : lane % 16;
            unsigned r[4];
            if (b_kmajor) {  // matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
                const unsigned short* row = Bs + (kk + l % 16) * LDB + n + (l / 16) * 8;
                if (j + 1 < NI) anvil_ldmatrix_x4_trans(r, row);
                else anvil_ldmatrix_x2_trans(r, row);
            } else {  // rows are n: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15)
                const unsigned short* row = Bs + (n + l % 8 + (l / 16) * 8) * LDB + kk + ((l / 8) % 2) * 8;
                if (j + 1 < NI) anvil_ldmatrix_x4(r, row);
                else anvil_ldmatrix_x2(r, row);
            }
            b[j][0] = r[0], b[j][1] = r[1];
            if (j + 1 < NI) b[j + 1][0] = r[2], b[j + 1][1] = r[3];
        }
        for (int i = 0; i < MI; ++i)
            for (int j = 0; j < NI; ++j) anvil_tc_mma<FMT>(acc[i][j], a[i], b[j]);
    }
}

// acc = A B over K: for each slice s (BK elements of k), issue(a, b, s)
// then land(a, b, s) fill the stage's A ([BM][BK + pad]) and B (k-major
// [BK][BN + 8] when b_kmajor, 16-bit only, else [BN][BK + pad]) with slice
// s, zeros past the edges; copies they start asynchronously must land by
// anvil_cp_async_wait. The two phases surround the multiply of slice
// s - S + 1: what issue loads into registers (a gather of elements too
// small for cp.async) is in flight while the warps multiply, and land
// stores it; slice s is whole at the next barrier, at least one before its
// own multiply. A stage filled by cp.async alone needs no land (the
// single-phase overload). Staging begins at once: shared memory must be
// free (a task's first barrier is behind it). Offsets count halves; a k
// step is 16.
// A hook lets a tile transform A as it lands (a_norm.cuh): landed(As, s)
// runs when slice s is in shared memory for every thread, before the
// multiply reads it; when it returns true (it rewrote the slice) a barrier
// follows.
template <int BM, int BN, int BK, int FMT, int S, class Issue, class Land, class Landed>
ANVIL_DEVICE void anvil_tc_gemm(int K, bool b_kmajor, const Issue& issue, const Land& land, float (*acc)[BN / 32][4],
                                const Landed& landed) {
    static_assert(anvil_tc_stages_ok(S), "anvil_tc_gemm: 2 to ANVIL_TC_MAX_STAGES stages");
    const int BKH = BK * anvil_tc_elem_bytes(FMT) / 2;  // a slice row's halves
    const int LDA = BKH + ANVIL_TC_PAD, STAGE = anvil_tc_stage_halves(BM, BN, BKH);
    const int LDB = b_kmajor ? BN + ANVIL_TC_PAD : BKH + ANVIL_TC_PAD;
    unsigned short* const smem = (unsigned short*)anvil_block_smem();  // stage s at s * STAGE: A, then B
    for (int i = 0; i < BM / 32; ++i)
        for (int j = 0; j < BN / 32; ++j)
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

    // The pipeline of gemm_stages.cuh: S - 1 slices in flight.
    const int slices = (K + BK - 1) / BK;
    anvil_trace_mark(ANVIL_MARK_STAGING);
    for (int kt = -(S - 1); kt < slices; ++kt) {
        if (kt >= 0) {
            anvil_cp_async_wait<S - 2>();  // this thread's copies of slice kt have landed
            anvil_barrier();               // ... and everyone's; everyone is done with slice kt - 1
            if (kt == 0) anvil_trace_mark(ANVIL_MARK_FIRST_SLICE);
        }
        const int next = kt + S - 1;  // into slice kt - 1's stage
        unsigned short* const st = smem + (next % S) * STAGE;
        if (next < slices) issue(st, st + BM * LDA, next);
        anvil_cp_async_commit();  // possibly empty: one group per slice keeps the count
        if (kt >= 0) anvil_tc_multiply<BM, BN, BK, FMT>(smem + (kt % S) * STAGE, LDB, b_kmajor, acc, landed, kt);
        if (next < slices) land(st, st + BM * LDA, next);  // slice `next` is whole at the next barrier
    }
    anvil_cp_async_wait<0>();  // only empty groups remain; nothing may be in flight at the task's end
    anvil_trace_mark(ANVIL_MARK_LOOP_END);
}
// Single-phase: stage(a, b, s) is the whole of slice s's staging.
template <int BM, int BN, int BK, int FMT, int S, class Stage, class Landed>
ANVIL_DEVICE void anvil_tc_gemm(int K, bool b_kmajor, const Stage& stage, float (*acc)[BN / 32][4],
                                const Landed& landed) {
    anvil_tc_gemm<BM, BN, BK, FMT, S>(K, b_kmajor, stage, [](unsigned short*, unsigned short*, int) {}, acc, landed);
}
template <int BM, int BN, int BK, int FMT, int S, class Stage>
ANVIL_DEVICE void anvil_tc_gemm(int K, bool b_kmajor, const Stage& stage, float (*acc)[BN / 32][4]) {
    anvil_tc_gemm<BM, BN, BK, FMT, S>(K, b_kmajor, stage, acc, [](unsigned short*, int) { return false; });
}

// Lane (g, t) of a warp holds columns 2t, 2t + 1 of rows g and g + 8 of
// each m16n8 product: visit(r, c, v) for each such pair, v = C[r][c],
// C[r][c + 1], rows and columns counted from the tile's corner.
template <int BM, int BN, class Visit>
ANVIL_DEVICE void anvil_tc_pairs(float (*acc)[BN / 32][4], const Visit& visit) {
    const int warp = anvil_thread() / 32, lane = anvil_thread() % 32;
    const int r0 = (warp / 4) * (BM / 2) + lane / 4, c0 = (warp % 4) * (BN / 4) + 2 * (lane % 4);
    for (int i = 0; i < BM / 32; ++i)
        for (int j = 0; j < BN / 32; ++j) {
            visit(r0 + i * 16, c0 + j * 8, acc[i][j]);
            visit(r0 + i * 16 + 8, c0 + j * 8, acc[i][j] + 2);
        }
}


// The thread's accumulator f (0 <= f < BM * BN / ANVIL_THREADS), in the
// order of anvil_tc_pairs: its row r and column c from the tile's corner,
// and its value.
template <int BM, int BN>
ANVIL_DEVICE void anvil_tc_at(int f, int* r, int* c) {
    const int warp = anvil_thread() / 32, lane = anvil_thread() % 32;
    const int i = f / (BN / 32 * 4), j = f / 4 % (BN / 32), q = f % 4;
    *r = (warp / 4) * (BM / 2) + lane / 4 + i * 16 + q / 2 * 8;
    *c = (warp % 4) * (BN / 4) + 2 * (lane % 4) + j * 8 + q % 2;
}
template <int BM, int BN>
ANVIL_DEVICE float anvil_tc_acc(float (*acc)[BN / 32][4], int f) {
    return acc[f / (BN / 32 * 4)][f / 4 % (BN / 32)][f % 4];
}

#endif  // ANVIL_HAS_MMA

// Both values of a pair: p[0] = a and p[step] = b when `both`, else p[0] = a
// alone; one 32-bit store where they are neighbours and the pair aligned
// (also the CUDA-core tile's, after a fused row op: matmul.cuh).
ANVIL_DEVICE void anvil_store_bits32(void* p, unsigned v) {
#ifdef __CUDACC__
    *(unsigned*)p = v;
#else
    __builtin_memcpy(p, &v, 4);
#endif
}
ANVIL_DEVICE bool anvil_store_pair(anvil_f16* p, float a, float b) {
    anvil_store_bits32(p, anvil_f32_to_f16(a) | (unsigned)anvil_f32_to_f16(b) << 16);
    return true;
}
ANVIL_DEVICE bool anvil_store_pair(anvil_bf16* p, float a, float b) {
    anvil_store_bits32(p, anvil_f32_to_bf16(a) | (unsigned)anvil_f32_to_bf16(b) << 16);
    return true;
}
ANVIL_DEVICE bool anvil_store_pair(float*, float, float) { return false; }
ANVIL_DEVICE bool anvil_store_pair(int*, float, float) { return false; }
template <class T>
ANVIL_DEVICE void anvil_store2(T* p, anvil_i64 step, bool both, float a, float b) {
    if (both && step == 1 && ((unsigned long long)p & (2 * sizeof(T) - 1)) == 0 && anvil_store_pair(p, a, b)) return;
    anvil_store(p, a);
    if (both) anvil_store(p + step, b);
}

#endif  // ANVIL_RTASKS_TC_STAGES_CUH
