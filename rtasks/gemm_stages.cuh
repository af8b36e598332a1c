// The CUDA-core GEMM pipeline that matmul.cuh and conv2d.cuh share: how a
// BK-deep slice of each operand reaches shared memory, and how a thread
// multiplies its register micro-tile out of one staged slice.
//
// Shared memory holds ANVIL_GEMM_STAGES slices of both operands as f32,
// both k-major: As[k][m], Bs[k][n], rows padded by ANVIL_GEMM_PAD floats
// (conv2d's B instead n-major as w stores it, Bt[n][k]: anvil_gemm_slice_bt).
// k-major is what lets a thread read its micro-tile's operands with 128-bit
// loads: for each k it needs RM values of A and RN of B, 4 consecutive ones
// per load. An 8 x 8 micro-tile then takes 2 + 2 loads per 64 FMAs (1/16
// load per FMA) and holds only 8 + 8 operand registers beside its 64
// accumulators (a k-contiguous A, read along k, would need 4x as many).
//
// Copies are asynchronous where the target has them (cp.async; the device
// and simt): f32 data goes global -> shared without registers, 16 bytes at
// a time where 4 consecutive m (or n) are contiguous and aligned, else 4
// bytes per element, which also transposes a k-contiguous operand into its
// k-major slice (matmul's; conv2d stages its k-contiguous w n-major instead,
// 16 bytes at a time). Zero-fill (src-size 0) stages the edges without a branch.
// Other storage types (f16, bf16, i32) are loaded, widened to f32 and
// stored at once: correct, not pipelined. On the host (no cp.async) every
// copy is a plain store; the stages then simply run in order.
//
// The main loop (the tiles write it around these helpers) keeps
// ANVIL_GEMM_STAGES - 1 slices in flight:
//   prologue: issue slices 0 .. S-2, one commit group each;
//   iteration kt: wait until slice kt landed (wait_group S-2), barrier (it
//   is visible to every thread, and every thread is done with slice kt-1),
//   issue slice kt+S-1 into slice kt-1's stage, commit, multiply slice kt.
// One barrier per slice; the commit is unconditional so that group counts
// stay in step at the tail. The copy loops stay rolled (#pragma unroll 1):
// unrolled, their addresses live beside the accumulators and push a
// 128 x 128 tile past the 128 registers of two blocks per SM. (conv2d's
// gather is the exception: a thread's elements there are a compile-time
// column of As, so unrolled they need no addresses of their own.)
#ifndef ANVIL_RTASKS_GEMM_STAGES_CUH
#define ANVIL_RTASKS_GEMM_STAGES_CUH

#include "primitives.cuh"
#include "tiling.cuh"

// Vectors of floats in shared memory, each read by one 64- or 128-bit load.
struct alignas(16) anvil_f32x4 {
    float v[4];
};
struct alignas(8) anvil_f32x2 {
    float v[2];
};

// out[0 .. V) = p[0 .. V), p aligned to V floats.
template <int V>
ANVIL_DEVICE void anvil_lds_f32(const float* p, float* out) {
    if (V == 4) {
        const anvil_f32x4 r = anvil_lds((const anvil_f32x4*)p);
        out[0] = r.v[0], out[1] = r.v[1], out[2] = r.v[2], out[3] = r.v[3];
    } else if (V == 2) {
        const anvil_f32x2 r = anvil_lds((const anvil_f32x2*)p);
        out[0] = r.v[0], out[1] = r.v[1];
    } else {
        out[0] = anvil_lds(p);
    }
}

// p[0 .. V) = in[0 .. V), p aligned to V floats.
template <int V>
ANVIL_DEVICE void anvil_sts_f32(float* p, const float* in) {
    if (V == 4) {
        const anvil_f32x4 r = {{in[0], in[1], in[2], in[3]}};
        anvil_sts((anvil_f32x4*)p, r);
    } else if (V == 2) {
        const anvil_f32x2 r = {{in[0], in[1]}};
        anvil_sts((anvil_f32x2*)p, r);
    } else {
        anvil_sts(p, in[0]);
    }
}

template <class T> struct anvil_is_f32 { static const bool value = false; };
template <> struct anvil_is_f32<float> { static const bool value = true; };

#if ANVIL_HAS_MMA  // cp.async: sm_80 and up, and simt's emulation
#define ANVIL_HAS_CP_ASYNC 1
ANVIL_DEVICE void anvil_stage_commit() { anvil_cp_async_commit(); }
template <int N>
ANVIL_DEVICE void anvil_stage_wait() { anvil_cp_async_wait<N>(); }
#else
#define ANVIL_HAS_CP_ASYNC 0
ANVIL_DEVICE void anvil_stage_commit() {}
template <int N>
ANVIL_DEVICE void anvil_stage_wait() {}
#endif

// *dst = *src as f32 when `in`, else 0. `any` is a valid element address
// of the same operand (the copy instruction wants one even when it reads
// nothing). f32 takes a 4-byte cp.async that lands at the wait.
template <class T>
ANVIL_DEVICE void anvil_stage_elem(float* dst, const T* src, bool in, const T* any) {
    anvil_sts(dst, in ? anvil_load(in ? src : any) : 0.0f);
}
#if ANVIL_HAS_CP_ASYNC
ANVIL_DEVICE void anvil_stage_elem(float* dst, const float* src, bool in, const float* any) {
    anvil_cp_async_ca(dst, in ? src : any, 4, in ? 4 : 0);
}
#endif

// dst[0..4) = src[0..n) then zeros, n in [0, 4]; dst and (for n > 0) src
// 16-byte aligned, `any` a 16-byte aligned address of the operand.
ANVIL_DEVICE void anvil_stage_vec4(float* dst, const float* src, int n, const float* any) {
#if ANVIL_HAS_CP_ASYNC
    anvil_cp_async16(dst, n > 0 ? src : any, n * 4);
#else
    for (int i = 0; i < 4; ++i) anvil_sts(dst + i, i < n ? src[i] : 0.0f);
#endif
}

// Row (or column) of a thread's i-th micro-tile element, for a thread t of
// T along that axis reading V-float vectors: the vectors of one thread are
// T * V apart, so a warp's 128-bit loads cover consecutive 16-byte words.
ANVIL_FACT constexpr int anvil_gemm_at(int i, int t, int T, int V) { return (i / V) * T * V + t * V + i % V; }

// acc[i][j] += sum over the slice's k of As[k][row i] * Bs[k][column j],
// for thread (tm, tn) of a TM x TN grid.
template <int BM, int BN, int BK, int TM, int TN>
ANVIL_DEVICE void anvil_gemm_slice(const float* As, const float* Bs, float (*acc)[BN / TN], int tm, int tn) {
    const int RM = BM / TM, RN = BN / TN, VM = anvil_gemm_vec(RM), VN = anvil_gemm_vec(RN);
    const int LDA = BM + ANVIL_GEMM_PAD, LDB = BN + ANVIL_GEMM_PAD;
#pragma unroll
    for (int k = 0; k < BK; ++k) {
        float a[BM / TM], b[BN / TN];
#pragma unroll
        for (int c = 0; c < RM / VM; ++c) anvil_lds_f32<VM>(As + k * LDA + c * TM * VM + tm * VM, a + c * VM);
#pragma unroll
        for (int c = 0; c < RN / VN; ++c) anvil_lds_f32<VN>(Bs + k * LDB + c * TN * VN + tn * VN, b + c * VN);
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
            for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * b[j];
    }
}

// The same for B staged n-major, Bt[n][k] with rows of BK + ANVIL_GEMM_PAD
// floats (conv2d.cuh: w's k is contiguous, so its slice lands with 16-byte
// copies and no transposition). A thread reads each of its RN columns KV
// k-steps at a time (anvil_gemm_bt_vec): one 128-bit load covers 4
// k-steps, half the loads of Bs[k][n] at RN = 2, a quarter at RN = 1, as
// many at RN = 4 and 8. A warp's columns are the rows of its two tn: two
// distinct addresses, whose 16-byte words fall in different banks for
// BK % 8 == 0 (the rows are BK / 4 + 1 words apart, an odd number; so are
// a warp's up to 8 rows). KS: the k-steps multiplied, from As's and Bt's
// first (a k group's share of the slice, conv2d.cuh), the whole slice by
// default.
template <int BM, int BN, int BK, int TM, int TN, int KS = BK>
ANVIL_DEVICE void anvil_gemm_slice_bt(const float* As, const float* Bt, float (*acc)[BN / TN], int tm, int tn) {
    const int RM = BM / TM, RN = BN / TN, VM = anvil_gemm_vec(RM), VN = anvil_gemm_vec(RN);
    const int KV = anvil_gemm_bt_vec(KS), LDA = BM + ANVIL_GEMM_PAD, LDK = BK + ANVIL_GEMM_PAD;
#pragma unroll
    for (int k0 = 0; k0 < KS; k0 += KV) {
        float b[BN / TN][KV];
#pragma unroll
        for (int j = 0; j < RN; ++j) anvil_lds_f32<KV>(Bt + anvil_gemm_at(j, tn, TN, VN) * LDK + k0, b[j]);
#pragma unroll
        for (int kk = 0; kk < KV; ++kk) {
            float a[BM / TM];
#pragma unroll
            for (int c = 0; c < RM / VM; ++c)
                anvil_lds_f32<VM>(As + (k0 + kk) * LDA + c * TM * VM + tm * VM, a + c * VM);
#pragma unroll
            for (int i = 0; i < RM; ++i)
#pragma unroll
                for (int j = 0; j < RN; ++j) acc[i][j] += a[i] * b[j][kk];
        }
    }
}

#endif  // ANVIL_RTASKS_GEMM_STAGES_CUH
