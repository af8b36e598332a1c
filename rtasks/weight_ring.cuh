// The block's GEMV weight ring as one stream across its tasks.
//
// A GEMV tile of the ring (gemv.cuh) reads its B slice in stages of
// ANVIL_GEMV_STAGE_BYTES through ANVIL_GEMV_RING_STAGES shared-memory slots,
// all but one in flight, one commit group per stage. Stage s of a task lives
// in slot (slot0 + s) % ANVIL_GEMV_RING_STAGES, where slot0 is where the
// block's stream stood when the task began: so while a task multiplies its
// last stages, the slots it frees take the first stages of the block's NEXT
// task, when that task's B is an input or param (fixed: no task writes it, so
// it may be read before any wait). The stream then never stops at a task
// boundary: the next task finds its first stages in flight, in order, as if
// its own prologue had issued them.
//
// The ring is byte-typed here (AnvilRingStream) because consecutive tasks
// are different variants (TB, BN); each variant describes its own stream
// (anvil_gemv_fixed_stream) and the emitted stream_task_<k> dispatches on it.
// megakernel.cuh carries an AnvilRing per thread from task to task.
#ifndef ANVIL_RTASKS_WEIGHT_RING_CUH
#define ANVIL_RTASKS_WEIGHT_RING_CUH

#include "gemm_stages.cuh"

#if ANVIL_HAS_CP_ASYNC && ANVIL_THREADS > 1
#define ANVIL_GEMV_RING 1
#else
#define ANVIL_GEMV_RING 0  // the host: one thread, nothing to overlap; GEMVs take the register walk
#endif

// One task's B slice as the ring copies it: k rows of 16 << row_shift bytes
// (BN * sizeof(TB)), of which valid_bytes are inside N; rows past K and bytes
// past N are zero-filled.
struct AnvilRingStream {
    const char* src;  // B at the tile's first column, k = 0 (16-byte aligned)
    anvil_i64 pitch;  // bytes from one k row of B to the next (a multiple of 16)
    int row_shift;    // log2 of a row's 16-byte chunks
    int valid_bytes;
    int K;
    int stages;  // 0: nothing to stream
};

// A thread's view of its block's stream (every thread holds the same).
struct AnvilRing {
    int slot;    // the slot of the current task's stage 0
    int issued;  // the current task's first stages are in flight (the previous task issued them)
    int handed;  // the current task's walk issued the next task's first stages
    AnvilRingStream next;  // the next task's fixed stream (stages 0: none)
};

ANVIL_DEVICE AnvilRingStream anvil_ring_none() {
    AnvilRingStream w = {0, 0, 0, 0, 0, 0};
    return w;
}

// Issues stage s of w into ring slot `slot`: one 16-byte cp.async per chunk,
// the caller commits. A thread's chunks are c = tid + i * ANVIL_THREADS, at
// the same row and byte of every stage: so the loop is unrolled and the
// stage's first row is found once. (The generic loop it replaces cost about
// 40 PTX instructions per copy, the stream's fields reloaded on each:
// docs/perf/gpu-notes-2026-11-28b.md, point 4.)
ANVIL_DEVICE void anvil_ring_issue(const AnvilRingStream& w, int s, int slot) {
#if ANVIL_GEMV_RING
    const int CHUNKS = ANVIL_GEMV_STAGE_BYTES / 16, t = anvil_thread();
    static_assert(CHUNKS % ANVIL_THREADS == 0, "weight ring: every thread issues the same number of chunks");
    const int shift = w.row_shift, rows = CHUNKS >> shift, k0 = s * rows;
    const char* first = w.src + (anvil_i64)k0 * w.pitch;  // the stage's first k row
    char* stage = anvil_block_smem() + slot * ANVIL_GEMV_STAGE_BYTES;
#if ANVIL_SIMT && ANVIL_GEMV_L2_PREFETCH_BYTES > 0
    // simt checks the L2 prefetch: the rows it covers were prefetched before the task's waits.
    int p0, p1;
    anvil_gemv_l2_rows(shift, w.valid_bytes, w.K, ANVIL_GEMV_RING_STAGES - 1, ANVIL_GEMV_L2_PREFETCH_BYTES, &p0, &p1);
#endif
#pragma unroll
    for (int i = 0; i < CHUNKS / ANVIL_THREADS; ++i) {
        const int c = t + i * ANVIL_THREADS, r = c >> shift, e = (c & ((1 << shift) - 1)) * 16;
        const int left = w.valid_bytes - e, bytes = k0 + r >= w.K || left <= 0 ? 0 : left < 16 ? left : 16;
#if ANVIL_SIMT && ANVIL_GEMV_L2_PREFETCH_BYTES > 0
        if (bytes && k0 + r >= p0 && k0 + r < p1) anvil_simt::expect_prefetched(first + (anvil_i64)r * w.pitch + e, bytes, s);
#endif
        anvil_cp_async16(stage + c * 16, bytes ? first + (anvil_i64)r * w.pitch + e : w.src, bytes);
    }
#else
    (void)w, (void)s, (void)slot;
#endif
}

// The first ANVIL_GEMV_RING_STAGES - 1 stages of w from slot `slot` on,
// one commit group each (empty past its stages, so the walk's counts hold).
ANVIL_DEVICE void anvil_ring_prologue(const AnvilRingStream& w, int slot) {
    for (int s = 0; s < ANVIL_GEMV_RING_STAGES - 1; ++s) {
        if (s < w.stages) anvil_ring_issue(w, s, (slot + s) % ANVIL_GEMV_RING_STAGES);
        anvil_stage_commit();
    }
}

// The block's threads prefetch into L2 the pieces of w from stage `from`
// on, up to `limit` bytes (anvil_gemv_l2_piece, tiling.cuh): hints, which
// complete nothing and fault on nothing.
ANVIL_DEVICE void anvil_ring_prefetch_l2(const AnvilRingStream& w, int from, int limit) {
#if ANVIL_GEMV_RING
    if (w.stages <= 0) return;
    anvil_i64 offset;
    unsigned bytes;
    for (int i = anvil_thread(); anvil_gemv_l2_piece(w.pitch, w.row_shift, w.valid_bytes, w.K, from, limit, i, &offset,
                                                     &bytes);
         i += ANVIL_THREADS)
        anvil_prefetch_l2(w.src + offset, bytes);
#else
    (void)w, (void)from, (void)limit;
#endif
}

#endif  // ANVIL_RTASKS_WEIGHT_RING_CUH
