// Batch-1 matmul (a GEMV, or up to ANVIL_GEMV_MAX_M rows of A): every
// element of B is used at most M times, so the tile is memory-bound. It
// streams its BN-column slice of B exactly once, with 16-byte loads,
// ANVIL_GEMV_UNROLL of them in flight per thread, and accumulates in f32
// registers. Two walks, by B's layout:
//   columns contiguous (x @ W, b_sn == 1): a thread owns a group of
//     anvil_vec<TB>::n columns and every KR-th row of k; the KR partial sums
//     of a column meet in shared memory;
//   k contiguous (x @ W^T, b_sk == 1): a warp owns one column at a time and
//     its lanes walk K; the partial sums meet by shuffles.
// Any other stride takes the first walk with scalar loads. On the host a
// block is one thread and a warp one lane: the same code, every loop whole.
// With p.a_rms (a folded rmsnorm, frontend/norm_fold.h) each row's sums are
// multiplied by that row's rsqrt(mean(a^2) + eps) before the epilogue.
//
// On the GPU and simt, an aligned columns-contiguous B streams through a
// shared-memory ring instead (anvil_gemv_by_ring): stages of
// ANVIL_GEMV_STAGE_BYTES of the tile's k rows by 16-byte cp.async, zero-filled
// past K and N, ANVIL_GEMV_RING_STAGES - 1 in flight while one is
// multiplied. Weights (p.b_fixed: B an input or param) depend on nothing
// another task writes, so their first stages are issued before the task
// polls its counters (megakernel.cuh), or by the block's previous ring task
// in the slots its last stages free (weight_ring.cuh): the weight stream
// stops neither for a wait nor at a task boundary. A computed B (attention's
// V) takes the same ring, its first stages issued after the waits.
// The ring walk reads x (A) from shared memory: staged once per task, right
// after the waits (x is the previous task's output), by 16-byte cp.async
// where a row is contiguous and aligned and scalar copies otherwise, when its
// M rows fit in ANVIL_GEMV_X_BYTES (below); a thread's two k rows of a
// stage are adjacent, so their x is one shared load per row of A. A folded
// rmsnorm's 1/RMS comes from the staged copy too. A larger x is read from
// global memory as the other walks read it.
// Each walk is its own (noinline) function, so its registers are its own:
// inlined together into the tile, the ring walk of llama_decode's kernel
// spilled 164 bytes, alone 32 (docs/perf/decode-2026-11-27.md).
#ifndef ANVIL_RTASKS_GEMV_CUH
#define ANVIL_RTASKS_GEMV_CUH

#include "matmul.cuh"
#include "trace_marks.cuh"
#include "weight_ring.cuh"

#define ANVIL_GEMV_UNROLL 4

// Room for the staged x (tiling.cuh): emit.cpp defines it as the largest x
// a GEMV of the schedule stages (0: none does), within ANVIL_SMEM_BYTES.
#ifndef ANVIL_GEMV_X_BYTES
#define ANVIL_GEMV_X_BYTES 0
#endif

// The shared facts (rtasks/tiling.cuh) assume these of the block and of the vectors.
static_assert(ANVIL_GEMV_MAX_GROUPS <= ANVIL_BLOCK_THREADS, "gemv: a GPU thread per column group at most");
static_assert(anvil_vec<float>::n == ANVIL_VEC_BYTES / 4 && anvil_vec<anvil_f16>::n == ANVIL_VEC_BYTES / 2,
              "gemv: anvil_vec must be ANVIL_VEC_BYTES wide (anvil_gemv_tile_ok, anvil_gemv_smem_bytes count on it)");

// 1 / RMS of row m of A, for every thread of the block (which must all call
// it): rsqrt(mean(a^2) + eps) as the rmsnorm row task computes it; 1 without
// p.a_rms. A second read of the row, a few KB at batch 1, mostly from L1/L2.
template <class TA>
ANVIL_DEVICE float anvil_gemv_row_rms(const MatmulParams& p, const TA* A, int m) {
    if (!p.a_rms) return 1.0f;
    float q = 0.0f;
    for (int k = anvil_thread(); k < p.K; k += ANVIL_THREADS) {
        const float a = anvil_load(A + (anvil_i64)m * p.a_sm + (anvil_i64)k * p.a_sk);
        q += a * a;
    }
    return anvil_rsqrt(anvil_block_sum(q) / (float)p.K + p.a_rms_eps);
}

// The rows of x, m from 0 to p.M - 1, over a bound the compiler knows:
// the accumulators indexed by m then stay in registers. With p.M as the
// bound they lived in local memory, loaded and stored around every
// multiply of the ring walk (the decode step's GEMVs, 2026-11-28).
#define ANVIL_GEMV_ROWS(m, M) _Pragma("unroll") for (int m = 0; m < ANVIL_GEMV_MAX_M; ++m) if (m < (M))

// The staged x (gemv.cuh's header): row m at xs + m * xp elements.
template <class TA>
ANVIL_DEVICE int anvil_gemv_x_pitch(const MatmulParams& p) {
    return (int)(anvil_gemv_x_row_bytes(p.K, (int)sizeof(TA)) / (int)sizeof(TA));
}
ANVIL_DEVICE char* anvil_gemv_region() { return anvil_block_smem() + anvil_gemv_ring_bytes(); }
ANVIL_DEVICE float* anvil_gemv_rms_slots() {
    return (float*)(anvil_gemv_region() + anvil_gemv_region_bytes(ANVIL_THREADS, ANVIL_GEMV_X_BYTES));
}

// Copies the M rows of x into the staged x: 16-byte cp.async for the
// aligned whole chunks of a contiguous row (the caller commits), plain
// copies for the rest, zeros to the row's padding (a walk reads it).
template <class TA>
ANVIL_DEVICE void anvil_gemv_stage_x(const MatmulParams& p, const TA* A, TA* xs) {
    const int E = anvil_vec<TA>::n, xp = anvil_gemv_x_pitch<TA>(p), tid = anvil_thread();
    TA zero;
    anvil_store(&zero, 0.0f);
    for (int m = 0; m < p.M; ++m) {
        const TA* row = A + (anvil_i64)m * p.a_sm;
        TA* dst = xs + m * xp;
        const int kv = p.a_sk == 1 && anvil_aligned16(row) ? p.K / E * E : 0;
        for (int c = tid; c < kv / E; c += ANVIL_THREADS) anvil_cp_async16(dst + c * E, row + c * E, 16);
        for (int k = kv + tid; k < xp; k += ANVIL_THREADS)
            anvil_sts(dst + k, k < p.K ? row[(anvil_i64)k * p.a_sk] : zero);
    }
}

// Every row's 1/RMS (as anvil_gemv_row_rms) from the staged x, by 16-byte
// loads (the padding is zero), into the rms slots, for the reduction to
// read: the partial sums overwrite the staged x.
template <class TA>
ANVIL_DEVICE void anvil_gemv_rms_from_staged(const MatmulParams& p, const TA* xs) {
    if (!p.a_rms) return;
    const int E = anvil_vec<TA>::n, xp = anvil_gemv_x_pitch<TA>(p);
    for (int m = 0; m < p.M; ++m) {
        float q = 0.0f;
        for (int c = anvil_thread(); c < xp / E; c += ANVIL_THREADS) {
            float a[anvil_vec<TA>::n];
            anvil_unpack16(anvil_lds((const anvil_u32x4*)(xs + m * xp + c * E)), a, xs);
            for (int e = 0; e < E; ++e) q += a[e] * a[e];
        }
        const float rms = anvil_rsqrt(anvil_block_sum(q) / (float)p.K + p.a_rms_eps);
        if (anvil_thread() == 0) anvil_sts(anvil_gemv_rms_slots() + m, rms);
    }
    anvil_barrier();  // the slots are read before the reduction's first barrier
}

// Per row of C: the KR partial sums of the CT * V columns from g0 * V on
// (thread tid holds group tid % CT of k row tid / CT in acc), through
// shared memory `red`, times the row's 1/RMS (from the rms slots when
// `staged`), then the epilogue and store.
template <class TA, class TC, int V>
ANVIL_DEVICE void anvil_gemv_reduce_store(const MatmulParams& p, const TA* A, TC* C, anvil_i64 cb, int n0, int ncols,
                                          int g0, int CT, int KR, const float (&acc)[ANVIL_GEMV_MAX_M][V], float* red,
                                          const AnvilEpilogue* epi, char* arena, bool staged = false) {
    const int tid = anvil_thread(), kr = tid / CT;
    ANVIL_GEMV_ROWS(m, p.M) {
        // here, not live through the k loop
        const float rms = !staged ? anvil_gemv_row_rms(p, A, m) : p.a_rms ? anvil_lds(anvil_gemv_rms_slots() + m) : 1.0f;
        anvil_barrier();  // the previous row's readers are done
        for (int v = 0; v < V; ++v) anvil_sts(red + kr * CT * V + (tid % CT) * V + v, acc[m][v]);
        anvil_barrier();
        for (int c = tid; c < CT * V; c += ANVIL_THREADS) {
            const int col = g0 * V + c;
            if (col >= ncols) continue;
            float sum = 0.0f;
            for (int r = 0; r < KR; ++r) sum += anvil_lds(red + r * CT * V + c);
            anvil_mm_store(p, C, cb, m, n0 + col, sum * rms, epi, arena);
        }
    }
}

// x[m][k] and x[m][k + 1] (k even) as floats: from the staged x by one
// shared load, or from global memory (zero past K).
ANVIL_DEVICE void anvil_gemv_x_pair(const float* xs, float* a) {
    const anvil_f32x2 r = anvil_lds((const anvil_f32x2*)xs);
    a[0] = r.v[0], a[1] = r.v[1];
}
ANVIL_DEVICE void anvil_gemv_x_pair(const int* xs, float* a) {
    const anvil_f32x2 r = anvil_lds((const anvil_f32x2*)xs);
    a[0] = (float)(int)anvil_float_bits(r.v[0]), a[1] = (float)(int)anvil_float_bits(r.v[1]);
}
ANVIL_DEVICE void anvil_gemv_x_pair(const anvil_f16* xs, float* a) {
    const unsigned r = anvil_lds((const unsigned*)xs);
    a[0] = anvil_f16_to_f32((unsigned short)(r & 0xffffu)), a[1] = anvil_f16_to_f32((unsigned short)(r >> 16));
}
ANVIL_DEVICE void anvil_gemv_x_pair(const anvil_bf16* xs, float* a) {
    const unsigned r = anvil_lds((const unsigned*)xs);
    a[0] = anvil_bits_float(r << 16), a[1] = anvil_bits_float(r & 0xffff0000u);
}
template <class TA>
ANVIL_DEVICE void anvil_gemv_x_pair_global(const MatmulParams& p, const TA* A, int m, int k, float* a) {
    const TA* x = A + (anvil_i64)m * p.a_sm + (anvil_i64)k * p.a_sk;
    a[0] = anvil_load(x);
    a[1] = k + 1 < p.K ? anvil_load(x + p.a_sk) : 0.0f;
}

// The ring's geometry for a BN-column slice of TB.
template <class TB, int BN>
struct anvil_gemv_ring {
    static const int V = anvil_vec<TB>::n;
    static const int ROW = BN * (int)sizeof(TB);         // bytes of one k row of the slice
    static const int ROWS = ANVIL_GEMV_STAGE_BYTES / ROW;  // k rows per stage
    static_assert((ROW & (ROW - 1)) == 0 && ROW >= 16 && ROW <= ANVIL_GEMV_STAGE_BYTES,
                  "gemv ring: a k row of the slice is a power of two of 16-byte chunks within a stage");
};

// Whether the tile streams through the ring: columns contiguous, every k
// row of its slice 16-byte aligned (B at the tile's first column).
template <class TB>
ANVIL_DEVICE bool anvil_gemv_ring_ok(const MatmulParams& p, const TB* B) {
    return ANVIL_GEMV_RING && p.b_sn == 1 && (p.b_sk * (anvil_i64)sizeof(TB)) % 16 == 0 && anvil_aligned16(B);
}

// The tile's slice as the ring streams it (B at the tile's first column).
template <class TB, int BN>
ANVIL_DEVICE AnvilRingStream anvil_gemv_stream(const MatmulParams& p, const TB* B, int ncols) {
    typedef anvil_gemv_ring<TB, BN> R;
    int shift = 0;
    while ((16 << shift) < R::ROW) ++shift;  // constant: folded by the compiler
    AnvilRingStream w = {(const char*)B, p.b_sk * (anvil_i64)sizeof(TB), shift, ncols * (int)sizeof(TB), p.K,
                         (p.K + R::ROWS - 1) / R::ROWS};
    return w;
}

// The stream a task may start before its waits and during the block's
// previous task: a ring tile's whose B no task writes; none otherwise.
template <class TA, class TB, class TC, int BN>
ANVIL_TASK AnvilRingStream anvil_gemv_fixed_stream(const MatmulParams& p, int tile, char* arena) {
    const AnvilMmPlace at = anvil_mm_place(p, tile, p.bm, BN);
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb + at.n0;
    if (!p.b_fixed || !anvil_gemv_ring_ok(p, B)) return anvil_ring_none();
    return anvil_gemv_stream<TB, BN>(p, B, p.N - at.n0 < BN ? p.N - at.n0 : BN);
}

// The ring walk. A fixed B's first stages are in flight already (issued
// before the waits, or by the block's previous task: weight_ring.cuh), from
// ring->slot on; a computed one's are issued here. A thread owns one column
// group (G = BN / V <= ANVIL_THREADS) and two adjacent k rows of each stage,
// read from shared memory by one 16-byte load each. With XS, x is staged
// (its copies one commit group, after a fixed B's first stages and before a
// computed B's), else read from global memory. The slots its last stages
// free take the first stages of ring->next, if the block's next task
// streams fixed weights: then the walk ends with them in flight.
template <class TA, class TB, class TC, int BN, bool XS>
ANVIL_TASK void anvil_gemv_by_ring(const MatmulParams& p, const TA* A, const TB* B, TC* C, anvil_i64 cb, int n0,
                                     const AnvilEpilogue* epi, char* arena, AnvilRing* ring) {
#if ANVIL_GEMV_RING
    typedef anvil_gemv_ring<TB, BN> R;
    const int V = R::V, G = BN / V, KR = ANVIL_THREADS / G, S = ANVIL_GEMV_RING_STAGES;
    static_assert(ANVIL_GEMV_STAGE_BYTES == 2 * 16 * ANVIL_THREADS, "gemv ring: two k rows of a stage per thread");
    const int tid = anvil_thread(), g = tid % G, kr = tid / G;
    const int ncols = p.N - n0 < BN ? p.N - n0 : BN;
    // The fields the loop reads, in registers: through the reference they
    // were reloaded from global memory every stage (each cp.async clobbers memory).
    const int K = p.K, M = p.M;
    const bool fixed = p.b_fixed;
    const int stages = (K + R::ROWS - 1) / R::ROWS, slot0 = ring->slot;
    char* smem = anvil_block_smem();
    const TA* xs = (const TA*)anvil_gemv_region();
    const int xp = anvil_gemv_x_pitch<TA>(p);
    if (XS) {
        anvil_gemv_stage_x(p, A, (TA*)xs);
        anvil_stage_commit();
    }
    const AnvilRingStream own = anvil_gemv_stream<TB, BN>(p, B + n0, ncols);
    if (!fixed) anvil_ring_prologue(own, slot0);
    // The next task's first stages go where this task's would: after its
    // last, so a walk of fewer stages than the ring keeps in flight leaves
    // them to the next task's own prologue.
    const int next_stages = ring->next.stages;
    const bool hand_on = next_stages > 0 && stages >= S - 1;
    anvil_trace_mark(ANVIL_MARK_STAGING);  // a fixed B's first stages went out before the waits
    float acc[ANVIL_GEMV_MAX_M][anvil_vec<TB>::n];
    for (int m = 0; m < ANVIL_GEMV_MAX_M; ++m)
        for (int v = 0; v < V; ++v) acc[m][v] = 0.0f;
    for (int s = 0; s < stages; ++s) {
        // Stage s landed (this thread's copies), and after the barrier every
        // thread's; every thread is done with stage s - 1, whose slot the
        // stage issued now takes.
        // (At s = 0 a staged x is the newest group when B is fixed.)
        if (XS && s == 0 && fixed) anvil_stage_wait<0>();
        else anvil_stage_wait<ANVIL_GEMV_RING_STAGES - 2>();
        anvil_barrier();
        if (s == 0) anvil_trace_mark(ANVIL_MARK_FIRST_SLICE);
        const int j = s + S - 1;  // the stream position issued now
        if (j < stages) anvil_ring_issue(own, j, (slot0 + j) % S);
        else if (hand_on && j - stages < next_stages) anvil_ring_issue(ring->next, j - stages, (slot0 + j) % S);
        anvil_stage_commit();
        const char* stage = smem + ((slot0 + s) % S) * ANVIL_GEMV_STAGE_BYTES;
        // Rows 2 kr and 2 kr + 1 (KR = ROWS / 2); past K, B is zero-filled
        // and x zero.
        const int r = 2 * kr, k = s * R::ROWS + r;
        if (k < K) {
            float b0[anvil_vec<TB>::n], b1[anvil_vec<TB>::n];
            anvil_unpack16(anvil_lds((const anvil_u32x4*)(stage + r * R::ROW + g * 16)), b0, (const TB*)0);
            anvil_unpack16(anvil_lds((const anvil_u32x4*)(stage + (r + 1) * R::ROW + g * 16)), b1, (const TB*)0);
            ANVIL_GEMV_ROWS(m, M) {
                float a[2];
                if (XS) anvil_gemv_x_pair(xs + m * xp + k, a);
                else anvil_gemv_x_pair_global(p, A, m, k, a);
                // Two multiply-adds (not a product, a multiply-add and an add).
                for (int v = 0; v < V; ++v) {
                    acc[m][v] += a[0] * b0[v];
                    acc[m][v] += a[1] * b1[v];
                }
            }
        }
    }
    if (hand_on) {
        ring->handed = 1;  // the groups in flight are the next task's stages 0, 1, 2
        ring->slot = (slot0 + stages) % S;
    } else {
        anvil_stage_wait<0>();  // the empty tail groups: nothing left in flight
    }
    anvil_trace_mark(ANVIL_MARK_LOOP_END);
    if (XS) anvil_gemv_rms_from_staged(p, xs);  // before the partial sums take the region
    anvil_gemv_reduce_store<TA, TC, anvil_vec<TB>::n>(p, A, C, cb, n0, ncols, 0, G, KR, acc,
                                                    (float*)anvil_gemv_region(), epi, arena, XS);
#else
    (void)p, (void)A, (void)B, (void)C, (void)cb, (void)n0, (void)epi, (void)arena, (void)ring;
#endif
}

// B's columns contiguous (or any strides, with scalar loads).
template <class TA, class TB, class TC, int BN>
ANVIL_TASK void anvil_gemv_by_columns(const MatmulParams& p, const TA* A, const TB* B, TC* C, anvil_i64 cb,
                                        int n0, const AnvilEpilogue* epi, char* arena) {
    const int V = anvil_vec<TB>::n, G = BN / V;                // column groups of the tile
    const int CT = G < ANVIL_THREADS ? G : ANVIL_THREADS;      // threads along the columns
    const int KR = ANVIL_THREADS / CT;                         // rows of k walked at once
    const int tid = anvil_thread(), kr = tid / CT;
    const int ncols = p.N - n0 < BN ? p.N - n0 : BN;
    const bool vec = p.b_sn == 1 && (p.b_sk * (anvil_i64)sizeof(TB)) % 16 == 0 && anvil_aligned16(B + n0);
    float* red = (float*)anvil_gemv_region();  // [KR][CT * V], beside the ring
    // On the GPU G <= ANVIL_THREADS and this loop runs once; a host block
    // (one thread) walks every group.
    for (int g0 = 0; g0 < G; g0 += CT) {
        const int c0 = (g0 + tid % CT) * V;  // the thread's first column in the tile
        const bool full = vec && c0 + V <= ncols;
        float acc[ANVIL_GEMV_MAX_M][anvil_vec<TB>::n];
        for (int m = 0; m < ANVIL_GEMV_MAX_M; ++m)
            for (int v = 0; v < V; ++v) acc[m][v] = 0.0f;
        for (int k0 = kr; k0 < p.K; k0 += KR * ANVIL_GEMV_UNROLL) {
            // Every load of the step first, then the math: the loads overlap.
            float b[ANVIL_GEMV_UNROLL][anvil_vec<TB>::n];
            for (int u = 0; u < ANVIL_GEMV_UNROLL; ++u) {
                const int k = k0 + u * KR;
                const TB* row = B + (anvil_i64)k * p.b_sk + (anvil_i64)(n0 + c0) * p.b_sn;
                if (k < p.K && full) {
                    anvil_load_vec(row, b[u]);
                } else {
                    for (int v = 0; v < V; ++v)
                        b[u][v] = k < p.K && c0 + v < ncols ? anvil_load(row + v * p.b_sn) : 0.0f;
                }
            }
            for (int u = 0; u < ANVIL_GEMV_UNROLL; ++u) {
                const int k = k0 + u * KR;
                if (k >= p.K) break;
                ANVIL_GEMV_ROWS(m, p.M) {
                    const float a = anvil_load(A + (anvil_i64)m * p.a_sm + (anvil_i64)k * p.a_sk);
                    for (int v = 0; v < V; ++v) acc[m][v] += a * b[u][v];
                }
            }
        }
        anvil_gemv_reduce_store<TA, TC, anvil_vec<TB>::n>(p, A, C, cb, n0, ncols, g0, CT, KR, acc, red, epi, arena);
    }
}

// B's k contiguous: a warp per column, its lanes along K.
template <class TA, class TB, class TC, int BN>
ANVIL_TASK void anvil_gemv_by_k(const MatmulParams& p, const TA* A, const TB* B, TC* C, anvil_i64 cb, int n0,
                                  const AnvilEpilogue* epi, char* arena) {
    const int V = anvil_vec<TB>::n, W = ANVIL_THREADS / ANVIL_WARP;
    const int lane = anvil_thread() % ANVIL_WARP, warp = anvil_thread() / ANVIL_WARP;
    const int ncols = p.N - n0 < BN ? p.N - n0 : BN;
    const int K = p.K, M = p.M;  // locals: fewer spill loads than through the reference
    const int kvec = K / V * V;  // the vector part of K; the rest is scalar
    float rms[ANVIL_GEMV_MAX_M];    // before the warps part ways: a block reduction
    for (int m = 0; m < ANVIL_GEMV_MAX_M; ++m) rms[m] = m < M ? anvil_gemv_row_rms(p, A, m) : 1.0f;
    // Warps take different columns (no block barrier below), and a warp's
    // lanes the same one, so the shuffles see whole warps.
    for (int c = warp; c < ncols; c += W) {
        const TB* col = B + (anvil_i64)(n0 + c) * p.b_sn;
        const bool vec = (p.b_sn * (anvil_i64)sizeof(TB)) % 16 == 0 && anvil_aligned16(col);
        float acc[ANVIL_GEMV_MAX_M];
        for (int m = 0; m < ANVIL_GEMV_MAX_M; ++m) acc[m] = 0.0f;
        const int step = ANVIL_WARP * V;
        for (int k0 = vec ? lane * V : kvec; k0 < kvec; k0 += step * ANVIL_GEMV_UNROLL) {
            float b[ANVIL_GEMV_UNROLL][anvil_vec<TB>::n];
            for (int u = 0; u < ANVIL_GEMV_UNROLL; ++u)
                if (k0 + u * step < kvec) anvil_load_vec(col + k0 + u * step, b[u]);
            for (int u = 0; u < ANVIL_GEMV_UNROLL; ++u) {
                const int k = k0 + u * step;
                if (k >= kvec) break;
                ANVIL_GEMV_ROWS(m, M)
                    for (int v = 0; v < V; ++v)
                        acc[m] += anvil_load(A + (anvil_i64)m * p.a_sm + (anvil_i64)(k + v) * p.a_sk) * b[u][v];
            }
        }
        // The tail of K, and all of it when the column is not aligned.
        for (int k = (vec ? kvec : 0) + lane; k < K; k += ANVIL_WARP) {
            const float bk = anvil_load(col + k);
            ANVIL_GEMV_ROWS(m, M) acc[m] += anvil_load(A + (anvil_i64)m * p.a_sm + (anvil_i64)k * p.a_sk) * bk;
        }
        ANVIL_GEMV_ROWS(m, M) {
            const float sum = anvil_warp_sum(acc[m]);
            if (lane == 0) anvil_mm_store(p, C, cb, m, n0 + c, sum * rms[m], epi, arena);
        }
    }
}

template <class TA, class TB, class TC, int BN>
ANVIL_TASK void anvil_gemv_tile(const MatmulParams& p, int tile, char* arena, AnvilRing* ring) {
    static_assert(anvil_storage<TA>::ok && anvil_storage<TB>::ok && anvil_storage<TC>::ok,
                  "anvil_gemv_tile: TA, TB, TC must be storage types (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_gemv_tile_ok(BN, sizeof(TB)),
                  "anvil_gemv_tile: BN must be a power of two, at least ANVIL_GEMV_MIN_BN, with at most "
                  "ANVIL_GEMV_MAX_GROUPS column groups");
    // (BN > 0: a dependent condition, checked only where the template is used.)
    static_assert(BN > 0 && anvil_gemv_smem_bytes(ANVIL_THREADS, ANVIL_GEMV_X_BYTES) <= ANVIL_SMEM_BYTES,
                  "anvil_gemv_tile: the ring, the staged x or the partial sums exceed ANVIL_SMEM_BYTES");
    const AnvilMmPlace at = anvil_mm_place(p, tile, p.bm, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    if (anvil_gemv_ring_ok(p, B + at.n0)) {  // a fixed B's first stages are in flight (anvil_gemv_fixed_stream)
        if (anvil_gemv_x_bytes(p.M, p.K, (int)sizeof(TA)) <= ANVIL_GEMV_X_BYTES)
            anvil_gemv_by_ring<TA, TB, TC, BN, true>(p, A, B, C, at.cb, at.n0, epi, arena, ring);
        else
            anvil_gemv_by_ring<TA, TB, TC, BN, false>(p, A, B, C, at.cb, at.n0, epi, arena, ring);
    } else if (p.b_sk == 1 && p.b_sn != 1)
        anvil_gemv_by_k<TA, TB, TC, BN>(p, A, B, C, at.cb, at.n0, epi, arena);
    else
        anvil_gemv_by_columns<TA, TB, TC, BN>(p, A, B, C, at.cb, at.n0, epi, arena);
}

#endif  // ANVIL_RTASKS_GEMV_CUH
