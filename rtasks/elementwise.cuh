// Elementwise rTasks: one tile is `tile_elems` consecutive elements of the
// iteration shape; the block's threads take them in a strided loop, so
// consecutive threads touch consecutive elements (coalesced when the
// output is contiguous). A fused chain of elementwise nodes is the first
// node's op followed by the others as an epilogue.
//
// The walk's shape and strides are copied into registers once per tile:
// read from the params table inside the loop, they would be reloaded after
// every store to the arena (the compiler cannot tell the two apart), each
// element waiting on the previous one's store. Where the iteration shape
// has under 2^31 elements the multi-index is taken apart with 32-bit
// divisions (a 64-bit one is a long subroutine on the GPU).
#ifndef ANVIL_RTASKS_ELEMENTWISE_CUH
#define ANVIL_RTASKS_ELEMENTWISE_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

// The iteration shape and up to three views' strides, in registers (every
// index below is a constant once the loops are unrolled).
template <int NV>
struct AnvilEwWalk {
    int rank;
    anvil_i64 shape[ANVIL_MAX_RANK];
    anvil_i64 stride[NV][ANVIL_MAX_RANK];
};

// Offsets of item i (row-major over w's shape) in every view of w.
template <int NV>
ANVIL_DEVICE void anvil_ew_offsets(const AnvilEwWalk<NV>& w, anvil_i64 i, bool narrow, anvil_i64* off) {
    for (int v = 0; v < NV; ++v) off[v] = 0;
#pragma unroll
    for (int d = ANVIL_MAX_RANK - 1; d >= 0; --d) {
        if (d >= w.rank) continue;
        anvil_i64 idx;
        if (narrow) {
            const unsigned u = (unsigned)i, n = (unsigned)w.shape[d];
            idx = u % n;
            i = u / n;
        } else {
            idx = i % w.shape[d];
            i /= w.shape[d];
        }
#pragma unroll
        for (int v = 0; v < NV; ++v) off[v] += idx * w.stride[v][d];
    }
}

// The vector copy (anvil_ew_copy_vec): the walk over vectors, the
// innermost axis counted in vectors. Only between equal types.
template <class TO, class TA>
ANVIL_DEVICE bool anvil_ew_copy_vectors(const EwParams&, AnvilSpan, TO*, const TA*) {
    return false;
}
template <class T>
ANVIL_DEVICE bool anvil_ew_copy_vectors(const EwParams& p, AnvilSpan span, T* out, const T* a) {
    const int V = anvil_ew_copy_vec(p, (int)sizeof(T), (int)sizeof(T));
    if (V == 1 || p.epilogue || !anvil_aligned16(out) || !anvil_aligned16(a)) return false;
    AnvilEwWalk<2> w;
    w.rank = p.rank;
#pragma unroll
    for (int d = 0; d < ANVIL_MAX_RANK; ++d) {
        if (d >= w.rank) continue;
        const bool inner = d == w.rank - 1;
        w.shape[d] = inner ? p.shape[d] / V : p.shape[d];
        w.stride[0][d] = inner ? 1 : p.out_stride[d] / V;
        w.stride[1][d] = inner ? 1 : p.in_stride[0][d] / V;
    }
    const anvil_i64 begin = span.begin / V, end = span.end / V;
    for (anvil_i64 i = begin + anvil_thread(); i < end; i += ANVIL_THREADS) {
        anvil_i64 off[2];
        anvil_ew_offsets(w, i, true, off);
        anvil_store16(out + off[0] * V, anvil_load16(a + off[1] * V));
    }
    return true;
}

template <class TO, class TA, class TB>
ANVIL_TASK void anvil_ew_tile(const EwParams& p, int tile, char* arena) {
    static_assert(anvil_storage<TO>::ok, "anvil_ew_tile: TO must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TA>::ok, "anvil_ew_tile: TA must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TB>::ok, "anvil_ew_tile: TB must be a storage type (float, int, anvil_f16, anvil_bf16)");
    TO* out = anvil_at<TO>(arena, p.out_off);
    const TA* a = anvil_at<const TA>(arena, p.in_off[0]);
    const TB* b = anvil_at<const TB>(arena, p.in_off[1]);
    const AnvilSpan span = anvil_tile_span(tile, p.tile_elems, p.numel);
    if (anvil_ew_copy_vectors(p, span, out, a)) return;

    AnvilEwWalk<3> w;
    w.rank = p.rank;
#pragma unroll
    for (int d = 0; d < ANVIL_MAX_RANK; ++d) {
        if (d >= w.rank) continue;
        w.shape[d] = p.shape[d];
        w.stride[0][d] = p.out_stride[d];
        w.stride[1][d] = p.in_stride[0][d];
        w.stride[2][d] = p.in_stride[1][d];
    }
    const int op = p.op, ninputs = p.ninputs, epilogue = p.epilogue;
    const float scalar = p.scalar;
    const bool narrow = p.numel <= 0x7fffffff;
    const anvil_i64 begin = span.begin, end = span.end;
    for (anvil_i64 i = begin + anvil_thread(); i < end; i += ANVIL_THREADS) {
        anvil_i64 off[3];
        anvil_ew_offsets(w, i, narrow, off);
        if (op == ANVIL_EW_COPY && !epilogue) {
            anvil_copy(out + off[0], a + off[1]);
            continue;
        }
        const float x = ninputs >= 1 ? anvil_load(a + off[1]) : 0.0f;
        const float y = ninputs >= 2 ? anvil_load(b + off[2]) : scalar;
        float v = anvil_ew_apply(op, x, y, scalar);
        if (epilogue) v = anvil_epilogue_apply(anvil_epilogue(epilogue), v, off[0], arena);
        anvil_store(out + off[0], v);
    }
}

#endif  // ANVIL_RTASKS_ELEMENTWISE_CUH
