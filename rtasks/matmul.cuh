// Matmul rTasks: one tile is a BM x BN block of C for one batch index.
// The K loop streams BK-deep slices of A and B through ANVIL_GEMM_STAGES
// shared-memory stages (gemm_stages.cuh: cp.async, k-major f32 slices);
// each thread owns a (BM/TY) x (BN/TX) register micro-tile (8 x 8 for a
// 128 x 128 tile) read with 128-bit shared loads.
// CUDA: TX x TY = 16 x 16 threads; host: 1 x 1, one thread owns the tile.
#ifndef ANVIL_RTASKS_MATMUL_CUH
#define ANVIL_RTASKS_MATMUL_CUH

#include "a_norm.cuh"
#include "epilogue.cuh"
#include "gemm_stages.cuh"
#include "tiling.cuh"

#define ANVIL_MM_TX (ANVIL_THREADS >= 16 ? 16 : 1)  // threads along N
#define ANVIL_MM_TY (ANVIL_THREADS / ANVIL_MM_TX)   // threads along M

// The tile shapes the host may pick (anvil_gemm_tile_ok) must give every
// thread of the grid a whole micro-tile.
static_assert(ANVIL_GEMM_TILE_STEP % ANVIL_MM_TX == 0 && ANVIL_GEMM_TILE_STEP % ANVIL_MM_TY == 0,
              "matmul: a tile step of ANVIL_GEMM_TILE_STEP must be a multiple of the thread grid");

// Shared memory (sizes: rtasks/tiling.cuh): per stage the A and B slices
// as As[BK][BM + pad], Bs[BK][BN + pad]; with a fused row op, afterwards,
// the finished tile as Cs[BM][BN + 1] (emission sizes ANVIL_SMEM_BYTES for
// it). Thread (tx, ty) owns rows anvil_gemm_at(i, ty, TY, VM) and columns
// anvil_gemm_at(j, tx, TX, VN) (VM, VN: anvil_gemm_vec of the micro-tile).

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
    const int VM = anvil_gemm_vec(BM / TY), VN = anvil_gemm_vec(BN / TX);
    const int tid = anvil_thread(), tx = tid % TX, ty = tid / TX;
    float* Cs = (float*)anvil_block_smem();  // [BM][LDC]
    anvil_barrier();  // everyone is done reading the last A and B slices
    for (int i = 0; i < BM / TY; ++i) {
        const int r = anvil_gemm_at(i, ty, TY, VM), gm = m0 + r;
        for (int j = 0; j < BN / TX; ++j) {
            const int n = anvil_gemm_at(j, tx, TX, VN);
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
        const int r = anvil_gemm_at(i, ty, TY, VM), gm = m0 + r;
        if (gm >= p.M) continue;
        for (int j = 0; j < BN / TX; ++j) {
            const int n = anvil_gemm_at(j, tx, TX, VN);
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

// One operand's slice from k0 into Xs[k][x]: x is A's m (Xs = As) or B's n
// (Xs = Bs), X(x, k) = X[x * sx + k * sk] for x < nx, k < K; the tile's
// offsets fit in 32 bits (verify_tile_graph). `vec`: X is f32, x contiguous
// and 16-byte aligned along it, so 4 x move as one 16-byte copy.
template <class T, int BX, int BK>
ANVIL_DEVICE void anvil_mm_stage(float* Xs, const T* X, anvil_i64 s_x, anvil_i64 s_k, int nx, int K, int x0, int k0,
                                 bool vec) {
    const int LDX = BX + ANVIL_GEMM_PAD, tid = anvil_thread();
    const int sx = (int)s_x, sk = (int)s_k;
    if (vec) {
#pragma unroll 1
        for (int e = tid; e < BK * (BX / 4); e += ANVIL_THREADS) {
            const int k = e / (BX / 4), x = (e % (BX / 4)) * 4, gx = x0 + x, gk = k0 + k;
            const int left = gk < K ? nx - gx : 0;
            anvil_stage_vec4(Xs + k * LDX + x, (const float*)X + (gk * sk + gx), left < 0 ? 0 : left > 4 ? 4 : left,
                             (const float*)X);
        }
        return;
    }
    // One element each, walking X's contiguous axis so a warp's reads coalesce.
    const bool k_fast = sk == 1 && sx != 1;
#pragma unroll 1
    for (int e = tid; e < BX * BK; e += ANVIL_THREADS) {
        const int x = k_fast ? e / BK : e % BX, k = k_fast ? e % BK : e / BX, gx = x0 + x, gk = k0 + k;
        anvil_stage_elem(Xs + k * LDX + x, X + (gx * sx + gk * sk), gx < nx && gk < K, X);
    }
}

// A_NORM: the tile normalises A's rows (p.a_norm, a_norm.cuh); its own
// variant, so that the other tiles carry none of its code or registers.
template <class TA, class TB, class TC, int BM, int BN, int BK, bool A_NORM = false>
ANVIL_TASK void anvil_matmul_tile(const MatmulParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(MatmulParams, p, params);
    static_assert(anvil_storage<TA>::ok && anvil_storage<TB>::ok && anvil_storage<TC>::ok,
                  "anvil_matmul_tile: TA, TB, TC must be storage types (float, int, anvil_f16, anvil_bf16)");
    static_assert(ANVIL_MM_TX * ANVIL_MM_TY == ANVIL_THREADS, "matmul thread grid must cover the block");
    static_assert(anvil_gemm_tile_ok(BM, BN, BK),
                  "anvil_matmul_tile: BM and BN must be positive multiples of ANVIL_GEMM_TILE_STEP, BK positive");
    static_assert(anvil_mm_smem_bytes(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_tile: the A and B stages do not fit in ANVIL_SMEM_BYTES");
    const int TX = ANVIL_MM_TX, TY = ANVIL_MM_TY, S = ANVIL_GEMM_STAGES;
    const int RM = BM / TY, RN = BN / TX;  // micro-tile of one thread
    const int VM = anvil_gemm_vec(RM), VN = anvil_gemm_vec(RN);
    const int LDA = BM + ANVIL_GEMM_PAD, LDB = BN + ANVIL_GEMM_PAD, STAGE = BK * (LDA + LDB);

    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const int m0 = at.m0, n0 = at.n0;
    const anvil_i64 cb = at.cb;
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + cb;

    float* const smem = (float*)anvil_block_smem();  // stage s: As at s * STAGE, then Bs
    const int tid = anvil_thread();
    const int tx = tid % TX, ty = tid / TX;
    const bool a_vec = anvil_is_f32<TA>::value && p.a_sm == 1 && p.a_sk % 4 == 0 && anvil_aligned16(A);
    const bool b_vec = anvil_is_f32<TB>::value && p.b_sn == 1 && p.b_sk % 4 == 0 && anvil_aligned16(B);

    // A folded norm of A's rows (a_norm.cuh): the rows' statistics beside
    // the stages, before the accumulators take their registers; the loop's
    // first barrier shows them to every thread.
    float* const stats = smem + anvil_mm_smem_bytes(BM, BN, BK) / 4;
    if (A_NORM) anvil_a_norm_stats(p, A, m0, BM, stats);

    float acc[BM / ANVIL_MM_TY][BN / ANVIL_MM_TX];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;

    // The pipeline of gemm_stages.cuh: S - 1 slices in flight.
    const int slices = (p.K + BK - 1) / BK;
    for (int s = 0; s < S - 1; ++s) {
        if (s < slices) {
            anvil_mm_stage<TA, BM, BK>(smem + s * STAGE, A, p.a_sm, p.a_sk, p.M, p.K, m0, s * BK, a_vec);
            anvil_mm_stage<TB, BN, BK>(smem + s * STAGE + BK * LDA, B, p.b_sn, p.b_sk, p.N, p.K, n0, s * BK, b_vec);
        }
        anvil_stage_commit();
    }
    for (int kt = 0; kt < slices; ++kt) {
        anvil_stage_wait<S - 2>();  // this thread's copies of slice kt have landed
        anvil_barrier();  // the slices are complete
        const int next = kt + S - 1;  // into slice kt - 1's stage, which everyone is done with
        if (next < slices) {
            float* st = smem + (next % S) * STAGE;
            anvil_mm_stage<TA, BM, BK>(st, A, p.a_sm, p.a_sk, p.M, p.K, m0, next * BK, a_vec);
            anvil_mm_stage<TB, BN, BK>(st + BK * LDA, B, p.b_sn, p.b_sk, p.N, p.K, n0, next * BK, b_vec);
        }
        anvil_stage_commit();
        // Out-of-range rows, columns and k were staged as zeros: no guards here.
        float* As = smem + (kt % S) * STAGE;
        if (A_NORM) {  // normalise slice kt's A where it landed; then it may be read
            anvil_a_norm_slice<BM, BK>(As, stats, kt * BK, p.K);
            anvil_barrier();
        }
        anvil_gemm_slice<BM, BN, BK, TY, TX>(As, As + BK * LDA, acc, ty, tx);
    }
    anvil_stage_wait<0>();  // only empty groups remain; nothing may be in flight at the task's end

    // Neighbouring threads store neighbouring column vectors. A fused
    // epilogue sees each value in registers.
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    if (p.row_op) {
        anvil_mm_row_store<TC, BM, BN>(p, acc, m0, epi, C, cb, arena);
        return;
    }
    for (int i = 0; i < RM; ++i) {
        const int gm = m0 + anvil_gemm_at(i, ty, TY, VM);
        if (gm >= p.M) continue;
        for (int j = 0; j < RN; ++j) {
            const int gn = n0 + anvil_gemm_at(j, tx, TX, VN);
            if (gn < p.N) anvil_mm_store(p, C, cb, gm, gn, acc[i][j], epi, arena);
        }
    }
}

#endif  // ANVIL_RTASKS_MATMUL_CUH
