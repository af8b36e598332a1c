// Per-channel affine rTasks (inference batchnorm) over x [N, C, ...] of any
// rank >= 2: every element takes the statistics of its channel (dim 1). A
// tile is `tile_elems` consecutive elements; x and y are contiguous.
#ifndef ANVIL_RTASKS_CHANNEL_CUH
#define ANVIL_RTASKS_CHANNEL_CUH

#include "primitives.cuh"
#include "tiling.cuh"

template <class TX, class TS, class TB, class TM, class TV, class TY>
ANVIL_TASK void anvil_channel_tile(const ChannelParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(ChannelParams, p, params);
    static_assert(anvil_storage<TX>::ok && anvil_storage<TS>::ok && anvil_storage<TB>::ok && anvil_storage<TM>::ok &&
                      anvil_storage<TV>::ok && anvil_storage<TY>::ok,
                  "anvil_channel_tile: TX, TS, TB, TM, TV, TY must be storage types (float, int, anvil_f16, anvil_bf16)");
    const TX* x = anvil_at<const TX>(arena, p.x_off);
    const TS* scale = anvil_at<const TS>(arena, p.scale_off);
    const TB* bias = anvil_at<const TB>(arena, p.bias_off);
    const TM* mean = anvil_at<const TM>(arena, p.mean_off);
    const TV* var = anvil_at<const TV>(arena, p.var_off);
    TY* y = anvil_at<TY>(arena, p.y_off);
    const AnvilSpan span = anvil_tile_span(tile, p.tile_elems, p.numel);
    const anvil_i64 begin = span.begin, end = span.end;
    for (anvil_i64 i = begin + anvil_thread(); i < end; i += ANVIL_THREADS) {
        const anvil_i64 c = i / p.inner % p.C;
        // The same order of operations as the reference: (x - mean) / sqrt(var + eps) * scale + bias.
        const float inv = 1.0f / sqrtf(anvil_load(var + c) + p.eps);
        anvil_store(y + i, (anvil_load(x + i) - anvil_load(mean + c)) * inv * anvil_load(scale + c) + anvil_load(bias + c));
    }
}

#endif  // ANVIL_RTASKS_CHANNEL_CUH
