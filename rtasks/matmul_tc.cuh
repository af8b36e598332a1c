// Matmul on tensor cores: f16 or bf16 operands, or f32 ones as TF32 or
// 3xTF32 (FMT), f32 accumulators, on the pipeline of tc_stages.cuh (8 warps as 2 x 4, a 64 x 32 warp tile in a
// 128 x 128 tile, STAGES stages: three, or four where the variants chose it; ldmatrix). A is staged as [BM][BK + 8];
// B as it is stored: n contiguous (a [K, N] weight, x @ W) as [BK][BN + 8],
// read with ldmatrix.x4.trans; k contiguous (x @ W^T) as [BN][BK + 8], read
// with ldmatrix.x4 (an f32 B always so: no 32-bit .trans). A row that is
// contiguous and 16-byte aligned is copied asynchronously, any other
// element by element along its contiguous axis.
// With ANVIL_GEMM_L2_PREFETCH a B no task writes is prefetched into L2
// slice by slice, about 32 KB ahead of the stages (tiling.cuh).
// Results leave as packed pairs (32 bits for f16/bf16) where C allows; a
// fused row op (softmax, layernorm, rmsnorm over whole rows) goes through
// shared memory first (anvil_mm_rows_finish).
// Without tensor cores (the host backend) the variant runs the shared-
// memory GEMM of matmul.cuh: the same results, up to summation order.
#ifndef ANVIL_RTASKS_MATMUL_TC_CUH
#define ANVIL_RTASKS_MATMUL_TC_CUH

#include "matmul.cuh"
#include "tc_stages.cuh"

#if ANVIL_HAS_MMA
// C[m, n..n+1] = v[0..1] (already through the epilogue), in one store where
// C is contiguous along n and the pair aligned; nothing outside M x N.
template <class TC>
ANVIL_DEVICE void anvil_mm_store_pair(const MatmulParams& p, TC* C, int m, int n, const float* v) {
    if (m >= p.M || n >= p.N) return;
    anvil_store2(C + ((anvil_i64)m * p.c_sm + (anvil_i64)n * p.c_sn), p.c_sn, n + 1 < p.N, v[0], v[1]);
}
#endif

// A_NORM: as anvil_matmul_tile's (a_norm.cuh); STAGES: the params' `stages`.
template <class TA, class TB, class TC, int BM, int BN, int BK,
          int FMT = anvil_is_bf16<TA>::value ? ANVIL_TC_BF16 : ANVIL_TC_F16, bool A_NORM = false,
          int STAGES = ANVIL_TC_STAGES>
ANVIL_TASK void anvil_matmul_tc_tile(const MatmulParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(MatmulParams, p, params);
#if !ANVIL_HAS_MMA
    anvil_matmul_tile<TA, TB, TC, BM, BN, ANVIL_TC_FALLBACK_BK, A_NORM>(p, tile, arena);
#else
    static_assert(sizeof(TA) == anvil_tc_elem_bytes(FMT) && sizeof(TB) == sizeof(TA) &&
                      anvil_is_bf16<TA>::value == anvil_is_bf16<TB>::value &&
                      (FMT == ANVIL_TC_BF16) == anvil_is_bf16<TA>::value,
                  "anvil_matmul_tc_tile: A and B must both be f16 or bf16 (as FMT), or f32 for TF32 and 3xTF32");
    static_assert(anvil_tc_tile_ok(BM, BN, BK, FMT),
                  "anvil_matmul_tc_tile: BM and BN must be multiples of ANVIL_TC_TILE_STEP_MN, BK whole k steps");
    static_assert(anvil_tc_smem_bytes(BM, BN, BK, FMT, STAGES) <= ANVIL_SMEM_BYTES,
                  "anvil_matmul_tc_tile: the staged operands do not fit in ANVIL_SMEM_BYTES");
    const AnvilMmPlace at = anvil_mm_place(p, tile, BM, BN);
    const TA* A = anvil_at<const TA>(arena, p.a_off) + at.ab;
    const TB* B = anvil_at<const TB>(arena, p.b_off) + at.bb;
    TC* C = anvil_at<TC>(arena, p.c_off) + at.cb;
    const bool n_fast = p.b_sn == 1;
    const bool b_kmajor = sizeof(TB) == 2 && n_fast && p.b_sk != 1;  // staged [BK][BN]: B's n contiguous
    // --gemm-l2-prefetch (tiling.cuh): a fixed B's slice s + STAGES - 1 +
    // ahead goes into L2 as slice s is staged, and slices STAGES - 1 on to
    // there go behind the pipeline's first copies (slice STAGES - 2's), so
    // that they do not queue ahead of them; the stages copy slices from
    // STAGES - 1 on out of L2 (simt checks).
    const anvil_i64 b_pitch = (n_fast ? p.b_sk : p.b_sn) * (anvil_i64)sizeof(TB);
    const bool l2 = ANVIL_GEMM_L2_PREFETCH && p.b_fixed && (n_fast || p.b_sk == 1) && anvil_aligned16(B) &&
                    b_pitch % 16 == 0;
    const int ahead = anvil_mm_l2_ahead(BK * BN * (int)sizeof(TB));
    auto prefetch_b = [&](int s) {
        anvil_i64 offset;
        unsigned bytes;
        for (int i = anvil_thread();
             anvil_mm_l2_piece(n_fast, b_pitch, s * BK, BK, p.K, at.n0, BN, p.N, (int)sizeof(TB), i, &offset, &bytes);
             i += ANVIL_THREADS)
            anvil_prefetch_l2((const char*)B + offset, bytes);
    };
    auto stage = [&](unsigned short* as, unsigned short* bs, int s) {
        anvil_tc_stage<TA, BM, BK>(as, A, p.a_sm, p.a_sk, at.m0, p.M, s * BK, p.K);
        if (l2 && s >= STAGES - 1) anvil_expect_l2_copies("the tile's stage of B");
        if (b_kmajor)
            anvil_tc_stage<TB, BK, BN>(bs, B, p.b_sk, p.b_sn, s * BK, p.K, at.n0, p.N);
        else
            anvil_tc_stage<TB, BN, BK>(bs, B, p.b_sn, p.b_sk, at.n0, p.N, s * BK, p.K);
        if (l2) {
            anvil_expect_l2_copies(0);
            if (s == STAGES - 2)
                for (int w = STAGES - 1; w < STAGES - 1 + ahead; ++w) prefetch_b(w);
            prefetch_b(s + STAGES - 1 + ahead);
        }
    };
    float acc[BM / 32][BN / 32][4];
    // A folded norm of A's rows (a_norm.cuh): statistics beside the stages
    // before the pipeline starts (its registers are free before the
    // accumulators'; the loop's first barrier shows them to every thread),
    // each slice normalised as it lands.
    float* const stats = (float*)(anvil_block_smem() + anvil_tc_smem_bytes(BM, BN, BK, FMT, STAGES));
    if (A_NORM) anvil_a_norm_stats(p, A, at.m0, BM, stats);
    anvil_tc_gemm<BM, BN, BK, FMT, STAGES>(
        p.K, b_kmajor, stage, acc,
        [&](unsigned short* as, int s) {
            if (A_NORM) anvil_a_norm_tc_slice<TA, BM, BK>(as, stats, s * BK, p.K);
            return A_NORM;
        });

    // A fused row op (whole rows: n0 = 0, N <= BN): the pairs, after the
    // epilogue, into Cs[BM][BN + ANVIL_MM_ROW_PAD] over the stages' memory,
    // then a warp per row (matmul.cuh).
    if (p.row_op) {
        const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
        const int LDC = BN + ANVIL_MM_ROW_PAD;
        float* Cs = (float*)anvil_block_smem();
        anvil_barrier();  // every warp is done reading the last stage
        anvil_tc_pairs<BM, BN>(acc, [&](int r, int c, const float* v) {
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
    // Without an epilogue the pairs leave two at a time (one 32-bit store
    // of f16/bf16); with one, value by value after it, which takes them a
    // batch at a time (their operands' loads in flight together).
    if (!p.epilogue) {
        anvil_tc_pairs<BM, BN>(acc, [&](int r, int c, const float* v) { anvil_mm_store_pair(p, C, at.m0 + r, at.n0 + c, v); });
        return;
    }
    anvil_epilogue_each<BM * BN / ANVIL_THREADS>(
        anvil_epilogue(p.epilogue), arena,
        [&](int f, float& v, anvil_i64& e) {
            int r, c;
            anvil_tc_at<BM, BN>(f, &r, &c);
            const int m = at.m0 + r, n = at.n0 + c;
            v = anvil_tc_acc<BM, BN>(acc, f);
            e = at.cb + ((anvil_i64)m * p.c_sm + (anvil_i64)n * p.c_sn);
            return m < p.M && n < p.N;
        },
        [&](int f, float v) {
            int r, c;
            anvil_tc_at<BM, BN>(f, &r, &c);
            anvil_store(C + ((anvil_i64)(at.m0 + r) * p.c_sm + (anvil_i64)(at.n0 + c) * p.c_sn), v);
        });
#endif
}

#endif  // ANVIL_RTASKS_MATMUL_TC_CUH
