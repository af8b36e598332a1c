// conv2d on tensor cores (f16, bf16 x and w; f32 ones as TF32 or 3xTF32,
// FMT): conv2d.cuh's implicit GEMM on the pipeline of tc_stages.cuh,
// transposed, y^T = w x^T: the product's rows are the tile's BN output
// channels and its columns the tile's BM pixels, so
//   A is w as stored, [Og][K] with k contiguous, staged [BN][BK + pad] by
//   16-byte cp.async where w's rows are 16-byte aligned;
//   B is the gathered x: 16-bit, staged k-major [BK][BM + 8] (read with
//   ldmatrix.trans), a warp gathering 32 consecutive pixels of one k into
//   one shared row; f32 (there is no 32-bit .trans), staged pixel-major
//   [BM][BK + pad] as any f32 B, a warp gathering 32 pixels' same k into
//   32 rows;
//   the accumulator pairs (neighbouring columns) are neighbouring pixels
//   of y: one 32-bit store each where y allows.
// A 16-bit gather moves elements too small for cp.async, so it goes
// through registers, in the two phases of tc_stages.cuh's pipeline: a
// thread loads its elements of slice s before the warps multiply slice
// s - S + 1 and stores them after that multiply, which hides the loads'
// round trip (one slice of x in flight beside w's S - 1; BM * BK / 256
// registers a thread held across the multiply). A pointwise conv whose
// 16-bit planes keep 16-byte alignment needs no gather: its B is x as
// stored, eight pixels of one k a 16-byte cp.async (S - 1 slices in
// flight, as w). An f32 gather is a 4-byte cp.async per element. The
// gathers use conv2d.cuh's window origin (one pixel per thread) and k
// tables (one per stage, written one barrier before the slice's gather). Grouped convs run
// a tile per (image, group) as conv2d.cuh's do; depthwise and thin-group
// convs are window tiles (a GEMM of a few channels has nothing for an mma
// product to do).
// Without tensor cores (the host backend) the variant runs conv2d.cuh's
// CUDA-core tile (for f32: exact f32, no TF32 rounding).
#ifndef ANVIL_RTASKS_CONV2D_TC_CUH
#define ANVIL_RTASKS_CONV2D_TC_CUH

#include "conv2d.cuh"
#include "tc_stages.cuh"

#if ANVIL_HAS_MMA
// A slice of 16-bit x in flight in registers, k-major [BK][BM + 8]:
// element e of a slice is (k, m) = (e / BM, e % BM), so all of a thread's
// are pixel tid % BM, `mine`. Issued (anvil_conv_tc_gather) before the
// multiply that hides the loads, landed (anvil_conv_tc_land) after it; 32
// bits an element, so that nothing reads a load, not even to narrow it,
// before it lands. BM * BK / 256 registers live across the multiply.
template <int BM, int BK>
struct AnvilConvTcGather {
    unsigned v[BM * BK / ANVIL_THREADS];
};
template <int BM, int BK>
ANVIL_DEVICE void anvil_conv_tc_land(const AnvilConvTcGather<BM, BK>& g, unsigned short* xs) {
    const int LDX = BM + ANVIL_TC_PAD, PER = BM * BK / ANVIL_THREADS, tid = anvil_thread();
#pragma unroll
    for (int i = 0; i < PER; ++i) {
        const int e = tid + i * ANVIL_THREADS;
        anvil_sts(xs + (e / BM) * LDX + e % BM, (unsigned short)g.v[i]);
    }
}
// Whether the tile's B is x as it is stored, eight pixels of one k a
// 16-byte cp.async (as conv2d.cuh's anvil_conv_a_vec moves four f32): a
// pointwise conv of 16-bit x whose planes keep 16-byte alignment.
template <class TX>
ANVIL_DEVICE bool anvil_conv_tc_x_vec(const WindowParams& p, const TX* x) {
    return sizeof(TX) == 2 && anvil_conv_x_planes(p, 8) && anvil_aligned16(x);
}
// Issues slice k of the tile's x (zero in the padding and past the edges;
// kt: the slice's k tables). 16-bit x: into g's registers.
template <int BM, int BK, class TX>
ANVIL_DEVICE void anvil_conv_tc_gather(AnvilConvTcGather<BM, BK>& g, unsigned short*, const WindowParams& p,
                                       const TX* x, const int* kt, const AnvilConvPixel& mine) {
    const int PER = BM * BK / ANVIL_THREADS, tid = anvil_thread();
#pragma unroll
    for (int i = 0; i < PER; ++i) {
        const int k = (tid + i * ANVIL_THREADS) / BM;
        const int ih = mine.h + anvil_lds(kt + BK + k), iw = mine.w + anvil_lds(kt + 2 * BK + k);
        g.v[i] = (unsigned)ih < (unsigned)p.H && (unsigned)iw < (unsigned)p.W ? x[mine.off + anvil_lds(kt + k)].bits : 0;
    }
}
// f32 x, pixel-major [BM][BK + pad] (2 halves an element): one 4-byte
// cp.async each, landing by anvil_cp_async_wait (g unused).
template <int BM, int BK>
ANVIL_DEVICE void anvil_conv_tc_gather(AnvilConvTcGather<BM, BK>&, unsigned short* xs, const WindowParams& p,
                                       const float* x, const int* kt, const AnvilConvPixel& mine) {
    const int LDX = 2 * BK + ANVIL_TC_PAD, PER = BM * BK / ANVIL_THREADS, tid = anvil_thread(), m = tid % BM;
#pragma unroll
    for (int i = 0; i < PER; ++i) {
        const int k = (tid + i * ANVIL_THREADS) / BM;
        const int ih = mine.h + anvil_lds(kt + BK + k), iw = mine.w + anvil_lds(kt + 2 * BK + k);
        const bool in = (unsigned)ih < (unsigned)p.H && (unsigned)iw < (unsigned)p.W;
        anvil_tc_stage_elem(xs + m * LDX + 2 * k, x + (mine.off + anvil_lds(kt + k)), in, x);
    }
}
#endif

// STAGES: the params' `stages` (tc_stages.cuh).
template <class TX, class TW, class TB, class TY, int BM, int BN, int BK,
          int FMT = anvil_is_bf16<TX>::value ? ANVIL_TC_BF16 : ANVIL_TC_F16, int STAGES = ANVIL_TC_STAGES>
ANVIL_TASK void anvil_conv2d_tc_tile(const WindowParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(WindowParams, p, params);
#if !ANVIL_HAS_MMA
    anvil_conv2d_tile<TX, TW, TB, TY, BM, BN, ANVIL_TC_FALLBACK_BK>(p, tile, arena);
#else
    static_assert(sizeof(TX) == anvil_tc_elem_bytes(FMT) && sizeof(TW) == sizeof(TX) &&
                      anvil_is_bf16<TX>::value == anvil_is_bf16<TW>::value &&
                      (FMT == ANVIL_TC_BF16) == anvil_is_bf16<TX>::value,
                  "anvil_conv2d_tc_tile: x and w must both be f16 or bf16 (as FMT), or f32 for TF32 and 3xTF32");
    static_assert(anvil_conv_tc_tile_ok(BM, BN, BK, FMT) && ANVIL_THREADS % BM == 0,
                  "anvil_conv2d_tc_tile: BM and BN must be multiples of ANVIL_TC_TILE_STEP_MN dividing the block, "
                  "BK whole k steps");
    static_assert(anvil_conv_tc_smem_bytes(BM, BN, BK, FMT, STAGES) <= ANVIL_SMEM_BYTES,
                  "anvil_conv2d_tc_tile: the stages and gather tables do not fit in ANVIL_SMEM_BYTES");
    const int S = STAGES, BKH = BK * anvil_tc_elem_bytes(FMT) / 2;  // a slice row's halves
    const int M = p.OH * p.OW, K = anvil_conv_k(p), tid = anvil_thread();  // K: w's row length
    const AnvilConvPlace place = anvil_conv_place(p, tile, BM, BN);
    // This tile's k, [kb, ke): split-K slices start at multiples of 16, so
    // w's rows from kb keep their 16-byte alignment.
    const int kb = place.k0, ke = place.k1;
    const AnvilConvOperands<TX, TW, TB, TY> op = anvil_conv_operands<TX, TW, TB, TY>(p, place, arena);
    // After the stages: per stage the k tables k_off, k_h, k_w [BK].
    int* const ktables = (int*)((unsigned short*)anvil_block_smem() + S * anvil_tc_stage_halves(BN, BM, BKH));
    const AnvilConvPixel mine = anvil_conv_pixel(p, place.m0 + tid % BM, M);  // every pixel this thread gathers
    const int slices = (ke - kb + BK - 1) / BK;
    // Pointwise x that keeps 16-byte alignment is copied as it is stored
    // (k-major, like any 16-bit x): no registers, no k tables.
    const bool x_vec = anvil_conv_tc_x_vec(p, op.x);
    if (!x_vec)
        for (int s = 0; s < S && s < slices; ++s) anvil_conv_k_tables<BK>(p, ktables + s * 3 * BK, kb + s * BK, ke);
    anvil_barrier();  // the first tables are complete (shared memory is free: the last task published)

    AnvilConvTcGather<BM, BK> gather;  // a 16-bit slice in flight
    auto issue = [&](unsigned short* ws, unsigned short* xs, int s) {
        anvil_tc_stage<TW, BN, BK>(ws, op.w + kb, K, 1, place.o0, p.Og, s * BK, ke - kb);
        if (x_vec) {
            anvil_tc_stage<TX, BK, BM>(xs, op.x + kb * M, M, 1, s * BK, ke - kb, place.m0, M);
            return;
        }
        anvil_conv_tc_gather<BM, BK>(gather, xs, p, op.x, ktables + (s % S) * 3 * BK, mine);
    };
    auto land = [&](unsigned short*, unsigned short* xs, int s) {
        if (x_vec) return;
        if (sizeof(TX) == 2) anvil_conv_tc_land(gather, xs);
        // Slice s + 1's tables into slice s + 1 - S's, gathered at least one
        // barrier ago; the gather of s + 1 is one barrier ahead. (Here, not
        // in issue: the registers of the loads are free again.)
        if (s + 1 >= S && s + 1 < slices)
            anvil_conv_k_tables<BK>(p, ktables + ((s + 1) % S) * 3 * BK, kb + (s + 1) * BK, ke);
    };
    float acc[BN / 32][BM / 32][4];
    anvil_tc_gemm<BN, BM, BK, FMT, STAGES>(ke - kb, sizeof(TX) == 2, issue, land, acc,  // an f32 x is staged pixel-major
                                           [](unsigned short*, int) { return false; });

    // Row r: channel o0 + r; columns c, c + 1: pixels m0 + c, m0 + c + 1.
    if (p.epilogue) {  // a batch at a time (epilogue.cuh)
        anvil_epilogue_each<BM * BN / ANVIL_THREADS>(
            anvil_epilogue(p.epilogue), arena,
            [&](int f, float& v, anvil_i64& at) {
                int r, c;
                anvil_tc_at<BN, BM>(f, &r, &c);
                const int go = place.o0 + r, gm = place.m0 + c;
                if (go >= p.Og || gm >= M) return false;
                v = anvil_tc_acc<BN, BM>(acc, f) + (op.bias ? anvil_load(op.bias + go) : 0.0f);
                at = op.y0 + (go * M + gm);
                return true;
            },
            [&](int f, float v) {
                int r, c;
                anvil_tc_at<BN, BM>(f, &r, &c);
                anvil_store(op.y + ((place.o0 + r) * M + place.m0 + c), v);
            });
        return;
    }
    anvil_tc_pairs<BN, BM>(acc, [&](int r, int c, const float* v) {
        const int go = place.o0 + r, gm = place.m0 + c;
        if (go >= p.Og || gm >= M) return;
        const float b = op.bias ? anvil_load(op.bias + go) : 0.0f;
        anvil_store2(op.y + (go * M + gm), 1, gm + 1 < M, v[0] + b, v[1] + b);
    });
#endif
}

#endif  // ANVIL_RTASKS_CONV2D_TC_CUH
