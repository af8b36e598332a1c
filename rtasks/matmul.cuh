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
#include "tc_stages.cuh"
#include "tiling.cuh"
#include "trace_marks.cuh"

#define ANVIL_MM_TX (ANVIL_THREADS >= 16 ? 16 : 1)  // threads along N
#define ANVIL_MM_TY (ANVIL_THREADS / ANVIL_MM_TX)   // threads along M

// The tile shapes the host may pick (anvil_gemm_tile_ok) must give every
// thread of the grid a whole micro-tile.
static_assert(ANVIL_GEMM_TILE_STEP % ANVIL_MM_TX == 0 && ANVIL_GEMM_TILE_STEP % ANVIL_MM_TY == 0,
              "matmul: a tile step of ANVIL_GEMM_TILE_STEP must be a multiple of the thread grid");

// Shared memory (sizes: rtasks/tiling.cuh): per stage the A and B slices
// as As[BK][BM + pad], Bs[BK][BN + pad]; with a fused row op, afterwards,
// the finished tile as Cs[BM][BN + ANVIL_MM_ROW_PAD] (emission sizes
// ANVIL_SMEM_BYTES for it). Thread (tx, ty) owns rows anvil_gemm_at(i, ty,
// TY, VM) and columns anvil_gemm_at(j, tx, TX, VN) (VM, VN: anvil_gemm_vec
// of the micro-tile).

// A fused row op (AnvilMmRowOp) over the finished tile's `rows` rows in
// Cs[BM][BN + ANVIL_MM_ROW_PAD] (after the epilogue; whole rows: n0 = 0,
// N <= BN), then the row epilogue and the stores to C. A warp per row, the
// rows of the tile side by side (8 at a time): lane l holds column pairs
// 2 (l + 32 i), reduces by shuffles and stores each pair as one 32-bit
// word (16-bit C). Shared by the CUDA-core and the tensor-core tiles; on
// the host the one thread is the warp. Cs must be complete (a barrier
// after its stores); nothing writes it after.
template <class TC, int BN>
ANVIL_DEVICE void anvil_mm_rows_finish(const MatmulParams& p, const float* Cs, int m0, int rows, TC* C, anvil_i64 cb,
                                       char* arena) {
    const int L = ANVIL_WARP, P = (BN + 2 * L - 1) / (2 * L), LDC = BN + ANVIL_MM_ROW_PAD;
    const int lane = anvil_thread() % L, n = p.N;
    const float inv_n = 1.0f / (float)n;
    const char* gamma = p.row_op != ANVIL_MM_ROW_SOFTMAX && p.gamma_off >= 0 ? arena + p.gamma_off : 0;
    const char* beta = p.row_op == ANVIL_MM_ROW_LAYERNORM && p.beta_off >= 0 ? arena + p.beta_off : 0;
    const AnvilEpilogue* post = p.row_epilogue ? &anvil_epilogue(p.row_epilogue) : 0;
    for (int r = anvil_thread() / L; r < rows; r += ANVIL_THREADS / L) {  // the same row in every lane
        float v[P][2];  // columns c = 2 (lane + L i) + q; 0 past N
        for (int i = 0; i < P; ++i)
            for (int q = 0; q < 2; ++q) {
                const int c = 2 * (lane + L * i) + q;
                v[i][q] = c < n ? anvil_lds(Cs + r * LDC + c) : 0.0f;
            }
        float shift = 0.0f, scale = 1.0f;  // y = (x - shift) * scale
        if (p.row_op == ANVIL_MM_ROW_SOFTMAX) {
            float mx = anvil_neg_inf();
            for (int i = 0; i < P; ++i)
                for (int q = 0; q < 2; ++q)
                    if (2 * (lane + L * i) + q < n) mx = fmaxf(mx, v[i][q]);
            mx = anvil_warp_max(mx);
            float e = 0.0f;
            for (int i = 0; i < P; ++i)
                for (int q = 0; q < 2; ++q)
                    if (2 * (lane + L * i) + q < n) {
                        v[i][q] = expf(v[i][q] - mx);
                        e += v[i][q];
                    }
            scale = 1.0f / anvil_warp_sum(e);
        } else {
            // The norms as the rowwise rTask computes them: two passes, mean = 0 for rmsnorm.
            if (p.row_op == ANVIL_MM_ROW_LAYERNORM) {
                float t = 0.0f;
                for (int i = 0; i < P; ++i) t += v[i][0] + v[i][1];  // 0 past N
                shift = anvil_warp_sum(t) * inv_n;
            }
            float sq = 0.0f;
            for (int i = 0; i < P; ++i)
                for (int q = 0; q < 2; ++q)
                    if (2 * (lane + L * i) + q < n) sq += (v[i][q] - shift) * (v[i][q] - shift);
            scale = anvil_rsqrt(anvil_warp_sum(sq) * inv_n + p.eps);
        }
        const int gm = m0 + r;
        for (int i = 0; i < P; ++i) {
            const int c = 2 * (lane + L * i);
            if (c >= n) continue;
            const anvil_i64 at = (anvil_i64)gm * p.c_sm + (anvil_i64)c * p.c_sn;
            float y[2] = {0.0f, 0.0f};
            for (int q = 0; q < 2 && c + q < n; ++q) {
                y[q] = (v[i][q] - shift) * scale;
                if (gamma) y[q] *= anvil_load_dyn(gamma, p.gamma_dtype, c + q);
                if (beta) y[q] += anvil_load_dyn(beta, p.beta_dtype, c + q);
                if (post) y[q] = anvil_epilogue_apply(*post, y[q], cb + at + q * p.c_sn, arena);
            }
            anvil_store2(C + at, p.c_sn, c + 1 < n, y[0], y[1]);
        }
    }
}

// The store of a tile fused with a row op over its rows (shared-memory
// fusion): the values, after the epilogue, go to shared memory, then
// anvil_mm_rows_finish. The tile holds whole rows (n0 = 0, N <= BN): no
// other tile's values are needed.
template <class TC, int BM, int BN>
ANVIL_DEVICE void anvil_mm_row_store(const MatmulParams& p, float (*acc)[BN / ANVIL_MM_TX], int m0,
                                     const AnvilEpilogue* epi, TC* C, anvil_i64 cb, char* arena) {
    const int TX = ANVIL_MM_TX, TY = ANVIL_MM_TY, LDC = BN + ANVIL_MM_ROW_PAD;
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
    anvil_mm_rows_finish<TC, BN>(p, Cs, m0, p.M - m0 < BM ? p.M - m0 : BM, C, cb, arena);
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
    anvil_trace_mark(ANVIL_MARK_STAGING);
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
        if (kt == 0) anvil_trace_mark(ANVIL_MARK_FIRST_SLICE);
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
    anvil_trace_mark(ANVIL_MARK_LOOP_END);

    // Neighbouring threads store neighbouring column vectors. A fused
    // epilogue sees each value in registers.
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    if (p.row_op) {
        anvil_mm_row_store<TC, BM, BN>(p, acc, m0, epi, C, cb, arena);
        return;
    }
    if (epi) {  // a batch at a time (epilogue.cuh)
        anvil_epilogue_each<RM * RN>(
            *epi, arena,
            [&](int f, float& v, anvil_i64& e) {
                const int gm = m0 + anvil_gemm_at(f / RN, ty, TY, VM), gn = n0 + anvil_gemm_at(f % RN, tx, TX, VN);
                v = acc[f / RN][f % RN];
                e = cb + ((anvil_i64)gm * p.c_sm + (anvil_i64)gn * p.c_sn);
                return gm < p.M && gn < p.N;
            },
            [&](int f, float v) {
                const int gm = m0 + anvil_gemm_at(f / RN, ty, TY, VM), gn = n0 + anvil_gemm_at(f % RN, tx, TX, VN);
                anvil_store(C + ((anvil_i64)gm * p.c_sm + (anvil_i64)gn * p.c_sn), v);
            });
        return;
    }
    for (int i = 0; i < RM; ++i) {
        const int gm = m0 + anvil_gemm_at(i, ty, TY, VM);
        if (gm >= p.M) continue;
        for (int j = 0; j < RN; ++j) {
            const int gn = n0 + anvil_gemm_at(j, tx, TX, VN);
            if (gn < p.N) anvil_mm_store(p, C, cb, gm, gn, acc[i][j], 0, arena);
        }
    }
}

#endif  // ANVIL_RTASKS_MATMUL_CUH
