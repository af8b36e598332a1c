// Matmul on Hopper's warpgroup MMA (wgmma.mma_async, sm_90a): f16 or bf16
// operands, f32 accumulators, a 128 x BN tile (BN = 64 or 128) whose two
// warpgroups (the block's 256 threads) each own 64 rows and issue one
// m64nBNk16 per k16 step, A and B read by the tensor cores straight from
// shared memory through matrix descriptors (platform.cuh).
//
// Shared memory: STAGES stages (3 or 4), each the A slice (BM x BK) then
// the B slice (BN x BK), in wgmma's unswizzled canonical layouts: grids of
// core matrices of 128 contiguous bytes (8 rows of 16), the descriptor's
// leading byte offset (LBO) stepping between core matrices along K and its
// stride byte offset (SBO) along M or N, for both majorities (the PTX
// ISA's canonical layouts: K-major ((8,m),(8,2k)):((8,SBO),(1,LBO)),
// MN-major ((8,1,m),(8,k)):((1,8,SBO),(8,LBO)) in 16-bit elements).
//   K-major (A always; B stored [N, K], k contiguous): a core row is 8 k
//   values of one row r; element (r, k) at (r / 8) * BK * 16 +
//   (k / 8) * 128 + (r % 8) * 16 + (k % 8) * 2 bytes: LBO 128, SBO BK * 16.
//   MN-major (B stored [K, N], n contiguous: every weight of the model
//   zoo; wgmma's imm-trans-b = 1): a core row is 8 n values at one k;
//   element (n, k) at (k / 8) * BN * 16 + (n / 8) * 128 + (k % 8) * 16 +
//   (n % 8) * 2: LBO BN * 16, SBO 128. (Swizzled MN-major layouts give the
//   two offsets other meanings; only the unswizzled one is used.)
// An operand whose rows along its contiguous axis are 16-byte aligned is
// staged by 16-byte cp.async, each chunk one core-matrix row, zero-filled
// past the operand's edges; any other element by element through
// registers. The chunks are issued in shared-memory order (8 consecutive
// threads fill one core matrix): a warp's stores are 512 contiguous bytes,
// no bank conflict (a row's BK / 8 chunks, 128 bytes apart, were 2- to
// 8-way conflicted), and its loads 64 contiguous bytes from each of 8 rows
// (full 32-byte sectors). The tile picks MN-major staging per matmul at run
// time (anvil_wgmma_mn_ok), each choice its own inlined main loop, since
// the transpose bit is an immediate. The TMA engine's 1-D bulk copies
// (anvil_bulk_copy) cannot build these layouts: a row's BK values land in
// BK / 8 core matrices, so each copy would be 16 bytes. The tiled copy
// with a tensor map can: at BK 64, where the arena holds a map of A
// (src/tile/tensor_maps.h: A k contiguous, rows 16-byte aligned, one A for
// every batch), thread 0 has the engine copy A's slice as one 128 x 64
// box in the 128-byte swizzled layout (anvil_tma_load_2d,
// anvil_wgmma_desc_sw128: emulated and cross-checked), completing on the
// stage's mbarrier; and B beside it where B has a map too: [K, N] as
// 64 n x 64 k boxes read MN-major through the swizzled descriptor
// (anvil_wgmma_desc_sw128_mn), [N, K] as one BN x 64 box like A's.
//
// Pipeline, per slice kt: wait for its copies, fence the async proxy,
// barrier (slice kt is in shared memory for every thread, and every
// warpgroup has completed its wgmma of slice kt - 2); stage slice
// kt + STAGES - 2 into kt - 2's stage; fence, BK / 16 wgmma, commit,
// wait<1> (slice kt - 1's wgmma complete, kt's in flight over the next
// iteration's copies).
//
// On hardware once (H200, caaf45f: the cp.async tile, correct outputs,
// xc_wgmma_* agreeing with the emulation); the TMA paths never. Their
// proof is the simt emulation (simt.cuh) until xc_tma_2d,
// xc_tma_wgmma_* and xc_tma_wgmma_mn_* (tests/crosscheck/kernels.cuh)
// pass on an sm_90a device. Only `--wgmma` offers the tile.
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
    // Chunk e (16 bytes, one core-matrix row) is row r % 8 = e % 8 of core
    // matrix (r / 8, k / 8) in shared-memory order: at(r, k) = 8 e, so each
    // 8 threads of a warp store 128 contiguous bytes (no bank conflict) and
    // read 16 bytes of 8 rows.
    const int per_row = BK / 8, CHUNKS = R * per_row;
    const bool chunked = sk == 1 && (sr * 2) % 16 == 0 && anvil_aligned16(base);
    if (ANVIL_THREADS % (8 * per_row) == 0 && chunked) {
        // Chunks tid + j * ANVIL_THREADS share their k and lie STEP rows
        // apart: k's bound and the first offset once, the copies unrolled
        // (as anvil_tc_stage's fast path).
        const int STEP = ANVIL_THREADS / per_row;
        const int r = (tid / (8 * per_row)) * 8 + tid % 8, gk = k0 + (tid / 8 % per_row) * 8;
        const int left = (cols - gk) * 2, k_bytes = anvil_chunk_bytes(left);
        const int off = (r0 + r) * sr + gk;
#pragma unroll
        for (int j = 0; j < (CHUNKS + ANVIL_THREADS - 1) / ANVIL_THREADS; ++j) {
            if (CHUNKS % ANVIL_THREADS != 0 && tid + j * ANVIL_THREADS >= CHUNKS) break;
            const int bytes = r0 + r + j * STEP < rows ? k_bytes : 0;
            anvil_cp_async16(dst + 8 * (tid + j * ANVIL_THREADS),
                             bytes ? (const void*)(base + (off + j * STEP * sr)) : (const void*)base, bytes);
        }
        return;
    }
    if (chunked) {
#pragma unroll 1
        for (int e = tid; e < R * per_row; e += ANVIL_THREADS) {
            const int r = (e / (8 * per_row)) * 8 + e % 8, k = (e / 8 % per_row) * 8, gr = r0 + r, gk = k0 + k;
            const int left = gr < rows ? (cols - gk) * 2 : 0;
            const int bytes = anvil_chunk_bytes(left);
            anvil_cp_async16(dst + 8 * e, bytes ? (const void*)(base + (gr * sr + gk)) : (const void*)base, bytes);
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

// Whether anvil_wgmma_stage_mn can stage the operand: r contiguous, each
// k's row of it 16-byte aligned.
template <class T>
ANVIL_DEVICE bool anvil_wgmma_mn_ok(const T* base, anvil_i64 s_r, anvil_i64 s_k) {
    return s_r == 1 && (s_k * 2) % 16 == 0 && anvil_aligned16(base);
}
// The same slice of an r-contiguous operand (anvil_wgmma_mn_ok) in the
// canonical MN-major layout, by 16-byte cp.async (8 r values at one k,
// zero-filled past the edges): core matrix (r / 8, k / 8) at
// (k / 8) * R * 16 + (r / 8) * 128 bytes, its row k % 8 (r % 8 at 2 bytes
// each) at (k % 8) * 16. Chunk e is row k % 8 = e % 8 of the core
// matrices in shared-memory order: a warp's stores are 512 contiguous
// bytes, its loads 64 contiguous bytes of 8 k rows.
template <class T, int R, int BK>
ANVIL_DEVICE void anvil_wgmma_stage_mn(unsigned short* dst, const T* base, anvil_i64 s_k, int r0, int rows, int k0,
                                       int cols) {
    const int sk = (int)s_k, tid = anvil_thread(), CHUNKS = R * BK / 8;
    if (ANVIL_THREADS % R == 0) {
        // Chunks tid + j * ANVIL_THREADS share their 8 r values and lie
        // KSTEP k apart: as anvil_wgmma_stage's fast path.
        const int KSTEP = 8 * ANVIL_THREADS / R;
        const int gr = r0 + 8 * (tid / 8 % (R / 8)), k = k0 + (tid / R) * 8 + tid % 8;
        const int left = (rows - gr) * 2, r_bytes = anvil_chunk_bytes(left);
        const int off = k * sk + gr;
#pragma unroll
        for (int j = 0; j < (CHUNKS + ANVIL_THREADS - 1) / ANVIL_THREADS; ++j) {
            if (CHUNKS % ANVIL_THREADS != 0 && tid + j * ANVIL_THREADS >= CHUNKS) break;
            const int bytes = k + j * KSTEP < cols ? r_bytes : 0;
            anvil_cp_async16(dst + 8 * (tid + j * ANVIL_THREADS),
                             bytes ? (const void*)(base + (off + j * KSTEP * sk)) : (const void*)base, bytes);
        }
        return;
    }
#pragma unroll 1
    for (int e = tid; e < CHUNKS; e += ANVIL_THREADS) {
        const int c = e / 8 % (R / 8), k = (e / R) * 8 + e % 8, gr = r0 + 8 * c, gk = k0 + k;
        const int left = gk < cols ? (rows - gr) * 2 : 0;
        const int bytes = anvil_chunk_bytes(left);
        anvil_cp_async16(dst + 8 * e, bytes ? (const void*)(base + (gk * sk + gr)) : (const void*)base, bytes);
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

// The thread's accumulator acc[f] (0 <= f < BN / 2), visited by
// anvil_wgmma_pairs as part of pair f / 2: its row r and column c from the
// tile's corner.
ANVIL_DEVICE void anvil_wgmma_at(int f, int* r, int* c) {
    const int t = anvil_thread(), lane = t % 32;
    *r = (t / 128) * 64 + ((t % 128) / 32) * 16 + lane / 4 + f % 4 / 2 * 8;
    *c = 2 * (lane % 4) + f / 4 * 8 + f % 2;
}

// How the TMA engine serves the tile's main loop: not at all, A only, or
// A and B (each where the arena holds its map: src/tile/tensor_maps.h).
#define ANVIL_WGMMA_TMA_NONE 0
#define ANVIL_WGMMA_TMA_A 1
#define ANVIL_WGMMA_TMA_AB 2

// The tile's pipeline (the header's) into acc: A K-major, B N-major when
// MN_B (read through wgmma's transpose bit), else K-major. With TMA (BK
// 64), thread 0 inits an mbarrier per stage, acquires the maps and, per
// slice, announces the stage's bytes and has the engine copy A's 128 x 64
// box and (TMA_AB) B's boxes, 128-byte swizzled: MN-major BN / 64 boxes of
// 64 n x 64 k, 8 KB apart (wgmma's leading offset) with 8 k rows to a
// 1024-byte atom (its stride offset); K-major one BN x 64 box like A's.
// Every thread waits on the stage's mbarrier beside its cp.async group;
// the stages start 1024-byte aligned and their mbarriers follow them.
// Inlined: its wgmma are the kernel's (C7510, below).
template <class TA, class TB, int BM, int BN, int BK, int STAGES, bool MN_B, int TMA>
ANVIL_DEVICE void anvil_wgmma_mainloop(const MatmulParams& p, const AnvilMmPlace& at, const TA* A, const TB* B,
                                       const AnvilTensorMap* a_map, const AnvilTensorMap* b_map, float* acc) {
    static_assert(TMA == ANVIL_WGMMA_TMA_NONE || (BK == ANVIL_WGMMA_TMA_BK && BM == ANVIL_WGMMA_BM),
                  "anvil_wgmma_mainloop: the boxes have 128-byte rows of 64 k (A, K-major B) or 64 n (MN-major B)");
    const bool bf16 = anvil_is_bf16<TA>::value;
    const int STAGE = (BM + BN) * BK;  // halves: A, then B
    const unsigned STAGE_TX = (TMA == ANVIL_WGMMA_TMA_AB ? BM + BN : BM) * BK * 2;  // bytes the engine brings
    char* const raw = anvil_block_smem();
    unsigned short* const smem =
        (unsigned short*)(TMA ? raw + (1024u - anvil_shared_address(raw) % 1024u) % 1024u : raw);
    unsigned long long* const bars = (unsigned long long*)(smem + STAGES * STAGE);
    const int tid = anvil_thread();
    if (TMA) {
        if (tid == 0) {
            for (int s = 0; s < STAGES; ++s) anvil_mbarrier_init(&bars[s], 1);
            anvil_fence_mbarrier_init();
            anvil_tma_acquire_map(a_map);
            if (TMA == ANVIL_WGMMA_TMA_AB) anvil_tma_acquire_map(b_map);
        }
        anvil_fence_proxy_async();  // this thread's writes to the stages (the task before) come before the engine's
        anvil_barrier();
    }
    auto stage = [&](int slice) {
        unsigned short* as = smem + (slice % STAGES) * STAGE;
        unsigned short* bs = as + BM * BK;
        if (TMA && tid == 0) {
            unsigned long long* bar = &bars[slice % STAGES];
            anvil_mbarrier_arrive_expect_tx(bar, STAGE_TX);
            anvil_tma_load_2d(as, a_map, slice * BK, at.m0, bar);
            if (TMA == ANVIL_WGMMA_TMA_AB && MN_B)
                for (int j = 0; j < BN / 64; ++j)
                    anvil_tma_load_2d(bs + j * 64 * BK, b_map, at.n0 + 64 * j, slice * BK, bar);
            else if (TMA == ANVIL_WGMMA_TMA_AB)
                anvil_tma_load_2d(bs, b_map, slice * BK, at.n0, bar);
        }
        if (!TMA) anvil_wgmma_stage<TA, BM, BK>(as, A, p.a_sm, p.a_sk, at.m0, p.M, slice * BK, p.K);
        if (TMA == ANVIL_WGMMA_TMA_AB) return;
        if (MN_B)
            anvil_wgmma_stage_mn<TB, BN, BK>(bs, B, p.b_sk, at.n0, p.N, slice * BK, p.K);
        else
            anvil_wgmma_stage<TB, BN, BK>(bs, B, p.b_sn, p.b_sk, at.n0, p.N, slice * BK, p.K);
    };
    for (int i = 0; i < BN / 2; ++i) acc[i] = 0.0f;
    const int wg = tid / 128;
    const int slices = (p.K + BK - 1) / BK;
    anvil_trace_mark(ANVIL_MARK_STAGING);
    for (int s = 0; s < STAGES - 2; ++s) {
        if (s < slices) stage(s);
        anvil_cp_async_commit();  // possibly empty: one group per slice keeps the count
    }
    for (int kt = 0; kt < slices; ++kt) {
        anvil_cp_async_wait<STAGES - 3>();  // this thread's copies of slice kt have landed
        if (TMA) anvil_mbarrier_wait_parity(&bars[kt % STAGES], (kt / STAGES) & 1);  // and the engine's
        anvil_fence_proxy_async();          // ... and its writes are visible to the tensor cores
        anvil_barrier();                    // everyone's; slice kt - 2's wgmma are complete
        if (kt == 0) anvil_trace_mark(ANVIL_MARK_FIRST_SLICE);
        if (kt + STAGES - 2 < slices) stage(kt + STAGES - 2);
        anvil_cp_async_commit();
        const unsigned short* as = smem + (kt % STAGES) * STAGE;
        const unsigned short* bs = as + BM * BK;
        anvil_wgmma_fence();
        for (int kk = 0; kk < BK / 16; ++kk) {
            // k step kk. Unswizzled: core matrices 2kk and 2kk + 1 along K
            // of each row group, 128 bytes apart K-major, BN x 16 MN-major
            // (whose row groups are 128 bytes apart). In a swizzled box:
            // K-major rows of 128 bytes whose k step starts 32 bytes
            // further, 8-row atoms 1024 apart; MN-major 8 k rows to an
            // atom, the step two atoms (2048 bytes) further.
            const unsigned long long da = TMA ? anvil_wgmma_desc_sw128(as + wg * 64 * BK + kk * 16, 1024)
                                              : anvil_wgmma_desc(as + wg * 64 * BK + kk * 128, 128, BK * 16);
            const unsigned long long db =
                TMA == ANVIL_WGMMA_TMA_AB ? (MN_B ? anvil_wgmma_desc_sw128_mn(bs + kk * 1024, 64 * BK * 2, 1024)
                                                  : anvil_wgmma_desc_sw128(bs + kk * 16, 1024))
                : MN_B ? anvil_wgmma_desc(bs + kk * 16 * BN, BN * 16, 128)
                       : anvil_wgmma_desc(bs + kk * 128, 128, BK * 16);
            anvil_wgmma<BN, MN_B>(acc, da, db, bf16, true);
        }
        anvil_wgmma_commit();
        anvil_wgmma_wait<1>();
    }
    anvil_wgmma_wait<0>();
    anvil_cp_async_wait<0>();  // only empty groups remain
    if (TMA) {
        anvil_barrier();  // no thread still waits on a stage's mbarrier
        if (tid == 0)
            for (int s = 0; s < STAGES; ++s) anvil_mbarrier_inval(&bars[s]);
    }
    anvil_trace_mark(ANVIL_MARK_LOOP_END);
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
    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    float acc[BN / 2];
    // Six inlined loops at BK 64, two below (no maps there: tile/tensor_maps.cpp).
    const bool mn = anvil_wgmma_mn_ok(B, p.b_sn, p.b_sk), tma = BK == ANVIL_WGMMA_TMA_BK && p.a_map != 0;
    const AnvilTensorMap* a_map = tma ? anvil_at<const AnvilTensorMap>(arena, p.a_map) : 0;
    const AnvilTensorMap* b_map = tma && p.b_map ? anvil_at<const AnvilTensorMap>(arena, p.b_map) : 0;
    constexpr int T_A = BK == ANVIL_WGMMA_TMA_BK ? ANVIL_WGMMA_TMA_A : ANVIL_WGMMA_TMA_NONE;
    constexpr int T_AB = BK == ANVIL_WGMMA_TMA_BK ? ANVIL_WGMMA_TMA_AB : ANVIL_WGMMA_TMA_NONE;
    if (b_map && mn)
        anvil_wgmma_mainloop<TA, TB, BM, BN, BK, STAGES, true, T_AB>(p, at, A, B, a_map, b_map, acc);
    else if (b_map)
        anvil_wgmma_mainloop<TA, TB, BM, BN, BK, STAGES, false, T_AB>(p, at, A, B, a_map, b_map, acc);
    else if (a_map && mn)
        anvil_wgmma_mainloop<TA, TB, BM, BN, BK, STAGES, true, T_A>(p, at, A, B, a_map, b_map, acc);
    else if (a_map)
        anvil_wgmma_mainloop<TA, TB, BM, BN, BK, STAGES, false, T_A>(p, at, A, B, a_map, b_map, acc);
    else if (mn)
        anvil_wgmma_mainloop<TA, TB, BM, BN, BK, STAGES, true, ANVIL_WGMMA_TMA_NONE>(p, at, A, B, a_map, b_map, acc);
    else
        anvil_wgmma_mainloop<TA, TB, BM, BN, BK, STAGES, false, ANVIL_WGMMA_TMA_NONE>(p, at, A, B, a_map, b_map, acc);

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
    // A batch of values at a time (epilogue.cuh).
    anvil_wgmma_ready<BN>(acc);
    anvil_epilogue_each<BN / 2>(
        anvil_epilogue(p.epilogue), arena,
        [&](int f, float& v, anvil_i64& e) {
            int r, c;
            anvil_wgmma_at(f, &r, &c);
            const int m = at.m0 + r, n = at.n0 + c;
            v = acc[f];
            e = at.cb + ((anvil_i64)m * p.c_sm + (anvil_i64)n * p.c_sn);
            return m < p.M && n < p.N;
        },
        [&](int f, float v) {
            int r, c;
            anvil_wgmma_at(f, &r, &c);
            anvil_store(C + ((anvil_i64)(at.m0 + r) * p.c_sm + (anvil_i64)(at.n0 + c) * p.c_sn), v);
        });
#endif
}

#endif  // ANVIL_RTASKS_MATMUL_WGMMA_CUH
