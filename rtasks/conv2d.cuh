// conv2d rTasks as an implicit GEMM. For one image n and one group g:
//   Y[m, o] = sum_k A[m, k] * B[k, o] (+ bias[o]),
//   m = (oh, ow) an output pixel (M = OH * OW), o an output channel of the
//   group (N = Og), k = (c, i, j) an input channel of the group and a kernel
//   cell (K = Cg * KH * KW);
//   A[m, k] = x[n, g*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 in the
//   padding), gathered from x on the fly; B[k, o] = w[g*Og + o, c, i, j],
//   which is w read as it is stored.
// A tile is one BM x BN block of Y. As in matmul.cuh, BK-deep slices of A
// and B stream through the stages of gemm_stages.cuh as f32: A k-major,
// As[k][m] (the gather is one 4-byte cp.async per element, zero-filled in
// the padding and past the edges; a pointwise conv's A is x itself, copied
// 16 bytes at a time), B as w stores it, n-major, Bt[o][k] (16-byte
// cp.async where w's rows keep 16-byte alignment, K % 4 == 0, else one
// 4-byte copy per element; zero-filled past the edges). Each thread owns a
// register micro-tile read with 128-bit shared loads: A's pixels along m,
// B's channels along k (anvil_gemm_slice_bt: one load, 4 k-steps of a
// channel). The 8 x 8 micro-tile (128 x 128) stages B k-major instead,
// Bs[k][o], each element transposed by its 4-byte copy: it has no registers
// to spare for 4 k-steps of 8 channels (anvil_conv_b_nmajor). Threads are laid out along M first: y's pixels are contiguous,
// so neighbouring threads store neighbouring bytes.
//
// Small tiles split each slice's k over k groups (anvil_conv_k_groups,
// tiling.cuh): on the 16 x 16 grid a 64 x 32 tile's thread would hold 4 x 2
// (three shared loads for 8 FMAs a k); as 2 groups of 128 threads, each
// multiplying the whole tile over half of every slice's k, it holds 4 x 4
// (two loads for 16 FMAs). The staging is the whole block's as before.
// After the K loop each group leaves its partial tile in shared memory and
// every thread sums the groups' values of a few outputs, in y's order, and
// stores them through the epilogue.
//
// The gather's index math is precomputed: a pixel's top-left input row and
// column and its offset in x once per tile (in registers: on the GPU each
// thread gathers one fixed pixel of the tile), a k's channel and
// kernel-cell offsets once per slice (a shared table, one 16-byte entry per
// k and one table per stage), so an element costs one 128-bit shared load,
// three adds, one unsigned compare per axis and the copy; on the GPU the
// thread's k of a slice are known at compile time (its pixel's column of
// As), so its gather loop is unrolled with constant offsets (but the 8 x 8
// micro-tile's, short of registers). All offsets
// are 32-bit: one (image, group) of x and one group of w fit
// (verify_tile_graph).
#ifndef ANVIL_RTASKS_CONV2D_CUH
#define ANVIL_RTASKS_CONV2D_CUH

#include "epilogue.cuh"
#include "gemm_stages.cuh"
#include "tiling.cuh"
#include "trace_marks.cuh"

#define ANVIL_CONV_TX (ANVIL_THREADS >= 16 ? 16 : 1)  // threads along M (pixels)
#define ANVIL_CONV_TY (ANVIL_THREADS / ANVIL_CONV_TX)  // threads along N (channels)

// This block's k groups and the grid of one group (one thread on the host:
// a single group).
ANVIL_FACT constexpr int anvil_conv_groups(int bm, int bn, int bk) {
    return ANVIL_THREADS == ANVIL_BLOCK_THREADS ? anvil_conv_k_groups(bm, bn, bk) : 1;
}
ANVIL_FACT constexpr int anvil_conv_grid_tx(int bm, int bn, int bk) {
    return anvil_conv_groups(bm, bn, bk) > 1 ? anvil_conv_group_tx(bm, bn, anvil_conv_groups(bm, bn, bk)) : ANVIL_CONV_TX;
}
ANVIL_FACT constexpr int anvil_conv_grid_ty(int bm, int bn, int bk) {
    return ANVIL_THREADS / anvil_conv_groups(bm, bn, bk) / anvil_conv_grid_tx(bm, bn, bk);
}

// The tile shapes the host may pick (anvil_gemm_tile_ok) must give every
// thread of the grid a whole micro-tile.
static_assert(ANVIL_GEMM_TILE_STEP % ANVIL_CONV_TX == 0 && ANVIL_GEMM_TILE_STEP % ANVIL_CONV_TY == 0,
              "conv2d: a tile step of ANVIL_GEMM_TILE_STEP must be a multiple of the thread grid");

// Shared memory (anvil_conv_smem_bytes, rtasks/tiling.cuh): the stages of
// As[BK][BM + pad] and Bt[BN][BK + pad] (or Bs[BK][BN + pad]), then per
// stage the k table, AnvilConvK[BK]; after the K loop the k groups'
// partial tiles, [group][o][m], over the stages.

// A row or column offset that no kernel-cell offset can bring back into x:
// marks pixels and k beyond the GEMM's edge, so their A entries stage as 0.
#define ANVIL_CONV_OUTSIDE (-(1 << 29))

// Where one output pixel's window starts: its offset in x's (image, group)
// planes and its top input row and column (ANVIL_CONV_OUTSIDE past M).
struct AnvilConvPixel {
    int off, h, w;
};
ANVIL_DEVICE AnvilConvPixel anvil_conv_pixel(const WindowParams& p, int gm, int M) {
    const int oh = gm / p.OW, ow = gm % p.OW;
    const int h = oh * p.sh - p.pt, w = ow * p.sw - p.pl;
    const AnvilConvPixel px = {gm < M ? h * p.W + w : 0, gm < M ? h : ANVIL_CONV_OUTSIDE, gm < M ? w : ANVIL_CONV_OUTSIDE};
    return px;
}

// The k tables of slice k0 (each thread writes its own k); k from K on is
// past the tile's range (the GEMM's or its split-K slice's end). Three
// tables k_off, k_h, k_w [BK]: the tensor-core tile's (conv2d_tc.cuh).
template <int BK>
ANVIL_DEVICE void anvil_conv_k_tables(const WindowParams& p, int* kt, int k0, int K) {
    const int KHW = p.KH * p.KW;
    for (int k = anvil_thread(); k < BK; k += ANVIL_THREADS) {
        const int gk = k0 + k, c = gk / KHW, r = gk % KHW, i = r / p.KW, j = r % p.KW;
        const bool in = gk < K;
        anvil_sts(kt + k, in ? c * p.H * p.W + i * p.dh * p.W + j * p.dw : 0);
        anvil_sts(kt + BK + k, in ? i * p.dh : ANVIL_CONV_OUTSIDE);
        anvil_sts(kt + 2 * BK + k, in ? j * p.dw : ANVIL_CONV_OUTSIDE);
    }
}

// One k of a slice, as this tile's gather reads it in one 128-bit load:
// its offset in x's (image, group) planes and its kernel cell's row and
// column offsets (ANVIL_CONV_OUTSIDE from K on).
struct alignas(16) AnvilConvK {
    int off, h, w, unused;
};
template <int BK>
ANVIL_DEVICE void anvil_conv_k_entries(const WindowParams& p, AnvilConvK* kt, int k0, int K) {
    const int KHW = p.KH * p.KW;
    for (int k = anvil_thread(); k < BK; k += ANVIL_THREADS) {
        const int gk = k0 + k, c = gk / KHW, r = gk % KHW, i = r / p.KW, j = r % p.KW;
        const bool in = gk < K;
        const AnvilConvK e = {in ? c * p.H * p.W + i * p.dh * p.W + j * p.dw : 0, in ? i * p.dh : ANVIL_CONV_OUTSIDE,
                              in ? j * p.dw : ANVIL_CONV_OUTSIDE, 0};
        anvil_sts(kt + k, e);
    }
}

// A[m][k] of pixel px into *dst (0 outside x).
template <class TX>
ANVIL_DEVICE void anvil_conv_gather(const WindowParams& p, float* dst, const TX* x, AnvilConvPixel px, AnvilConvK k) {
    const int ih = px.h + k.h, iw = px.w + k.w;
    const bool in = (unsigned)ih < (unsigned)p.H && (unsigned)iw < (unsigned)p.W;
    anvil_stage_elem(dst, x + (px.off + k.off), in, x);
}

// Whether w's rows (k contiguous, K long) move as 16-byte copies: f32 rows
// that keep 16-byte alignment, and slices that start at multiples of 4.
template <class TW, int BK>
ANVIL_DEVICE bool anvil_conv_b_vec(const WindowParams& p, const TW* w) {
    return anvil_is_f32<TW>::value && BK % 4 == 0 && anvil_conv_k(p) % 4 == 0 && anvil_aligned16(w);
}

// Whether A of this tile's conv is x as it is stored, [K][M] with m
// contiguous, so that four pixels move as one 16-byte copy: a pointwise
// conv (1 x 1, stride 1, no padding: pixel m of y is pixel m of x) of f32
// x whose planes keep 16-byte alignment.
template <class TX>
ANVIL_DEVICE bool anvil_conv_a_vec(const WindowParams& p, const TX* x) {
    return anvil_is_f32<TX>::value && p.KH == 1 && p.KW == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 &&
           p.OH == p.H && p.OW == p.W && (p.H * p.W) % 4 == 0 && anvil_aligned16(x);
}

// Slice k0 of A (gathered from x, m fast so a warp reads along a row of x)
// into As[k][m] and of B (w[o][k], k fast, rows K long) into Bt[o][k]
// (Bs[k][o] where !anvil_conv_b_nmajor), zero from k_end on. `mine`: this thread's one pixel when every element it
// gathers has it. `a_vec` (anvil_conv_a_vec): A's rows are x's planes,
// copied four pixels at a time with no k tables. `b_vec`
// (anvil_conv_b_vec): w's rows move four k at a time.
template <class TX, class TW, int BM, int BN, int BK>
ANVIL_DEVICE void anvil_conv_stage(const WindowParams& p, float* As, float* Bt, const AnvilConvK* kt, const TX* x,
                                   const TW* w, int m0, int o0, int k0, int M, int K, int k_end, AnvilConvPixel mine,
                                   bool a_vec, bool b_vec) {
    const int LDA = BM + ANVIL_GEMM_PAD, LDK = BK + ANVIL_GEMM_PAD, tid = anvil_thread();
    // Every thread gathers one fixed pixel, tid % BM, at k = tid / BM + r * KSTEP.
    const bool fixed = ANVIL_THREADS % BM == 0;
    const int KSTEP = ANVIL_THREADS / BM > 0 ? ANVIL_THREADS / BM : 1, ROUNDS = (BK + KSTEP - 1) / KSTEP;
    if (a_vec) {
#pragma unroll 1
        for (int e = tid; e < BK * (BM / 4); e += ANVIL_THREADS) {
            const int k = e / (BM / 4), m = (e % (BM / 4)) * 4, gm = m0 + m, gk = k0 + k;
            const int left = gk < k_end ? M - gm : 0;
            anvil_stage_vec4(As + k * LDA + m, (const float*)x + (gk * M + gm), left < 0 ? 0 : left > 4 ? 4 : left,
                             (const float*)x);
        }
    } else if (fixed && anvil_conv_b_nmajor(BM, BN)) {
        // Unrolled: the table's and As's offsets become constants (16 PTX
        // instructions an element, against 39 rolled with three table loads);
        // at most BK / 2 rounds (BM <= 128), each a table entry's 4 registers.
        // (Not the 8 x 8 micro-tile's: its accumulators leave no room.)
        float* const column = As + (tid / BM) * LDA + tid % BM;
        const AnvilConvK* const ks = kt + tid / BM;
#pragma unroll
        for (int r = 0; r < ROUNDS; ++r) {
            if (BK % KSTEP != 0 && tid / BM + r * KSTEP >= BK) break;
            anvil_conv_gather(p, column + r * KSTEP * LDA, x, mine, anvil_lds(ks + r * KSTEP));
        }
    } else {
#pragma unroll 1
        for (int e = tid; e < BM * BK; e += ANVIL_THREADS) {
            const int m = e % BM, k = e / BM;
            anvil_conv_gather(p, As + k * LDA + m, x, fixed ? mine : anvil_conv_pixel(p, m0 + m, M), anvil_lds(kt + k));
        }
    }
    if (!anvil_conv_b_nmajor(BM, BN)) {  // k-major, Bs[k][o]: each element transposed by its copy
        const int LDB = BN + ANVIL_GEMM_PAD;
#pragma unroll 1
        for (int e = tid; e < BN * BK; e += ANVIL_THREADS) {
            const int k = e % BK, o = e / BK, gk = k0 + k, go = o0 + o;
            anvil_stage_elem(Bt + k * LDB + o, w + (go * K + gk), gk < k_end && go < p.Og, w);
        }
        return;
    }
    if (b_vec) {
#pragma unroll 1
        for (int e = tid; e < BN * (BK / 4); e += ANVIL_THREADS) {
            const int o = e / (BK / 4), k = (e % (BK / 4)) * 4, go = o0 + o, gk = k0 + k;
            const int left = go < p.Og ? k_end - gk : 0;
            anvil_stage_vec4(Bt + o * LDK + k, (const float*)w + (go * K + gk), left < 0 ? 0 : left > 4 ? 4 : left,
                             (const float*)w);
        }
        return;
    }
#pragma unroll 1
    for (int e = tid; e < BN * BK; e += ANVIL_THREADS) {
        const int k = e % BK, o = e / BK, gk = k0 + k, go = o0 + o;
        anvil_stage_elem(Bt + o * LDK + k, w + (go * K + gk), gk < k_end && go < p.Og, w);
    }
}

// One tile's operands: its (image, group) of x and y (of its K slice's
// block of y for split-K partials), its group of w and bias (0: none, and
// in every K slice but the first), and y's offset from y_off (which locates
// an epilogue's operands).
template <class TX, class TW, class TB, class TY>
struct AnvilConvOperands {
    const TX* x;
    const TW* w;
    const TB* bias;
    TY* y;
    anvil_i64 y0;
};
template <class TX, class TW, class TB, class TY>
ANVIL_DEVICE AnvilConvOperands<TX, TW, TB, TY> anvil_conv_operands(const WindowParams& p, const AnvilConvPlace& at,
                                                                    char* arena) {
    const anvil_i64 plane = (anvil_i64)p.H * p.W, M = (anvil_i64)p.OH * p.OW;
    const anvil_i64 y0 = (((anvil_i64)at.ks * p.N + at.n) * p.O + (anvil_i64)at.g * p.Og) * M;
    const AnvilConvOperands<TX, TW, TB, TY> o = {
        anvil_at<const TX>(arena, p.x_off) + ((anvil_i64)at.n * p.C + (anvil_i64)at.g * p.Cg) * plane,
        anvil_at<const TW>(arena, p.w_off) + (anvil_i64)at.g * p.Og * p.Cg * p.KH * p.KW,
        p.bias_off >= 0 && at.ks == 0 ? anvil_at<const TB>(arena, p.bias_off) + (anvil_i64)at.g * p.Og : 0,
        anvil_at<TY>(arena, p.y_off) + y0, y0};
    return o;
}

template <class TX, class TW, class TB, class TY, int BM, int BN, int BK>
ANVIL_TASK void anvil_conv2d_tile(const WindowParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(WindowParams, p, params);
    static_assert(anvil_storage<TX>::ok && anvil_storage<TW>::ok && anvil_storage<TB>::ok && anvil_storage<TY>::ok,
                  "anvil_conv2d_tile: TX, TW, TB, TY must be storage types (float, int, anvil_f16, anvil_bf16)");
    static_assert(ANVIL_CONV_TX * ANVIL_CONV_TY == ANVIL_THREADS, "conv2d thread grid must cover the block");
    static_assert(anvil_conv_groups(BM, BN, BK) * anvil_conv_grid_tx(BM, BN, BK) * anvil_conv_grid_ty(BM, BN, BK) ==
                          ANVIL_THREADS &&
                      BM % anvil_conv_grid_tx(BM, BN, BK) == 0 && BN % anvil_conv_grid_ty(BM, BN, BK) == 0,
                  "conv2d: every k group's grid must tile BM x BN");
    static_assert(anvil_conv_groups(BM, BN, BK) == 1 || anvil_conv_b_nmajor(BM, BN), "conv2d: k groups read B n-major");
    static_assert(anvil_gemm_tile_ok(BM, BN, BK),
                  "anvil_conv2d_tile: BM and BN must be positive multiples of ANVIL_GEMM_TILE_STEP, BK positive");
    static_assert(anvil_conv_smem_bytes(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_conv2d_tile: the stages and gather tables do not fit in ANVIL_SMEM_BYTES");
    const int G = anvil_conv_groups(BM, BN, BK), KS = BK / G;  // k groups, each KS k of a slice
    const int TXn = anvil_conv_grid_tx(BM, BN, BK), TYn = anvil_conv_grid_ty(BM, BN, BK), S = ANVIL_GEMM_STAGES;
    const int RM = BM / TXn, RN = BN / TYn;  // micro-tile of one thread
    const int VM = anvil_gemm_vec(RM), VN = anvil_gemm_vec(RN);
    const int LDA = BM + ANVIL_GEMM_PAD, STAGE = anvil_conv_stage_floats(BM, BN, BK);
    const int M = p.OH * p.OW, K = anvil_conv_k(p);  // K: w's row length

    const AnvilConvPlace place = anvil_conv_place(p, tile, BM, BN);
    const int m0 = place.m0, o0 = place.o0, kb = place.k0, ke = place.k1;  // this tile's k: [kb, ke)
    const AnvilConvOperands<TX, TW, TB, TY> op = anvil_conv_operands<TX, TW, TB, TY>(p, place, arena);
    const TX* x = op.x;
    const TW* w = op.w;
    const TB* bias = op.bias;
    TY* y = op.y;

    float* const smem = (float*)anvil_block_smem();                // stage s: As at s * STAGE, then Bt
    AnvilConvK* const ktables = (AnvilConvK*)(smem + S * STAGE);  // stage s: at s * BK
    const int tid = anvil_thread();
    const int group = G > 1 ? tid / (TXn * TYn) : 0, tx = tid % TXn, ty = G > 1 ? tid / TXn % TYn : tid / TXn;
    // On the GPU (ANVIL_THREADS % BM == 0) this thread gathers pixel tid % BM only.
    const AnvilConvPixel mine = anvil_conv_pixel(p, m0 + tid % BM, M);
    const bool a_vec = anvil_conv_a_vec(p, x), b_vec = anvil_conv_b_vec<TW, BK>(p, w);

    float acc[BM / anvil_conv_grid_tx(BM, BN, BK)][BN / anvil_conv_grid_ty(BM, BN, BK)];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;

    // The pipeline of gemm_stages.cuh; slice s's k tables are written one
    // barrier before its gather (the previous task's threads are past
    // anvil_publish's barrier: shared memory is free).
    const int slices = (ke - kb + BK - 1) / BK;
    for (int s = 0; s < S; ++s)
        if (s < slices) anvil_conv_k_entries<BK>(p, ktables + s * BK, kb + s * BK, ke);
    anvil_barrier();  // the first tables are complete
    anvil_trace_mark(ANVIL_MARK_STAGING);
    for (int s = 0; s < S - 1; ++s) {
        if (s < slices)
            anvil_conv_stage<TX, TW, BM, BN, BK>(p, smem + s * STAGE, smem + s * STAGE + BK * LDA, ktables + s * BK, x,
                                                 w, m0, o0, kb + s * BK, M, K, ke, mine, a_vec, b_vec);
        anvil_stage_commit();
    }
    for (int kt = 0; kt < slices; ++kt) {
        anvil_stage_wait<S - 2>();  // this thread's copies of slice kt have landed
        anvil_barrier();  // the slices are complete
        if (kt == 0) anvil_trace_mark(ANVIL_MARK_FIRST_SLICE);
        const int next = kt + S - 1;  // into slice kt - 1's stage, which everyone is done with
        if (next < slices) {
            float* st = smem + (next % S) * STAGE;
            anvil_conv_stage<TX, TW, BM, BN, BK>(p, st, st + BK * LDA, ktables + (next % S) * BK, x, w, m0, o0,
                                                 kb + next * BK, M, K, ke, mine, a_vec, b_vec);
        }
        // Slice kt + S's tables into slice kt's, whose gather is long issued.
        if (kt + S < slices) anvil_conv_k_entries<BK>(p, ktables + (kt % S) * BK, kb + (kt + S) * BK, ke);
        anvil_stage_commit();
        const float* As = smem + (kt % S) * STAGE;
        if (anvil_conv_b_nmajor(BM, BN))  // this group's k of the slice
            anvil_gemm_slice_bt<BM, BN, BK, TXn, TYn, KS>(As + group * KS * LDA, As + BK * LDA + group * KS, acc, tx, ty);
        else
            anvil_gemm_slice<BM, BN, BK, TXn, TYn>(As, As + BK * LDA, acc, tx, ty);
    }
    anvil_stage_wait<0>();  // only empty groups remain; nothing may be in flight at the task's end
    anvil_trace_mark(ANVIL_MARK_LOOP_END);

    // Thread (tx, ty) owns pixels anvil_gemm_at(i, tx, TX, VM) and channels
    // anvil_gemm_at(j, ty, TY, VN). A fused epilogue (batchnorm,
    // activations, residual adds) takes each value in registers; its
    // operands are located by the element's offset in y.
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    const anvil_i64 y0 = op.y0;
    if (G > 1) {
        // The groups' partial tiles, [group][o][m], over the stages (all
        // copies have landed, and the barrier sees every group's multiply done).
        anvil_barrier();
        float* const part = smem + group * BM * BN;
#pragma unroll
        for (int j = 0; j < RN; ++j)
#pragma unroll
            for (int c = 0; c < RM / VM; ++c) {
                float v[4];
#pragma unroll
                for (int i = 0; i < VM; ++i) v[i] = acc[c * VM + i][j];
                anvil_sts_f32<VM>(part + anvil_gemm_at(j, ty, TYn, VN) * BM + anvil_gemm_at(c * VM, tx, TXn, VM), v);
            }
        anvil_barrier();  // every partial tile is complete
        // Element e of the tile (channel go): its partials summed, its bias added.
        auto sum = [&](int e, int go) {
            float v = bias ? anvil_load(bias + go) : 0.0f;
#pragma unroll
            for (int g = 0; g < G; ++g) v += anvil_lds(smem + g * BM * BN + e);
            return v;
        };
        if (epi) {  // the sums through the epilogue a batch at a time (epilogue.cuh)
            anvil_epilogue_each<(BM * BN + ANVIL_THREADS - 1) / ANVIL_THREADS>(
                *epi, arena,
                [&](int f, float& v, anvil_i64& at) {
                    const int e = tid + f * ANVIL_THREADS, gm = m0 + e % BM, go = o0 + e / BM;
                    if (e >= BM * BN || gm >= M || go >= p.Og) return false;
                    v = sum(e, go);
                    at = y0 + (go * M + gm);
                    return true;
                },
                [&](int f, float v) {
                    const int e = tid + f * ANVIL_THREADS;
                    anvil_store(y + ((o0 + e / BM) * M + m0 + e % BM), v);
                });
            return;
        }
#pragma unroll 1
        for (int e = tid; e < BM * BN; e += ANVIL_THREADS) {
            const int gm = m0 + e % BM, go = o0 + e / BM;
            if (gm < M && go < p.Og) anvil_store(y + (go * M + gm), sum(e, go));
        }
    } else if (epi) {  // a batch at a time (epilogue.cuh)
        anvil_epilogue_each<RM * RN>(
            *epi, arena,
            [&](int f, float& v, anvil_i64& at) {
                const int go = o0 + anvil_gemm_at(f / RM, ty, TYn, VN), gm = m0 + anvil_gemm_at(f % RM, tx, TXn, VM);
                if (go >= p.Og || gm >= M) return false;
                v = acc[f % RM][f / RM] + (bias ? anvil_load(bias + go) : 0.0f);
                at = y0 + (go * M + gm);
                return true;
            },
            [&](int f, float v) {
                const int go = o0 + anvil_gemm_at(f / RM, ty, TYn, VN), gm = m0 + anvil_gemm_at(f % RM, tx, TXn, VM);
                anvil_store(y + (go * M + gm), v);
            });
    } else {
        for (int j = 0; j < RN; ++j) {
            const int go = o0 + anvil_gemm_at(j, ty, TYn, VN);
            if (go >= p.Og) continue;
            const float b = bias ? anvil_load(bias + go) : 0.0f;
            for (int i = 0; i < RM; ++i) {
                const int gm = m0 + anvil_gemm_at(i, tx, TXn, VM);
                if (gm >= M) continue;
                anvil_store(y + (go * M + gm), acc[i][j] + b);
            }
        }
    }
}

#endif  // ANVIL_RTASKS_CONV2D_CUH
