// Matmul on tensor cores: f16 or bf16 operands, f32 accumulators. A tile
// is a BM x BN block of C; its 8 warps form a 2 x 4 grid, each owning a
// (BM/2) x (BN/4) block of m16n8k16 products (anvil_mma_16816): 64 x 32
// for a 128 x 128 tile. Operands are staged in ANVIL_TC_STAGES stages (two
// slices in flight while the warps multiply the third) and read as mma
// fragments with ldmatrix, four 8 x 8 matrices per instruction:
//   A as [BM][BK + 8] (k contiguous), ldmatrix.x4: one A fragment;
//   B as it is stored: n contiguous (a [K, N] weight, x @ W) as
//   [BK][BN + 8], read with ldmatrix.x4.trans; k contiguous (x @ W^T) as
//   [BN][BK + 8], read with ldmatrix.x4; either way two B fragments.
// The 8 halves of padding put the 8 rows an ldmatrix phase reads in 8
// different 16-byte bank groups. A row that is contiguous and 16-byte
// aligned is copied asynchronously (cp.async, 16 bytes, zero-filled past
// its edges), any other element by element along its contiguous axis.
// Results leave as packed pairs (32 bits for f16/bf16) where C allows.
// Without tensor cores (the host backend) the variant runs the shared-
// memory GEMM of matmul.cuh: the same results, up to summation order.
#ifndef ANVIL_RTASKS_MATMUL_TC_CUH
#define ANVIL_RTASKS_MATMUL_TC_CUH

#include "matmul.cuh"

template <class T> struct anvil_is_bf16 { static const bool value = false; };
template <> struct anvil_is_bf16<anvil_bf16> { static const bool value = true; };

#if ANVIL_HAS_MMA
// Starts dst[r][c] = src(r0 + r, c0 + c) for r < R, c < C as raw 16-bit
// values, zero outside rows x cols; src(r, c) = base[r * s_r + c * s_c]
// (32-bit offsets: verify_tile_graph). The asynchronous part lands after
// anvil_cp_async_wait, the rest at once.
template <class T, int R, int C>
ANVIL_DEVICE void anvil_tc_stage(unsigned short* dst, const T* base, anvil_i64 s_r, anvil_i64 s_c, int r0, int rows,
                                 int c0, int cols) {
    const int LD = C + ANVIL_TC_PAD, tid = anvil_thread(), sr = (int)s_r, sc = (int)s_c;
    if (sc == 1 && (sr * 2) % 16 == 0 && anvil_aligned16(base)) {
        const int per_row = C / 8;  // 16-byte chunks per row
#pragma unroll 1
        for (int e = tid; e < R * per_row; e += ANVIL_THREADS) {
            const int r = e / per_row, c = (e % per_row) * 8, gr = r0 + r, gc = c0 + c;
            const int left = gr < rows ? (cols - gc) * 2 : 0;  // bytes of the chunk inside the operand
            const int bytes = left < 0 ? 0 : left > 16 ? 16 : left;
            // Rows are 16-byte multiples ((C + 8) * 2 bytes); an empty chunk still needs a valid address.
            anvil_cp_async16(dst + r * LD + c, bytes ? (const void*)(base + (gr * sr + gc)) : (const void*)base, bytes);
        }
        return;
    }
    // Walk the axis that is contiguous in memory, so a warp's loads coalesce.
    const bool r_fast = sr == 1 && sc != 1;
#pragma unroll 1
    for (int e = tid; e < R * C; e += ANVIL_THREADS) {
        const int r = r_fast ? e % R : e / C, c = r_fast ? e / R : e % C, gr = r0 + r, gc = c0 + c;
        const unsigned short v = gr < rows && gc < cols ? base[gr * sr + gc * sc].bits : 0;
        anvil_sts(dst + r * LD + c, v);
    }
}

// Both values of a fragment's column pair (n, n + 1) of row m, after the
// epilogue: one packed store where C is contiguous along n and the pair
// aligned, else two.
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
// C[m, n..n+1] = v[0..1] (already through the epilogue), in one store where
// C is contiguous along n and the pair aligned; nothing outside M x N.
template <class TC>
ANVIL_DEVICE void anvil_mm_store_pair(const MatmulParams& p, TC* C, int m, int n, const float* v) {
    if (m >= p.M || n >= p.N) return;
    const anvil_i64 at = (anvil_i64)m * p.c_sm + (anvil_i64)n * p.c_sn;
    const bool both = n + 1 < p.N;
    if (both && p.c_sn == 1 && ((unsigned long long)(C + at) & (2 * sizeof(TC) - 1)) == 0 &&
        anvil_store_pair(C + at, v[0], v[1]))
        return;
    anvil_store(C + at, v[0]);
    if (both) anvil_store(C + at + p.c_sn, v[1]);
}
#endif

template <class TA, class TB, class TC, int BM, int BN, int BK>
ANVIL_TASK void anvil_matmul_tc_tile(const MatmulParams& p, int tile, char* arena) {
#if !ANVIL_HAS_MMA
    anvil_matmul_tile<TA, TB, TC, BM, BN, ANVIL_TC_FALLBACK_BK>(p, tile, arena);
#else
    static_assert(sizeof(TA) == 2 && sizeof(TB) == 2, "anvil_matmul_tc_tile: A and B must be f16 or bf16");
    static_assert(anvil_is_bf16<TA>::value == anvil_is_bf16<TB>::value, "anvil_matmul_tc_tile: A and B differ");
    static_assert(anvil_tc_tile_ok(BM, BN, BK),
                  "anvil_matmul_tc_tile: BM and BN must be multiples of ANVIL_TC_TILE_STEP_MN, BK of ANVIL_TC_TILE_STEP_K");
    static_assert(anvil_tc_smem_bytes(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_tc_tile: the staged operands do not fit in ANVIL_SMEM_BYTES");
    const int WTM = BM / 2, WTN = BN / 4;  // a warp's block of C
    const int MI = WTM / 16, NI = WTN / 8;  // its m16n8 products
    const int S = ANVIL_TC_STAGES, LDA = BK + ANVIL_TC_PAD;
    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    // Stage s: A at smem + s * STAGE as [BM][LDA], then B.
    unsigned short* const smem = (unsigned short*)anvil_block_smem();
    const int STAGE = BM * LDA + anvil_tc_b_stage_halves(BN, BK);
    // B's n contiguous: staged [BK][BN + pad] (k-major), ldmatrix.trans.
    const bool b_kmajor = p.b_sn == 1 && p.b_sk != 1;
    const int LDB = b_kmajor ? BN + ANVIL_TC_PAD : BK + ANVIL_TC_PAD;
    const int warp = anvil_thread() / 32, lane = anvil_thread() % 32;
    const int wm = warp / 4, wn = warp % 4;

    float acc[BM / 32][BN / 32][4];
    for (int i = 0; i < MI; ++i)
        for (int j = 0; j < NI; ++j)
            for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

    // The pipeline of gemm_stages.cuh: S - 1 slices in flight.
    const int slices = (p.K + BK - 1) / BK;
    for (int kt = -(S - 1); kt < slices; ++kt) {
        if (kt >= 0) {
            anvil_cp_async_wait<S - 2>();  // this thread's copies of slice kt have landed
            anvil_barrier();               // ... and everyone's; everyone is done with slice kt - 1
        }
        const int next = kt + S - 1;  // into slice kt - 1's stage
        if (next < slices) {
            unsigned short* st = smem + (next % S) * STAGE;
            anvil_tc_stage<TA, BM, BK>(st, A, p.a_sm, p.a_sk, at.m0, p.M, next * BK, p.K);
            if (b_kmajor)
                anvil_tc_stage<TB, BK, BN>(st + BM * LDA, B, p.b_sk, p.b_sn, next * BK, p.K, at.n0, p.N);
            else
                anvil_tc_stage<TB, BN, BK>(st + BM * LDA, B, p.b_sn, p.b_sk, at.n0, p.N, next * BK, p.K);
        }
        anvil_cp_async_commit();  // possibly empty: one group per slice keeps the count
        if (kt < 0) continue;
        const unsigned short* As = smem + (kt % S) * STAGE;
        const unsigned short* Bs = As + BM * LDA;
        for (int kk = 0; kk < BK; kk += 16) {
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
                for (int j = 0; j < NI; ++j) anvil_mma_16816(acc[i][j], a[i], b[j], anvil_is_bf16<TA>::value);
        }
    }
    anvil_cp_async_wait<0>();  // only empty groups remain; nothing may be in flight at the task's end

    // Lane (g, t) holds columns 2t, 2t + 1 of rows g and g + 8 of each
    // product. Without an epilogue they leave two at a time (one 32-bit
    // store of f16/bf16); with one, value by value as the epilogue's
    // operands are located (a call per value: fewer values live across it).
    const int g = lane / 4, t = lane % 4;
    if (!p.epilogue) {
        for (int i = 0; i < MI; ++i)
            for (int j = 0; j < NI; ++j) {
                const int m = at.m0 + wm * WTM + i * 16 + g, n = at.n0 + wn * WTN + j * 8 + 2 * t;
                anvil_mm_store_pair(p, C, m, n, acc[i][j]);
                anvil_mm_store_pair(p, C, m + 8, n, acc[i][j] + 2);
            }
        return;
    }
    const AnvilEpilogue* epi = &anvil_epilogue(p.epilogue);
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
