// A layernorm or rmsnorm of A's rows computed inside a GEMM tile
// (MatmulParams::a_norm; frontend/norm_fold.h moves the norm there and folds
// its gamma into B and its beta into the bias). Before its K loop the tile
// computes the mean and 1/std of its BM rows over the whole of K into shared
// memory (anvil_a_norm_stats); then each staged slice of A, once it has
// landed, is normalised in place, (x - mean) * rstd, by a pass over the
// stage and a barrier, before the multiply reads it. Normalising the operand
// (not correcting the sums by mean * colsum(B) afterwards) keeps the
// accuracy of the norm when a row's mean is large beside its spread.
// Elements past M or K stay the zeros they were staged as.
#ifndef ANVIL_RTASKS_A_NORM_CUH
#define ANVIL_RTASKS_A_NORM_CUH

#include "gemm_stages.cuh"
#include "primitives.cuh"
#include "tiling.cuh"

// (n, mean, m2) of a run of values merged with another run's (nb, mb, m2b),
// m2 the sum of squared deviations from the run's mean (Chan, Golub and
// LeVeque): no E[x^2] - mean^2 cancellation. nb > 0.
ANVIL_DEVICE void anvil_norm_merge(float& n, float& mean, float& m2, float nb, float mb, float m2b) {
    const float t = n + nb, d = mb - mean, f = nb / t;
    mean += d * f;
    m2 += m2b + d * d * n * f;
    n = t;
}

// The statistics of one chunk of a row (cn of its values, zeros past them
// in v) merged into the row's: its mean, then its squared deviations, each
// summed over the warp. `in(u)`: whether value u of the lane lies in the row.
template <int U, class In>
ANVIL_DEVICE void anvil_a_norm_chunk(const float* v, float cn, bool centred, const In& in, float& n, float& mean,
                                     float& m2) {
    float cm = 0.0f;
    if (centred) {
#pragma unroll
        for (int u = 0; u < U; ++u) cm += v[u];
        cm = anvil_warp_sum(cm) / cn;
    }
    float q = 0.0f;
#pragma unroll
    for (int u = 0; u < U; ++u)
        if (in(u)) q += (v[u] - cm) * (v[u] - cm);
    q = anvil_warp_sum(q);
    if (centred) anvil_norm_merge(n, mean, m2, cn, cm, q);
    else m2 += q;
}

ANVIL_DEVICE void anvil_a_norm_store_stats(const MatmulParams& p, float* stats, int rows, int r, bool real, float mean,
                                           float m2) {
    anvil_sts(stats + r, mean);
    anvil_sts(stats + rows + r, real ? anvil_rsqrt(m2 / (float)p.K + p.a_norm_eps) : 0.0f);
}

// stats[r] = mean, stats[rows + r] = 1/std (rsqrt(var + eps)) of row m0 + r
// of A, for r < rows; rows past M get 0 and 0 (their normalised values stay
// 0). A warp per row. Where A's rows are k contiguous and 16-byte aligned
// (every activation of a transformer) a warp reads ANVIL_A_NORM_ROWS rows at
// once, each lane ANVIL_A_NORM_VECS 16-byte loads of each (tiling.cuh): a
// row of 1024 halves in one round trip; otherwise one element per load,
// ANVIL_A_NORM_UNROLL in flight. Each chunk is reduced in two passes over
// registers (its mean, then the squared deviations from it) and merged into
// the row's. rmsnorm: mean 0, 1/std = rsqrt(mean(x^2) + eps).
template <class TA>
ANVIL_DEVICE void anvil_a_norm_stats(const MatmulParams& p, const TA* A, int m0, int rows, float* stats) {
    const int lanes = ANVIL_WARP, warps = ANVIL_THREADS / ANVIL_WARP, lane = anvil_thread() % lanes;
    const int K = p.K, V = anvil_vec<TA>::n;
    const bool centred = p.a_norm == ANVIL_MM_A_LAYERNORM;
    if (p.a_sk == 1 && K % V == 0 && p.a_sm % V == 0 && anvil_aligned16(A)) {
        const int U = ANVIL_A_NORM_VECS, R = ANVIL_A_NORM_ROWS, chunk = ANVIL_WARP * ANVIL_A_NORM_VECS * V;
#pragma unroll 1
        for (int r0 = (anvil_thread() / lanes) * R; r0 < rows; r0 += warps * R) {
            float n[ANVIL_A_NORM_ROWS], mean[ANVIL_A_NORM_ROWS], m2[ANVIL_A_NORM_ROWS];
#pragma unroll
            for (int i = 0; i < R; ++i) n[i] = mean[i] = m2[i] = 0.0f;
#pragma unroll 1
            for (int k0 = 0; k0 < K; k0 += chunk) {
                anvil_u32x4 raw[ANVIL_A_NORM_ROWS][ANVIL_A_NORM_VECS];  // every row's loads in flight together
#pragma unroll
                for (int i = 0; i < R; ++i)
#pragma unroll
                    for (int u = 0; u < U; ++u) {
                        const int gm = m0 + r0 + i, k = k0 + (u * lanes + lane) * V;
                        if (gm < p.M && k < K) {
                            raw[i][u] = anvil_load16(A + ((anvil_i64)gm * p.a_sm + k));
                        } else {
                            for (int w = 0; w < 4; ++w) raw[i][u].w[w] = 0u;
                        }
                    }
                const float cn = (float)(K - k0 < chunk ? K - k0 : chunk);
#pragma unroll
                for (int i = 0; i < R; ++i) {
                    if (m0 + r0 + i >= p.M) continue;  // the same in every lane
                    // Unpacked a vector at a time (twice): the packed loads are the registers kept.
                    float cm = 0.0f, q = 0.0f, f[ANVIL_VEC_BYTES / 2];
                    if (centred) {
#pragma unroll
                        for (int u = 0; u < U; ++u) {
                            anvil_unpack16(raw[i][u], f, (const TA*)0);
                            for (int e = 0; e < V; ++e) cm += f[e];  // zeros past K
                        }
                        cm = anvil_warp_sum(cm) / cn;
                    }
#pragma unroll
                    for (int u = 0; u < U; ++u) {
                        if (k0 + (u * lanes + lane) * V >= K) continue;
                        anvil_unpack16(raw[i][u], f, (const TA*)0);
                        for (int e = 0; e < V; ++e) q += (f[e] - cm) * (f[e] - cm);
                    }
                    q = anvil_warp_sum(q);
                    if (centred) anvil_norm_merge(n[i], mean[i], m2[i], cn, cm, q);
                    else m2[i] += q;
                }
            }
            if (lane == 0)
                for (int i = 0; i < R; ++i)
                    if (r0 + i < rows) anvil_a_norm_store_stats(p, stats, rows, r0 + i, m0 + r0 + i < p.M, mean[i], m2[i]);
        }
        return;
    }
    const int U = ANVIL_A_NORM_UNROLL, chunk = ANVIL_WARP * ANVIL_A_NORM_UNROLL, sk = (int)p.a_sk;
#pragma unroll 1
    for (int r = anvil_thread() / lanes; r < rows; r += warps) {
        const int gm = m0 + r;
        float n = 0.0f, mean = 0.0f, m2 = 0.0f;
        if (gm < p.M) {
            const TA* row = A + (anvil_i64)gm * p.a_sm;
#pragma unroll 1
            for (int k0 = 0; k0 < K; k0 += chunk) {
                float v[ANVIL_A_NORM_UNROLL];
#pragma unroll
                for (int u = 0; u < U; ++u) {
                    const int k = k0 + u * lanes + lane;
                    v[u] = k < K ? anvil_load(row + k * sk) : 0.0f;
                }
                const float cn = (float)(K - k0 < chunk ? K - k0 : chunk);
                anvil_a_norm_chunk<ANVIL_A_NORM_UNROLL>(v, cn, centred, [&](int u) { return k0 + u * lanes + lane < K; },
                                                        n, mean, m2);
            }
        }
        if (lane == 0) anvil_a_norm_store_stats(p, stats, rows, r, gm < p.M, mean, m2);
    }
}

// The CUDA-core tile's slice As[k][m] (f32, k-major, rows of BM + pad)
// holding A's k0 .. k0 + BK: normalised in place, four m at a time (rows
// past M have mean and 1/std 0: they stay 0; k past K is skipped).
template <int BM, int BK>
ANVIL_DEVICE void anvil_a_norm_slice(float* As, const float* stats, int k0, int K) {
    const int LDA = BM + ANVIL_GEMM_PAD;
#pragma unroll 1
    for (int e = anvil_thread(); e < BK * (BM / 4); e += ANVIL_THREADS) {
        const int k = e / (BM / 4), m = (e % (BM / 4)) * 4;
        if (k0 + k >= K) continue;
        float x[4], mean[4], rstd[4];
        anvil_lds_f32<4>(As + k * LDA + m, x);
        anvil_lds_f32<4>(stats + m, mean);
        anvil_lds_f32<4>(stats + BM + m, rstd);
        anvil_f32x4 y;
        for (int j = 0; j < 4; ++j) y.v[j] = (x[j] - mean[j]) * rstd[j];
        anvil_sts((anvil_f32x4*)(As + k * LDA + m), y);
    }
}

// A pair of staged elements of the tensor-core tile (k and k + 1 of one
// row, one 32-bit word of 16-bit values); the second only when `both`
// (else it is past K and stays 0). f32 (TF32) elements one at a time.
ANVIL_DEVICE unsigned anvil_a_norm_half(unsigned h, float mean, float rstd, const anvil_f16*) {
    return anvil_f32_to_f16((anvil_f16_to_f32((unsigned short)h) - mean) * rstd);
}
ANVIL_DEVICE unsigned anvil_a_norm_half(unsigned h, float mean, float rstd, const anvil_bf16*) {
    return anvil_f32_to_bf16((anvil_bf16_to_f32((unsigned short)h) - mean) * rstd);
}
template <class TA>
ANVIL_DEVICE void anvil_a_norm_pair(unsigned short* x, float mean, float rstd, bool both, const TA*) {
    const unsigned w = anvil_lds((const unsigned*)x);
    const unsigned lo = anvil_a_norm_half(w & 0xffffu, mean, rstd, (const TA*)0);
    const unsigned hi = both ? anvil_a_norm_half(w >> 16, mean, rstd, (const TA*)0) : w >> 16;
    anvil_sts((unsigned*)x, lo | hi << 16);
}
ANVIL_DEVICE void anvil_a_norm_pair(unsigned short* x, float mean, float rstd, bool both, const float*) {
    float* f = (float*)x;
    anvil_sts(f, (anvil_lds(f) - mean) * rstd);
    if (both) anvil_sts(f + 1, (anvil_lds(f + 1) - mean) * rstd);
}

// The tensor-core tile's slice of A ([BM][BK + pad] of TA, in halves)
// holding A's k0 .. k0 + BK: normalised in place, two k at a time.
template <class TA, int BM, int BK>
ANVIL_DEVICE void anvil_a_norm_tc_slice(unsigned short* As, const float* stats, int k0, int K) {
    const int H = (int)sizeof(TA) / 2, LD = BK * H + ANVIL_TC_PAD;
#pragma unroll 1
    for (int e = anvil_thread(); e < BM * (BK / 2); e += ANVIL_THREADS) {
        const int r = e / (BK / 2), c = (e % (BK / 2)) * 2;
        if (k0 + c >= K) continue;
        anvil_a_norm_pair(As + r * LD + c * H, anvil_lds(stats + r), anvil_lds(stats + BM + r), k0 + c + 1 < K,
                          (const TA*)0);
    }
}

#endif  // ANVIL_RTASKS_A_NORM_CUH
