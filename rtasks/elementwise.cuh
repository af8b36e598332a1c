// Elementwise rTasks: one tile is `tile_elems` consecutive elements of the
// iteration shape; the block's threads take them in a strided loop, so
// consecutive threads touch consecutive elements (coalesced when the
// output is contiguous). A fused chain of elementwise nodes is the first
// node's op followed by the others as an epilogue.
//
// The walk's shape and strides are copied into registers once per tile:
// read from the params table inside the loop, they would be reloaded after
// every store to the arena (the compiler cannot tell the two apart), each
// element waiting on the previous one's store. They are 32-bit, and so is
// the multi-index's division (a 64-bit one is a long subroutine on the
// GPU), wherever the walk's items and offsets stay under 2^31.
#ifndef ANVIL_RTASKS_ELEMENTWISE_CUH
#define ANVIL_RTASKS_ELEMENTWISE_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

// The iteration shape and up to three views' strides, in 32-bit registers
// (every index below is a constant once the loops are unrolled).
template <int NV>
struct AnvilEwWalk {
    int rank;
    unsigned shape[ANVIL_MAX_RANK];
    int stride[NV][ANVIL_MAX_RANK];
};

// w from p's shape and `views` (stride arrays of p), the innermost axis
// counted in vectors of v elements (v > 1: it is contiguous in every view).
// False where an item index or an offset could pass 2^31: the caller then
// walks in 64 bits.
template <int NV>
ANVIL_DEVICE bool anvil_ew_walk(AnvilEwWalk<NV>& w, const EwParams& p, const anvil_i64* const* views, int v) {
    const anvil_i64 limit = 0x7fffffff;
    if (p.numel > limit) return false;
    // A view's offsets reach at most sum (n - 1) * |stride|. Summed in a
    // plain loop: unrolled, the 64-bit sums would hold some 45 registers
    // that every instance of the tile then reserves.
#pragma unroll 1
    for (int k = 0; k < NV; ++k) {
        anvil_i64 reach = 0;
#pragma unroll 1
        for (int d = 0; d < p.rank; ++d) reach += (p.shape[d] - 1) * (views[k][d] < 0 ? -views[k][d] : views[k][d]);
        if (reach > limit) return false;
    }
    w.rank = p.rank;
#pragma unroll
    for (int d = 0; d < ANVIL_MAX_RANK; ++d) {
        const bool in_rank = d < w.rank, inner = d == w.rank - 1;
        w.shape[d] = !in_rank ? 1u : inner ? (unsigned)p.shape[d] / (unsigned)v : (unsigned)p.shape[d];
#pragma unroll
        for (int k = 0; k < NV; ++k) w.stride[k][d] = !in_rank ? 0 : (inner && v > 1) ? 1 : (int)views[k][d] / v;
    }
    return true;
}

// Offsets of item i (row-major over w's shape) in every view of w.
template <int NV>
ANVIL_DEVICE void anvil_ew_offsets(const AnvilEwWalk<NV>& w, unsigned i, int* off) {
#pragma unroll
    for (int k = 0; k < NV; ++k) off[k] = 0;
#pragma unroll
    for (int d = ANVIL_MAX_RANK - 1; d >= 0; --d) {
        if (d >= w.rank) continue;
        const int idx = (int)(i % w.shape[d]);
        i /= w.shape[d];
#pragma unroll
        for (int k = 0; k < NV; ++k) off[k] += idx * w.stride[k][d];
    }
}

// The vector copy (anvil_ew_copy_vec): the walk over vectors. Only between
// equal types.
template <class TO, class TA>
ANVIL_DEVICE bool anvil_ew_copy_vectors(const EwParams&, AnvilSpan, TO*, const TA*) {
    return false;
}
template <class T>
ANVIL_DEVICE bool anvil_ew_copy_vectors(const EwParams& p, AnvilSpan span, T* out, const T* a) {
    const int V = anvil_vec<T>::n;
    if (anvil_ew_copy_vec(p, (int)sizeof(T), (int)sizeof(T)) != V || p.epilogue || !anvil_aligned16(out) || !anvil_aligned16(a)) return false;
    const anvil_i64* views[2] = {p.out_stride, p.in_stride[0]};
    AnvilEwWalk<2> w;
    if (!anvil_ew_walk(w, p, views, V)) return false;
    const unsigned begin = (unsigned)(span.begin / V), end = (unsigned)(span.end / V);
    for (unsigned i = begin + anvil_thread(); i < end; i += ANVIL_THREADS) {
        int off[2];
        anvil_ew_offsets(w, i, off);
        anvil_store16(out + (anvil_i64)off[0] * V, anvil_load16(a + (anvil_i64)off[1] * V));
    }
    return true;
}

template <class TO, class TA, class TB>
ANVIL_TASK void anvil_ew_tile(const EwParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(EwParams, p, params);
    static_assert(anvil_storage<TO>::ok, "anvil_ew_tile: TO must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TA>::ok, "anvil_ew_tile: TA must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TB>::ok, "anvil_ew_tile: TB must be a storage type (float, int, anvil_f16, anvil_bf16)");
    TO* out = anvil_at<TO>(arena, p.out_off);
    const TA* a = anvil_at<const TA>(arena, p.in_off[0]);
    const TB* b = anvil_at<const TB>(arena, p.in_off[1]);
    const AnvilSpan span = anvil_tile_span(tile, p.tile_elems, p.numel);
    if (anvil_ew_copy_vectors(p, span, out, a)) return;

    const int op = p.op, ninputs = p.ninputs, epilogue = p.epilogue;
    const float scalar = p.scalar;
    auto element = [&](anvil_i64 oo, anvil_i64 ao, anvil_i64 bo) {
        if (op == ANVIL_EW_COPY && !epilogue) {
            anvil_copy(out + oo, a + ao);
            return;
        }
        const float x = ninputs >= 1 ? anvil_load(a + ao) : 0.0f;
        const float y = ninputs >= 2 ? anvil_load(b + bo) : scalar;
        float v = anvil_ew_apply(op, x, y, scalar);
        if (epilogue) v = anvil_epilogue_apply(anvil_epilogue(epilogue), v, oo, arena);
        anvil_store(out + oo, v);
    };
    const anvil_i64* views[3] = {p.out_stride, p.in_stride[0], p.in_stride[1]};
    AnvilEwWalk<3> w;
    if (anvil_ew_walk(w, p, views, 1)) {
        for (unsigned i = (unsigned)span.begin + anvil_thread(); i < (unsigned)span.end; i += ANVIL_THREADS) {
            int off[3];
            anvil_ew_offsets(w, i, off);
            element(off[0], off[1], off[2]);
        }
        return;
    }
    // Past 2^31: the walk in 64 bits, from the params.
    for (anvil_i64 i = span.begin + anvil_thread(); i < span.end; i += ANVIL_THREADS) {
        anvil_i64 off[3] = {0, 0, 0}, rest = i;
        for (int d = p.rank - 1; d >= 0; --d) {
            const anvil_i64 idx = rest % p.shape[d];
            rest /= p.shape[d];
            for (int k = 0; k < 3; ++k) off[k] += idx * views[k][d];
        }
        element(off[0], off[1], off[2]);
    }
}

#endif  // ANVIL_RTASKS_ELEMENTWISE_CUH
