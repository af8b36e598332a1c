// Elementwise rTasks: one tile is `tile_elems` consecutive elements of the
// iteration shape; the block's threads take them in a strided loop, so
// consecutive threads touch consecutive elements (coalesced when the
// output is contiguous). A fused chain of elementwise nodes is the first
// node's op followed by the others as an epilogue.
#ifndef ANVIL_RTASKS_ELEMENTWISE_CUH
#define ANVIL_RTASKS_ELEMENTWISE_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

template <class TO, class TA, class TB>
ANVIL_TASK void anvil_ew_tile(const EwParams& p, int tile, char* arena) {
    static_assert(anvil_storage<TO>::ok, "anvil_ew_tile: TO must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TA>::ok, "anvil_ew_tile: TA must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TB>::ok, "anvil_ew_tile: TB must be a storage type (float, int, anvil_f16, anvil_bf16)");
    TO* out = anvil_at<TO>(arena, p.out_off);
    const TA* a = anvil_at<const TA>(arena, p.in_off[0]);
    const TB* b = anvil_at<const TB>(arena, p.in_off[1]);
    const AnvilSpan span = anvil_tile_span(tile, p.tile_elems, p.numel);
    const anvil_i64 begin = span.begin, end = span.end;
    for (anvil_i64 i = begin + anvil_thread(); i < end; i += ANVIL_THREADS) {
        anvil_i64 oo, ao, bo;
        anvil_offsets3(i, p.rank, p.shape, p.out_stride, p.in_stride[0], p.in_stride[1], &oo, &ao, &bo);
        if (p.op == ANVIL_EW_COPY && !p.epilogue) {
            anvil_copy(out + oo, a + ao);
            continue;
        }
        const float x = p.ninputs >= 1 ? anvil_load(a + ao) : 0.0f;
        const float y = p.ninputs >= 2 ? anvil_load(b + bo) : p.scalar;
        float v = anvil_ew_apply(p.op, x, y, p.scalar);
        if (p.epilogue) v = anvil_epilogue_apply(anvil_epilogue(p.epilogue), v, oo, arena);
        anvil_store(out + oo, v);
    }
}

#endif  // ANVIL_RTASKS_ELEMENTWISE_CUH
