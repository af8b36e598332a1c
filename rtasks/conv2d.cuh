// conv2d rTasks as an implicit GEMM. For one image n and one group g:
//   Y[m, o] = sum_k A[m, k] * B[k, o] (+ bias[o]),
//   m = (oh, ow) an output pixel (M = OH * OW), o an output channel of the
//   group (N = Og), k = (c, i, j) an input channel of the group and a kernel
//   cell (K = Cg * KH * KW);
//   A[m, k] = x[n, g*Cg + c, oh*sh - pt + i*dh, ow*sw - pl + j*dw] (0 in the
//   padding), gathered from x on the fly; B[k, o] = w[g*Og + o, c, i, j],
//   which is w read as it is stored.
// A tile is one BM x BN block of Y. As in matmul.cuh, BK-deep slices of A
// and B are staged through shared memory as f32, out-of-range rows, columns
// and k staged as zeros; each thread owns a micro-tile of accumulators.
// Threads are laid out along M first: y's pixels are contiguous, so
// neighbouring threads store neighbouring bytes.
#ifndef ANVIL_RTASKS_CONV2D_CUH
#define ANVIL_RTASKS_CONV2D_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

#define ANVIL_CONV_TX (ANVIL_THREADS >= 16 ? 16 : 1)  // threads along M (pixels)
#define ANVIL_CONV_TY (ANVIL_THREADS / ANVIL_CONV_TX)  // threads along N (channels)

// The tile shapes the host may pick (anvil_gemm_tile_ok) must give every
// thread of the grid a whole micro-tile.
static_assert(ANVIL_GEMM_TILE_STEP % ANVIL_CONV_TX == 0 && ANVIL_GEMM_TILE_STEP % ANVIL_CONV_TY == 0,
              "conv2d: a tile step of ANVIL_GEMM_TILE_STEP must be a multiple of the thread grid");

// Shared memory (anvil_conv_smem_bytes, rtasks/tiling.cuh): the A and B
// slices as matmul, then the gather tables m_row, m_col [BM] and k_plane,
// k_row, k_col [BK].

// A row or column offset that no kernel-cell offset can bring back into x:
// marks pixels and k beyond the GEMM's edge, so their A entries stage as 0.
#define ANVIL_CONV_OUTSIDE (-(1 << 29))

template <class TX, class TW, class TB, class TY, int BM, int BN, int BK>
ANVIL_TASK void anvil_conv2d_tile(const WindowParams& p, int tile, char* arena) {
    static_assert(anvil_storage<TX>::ok && anvil_storage<TW>::ok && anvil_storage<TB>::ok && anvil_storage<TY>::ok,
                  "anvil_conv2d_tile: TX, TW, TB, TY must be storage types (float, int, anvil_f16, anvil_bf16)");
    static_assert(ANVIL_CONV_TX * ANVIL_CONV_TY == ANVIL_THREADS, "conv2d thread grid must cover the block");
    static_assert(anvil_gemm_tile_ok(BM, BN, BK),
                  "anvil_conv2d_tile: BM and BN must be positive multiples of ANVIL_GEMM_TILE_STEP, BK positive");
    static_assert(anvil_conv_smem_bytes(BM, BN, BK) <= ANVIL_SMEM_BYTES,
                  "anvil_conv2d_tile: the slices and gather tables do not fit in ANVIL_SMEM_BYTES");
    const int TXn = ANVIL_CONV_TX, TYn = ANVIL_CONV_TY;
    const int RM = BM / TXn, RN = BN / TYn;  // micro-tile of one thread
    const int LDA = BM + 1, LDB = BN + 1;
    const int M = p.OH * p.OW, K = p.Cg * p.KH * p.KW, KHW = p.KH * p.KW;

    const AnvilConvPlace place = anvil_conv_place(p, tile, BM, BN);
    const int g = place.g, n = place.n;
    const int m0 = place.m0, o0 = place.o0;

    const anvil_i64 plane = (anvil_i64)p.H * p.W;
    const TX* x = anvil_at<const TX>(arena, p.x_off) + ((anvil_i64)n * p.C + (anvil_i64)g * p.Cg) * plane;
    const TW* w = anvil_at<const TW>(arena, p.w_off) + (anvil_i64)g * p.Og * K;
    const TB* bias = p.bias_off >= 0 ? anvil_at<const TB>(arena, p.bias_off) + (anvil_i64)g * p.Og : 0;
    TY* y = anvil_at<TY>(arena, p.y_off) + ((anvil_i64)n * p.O + (anvil_i64)g * p.Og) * M;

    float* As = (float*)anvil_block_smem();  // [BK][LDA]
    float* Bs = As + BK * LDA;               // [BK][LDB]
    int* m_row = (int*)(Bs + BK * LDB);      // [BM] top input row of pixel m0 + m
    int* m_col = m_row + BM;                 // [BM]
    int* k_plane = m_col + BM;               // [BK] c * H * W of k0 + k (one group's x fits in an int)
    int* k_row = k_plane + BK;               // [BK] i * dh
    int* k_col = k_row + BK;                 // [BK] j * dw
    const int tid = anvil_thread();
    const int tx = tid % TXn, ty = tid / TXn;

    // (The previous task's threads are past anvil_publish's barrier: the
    // shared tables are free.)
    for (int m = tid; m < BM; m += ANVIL_THREADS) {
        const int gm = m0 + m;
        const bool in = gm < M;
        anvil_sts(m_row + m, in ? (gm / p.OW) * p.sh - p.pt : ANVIL_CONV_OUTSIDE);
        anvil_sts(m_col + m, in ? (gm % p.OW) * p.sw - p.pl : ANVIL_CONV_OUTSIDE);
    }

    float acc[BM / ANVIL_CONV_TX][BN / ANVIL_CONV_TY];
    for (int i = 0; i < RM; ++i)
        for (int j = 0; j < RN; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += BK) {
        anvil_barrier();  // everyone is done reading the previous slices and k tables
        for (int k = tid; k < BK; k += ANVIL_THREADS) {
            const int gk = k0 + k;
            const bool in = gk < K;
            const int c = gk / KHW, r = gk % KHW;
            anvil_sts(k_plane + k, in ? c * (int)plane : 0);
            anvil_sts(k_row + k, in ? (r / p.KW) * p.dh : ANVIL_CONV_OUTSIDE);
            anvil_sts(k_col + k, in ? (r % p.KW) * p.dw : ANVIL_CONV_OUTSIDE);
        }
        // B: k-fast, w's rows are contiguous along k.
        for (int e = tid; e < BK * BN; e += ANVIL_THREADS) {
            const int k = e % BK, o = e / BK;
            const int gk = k0 + k, go = o0 + o;
            const float v = (gk < K && go < p.Og) ? anvil_load(w + (anvil_i64)go * K + gk) : 0.0f;
            anvil_sts(Bs + k * LDB + o, v);
        }
        anvil_barrier();  // the k tables are complete
        // A: m-fast, so a warp reads along an output row of x.
        for (int e = tid; e < BM * BK; e += ANVIL_THREADS) {
            const int m = e % BM, k = e / BM;
            const int ih = anvil_lds(m_row + m) + anvil_lds(k_row + k), iw = anvil_lds(m_col + m) + anvil_lds(k_col + k);
            const bool in = ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
            // (The value first, then the store: NVRTC then keeps the plain indexing's registers.)
            const float v = in ? anvil_load(x + anvil_lds(k_plane + k) + (anvil_i64)ih * p.W + iw) : 0.0f;
            anvil_sts(As + k * LDA + m, v);
        }
        anvil_barrier();  // the slices are complete
        for (int k = 0; k < BK; ++k) {
            float a[BM / ANVIL_CONV_TX], b[BN / ANVIL_CONV_TY];
            for (int i = 0; i < RM; ++i) a[i] = anvil_lds(As + k * LDA + tx + i * TXn);
            for (int j = 0; j < RN; ++j) b[j] = anvil_lds(Bs + k * LDB + ty + j * TYn);
            for (int i = 0; i < RM; ++i)
                for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * b[j];
        }
    }

    // Thread (tx, ty) owns pixels tx + i*TX and channels ty + j*TY. A fused
    // epilogue (batchnorm, activations, residual adds) takes each value in
    // registers; its operands are located by the element's offset in y.
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    const anvil_i64 y0 = ((anvil_i64)n * p.O + (anvil_i64)g * p.Og) * M;  // y's offset from y_off
    for (int j = 0; j < RN; ++j) {
        const int go = o0 + ty + j * TYn;
        if (go >= p.Og) continue;
        const float b = bias ? anvil_load(bias + go) : 0.0f;
        for (int i = 0; i < RM; ++i) {
            const int gm = m0 + tx + i * TXn;
            if (gm >= M) continue;
            const anvil_i64 at = (anvil_i64)go * M + gm;
            const float v = acc[i][j] + b;
            anvil_store(y + at, epi ? anvil_epilogue_apply(*epi, v, y0 + at, arena) : v);
        }
    }
}

#endif  // ANVIL_RTASKS_CONV2D_CUH
