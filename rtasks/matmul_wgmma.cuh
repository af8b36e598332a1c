// Matmul on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a): f16 or bf16
// operands, f32 accumulators, a 128 x BN tile (BN = 64 or 128) whose two
// warpgroups (the block's 256 threads) each own 64 rows and issue one
// m64nBNk16 per k16 step, A and B read by the tensor cores straight from
// shared memory through matrix descriptors (platform.cuh).
//
// Shared memory: STAGES stages (3 or 4), each the A slice (BM x BK) then
// the B slice (BN x BK), both K-major in wgmma's unswizzled canonical
// layout: core matrices of 8 rows x 8 k values (128 contiguous bytes),
// (r / 8) * BK * 16 + (k / 8) * 128 + (r % 8) * 16 + (k % 8) * 2 bytes for
// element (r, k); the descriptors' leading (K) offset is 128 bytes, their
// stride (M or N) offset BK * 16. A row that is k contiguous and 16-byte
// aligned is staged by 16-byte cp.async (each chunk is one core-matrix
// row, zero-filled past the operand's edges), any other element by element
// through registers (B stored [K, N], n contiguous, takes that path: the
// MN-major layout with wgmma's transpose bit is the next step). The TMA
// engine's 1-D bulk copies (anvil_bulk_copy) cannot build this layout: a
// row's BK values land in BK / 8 core matrices 128 bytes apart, so each
// copy would be 16 bytes; that needs a tensor map (cuTensorMapEncodeTiled,
// a driver call per operand), which the arena's one allocation does not
// have yet.
//
// Pipeline, per slice kt: wait for its copies, fence the async proxy,
// barrier (slice kt is in shared memory for every thread, and every
// warpgroup has completed its wgmma of slice kt - 2); stage slice
// kt + STAGES - 2 into kt - 2's stage; fence, BK / 16 wgmma, commit,
// wait<1> (slice kt - 1's wgmma complete, kt's in flight over the next
// iteration's copies).
//
// NEVER RUN ON HARDWARE. The simt emulation (simt.cuh) is its only proof;
// tests/crosscheck/kernels.cuh's xc_wgmma_* (the emulation against the
// PTX instructions) must pass on an sm_90a device before a schedule picks
// this tile by default. Until then only `--wgmma` offers it.
//
// Without wgmma (the device below sm_90a) the variant runs the mma.sync
// tile (matmul_tc.cuh, BK = ANVIL_WGMMA_FALLBACK_BK, 3 stages), and on the
// host that tile's own fallback, the shared-memory GEMM.
#ifndef ANVIL_RTASKS_MATMUL_WGMMA_CUH
#define ANVIL_RTASKS_MATMUL_WGMMA_CUH

#include "matmul_tc.cuh"

#if ANVIL_HAS_WGMMA
// Starts dst = rows r0..r0+R-1 and k k0..k0+BK-1 of the operand
// src(r, k) = base[r * s_r + k * s_k] in the canonical K-major layout,
// zero outside rows x cols. What cp.async copies lands after
// anvil_cp_async_wait.
template <class T, int R, int BK>
ANVIL_DEVICE void anvil_wgmma_stage(unsigned short* dst, const T* base, anvil_i64 s_r, anvil_i64 s_k, int r0, int rows,
                                    int k0, int cols) {
    const int tid = anvil_thread(), sr = (int)s_r, sk = (int)s_k;
    // Halves from the stage's start to element (r, k).
    auto at = [](int r, int k) { return (r / 8) * (BK * 8) + (k / 8) * 64 + (r % 8) * 8 + k % 8; };
    if (sk == 1 && (sr * 2) % 16 == 0 && anvil_aligned16(base)) {
        const int per_row = BK / 8;  // 16-byte chunks, one core-matrix row each
#pragma unroll 1
        for (int e = tid; e < R * per_row; e += ANVIL_THREADS) {
            const int r = e / per_row, k = (e % per_row) * 8, gr = r0 + r, gk = k0 + k;
            const int left = gr < rows ? (cols - gk) * 2 : 0;
            const int bytes = left < 0 ? 0 : left > 16 ? 16 : left;
            anvil_cp_async16(dst + at(r, k), bytes ? (const void*)(base + (gr * sr + gk)) : (const void*)base, bytes);
        }
        return;
    }
    const bool r_fast = sr == 1 && sk != 1;  // walk the contiguous axis: a warp's loads coalesce
#pragma unroll 1
    for (int e = tid; e < R * BK; e += ANVIL_THREADS) {
        const int r = r_fast ? e % R : e / BK, k = r_fast ? e / R : e % BK, gr = r0 + r, gk = k0 + k;
        anvil_sts(dst + at(r, k), gr < rows && gk < cols ? base[gr * sr + gk * sk].bits : (unsigned short)0);
    }
}

// Thread t's accumulators (warpgroup g = t / 128, warp w and lane l within
// it) hold, of each 8-column block j, columns 8j + 2 (l % 4) and the next of
// rows 64g + 16w + l / 4 and 8 below: visit(r, c, v) for each such pair.
template <int BN, class Visit>
ANVIL_DEVICE void anvil_wgmma_pairs(float* acc, const Visit& visit) {
    const int t = anvil_thread(), lane = t % 32;
    const int r0 = (t / 128) * 64 + ((t % 128) / 32) * 16 + lane / 4, c0 = 2 * (lane % 4);
    anvil_wgmma_ready<BN>(acc);
    for (int j = 0; j < BN / 8; ++j) {
        visit(r0, c0 + 8 * j, acc + 4 * j);
        visit(r0 + 8, c0 + 8 * j, acc + 4 * j + 2);
    }
}
#endif

// Inlined into the megakernel's switch, unlike the other kinds (ANVIL_TASK
// is __noinline__): ptxas serializes every wgmma of a function the kernel
// calls (C7510, "wgmma pipeline crossing function boundary"), which would
// forfeit the asynchrony (docs/perf/wgmma-2026-11-28.md).
template <class TA, class TB, class TC, int BM, int BN, int BK, int STAGES = ANVIL_TC_MAX_STAGES>
ANVIL_DEVICE void anvil_matmul_wgmma_tile(const MatmulParams& params, int tile, char* arena) {
#if !ANVIL_HAS_WGMMA
    anvil_matmul_tc_tile<TA, TB, TC, BM, BN, ANVIL_WGMMA_FALLBACK_BK,
                         anvil_is_bf16<TA>::value ? ANVIL_TC_BF16 : ANVIL_TC_F16, false, ANVIL_TC_STAGES>(params, tile,
                                                                                                          arena);
#else
    ANVIL_LOCAL_PARAMS(MatmulParams, p, params);
    static_assert(sizeof(TA) == 2 && sizeof(TB) == 2 && anvil_is_bf16<TA>::value == anvil_is_bf16<TB>::value,
                  "anvil_matmul_wgmma_tile: A and B must both be f16 or both bf16");
    static_assert(anvil_wgmma_tile_ok(BM, BN, BK) && anvil_wgmma_stages_ok(STAGES),
                  "anvil_matmul_wgmma_tile: BM 128, BN 64 or 128, BK 16 to 64 in steps of 16, 3 or 4 stages");
    static_assert(anvil_wgmma_smem_bytes(BM, BN, BK, STAGES) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_wgmma_tile: the staged operands do not fit in ANVIL_SMEM_BYTES");
    const bool bf16 = anvil_is_bf16<TA>::value;
    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    const int STAGE = (BM + BN) * BK;  // halves: A, then B
    unsigned short* const smem = (unsigned short*)anvil_block_smem();
    auto stage = [&](int slice) {
        unsigned short* as = smem + (slice % STAGES) * STAGE;
        anvil_wgmma_stage<TA, BM, BK>(as, A, p.a_sm, p.a_sk, at.m0, p.M, slice * BK, p.K);
        anvil_wgmma_stage<TB, BN, BK>(as + BM * BK, B, p.b_sn, p.b_sk, at.n0, p.N, slice * BK, p.K);
    };
    float acc[BN / 2];
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    const int wg = anvil_thread() / 128;
    const int slices = (p.K + BK - 1) / BK;
    for (int s = 0; s < STAGES - 2; ++s) {
        if (s < slices) stage(s);
        anvil_cp_async_commit();  // possibly empty: one group per slice keeps the count
    }
    for (int kt = 0; kt < slices; ++kt) {
        anvil_cp_async_wait<STAGES - 3>();  // this thread's copies of slice kt have landed
        anvil_fence_proxy_async();          // ... and its writes are visible to the tensor cores
        anvil_barrier();                    // everyone's; slice kt - 2's wgmma are complete
        if (kt + STAGES - 2 < slices) stage(kt + STAGES - 2);
        anvil_cp_async_commit();
        const unsigned short* as = smem + (kt % STAGES) * STAGE;
        anvil_wgmma_fence();
        for (int kk = 0; kk < BK / 16; ++kk) {
            // k step kk: core matrices 2kk and 2kk + 1 of each row group.
            const unsigned long long da = anvil_wgmma_desc(as + wg * 64 * BK + kk * 128, 128, BK * 16);
            const unsigned long long db = anvil_wgmma_desc(as + BM * BK + kk * 128, 128, BK * 16);
            anvil_wgmma<BN>(acc, da, db, bf16, true);
        }
        anvil_wgmma_commit();
        anvil_wgmma_wait<1>();
    }
    anvil_wgmma_wait<0>();
    anvil_cp_async_wait<0>();  // only empty groups remain

    // The epilogue of matmul_tc.cuh on wgmma's fragment.
    if (p.row_op) {
        const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
        const int LDC = BN + ANVIL_MM_ROW_PAD;
        float* Cs = (float*)anvil_block_smem();
        anvil_barrier();  // every warpgroup is done with the stages
        anvil_wgmma_pairs<BN>(acc, [&](int r, int c, const float* v) {
            const int m = at.m0 + r;
            for (int q = 0; q < 2; ++q) {
                float x = v[q];
                if (epi && m < p.M && c + q < p.N)
                    x = anvil_epilogue_apply(*epi, x, at.cb + (anvil_i64)m * p.c_sm + (anvil_i64)(c + q) * p.c_sn, arena);
                anvil_sts(Cs + r * LDC + c + q, x);
            }
        });
        anvil_barrier();
        anvil_mm_rows_finish<TC, BN>(p, Cs, at.m0, p.M - at.m0 < BM ? p.M - at.m0 : BM, C, at.cb, arena);
        return;
    }
    if (!p.epilogue) {
        anvil_wgmma_pairs<BN>(acc, [&](int r, int c, const float* v) { anvil_mm_store_pair(p, C, at.m0 + r, at.n0 + c, v); });
        return;
    }
    const AnvilEpilogue* epi = &anvil_epilogue(p.epilogue);
    anvil_wgmma_pairs<BN>(acc, [&](int r, int c, const float* v) {
        const int m = at.m0 + r;
        for (int q = 0; q < 2; ++q)
            if (m < p.M && at.n0 + c + q < p.N) anvil_mm_store(p, C, at.cb, m, at.n0 + c + q, v[q], epi, arena);
    });
#endif
}

#endif  // ANVIL_RTASKS_MATMUL_WGMMA_CUH
