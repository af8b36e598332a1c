// Matmul on tensor cores: f16 or bf16 operands, f32 accumulators. A tile
// is a BM x BN block of C; its 8 warps form a 2 x 4 grid, each owning a
// (BM/2) x (BN/4) block of m16n8k16 products (anvil_mma_16816). Both
// operands are staged k-contiguous in shared memory, A as [BM][BK+8] and B
// as [BN][BK+8] (B transposed), so every fragment register is one 32-bit
// load; the 8-half padding of a row puts the 8 rows a warp reads at once in
// different banks. Two stages: while the warps multiply slice k, the copy
// of slice k+1 is in flight. A k-contiguous, 16-byte aligned operand is
// copied asynchronously (cp.async, 16 bytes, zero-filled past its edges),
// any other element by element along its contiguous axis.
// Without tensor cores (the host backend) the variant runs the shared-
// memory GEMM of matmul.cuh: the same results, up to summation order.
#ifndef ANVIL_RTASKS_MATMUL_TC_CUH
#define ANVIL_RTASKS_MATMUL_TC_CUH

#include "matmul.cuh"

template <class T> struct anvil_is_bf16 { static const bool value = false; };
template <> struct anvil_is_bf16<anvil_bf16> { static const bool value = true; };

#if ANVIL_HAS_MMA
// Starts dst[r][k] = src(r0 + r, k0 + k) for r < R, k < BK as raw 16-bit
// values, zero outside rows x K; src(r, k) = base[r * s_r + k * s_k]. The
// asynchronous part lands after anvil_cp_async_wait, the rest at once.
template <class T, int R, int BK>
ANVIL_DEVICE void anvil_tc_stage(unsigned short* dst, const T* base, anvil_i64 s_r, anvil_i64 s_k, int r0, int rows,
                                 int k0, int K) {
    const int LD = BK + ANVIL_TC_PAD, tid = anvil_thread();
    if (s_k == 1 && (s_r * 2) % 16 == 0 && anvil_aligned16(base)) {
        const int per_row = BK / 8;  // 16-byte chunks per row
        for (int e = tid; e < R * per_row; e += ANVIL_THREADS) {
            const int r = e / per_row, k = (e % per_row) * 8, gr = r0 + r, gk = k0 + k;
            const int left = gr < rows ? (K - gk) * 2 : 0;  // bytes of the chunk inside the operand
            const int bytes = left < 0 ? 0 : left > 16 ? 16 : left;
            // Rows are 16-byte multiples ((BK + 8) * 2 bytes); an empty chunk still needs a valid address.
            anvil_cp_async16(dst + r * LD + k, bytes ? (const void*)(base + (anvil_i64)gr * s_r + gk) : (const void*)base,
                             bytes);
        }
        return;
    }
    // Walk the axis that is contiguous in memory, so a warp's loads coalesce.
    const bool r_fast = s_r == 1 && s_k != 1;
    for (int e = tid; e < R * BK; e += ANVIL_THREADS) {
        const int r = r_fast ? e % R : e / BK, k = r_fast ? e / R : e % BK, gr = r0 + r, gk = k0 + k;
        const unsigned short v = gr < rows && gk < K ? base[(anvil_i64)gr * s_r + (anvil_i64)gk * s_k].bits : 0;
        anvil_sts(dst + r * LD + k, v);
    }
}
#endif

template <class TA, class TB, class TC, int BM, int BN, int BK>
ANVIL_TASK void anvil_matmul_tc_tile(const MatmulParams& p, int tile, char* arena) {
#if !ANVIL_HAS_MMA
    anvil_matmul_tile<TA, TB, TC, BM, BN, BK>(p, tile, arena);
#else
    static_assert(sizeof(TA) == 2 && sizeof(TB) == 2, "anvil_matmul_tc_tile: A and B must be f16 or bf16");
    static_assert(anvil_is_bf16<TA>::value == anvil_is_bf16<TB>::value, "anvil_matmul_tc_tile: A and B differ");
    static_assert(anvil_tc_tile_ok(BM, BN, BK),
                  "anvil_matmul_tc_tile: BM and BN must be multiples of ANVIL_TC_TILE_STEP_MN, BK of ANVIL_TC_TILE_STEP_K");
    static_assert(anvil_tc_smem_bytes(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_tc_tile: the staged operands do not fit in ANVIL_SMEM_BYTES");
    const int WTM = BM / 2, WTN = BN / 4;  // a warp's block of C
    const int MI = WTM / 16, NI = WTN / 8;  // its m16n8 products
    const int LD = BK + ANVIL_TC_PAD;
    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    // Stage s: A at smem + s * STAGE as [BM][LD], then B as [BN][LD].
    unsigned short* const smem = (unsigned short*)anvil_block_smem();
    const int STAGE = (BM + BN) * LD;
    const int warp = anvil_thread() / 32, lane = anvil_thread() % 32;
    const int wm = warp / 4, wn = warp % 4, g = lane / 4, t = lane % 4;

    float acc[BM / 32][BN / 32][4];
    for (int i = 0; i < MI; ++i)
        for (int j = 0; j < NI; ++j)
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

    const int slices = (p.K + BK - 1) / BK;
    anvil_tc_stage<TA, BM, BK>(smem, A, p.a_sm, p.a_sk, at.m0, p.M, 0, p.K);
    anvil_tc_stage<TB, BN, BK>(smem + BM * LD, B, p.b_sn, p.b_sk, at.n0, p.N, 0, p.K);
    anvil_cp_async_commit();
    for (int kt = 0; kt < slices; ++kt) {
        // The next slice into the other stage, last read before the
        // previous iteration's closing barrier.
        if (kt + 1 < slices) {
            unsigned short* next = smem + ((kt + 1) % ANVIL_TC_STAGES) * STAGE;
            anvil_tc_stage<TA, BM, BK>(next, A, p.a_sm, p.a_sk, at.m0, p.M, (kt + 1) * BK, p.K);
            anvil_tc_stage<TB, BN, BK>(next + BM * LD, B, p.b_sn, p.b_sk, at.n0, p.N, (kt + 1) * BK, p.K);
        }
        anvil_cp_async_commit();  // possibly empty: one group per iteration keeps the count
        anvil_cp_async_wait<1>();  // all but the newest group: slice kt has landed
        anvil_barrier();           // ... for every thread, with the element-wise stores
        const unsigned short* As = smem + (kt % ANVIL_TC_STAGES) * STAGE;
        const unsigned short* Bs = As + BM * LD;
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned a[BM / 32][4], b[BN / 32][2];
            for (int i = 0; i < MI; ++i) {
                const unsigned short* s = As + (wm * WTM + i * 16 + g) * LD + kk + 2 * t;
                a[i][0] = anvil_lds((const unsigned*)s);
                a[i][1] = anvil_lds((const unsigned*)(s + 8 * LD));
                a[i][2] = anvil_lds((const unsigned*)(s + 8));
                a[i][3] = anvil_lds((const unsigned*)(s + 8 * LD + 8));
            }
            for (int j = 0; j < NI; ++j) {
                const unsigned short* s = Bs + (wn * WTN + j * 8 + g) * LD + kk + 2 * t;
                b[j][0] = anvil_lds((const unsigned*)s);
                b[j][1] = anvil_lds((const unsigned*)(s + 8));
            }
            for (int i = 0; i < MI; ++i)
                for (int j = 0; j < NI; ++j) anvil_mma_16816(acc[i][j], a[i], b[j], anvil_is_bf16<TA>::value);
        }
        anvil_barrier();  // everyone is done with this stage before it is refilled
    }
    anvil_cp_async_wait<0>();  // nothing may still be landing when the task ends

    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    for (int i = 0; i < MI; ++i)
        for (int j = 0; j < NI; ++j)
            for (int q = 0; q < 4; ++q) {
                const int m = at.m0 + wm * WTM + i * 16 + g + (q / 2) * 8;
                const int n = at.n0 + wn * WTN + j * 8 + 2 * t + q % 2;
                if (m < p.M && n < p.N) anvil_mm_store(p, C, at.cb, m, n, acc[i][j][q], epi, arena);
            }
#endif
}

#endif  // ANVIL_RTASKS_MATMUL_TC_CUH
