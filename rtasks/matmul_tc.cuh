// Matmul on tensor cores: f16 or bf16 operands, f32 accumulators. A tile
// is a BM x BN block of C; its 8 warps form a 2 x 4 grid, each owning a
// (BM/2) x (BN/4) block of m16n8k16 products (anvil_mma_16816). Both
// operands are staged k-contiguous in shared memory, A as [BM][BK+8] and B
// as [BN][BK+8] (B transposed), so every fragment register is one 32-bit
// load; the 8-half padding of a row puts the 8 rows a warp reads at once in
// different banks. A k-contiguous, 16-byte aligned operand is staged with
// 16-byte loads, any other element by element along its contiguous axis.
// Without tensor cores (the host backend) the variant runs the shared-
// memory GEMM of matmul.cuh: the same results, up to summation order.
#ifndef ANVIL_RTASKS_MATMUL_TC_CUH
#define ANVIL_RTASKS_MATMUL_TC_CUH

#include "matmul.cuh"

#define ANVIL_TC_PAD 8
#define ANVIL_TC_SMEM_BYTES(BM, BN, BK) (((BM) + (BN)) * ((BK) + ANVIL_TC_PAD) * 2)

template <class T> struct anvil_is_bf16 { static const bool value = false; };
template <> struct anvil_is_bf16<anvil_bf16> { static const bool value = true; };

// dst[r][k] = src(r0 + r, k0 + k) for r < R, k < BK as raw 16-bit values,
// zero outside rows x K; src(r, k) = base[r * s_r + k * s_k].
template <class T, int R, int BK>
ANVIL_DEVICE void anvil_tc_stage(unsigned short* dst, const T* base, anvil_i64 s_r, anvil_i64 s_k, int r0, int rows,
                                 int k0, int K) {
    const int LD = BK + ANVIL_TC_PAD, tid = anvil_thread();
    if (s_k == 1 && (s_r * 2) % 16 == 0 && anvil_aligned16(base)) {
        const int per_row = BK / 8;  // 16-byte vectors per row
        for (int e = tid; e < R * per_row; e += ANVIL_THREADS) {
            const int r = e / per_row, k = (e % per_row) * 8, gr = r0 + r, gk = k0 + k;
            anvil_u32x4 v = {{0u, 0u, 0u, 0u}};
            if (gr < rows && gk + 8 <= K) {
                v = anvil_load16(base + (anvil_i64)gr * s_r + gk);
            } else if (gr < rows) {
                unsigned short h[8];
                for (int i = 0; i < 8; ++i) h[i] = gk + i < K ? base[(anvil_i64)gr * s_r + gk + i].bits : 0;
                for (int i = 0; i < 4; ++i) v.w[i] = (unsigned)h[2 * i] | ((unsigned)h[2 * i + 1] << 16);
            }
            *(anvil_u32x4*)(dst + r * LD + k) = v;  // rows are 16-byte multiples: (BK + 8) * 2 bytes
        }
        return;
    }
    // Walk the axis that is contiguous in memory, so a warp's loads coalesce.
    const bool r_fast = s_r == 1 && s_k != 1;
    for (int e = tid; e < R * BK; e += ANVIL_THREADS) {
        const int r = r_fast ? e % R : e / BK, k = r_fast ? e / R : e % BK, gr = r0 + r, gk = k0 + k;
        dst[r * LD + k] = gr < rows && gk < K ? base[(anvil_i64)gr * s_r + (anvil_i64)gk * s_k].bits : 0;
    }
}

template <class TA, class TB, class TC, int BM, int BN, int BK>
ANVIL_TASK void anvil_matmul_tc_tile(const MatmulParams& p, int tile, char* arena) {
#if !ANVIL_HAS_MMA
    anvil_matmul_tile<TA, TB, TC, BM, BN, BK>(p, tile, arena);
#else
    static_assert(sizeof(TA) == 2 && sizeof(TB) == 2, "anvil_matmul_tc_tile: A and B must be f16 or bf16");
    static_assert(anvil_is_bf16<TA>::value == anvil_is_bf16<TB>::value, "anvil_matmul_tc_tile: A and B differ");
    static_assert(BM % 32 == 0 && BN % 32 == 0 && BK % 16 == 0,
                  "anvil_matmul_tc_tile: BM and BN must be multiples of 32, BK of 16");
    static_assert(ANVIL_TC_SMEM_BYTES(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_tc_tile: the staged operands do not fit in ANVIL_SMEM_BYTES");
    const int WTM = BM / 2, WTN = BN / 4;  // a warp's block of C
    const int MI = WTM / 16, NI = WTN / 8;  // its m16n8 products
    const int LD = BK + ANVIL_TC_PAD;
    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    unsigned short* As = (unsigned short*)anvil_block_smem();  // [BM][LD]
    unsigned short* Bs = As + BM * LD;                         // [BN][LD]
    const int warp = anvil_thread() / 32, lane = anvil_thread() % 32;
    const int wm = warp / 4, wn = warp % 4, g = lane / 4, t = lane % 4;

    float acc[BM / 32][BN / 32][4];
    for (int i = 0; i < MI; ++i)
        for (int j = 0; j < NI; ++j)
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

    for (int k0 = 0; k0 < p.K; k0 += BK) {
        anvil_barrier();  // everyone is done reading the previous slices
        anvil_tc_stage<TA, BM, BK>(As, A, p.a_sm, p.a_sk, at.m0, p.M, k0, p.K);
        anvil_tc_stage<TB, BN, BK>(Bs, B, p.b_sn, p.b_sk, at.n0, p.N, k0, p.K);
        anvil_barrier();
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned a[BM / 32][4], b[BN / 32][2];
            for (int i = 0; i < MI; ++i) {
                const unsigned short* s = As + (wm * WTM + i * 16 + g) * LD + kk + 2 * t;
                a[i][0] = *(const unsigned*)s;
                a[i][1] = *(const unsigned*)(s + 8 * LD);
                a[i][2] = *(const unsigned*)(s + 8);
                a[i][3] = *(const unsigned*)(s + 8 * LD + 8);
            }
            for (int j = 0; j < NI; ++j) {
                const unsigned short* s = Bs + (wn * WTN + j * 8 + g) * LD + kk + 2 * t;
                b[j][0] = *(const unsigned*)s;
                b[j][1] = *(const unsigned*)(s + 8);
            }
            for (int i = 0; i < MI; ++i)
                for (int j = 0; j < NI; ++j) anvil_mma_16816(acc[i][j], a[i], b[j], anvil_is_bf16<TA>::value);
        }
    }

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
