// Facts of the tilings that anvil's host code and the device code must
// agree on, written once: where a tile lies (tile index -> coordinates),
// how much shared memory a tile of each kind and shape uses, and which
// GEMM tile shapes the device code accepts. The rtasks use them in their
// code and static_asserts; src/tile/footprint.cpp (what a tile reads and
// writes), src/schedule/variants.cpp (candidate shapes) and
// src/codegen/emit.cpp (checks before emission) include this file too, and
// emit.cpp pastes it into every emitted .cu. Plain C++17 without the
// standard library, so that NVRTC, the host backend's compiler and anvil's
// own build all read the same text.
#ifndef ANVIL_RTASKS_TILING_CUH
#define ANVIL_RTASKS_TILING_CUH

#include "params.cuh"

// Callable from device code (NVRTC, nvcc) and from host code alike.
#ifdef __CUDACC__
#define ANVIL_FACT __host__ __device__ __forceinline__
#else
#define ANVIL_FACT inline
#endif

// ---- Limits

// Threads of one block on the GPU: the rtasks are written for 256.
#define ANVIL_BLOCK_THREADS 256
// A block's shared memory is dynamic, ANVIL_SMEM_BYTES (the schedule's
// largest tile), within the GPU's budget per block (tile_smem_budget,
// src/target/occupancy.h).
// BM and BN of a shared-memory GEMM tile (matmul, conv2d) are multiples of
// the 16 x 16 thread grid, so every thread owns a whole micro-tile.
#define ANVIL_GEMM_TILE_STEP 16
// Tensor-core tiles: 8 warps as 2 x 4, each a multiple of m16n8 products,
// so BM and BN are multiples of 32; BK walks k16 steps.
#define ANVIL_TC_TILE_STEP_MN 32
#define ANVIL_TC_TILE_STEP_K 16
// Tensor-core staging: 8 halves of padding per row (ldmatrix's 8 row
// addresses land in 8 different 16-byte bank groups), three stages by
// default (two slices in flight while the warps multiply the third), four
// where the variants find room (the params' `stages`, a template argument).
#define ANVIL_TC_PAD 8
#define ANVIL_TC_STAGES 3
#define ANVIL_TC_MAX_STAGES 4
// What a tensor-core tile multiplies (its device template's FMT): f16 or
// bf16 operands as they are (m16n8k16), or f32 operands as TF32 (cvt.rna,
// one m16n8k8 per product: 10-bit mantissas) or as 3xTF32 (each operand the
// sum of a tf32 and the tf32 of its remainder, three m16n8k8: near f32).
// A k step is 32 bytes of a row either way: k16 of 16-bit values, k8 of f32.
#define ANVIL_TC_F16 0
#define ANVIL_TC_BF16 1
#define ANVIL_TC_TF32 2
#define ANVIL_TC_3XTF32 3
// CUDA-core GEMM staging (gemm_stages.cuh): four stages (three slices in
// flight during the multiply), each row of a k-major slice padded by 4
// floats (keeps 16-byte alignment; spreads the k-fast transposing copies
// over all 32 banks).
#define ANVIL_GEMM_STAGES 4
#define ANVIL_GEMM_PAD 4
// The deepest k slice a GEMM tile's variants take, but a tensor-core
// matmul's without a row op (128-byte rows: tensor_core_max_bk in
// src/schedule/variants.cpp).
#define ANVIL_GEMM_MAX_BK 32
// The host runs a tensor-core tile as the CUDA-core GEMM with this BK, so
// that its four stages fit beside any tensor-core tile's.
#define ANVIL_TC_FALLBACK_BK 8
// A GEMV tile: at most this many rows of A, all in one tile.
#define ANVIL_GEMV_MAX_M 4
// A GEMM or conv tile's epilogue takes a thread's values this many at a
// time, their operands' loads in flight together (epilogue.cuh); emitted
// otherwise by `--epilogue-batch` (1: a value per call, for comparisons).
#ifndef ANVIL_EPI_BATCH
#define ANVIL_EPI_BATCH 8
#endif
// GEMV tile width: a power of two, at least this many columns, and at most
// one group of 16-byte vector loads per thread of the block.
#define ANVIL_GEMV_MIN_BN 16
#define ANVIL_GEMV_MAX_GROUPS ANVIL_BLOCK_THREADS
#define ANVIL_VEC_BYTES 16

ANVIL_FACT constexpr bool anvil_gemm_tile_ok(int bm, int bn, int bk) {
    return bm > 0 && bm % ANVIL_GEMM_TILE_STEP == 0 && bn > 0 && bn % ANVIL_GEMM_TILE_STEP == 0 && bk > 0;
}

ANVIL_FACT constexpr int anvil_max_int(int a, int b) { return a > b ? a : b; }

// A thread's micro-tile of r rows (or columns) is read from shared memory
// in vectors of this many floats: 4 (one 128-bit load) where r allows.
ANVIL_FACT constexpr int anvil_gemm_vec(int r) { return r % 4 == 0 ? 4 : r % 2 == 0 ? 2 : 1; }

ANVIL_FACT constexpr int anvil_tc_elem_bytes(int fmt) { return fmt >= ANVIL_TC_TF32 ? 4 : 2; }

// A tensor-core tile's stage count from its params' `stages` (0: the default).
ANVIL_FACT constexpr int anvil_tc_stages(int stages) { return stages ? stages : ANVIL_TC_STAGES; }
ANVIL_FACT constexpr bool anvil_tc_stages_ok(int stages) { return stages >= 2 && stages <= ANVIL_TC_MAX_STAGES; }

// A tensor-core tile runs as the shared-memory GEMM where there are no
// tensor cores (the host backend), so it must also be a valid GEMM tile.
// BK counts elements: whole k steps of 32 bytes. A warp holds at most 16
// m16n8 products (64 accumulators: 128 x 128, or 64 x 256 for a whole-row
// tile). A 3xTF32 warp holds its operands twice (big and small) beside its
// accumulators: at most 8 m16n8 products (64 x 16 of C), or a 128 x 128
// tile passes 128 registers and spills.
ANVIL_FACT constexpr bool anvil_tc_tile_ok(int bm, int bn, int bk, int fmt = ANVIL_TC_F16) {
    return anvil_gemm_tile_ok(bm, bn, bk) && bm % ANVIL_TC_TILE_STEP_MN == 0 && bn % ANVIL_TC_TILE_STEP_MN == 0 &&
           bk * anvil_tc_elem_bytes(fmt) % (ANVIL_TC_TILE_STEP_K * 2) == 0 && (bm / 32) * (bn / 32) <= 16 &&
           (fmt != ANVIL_TC_3XTF32 || (bm / 32) * (bn / 32) <= 8);
}

// A matmul tile that applies a row op (softmax, layernorm, rmsnorm) holds
// whole rows: BN >= N, at most ANVIL_MM_ROW_MAX_BN (ViT's 197 keys fit; a
// warp's row is then at most 8 column pairs a lane). Its width: N rounded
// up to the tile step of its kind (16 CUDA cores, 32 tensor cores).
#define ANVIL_MM_ROW_MAX_BN 256
ANVIL_FACT constexpr int anvil_mm_row_bn(anvil_i64 n, int step) { return (int)((n + step - 1) / step * step); }

// `b_elem_bytes`: bytes of one element of B, which the tile streams in
// 16-byte vectors.
ANVIL_FACT constexpr bool anvil_gemv_tile_ok(int bn, int b_elem_bytes) {
    return bn >= ANVIL_GEMV_MIN_BN && (bn & (bn - 1)) == 0 && bn / (ANVIL_VEC_BYTES / b_elem_bytes) <= ANVIL_GEMV_MAX_GROUPS;
}

// ---- Shared memory of one tile, in bytes

// Matmul (matmul.cuh, gemm_stages.cuh): ANVIL_GEMM_STAGES BK-deep slices
// of A and B as f32, both k-major (As[k][m], Bs[k][n]) with rows padded by
// ANVIL_GEMM_PAD floats.
ANVIL_FACT constexpr int anvil_mm_smem_bytes(int bm, int bn, int bk) {
    return ANVIL_GEMM_STAGES * bk * (bm + ANVIL_GEMM_PAD + bn + ANVIL_GEMM_PAD) * 4;
}

// Matmul with a fused row op: the finished BM x BN tile as f32, each row
// padded by ANVIL_MM_ROW_PAD floats (rows stay 16-byte aligned; a warp
// reads one row). It reuses the stages' memory after the K loop.
#define ANVIL_MM_ROW_PAD 4
ANVIL_FACT constexpr int anvil_mm_row_smem_bytes(int bm, int bn) { return bm * (bn + ANVIL_MM_ROW_PAD) * 4; }

// Tensor-core matmul (matmul_tc.cuh): per stage, A as [BM][BK + pad] and B
// either as [BK][BN + pad] (B's n contiguous, read with ldmatrix.trans) or
// as [BN][BK + pad] (B's k contiguous), in 16-bit units (halves): room for
// the larger. An f32 slice of bk elements is 2 bk halves deep (`fmt`).
ANVIL_FACT constexpr int anvil_tc_b_stage_halves(int bn, int bk) {
    return bk * (bn + ANVIL_TC_PAD) > bn * (bk + ANVIL_TC_PAD) ? bk * (bn + ANVIL_TC_PAD) : bn * (bk + ANVIL_TC_PAD);
}
ANVIL_FACT constexpr int anvil_tc_stage_halves(int bm, int bn, int bk) {
    return bm * (bk + ANVIL_TC_PAD) + anvil_tc_b_stage_halves(bn, bk);
}
ANVIL_FACT constexpr int anvil_tc_smem_bytes(int bm, int bn, int bk, int fmt = ANVIL_TC_F16,
                                             int stages = ANVIL_TC_STAGES) {
    return stages * anvil_tc_stage_halves(bm, bn, bk * anvil_tc_elem_bytes(fmt) / 2) * 2;
}

// GEMV (gemv.cuh): the weight ring, ANVIL_GEMV_RING_STAGES stages of
// ANVIL_GEMV_STAGE_BYTES (all but one in flight: 24 KB per block, 48 KB per
// SM at two blocks), then one region that holds first the ring walk's
// staged x (`x_bytes`: room for M rows of K in A's type, each padded to 16
// bytes; 0 where nothing is staged) and then the walks' partial sums, one
// float per thread and vector element (8: the most elements a 16-byte vector
// holds), then a row's 1/RMS per row of A. The schedule sizes x's room: its
// largest x whose tile fits the GPU's budget (src/tile/footprint.cpp,
// gemv_staged_x_bytes), which emit.cpp defines as ANVIL_GEMV_X_BYTES; a
// larger x is read from global memory. The ring's depth is the program's
// (`--gemv-ring-stages`, emitted as ANVIL_GEMV_RING_STAGES): one ring runs
// on across a block's tasks, so every GEMV of a program shares it.
#ifndef ANVIL_GEMV_RING_STAGES
#define ANVIL_GEMV_RING_STAGES 4
#endif
#define ANVIL_GEMV_STAGE_BYTES 8192
#define ANVIL_GEMV_MAX_RING_STAGES 12
ANVIL_FACT constexpr int anvil_gemv_ring_bytes(int stages = ANVIL_GEMV_RING_STAGES) {
    return stages * ANVIL_GEMV_STAGE_BYTES;
}
ANVIL_FACT constexpr int anvil_gemv_region_bytes(int threads, int x_bytes) {
    return threads * 8 * 4 > x_bytes ? threads * 8 * 4 : x_bytes;
}
ANVIL_FACT constexpr int anvil_gemv_smem_bytes(int threads, int x_bytes, int ring_stages = ANVIL_GEMV_RING_STAGES) {
    return anvil_gemv_ring_bytes(ring_stages) + anvil_gemv_region_bytes(threads, x_bytes) + ANVIL_GEMV_MAX_M * 4;
}
// The L2 prefetches' unit: `valid` bytes of a row rounded up to 16 (the
// bulk prefetch's granule).
ANVIL_FACT int anvil_l2_piece_bytes(int valid) { return (valid + 15) / 16 * 16; }
// Piece i of a region of `rows` rows `pitch` bytes apart, the first at byte
// `first`, `valid` bytes of each wanted: row i's valid bytes as one unit
// (both prefetches below). False past the last row; else *offset (bytes
// from the operand's start) and *bytes.
ANVIL_FACT bool anvil_l2_row_piece(anvil_i64 first, anvil_i64 pitch, int rows, int valid, int i, anvil_i64* offset,
                                   unsigned* bytes) {
    if (i < 0 || i >= rows || valid <= 0) return false;
    *offset = first + (anvil_i64)i * pitch;
    *bytes = (unsigned)anvil_l2_piece_bytes(valid);
    return true;
}

// The L2 prefetch of a GEMV task's fixed weights (`--gemv-l2-prefetch`,
// emitted as ANVIL_GEMV_L2_PREFETCH_BYTES; 0: off; weight_ring.cuh). The ring
// keeps only its first stages in flight while the task waits for its inputs;
// weights depend on nothing, so the rest may stream from DRAM into L2 during
// the wait, and the walk's later stages then hit L2. A stream of K rows of
// 16 << row_shift bytes, `pitch` apart, `valid` bytes of each inside N, is
// prefetched from stage `from` on, up to `limit` bytes, as pieces a thread
// each: piece i is a row's valid bytes rounded up to 16 (the pitch is a
// multiple of 16, so the rounding stays inside the row), or, where the rows
// are one run of memory (blocked weights, a tile as wide as N), up to
// ANVIL_GEMV_L2_PIECE_BYTES of the run. False past the last piece; else
// *offset (bytes from the stream's start) and *bytes, a multiple of 16.
#ifndef ANVIL_GEMV_L2_PREFETCH_BYTES
#define ANVIL_GEMV_L2_PREFETCH_BYTES 0
#endif
#define ANVIL_GEMV_L2_PIECE_BYTES 4096
// The rows the prefetch covers: from stage `from`'s first row, *k0, to *k1
// (past the last), as many as `limit` holds.
ANVIL_FACT void anvil_gemv_l2_rows(int row_shift, int valid, int K, int from, int limit, int* k0, int* k1) {
    const int piece = anvil_l2_piece_bytes(valid);
    *k0 = from * ((ANVIL_GEMV_STAGE_BYTES / 16) >> row_shift);
    *k1 = piece <= 0 || *k0 >= K ? *k0 : K - *k0 < limit / piece ? K : *k0 + limit / piece;
}
ANVIL_FACT bool anvil_gemv_l2_piece(anvil_i64 pitch, int row_shift, int valid, int K, int from, int limit, int i,
                                    anvil_i64* offset, unsigned* bytes) {
    const int row_bytes = 16 << row_shift, piece = anvil_l2_piece_bytes(valid);
    int k0, k1;
    anvil_gemv_l2_rows(row_shift, valid, K, from, limit, &k0, &k1);
    if (k1 <= k0 || i < 0) return false;
    const int rows = k1 - k0;
    if (pitch == row_bytes && piece == row_bytes) {  // one run of rows * row_bytes
        const anvil_i64 run = (anvil_i64)rows * row_bytes, o = (anvil_i64)i * ANVIL_GEMV_L2_PIECE_BYTES;
        if (o >= run) return false;
        *offset = k0 * pitch + o;
        *bytes = (unsigned)(run - o < ANVIL_GEMV_L2_PIECE_BYTES ? run - o : ANVIL_GEMV_L2_PIECE_BYTES);
        return true;
    }
    return anvil_l2_row_piece(k0 * pitch, pitch, rows, valid, i, offset, bytes);
}
// A tensor-core matmul tile's fixed B, into L2 ahead of its stages
// (--gemm-l2-prefetch, matmul_tc.cuh): with ANVIL_GEMM_L2_PREFETCH a tile
// whose B no task writes prefetches each slice of B about
// ANVIL_GEMM_L2_AHEAD_BYTES before its stage copies it, so that the K
// loop's copies wait on L2 rather than DRAM.
#ifndef ANVIL_GEMM_L2_PREFETCH
#define ANVIL_GEMM_L2_PREFETCH 0
#endif
#define ANVIL_GEMM_L2_AHEAD_BYTES 32768
// Slices ahead: as many slices of `slice_bytes` as the distance holds, at least one.
ANVIL_FACT constexpr int anvil_mm_l2_ahead(int slice_bytes) {
    return slice_bytes >= ANVIL_GEMM_L2_AHEAD_BYTES ? 1 : ANVIL_GEMM_L2_AHEAD_BYTES / slice_bytes;
}
// Piece i of B's slice k0 .. k0 + bk - 1 in a tile's columns n0 .. n0 + bn - 1
// (B is K x N, `elem` bytes an element, `pitch` bytes from one row in
// memory to the next): one row of it in memory. With n contiguous
// (n_fast), row k0 + i, its columns' bytes; else row n0 + i, its k's bytes;
// in both, the valid bytes rounded up to 16 (the bulk prefetch's unit).
// False past the last row; else *offset (bytes from B's element (0, 0)) and *bytes.
ANVIL_FACT bool anvil_mm_l2_piece(bool n_fast, anvil_i64 pitch, int k0, int bk, int K, int n0, int bn, int N, int elem,
                                  int i, anvil_i64* offset, unsigned* bytes) {
    const int k_left = K - k0 < bk ? K - k0 : bk, n_left = N - n0 < bn ? N - n0 : bn;
    const int rows = n_fast ? k_left : n_left, cols = n_fast ? n_left : k_left;
    const anvil_i64 first = n_fast ? k0 * pitch + (anvil_i64)n0 * elem : n0 * pitch + (anvil_i64)k0 * elem;
    return anvil_l2_row_piece(first, pitch, rows, cols * elem, i, offset, bytes);
}

// Bytes of one staged row of x: K elements of `elem` bytes, padded to 16.
ANVIL_FACT constexpr anvil_i64 anvil_gemv_x_row_bytes(anvil_i64 k, int elem) { return (k * elem + 15) / 16 * 16; }
// Bytes of the staged x of m rows of k.
ANVIL_FACT constexpr anvil_i64 anvil_gemv_x_bytes(int m, anvil_i64 k, int elem) {
    return m * anvil_gemv_x_row_bytes(k, elem);
}

// How many k-steps of one column a thread reads per shared load from a B
// slice staged n-major (anvil_gemm_slice_bt): 4, a 128-bit load, where the
// slice's depth allows.
ANVIL_FACT constexpr int anvil_gemm_bt_vec(int bk) { return bk % 4 == 0 ? 4 : bk % 2 == 0 ? 2 : 1; }

// conv2d (conv2d.cuh): per stage the A slice as matmul's, As[BK][BM + pad],
// and the B slice n-major, Bt[BN][BK + pad] (w's k is contiguous), then the
// gather tables: per stage and k of its slice one 16-byte entry, the k's
// offset in x and its kernel-cell row and column offsets (a pixel's are in
// registers). The tensor-core tile's fallback is this tile.
// The 8 x 8 micro-tile (128 x 128 on the GPU's 16 x 16 threads) keeps B
// k-major, Bs[BK][BN + pad], as matmul's: its 64 accumulators leave no
// registers for B's 4 k-steps a load (n-major it spills; k-major its two
// 128-bit loads a k are as few).
ANVIL_FACT constexpr bool anvil_conv_b_nmajor(int bm, int bn) { return (bm / 16) * (bn / 16) < 64; }
ANVIL_FACT constexpr int anvil_conv_stage_floats(int bm, int bn, int bk) {
    return bk * (bm + ANVIL_GEMM_PAD) + (anvil_conv_b_nmajor(bm, bn) ? bn * (bk + ANVIL_GEMM_PAD) : bk * (bn + ANVIL_GEMM_PAD));
}
// k groups: a tile whose 16 x 16 micro-tiles would be small (64 x 32: 4 x
// 2) splits each slice's k over g groups of 256 / g threads instead; each
// group multiplies the whole tile over BK / g of the slice's k with a
// micro-tile g times larger (at most 4 x 4: two 128-bit loads a k for 16
// FMAs), and the g partial tiles are summed through shared memory at the
// tile's end. A group's grid has bm / 4 threads along M (a 128-bit load of
// A a k) and the rest along N; its k are whole 128-bit loads of Bt.
ANVIL_FACT constexpr int anvil_conv_group_tx(int bm, int bn, int g) {
    return bm % 4 == 0 && (ANVIL_BLOCK_THREADS / g) % (bm / 4) == 0 && bn % (ANVIL_BLOCK_THREADS / g / (bm / 4)) == 0
               ? bm / 4
               : 0;
}
ANVIL_FACT constexpr bool anvil_conv_groups_ok(int bm, int bn, int bk, int g) {
    return g == 1 || (bk % (4 * g) == 0 && bm * bn * g <= 16 * ANVIL_BLOCK_THREADS && anvil_conv_group_tx(bm, bn, g) > 0);
}
ANVIL_FACT constexpr int anvil_conv_k_groups(int bm, int bn, int bk) {
    return anvil_conv_groups_ok(bm, bn, bk, 4) ? 4 : anvil_conv_groups_ok(bm, bn, bk, 2) ? 2 : 1;
}
// The stages and their tables; the g partial tiles reuse the stages'
// memory after the K loop.
ANVIL_FACT constexpr int anvil_conv_smem_bytes(int bm, int bn, int bk) {
    return anvil_max_int(ANVIL_GEMM_STAGES * (anvil_conv_stage_floats(bm, bn, bk) + 4 * bk) * 4,
                         anvil_conv_k_groups(bm, bn, bk) > 1 ? anvil_conv_k_groups(bm, bn, bk) * bm * bn * 4 : 0);
}

// conv2d on tensor cores (conv2d_tc.cuh): the GEMM transposed, w's BN
// channels as A and the gathered BM pixels as B (k-major, or for f32
// pixel-major), then the gather tables as conv2d's, one per tensor-core
// stage. An f32 slice of bk elements is 2 bk halves deep (`fmt`).
ANVIL_FACT constexpr int anvil_conv_tc_smem_bytes(int bm, int bn, int bk, int fmt = ANVIL_TC_F16,
                                                  int stages = ANVIL_TC_STAGES) {
    return stages * anvil_tc_stage_halves(bn, bm, bk * anvil_tc_elem_bytes(fmt) / 2) * 2 + 3 * stages * bk * 4;
}

// A tensor-core conv2d tile: a tensor-core tile whose gather gives every
// thread one fixed pixel (the block's threads a whole number of BM rows).
ANVIL_FACT constexpr bool anvil_conv_tc_tile_ok(int bm, int bn, int bk, int fmt = ANVIL_TC_F16) {
    return anvil_tc_tile_ok(bm, bn, bk, fmt) && ANVIL_BLOCK_THREADS % bm == 0;
}

// The other kinds use only the few words of the block reductions.
#define ANVIL_SMALL_TILE_SMEM_BYTES 64


// One matmul tile on the GPU, whichever way it computes (AnvilMmAlgo). A
// tensor-core tile also holds the tiled GEMM's slices: the host backend
// runs it as that.
// The format of a matmul algo on tensor cores (f16 for the 16-bit ones:
// f16 and bf16 take the same room).
ANVIL_FACT constexpr int anvil_mm_tc_format(int algo) {
    return algo == ANVIL_MM_TENSOR_TF32 ? ANVIL_TC_TF32 : algo == ANVIL_MM_TENSOR_3XTF32 ? ANVIL_TC_3XTF32 : ANVIL_TC_F16;
}
ANVIL_FACT constexpr bool anvil_mm_on_tensor_cores(int algo) {
    return algo == ANVIL_MM_TENSOR || algo == ANVIL_MM_TENSOR_TF32 || algo == ANVIL_MM_TENSOR_3XTF32 ||
           algo == ANVIL_MM_WGMMA;
}

// Hopper wgmma tiles (matmul_wgmma.cuh): BM 128 (two warpgroups of 64
// rows), BN 64 or 128 (the instruction's N), BK a multiple of 16 up to 64,
// 3 or 4 stages of (BM + BN) x BK halves; without wgmma the variant runs
// the mma.sync tile with BK = ANVIL_WGMMA_FALLBACK_BK in 3 stages.
#define ANVIL_WGMMA_FALLBACK_BK 16  // the widest mma.sync tiles spill one step deeper (variants.cpp)
#define ANVIL_WGMMA_BM 128
ANVIL_FACT constexpr bool anvil_wgmma_tile_ok(int bm, int bn, int bk) {
    return bm == ANVIL_WGMMA_BM && (bn == 64 || bn == 128) && bk >= 16 && bk <= 64 && bk % 16 == 0;
}
ANVIL_FACT constexpr bool anvil_wgmma_stages_ok(int stages) { return stages >= 3 && stages <= ANVIL_TC_MAX_STAGES; }
// At this BK a slice's row of A is 128 bytes, so where the arena holds a
// tensor map of A (src/tile/tensor_maps.h) the TMA engine copies it, one
// 128 x 64 box per slice, 128-byte swizzled: the stages then start
// 1024-byte aligned (up to 1024 bytes of padding) and one 8-byte mbarrier
// per stage follows them.
#define ANVIL_WGMMA_TMA_BK 64
ANVIL_FACT constexpr int anvil_wgmma_smem_bytes(int bm, int bn, int bk, int stages) {
    return (bm + bn) * bk * 2 * stages + (bk == ANVIL_WGMMA_TMA_BK ? 1024 + 8 * stages : 0);
}
// Its own stages, or its fallbacks' (the device below sm_90a, the host).
ANVIL_FACT constexpr int anvil_wgmma_tile_smem_bytes(int bm, int bn, int bk, int stages) {
    return anvil_max_int(anvil_wgmma_smem_bytes(bm, bn, bk, stages),
                         anvil_max_int(anvil_tc_smem_bytes(bm, bn, ANVIL_WGMMA_FALLBACK_BK),
                                       anvil_mm_smem_bytes(bm, bn, ANVIL_TC_FALLBACK_BK)));
}

// The statistics pass of a norm of A's rows (a_norm.cuh): where A's rows
// are k contiguous and 16-byte aligned a warp reads ANVIL_A_NORM_ROWS rows
// at once in chunks of 32 lanes x ANVIL_A_NORM_VECS 16-byte loads;
// otherwise a row at a time in chunks of 32 x ANVIL_A_NORM_UNROLL elements.
#define ANVIL_A_NORM_VECS 4
#define ANVIL_A_NORM_ROWS 2
#define ANVIL_A_NORM_UNROLL 8

// A norm of A's rows computed in the tile (a_norm.cuh): each row's mean and
// 1/std as f32, after the tile's stages (anvil_mm_smem_bytes or
// anvil_tc_smem_bytes of its shape).
ANVIL_FACT constexpr int anvil_a_norm_stats_bytes(int a_norm, int bm) { return a_norm ? 2 * bm * 4 : 0; }

// A GEMV's tile also holds its staged x (`gemv_x_bytes`), and `stages` is
// its ring's depth, which the caller knows (gemv_ring_stages of its Gpu,
// footprint.cpp); a tensor-core tile has `stages` stages (the params'
// field: 0, the default).
ANVIL_FACT constexpr int anvil_matmul_tile_smem_bytes(int algo, int row_op, int bm, int bn, int bk, int a_norm = 0,
                                                      int gemv_x_bytes = 0, int stages = 0) {
    return anvil_a_norm_stats_bytes(a_norm, bm) +
           (algo == ANVIL_MM_GEMV ? anvil_gemv_smem_bytes(ANVIL_BLOCK_THREADS, gemv_x_bytes, stages)
                                  : anvil_max_int(row_op != ANVIL_MM_ROW_NONE ? anvil_mm_row_smem_bytes(bm, bn) : 0,
                                                  algo == ANVIL_MM_WGMMA
                                                      ? anvil_wgmma_tile_smem_bytes(bm, bn, bk, anvil_tc_stages(stages))
                                                  : anvil_mm_on_tensor_cores(algo)
                                                      ? anvil_max_int(anvil_mm_smem_bytes(bm, bn, ANVIL_TC_FALLBACK_BK),
                                                                      anvil_tc_smem_bytes(bm, bn, bk, anvil_mm_tc_format(algo), anvil_tc_stages(stages)))
                                                      : anvil_mm_smem_bytes(bm, bn, bk)));
}

// One conv2d tile on the GPU (algo: AnvilMmAlgo, tiled or on tensor
// cores). A tensor-core tile also holds the CUDA-core tile's slices: the
// host backend runs it as that.
ANVIL_FACT constexpr int anvil_conv_tile_smem_bytes(int algo, int bm, int bn, int bk, int stages = 0) {
    return anvil_mm_on_tensor_cores(algo)
               ? anvil_max_int(anvil_conv_smem_bytes(bm, bn, ANVIL_TC_FALLBACK_BK),
                               anvil_conv_tc_smem_bytes(bm, bn, bk, anvil_mm_tc_format(algo), anvil_tc_stages(stages)))
               : anvil_conv_smem_bytes(bm, bn, bk);
}

// ---- Where a tile lies

// Kinds tiled along one run of items (elements, rows, ids): tile t covers
// items [t * per_tile, min(total, (t + 1) * per_tile)).
struct AnvilSpan {
    anvil_i64 begin, end;
};
ANVIL_FACT AnvilSpan anvil_tile_span(int tile, anvil_i64 per_tile, anvil_i64 total) {
    const anvil_i64 begin = (anvil_i64)tile * per_tile;
    const AnvilSpan s = {begin, begin + per_tile < total ? begin + per_tile : total};
    return s;
}

// An elementwise copy between views of one storage type moves whole
// 16-byte vectors when the output and the operand are contiguous along the
// innermost axis with a whole number of vectors in it, every other stride,
// both byte offsets and the tile size are vector multiples (a head
// transpose [S, H, D] -> [H, S, D] with D % 8 == 0 in f16). Returns the
// elements per vector, 1 where the element loop must run. The caller also
// requires no epilogue (the params' `epilogue` is set only at emission).
ANVIL_FACT int anvil_ew_copy_vec(const EwParams& p, int out_bytes, int in_bytes) {
    if (p.op != ANVIL_EW_COPY || p.ninputs != 1 || p.rank < 1 || out_bytes != in_bytes) return 1;
    const int v = ANVIL_VEC_BYTES / out_bytes, r = p.rank - 1;
    if (p.shape[r] % v != 0 || p.out_stride[r] != 1 || p.in_stride[0][r] != 1 || p.tile_elems % v != 0) return 1;
    if (p.out_off % ANVIL_VEC_BYTES != 0 || p.in_off[0] % ANVIL_VEC_BYTES != 0) return 1;
    if (p.numel / v > 0x7fffffff) return 1;  // the vector walk divides in 32 bits
    for (int d = 0; d < r; ++d)
        if (p.out_stride[d] % v != 0 || p.in_stride[0][d] % v != 0) return 1;
    return v;
}

// Matmul: tile = batch * tiles_m * tiles_n + tm * tiles_n + tn, a bm x bn
// block of C from row m0 and column n0, plus its batch's element offsets in
// A, B and C (stride 0 broadcasts an operand). The block ends at M and N.
struct AnvilMmPlace {
    int m0, n0;
    anvil_i64 ab, bb, cb;
};
ANVIL_FACT AnvilMmPlace anvil_mm_place(const MatmulParams& p, int tile, int bm, int bn) {
    const int per_batch = p.tiles_m * p.tiles_n;
    anvil_i64 batch = tile / per_batch;
    const int rest = tile % per_batch;
    AnvilMmPlace at = {(rest / p.tiles_n) * bm, (rest % p.tiles_n) * bn, 0, 0, 0};
    for (int d = p.batch_rank - 1; d >= 0; --d) {
        const anvil_i64 idx = batch % p.batch_shape[d];
        batch /= p.batch_shape[d];
        at.ab += idx * p.a_sb[d];
        at.bb += idx * p.b_sb[d];
        at.cb += idx * p.c_sb[d];
    }
    return at;
}

// conv2d (implicit GEMM): tile = (((ks * N + n) * groups + g) * tiles_m +
// tm) * tiles_n + tn, image n, group g, pixels from m0 and the group's
// output channels from o0 (a bm x bn block of the group's GEMM, ending at
// OH * OW and Og), k in [k0, k1) of the group's K = Cg * KH * KW: all of it,
// or K slice ks of a split-K partials rOp (params.cuh).
struct AnvilConvPlace {
    int n, g, m0, o0, ks, k0, k1;
};
ANVIL_FACT int anvil_conv_k(const WindowParams& p) { return p.Cg * p.KH * p.KW; }
ANVIL_FACT int anvil_conv_k_splits(const WindowParams& p) { return p.k_split > 1 ? p.k_split : 1; }
// The k a tile sums: a slice's (the last may be shorter) or the whole K.
ANVIL_FACT int anvil_conv_k_len(const WindowParams& p) { return p.k_split > 1 ? p.k_slice : anvil_conv_k(p); }
ANVIL_FACT AnvilConvPlace anvil_conv_place(const WindowParams& p, int tile, int bm, int bn) {
    const int tn = tile % p.tiles_n;
    const int tm = (tile / p.tiles_n) % p.tiles_m;
    const int sng = tile / (p.tiles_n * p.tiles_m), images = p.N * p.groups;
    const int ks = sng / images, ng = sng % images, K = anvil_conv_k(p), k0 = ks * anvil_conv_k_len(p);
    const AnvilConvPlace at = {ng / p.groups, ng % p.groups, tm * bm, tn * bn, ks, k0,
                               K < k0 + anvil_conv_k_len(p) ? K : k0 + anvil_conv_k_len(p)};
    return at;
}

// Whether a conv2d's GEMM operand x is x as stored, [K][M] with m
// contiguous, its planes whole vectors of v elements: a pointwise conv
// (1 x 1, stride 1, no padding: pixel m of y is pixel m of x) whose planes
// are multiples of v pixels. Where x is also 16-byte aligned,
// conv2d_tc.cuh copies a 16-bit x 8 pixels to a 16-byte cp.async.
ANVIL_FACT bool anvil_conv_x_planes(const WindowParams& p, int v) {
    return p.KH == 1 && p.KW == 1 && p.sh == 1 && p.sw == 1 && p.pt == 0 && p.pl == 0 && p.OH == p.H &&
           p.OW == p.W && (p.H * p.W) % v == 0;
}

// The direct window: element e of y [N, O, OH, OW] as (n, o, oh, ow); its
// tiles are spans of `tile_elems` elements.
struct AnvilWindowCell {
    anvil_i64 n;
    int o, oh, ow;
};
ANVIL_FACT AnvilWindowCell anvil_window_cell(const WindowParams& p, anvil_i64 e) {
    const anvil_i64 no = e / ((anvil_i64)p.OW * p.OH);  // n * O + o
    const AnvilWindowCell c = {no / p.O, (int)(no % p.O), (int)(e / p.OW % p.OH), (int)(e % p.OW)};
    return c;
}

#endif  // ANVIL_RTASKS_TILING_CUH
