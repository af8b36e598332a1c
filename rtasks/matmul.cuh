// Matmul rTasks: one tile is a BM x BN block of C for one batch index.
// The K loop stages BK-deep slices of A and B through shared memory (as
// f32); each thread owns a (BM/TY) x (BN/TX) micro-tile of accumulators.
// CUDA: TX x TY = 16 x 16 threads; host: 1 x 1, one thread owns the tile.
#ifndef ANVIL_RTASKS_MATMUL_CUH
#define ANVIL_RTASKS_MATMUL_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

#define ANVIL_MM_TX (ANVIL_THREADS >= 16 ? 16 : 1)  // threads along N
#define ANVIL_MM_TY (ANVIL_THREADS / ANVIL_MM_TX)   // threads along M

// The tile shapes the host may pick (anvil_gemm_tile_ok) must give every
// thread of the grid a whole micro-tile.
static_assert(ANVIL_GEMM_TILE_STEP % ANVIL_MM_TX == 0 && ANVIL_GEMM_TILE_STEP % ANVIL_MM_TY == 0,
              "matmul: a tile step of ANVIL_GEMM_TILE_STEP must be a multiple of the thread grid");

// Shared memory (sizes: rtasks/tiling.cuh): the A and B slices as
// As[BK][BM + 1], Bs[BK][BN + 1]; with a fused row op, the finished tile as
// Cs[BM][BN + 1] (emission sizes ANVIL_SMEM_BYTES for it).

// Row op `op` (AnvilMmRowOp) on one finished row of n values in shared memory.
ANVIL_DEVICE void anvil_mm_row_apply(const MatmulParams& p, float* row, char* arena) {
    const int n = p.N;
    if (p.row_op == ANVIL_MM_ROW_SOFTMAX) {
        float mx = anvil_neg_inf();
        for (int j = 0; j < n; ++j) mx = fmaxf(mx, anvil_lds(row + j));
        float sum = 0.0f;
        for (int j = 0; j < n; ++j) {
            const float e = expf(anvil_lds(row + j) - mx);
            anvil_sts(row + j, e);
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int j = 0; j < n; ++j) anvil_sts(row + j, anvil_lds(row + j) * inv);
        return;
    }
    // The norms as the rowwise rTask computes them: two passes, mean = 0 for rmsnorm.
    float mean = 0.0f;
    if (p.row_op == ANVIL_MM_ROW_LAYERNORM) {
        for (int j = 0; j < n; ++j) mean += anvil_lds(row + j);
        mean /= (float)n;
    }
    float q = 0.0f;
    for (int j = 0; j < n; ++j) q += (anvil_lds(row + j) - mean) * (anvil_lds(row + j) - mean);
    const float rstd = anvil_rsqrt(q / (float)n + p.eps);
    const char* gamma = p.gamma_off >= 0 ? arena + p.gamma_off : 0;
    const char* beta = p.beta_off >= 0 && p.row_op == ANVIL_MM_ROW_LAYERNORM ? arena + p.beta_off : 0;
    for (int j = 0; j < n; ++j) {
        float y = (anvil_lds(row + j) - mean) * rstd;
        if (gamma) y *= anvil_load_dyn(gamma, p.gamma_dtype, j);
        if (beta) y += anvil_load_dyn(beta, p.beta_dtype, j);
        anvil_sts(row + j, y);
    }
}

// The store of a tile fused with a row op over its rows (shared-memory
// fusion): the values, after the epilogue, go to shared memory, a thread
// per row transforms its row there, and the block stores the rows after
// the row epilogue. The tile holds whole rows (n0 = 0, N <= BN): no other
// tile's values are needed.
template <class TC, int BM, int BN>
ANVIL_DEVICE void anvil_mm_row_store(const MatmulParams& p, float (*acc)[BN / ANVIL_MM_TX], int m0,
                                     const AnvilEpilogue* epi, TC* C, anvil_i64 cb, char* arena) {
    const int TX = ANVIL_MM_TX, TY = ANVIL_MM_TY, LDC = BN + 1;
    const int tid = anvil_thread(), tx = tid % TX, ty = tid / TX;
    float* Cs = (float*)anvil_block_smem();  // [BM][LDC]
    anvil_barrier();  // everyone is done reading the last A and B slices
    for (int i = 0; i < BM / TY; ++i) {
        const int r = ty + i * TY, gm = m0 + r;
        for (int j = 0; j < BN / TX; ++j) {
            const int n = tx + j * TX;
            if (gm >= p.M || n >= p.N) continue;
            const anvil_i64 at = (anvil_i64)gm * p.c_sm + (anvil_i64)n * p.c_sn;
            const float v = epi ? anvil_epilogue_apply(*epi, acc[i][j], cb + at, arena) : acc[i][j];
            anvil_sts(Cs + r * LDC + n, v);
        }
    }
    anvil_barrier();
    for (int r = tid; r < BM; r += ANVIL_THREADS)
        if (m0 + r < p.M) anvil_mm_row_apply(p, Cs + r * LDC, arena);
    anvil_barrier();
    const AnvilEpilogue* post = p.row_epilogue ? &anvil_epilogue(p.row_epilogue) : 0;
    for (int i = 0; i < BM / TY; ++i) {
        const int r = ty + i * TY, gm = m0 + r;
        if (gm >= p.M) continue;
        for (int j = 0; j < BN / TX; ++j) {
            const int n = tx + j * TX;
            if (n >= p.N) continue;
            const anvil_i64 at = (anvil_i64)gm * p.c_sm + (anvil_i64)n * p.c_sn;
            const float v = anvil_lds(Cs + r * LDC + n);
            anvil_store(C + at, post ? anvil_epilogue_apply(*post, v, cb + at, arena) : v);
        }
    }
}

// C[m, n] = v after the epilogue, if any: C is contiguous, so the
// element's offset in it locates the epilogue's operands.
template <class TC>
ANVIL_DEVICE void anvil_mm_store(const MatmulParams& p, TC* C, anvil_i64 cb, int m, int n, float v,
                                 const AnvilEpilogue* epi, char* arena) {
    const anvil_i64 at = (anvil_i64)m * p.c_sm + (anvil_i64)n * p.c_sn;
    anvil_store(C + at, epi ? anvil_epilogue_apply(*epi, v, cb + at, arena) : v);
}

template <class TA, class TB, class TC, int BM, int BN, int BK>
ANVIL_TASK void anvil_matmul_tile(const MatmulParams& p, int tile, char* arena) {
    static_assert(anvil_storage<TA>::ok && anvil_storage<TB>::ok && anvil_storage<TC>::ok,
                  "anvil_matmul_tile: TA, TB, TC must be storage types (float, int, anvil_f16, anvil_bf16)");
    static_assert(ANVIL_MM_TX * ANVIL_MM_TY == ANVIL_THREADS, "matmul thread grid must cover the block");
    static_assert(anvil_gemm_tile_ok(BM, BN, BK),
                  "anvil_matmul_tile: BM and BN must be positive multiples of ANVIL_GEMM_TILE_STEP, BK positive");
    static_assert(anvil_mm_smem_bytes(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_tile: the A and B slices do not fit in ANVIL_SMEM_BYTES");
    const int TX = ANVIL_MM_TX, TY = ANVIL_MM_TY;
    const int RM = BM / TY, RN = BN / TX;  // micro-tile of one thread
    const int LDA = BM + 1, LDB = BN + 1;

    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const int m0 = at.m0, n0 = at.n0;
    const anvil_i64 cb = at.cb;
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + cb;

    float* As = (float*)anvil_block_smem();  // [BK][LDA]
    float* Bs = As + BK * LDA;               // [BK][LDB]
    const int tid = anvil_thread();
    const int tx = tid % TX, ty = tid / TX;
    // Walk each operand along its unit stride so a warp's loads coalesce.
    const bool a_m_fast = p.a_sm == 1 && p.a_sk != 1;
    const bool b_k_fast = p.b_sk == 1 && p.b_sn != 1;

    float acc[BM / ANVIL_MM_TY][BN / ANVIL_MM_TX];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < p.K; k0 += BK) {
        anvil_barrier();  // everyone is done reading the previous slices
        for (int e = tid; e < BM * BK; e += ANVIL_THREADS) {
            const int m = a_m_fast ? e % BM : e / BK;
            const int k = a_m_fast ? e / BM : e % BK;
            const int gm = m0 + m, gk = k0 + k;
            const float v = (gm < p.M && gk < p.K) ? anvil_load(A + gm * p.a_sm + gk * p.a_sk) : 0.0f;
            anvil_sts(As + k * LDA + m, v);
        }
        for (int e = tid; e < BK * BN; e += ANVIL_THREADS) {
            const int k = b_k_fast ? e % BK : e / BN;
            const int n = b_k_fast ? e / BK : e % BN;
            const int gk = k0 + k, gn = n0 + n;
            const float v = (gk < p.K && gn < p.N) ? anvil_load(B + gk * p.b_sk + gn * p.b_sn) : 0.0f;
            anvil_sts(Bs + k * LDB + n, v);
        }
        anvil_barrier();  // the slices are complete
        // Out-of-range rows, columns and k were staged as zeros: no guards here.
        for (int k = 0; k < BK; ++k) {
            float a[BM / ANVIL_MM_TY], b[BN / ANVIL_MM_TX];
            for (int i = 0; i < RM; ++i) a[i] = anvil_lds(As + k * LDA + ty + i * TY);
            for (int j = 0; j < RN; ++j) b[j] = anvil_lds(Bs + k * LDB + tx + j * TX);
            for (int i = 0; i < RM; ++i)
                for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * b[j];
        }
    }

    // Thread (tx, ty) owns rows ty + i*TY and columns tx + j*TX: neighbouring
    // threads store neighbouring columns. A fused epilogue sees each value
    // in registers.
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    if (p.row_op) {
        anvil_mm_row_store<TC, BM, BN>(p, acc, m0, epi, C, cb, arena);
        return;
    }
    for (int i = 0; i < RM; ++i) {
        const int gm = m0 + ty + i * TY;
        if (gm >= p.M) continue;
        for (int j = 0; j < RN; ++j) {
            const int gn = n0 + tx + j * TX;
            if (gn < p.N) anvil_mm_store(p, C, cb, gm, gn, acc[i][j], epi, arena);
        }
    }
}

#endif  // ANVIL_RTASKS_MATMUL_CUH
