// Direct sliding-window rTasks: maxpool2d, avgpool2d, and conv2d where an
// implicit GEMM would be mostly padding (depthwise and other convolutions
// with few output channels per group). A tile is `tile_elems` consecutive
// elements of y [N, O, OH, OW]; each thread computes whole outputs, walking
// its window over the group's input channels. Neighbouring threads take
// neighbouring outputs, so the stores coalesce. A fused epilogue
// (batchnorm, activations, adds after a depthwise conv or a pool) takes
// each output before its store; y is contiguous, so e locates its operands.
#ifndef ANVIL_RTASKS_WINDOW_CUH
#define ANVIL_RTASKS_WINDOW_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

static_assert(ANVIL_WIN_COUNT == 4, "AnvilWinOp changed: update anvil_window_tile in window.cuh");

// TW and TB (the weights and the bias) are unused by the pools, which pass float.
template <class TX, class TW, class TB, class TY>
ANVIL_TASK void anvil_window_tile(const WindowParams& params, int tile, char* arena) {
    ANVIL_LOCAL_PARAMS(WindowParams, p, params);
    static_assert(anvil_storage<TX>::ok && anvil_storage<TW>::ok && anvil_storage<TB>::ok && anvil_storage<TY>::ok,
                  "anvil_window_tile: TX, TW, TB, TY must be storage types (float, int, anvil_f16, anvil_bf16)");
    const TX* x = anvil_at<const TX>(arena, p.x_off);
    const TW* w = anvil_at<const TW>(arena, p.w_off);
    const TB* bias = p.bias_off >= 0 ? anvil_at<const TB>(arena, p.bias_off) : 0;
    TY* y = anvil_at<TY>(arena, p.y_off);
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    const anvil_i64 plane = (anvil_i64)p.H * p.W;
    const anvil_i64 numel = (anvil_i64)p.N * p.O * p.OH * p.OW;
    const AnvilSpan span = anvil_tile_span(tile, p.tile_elems, numel);

    for (anvil_i64 e = span.begin + anvil_thread(); e < span.end; e += ANVIL_THREADS) {
        const AnvilWindowCell cell = anvil_window_cell(p, e);
        const int ow = cell.ow, oh = cell.oh, o = cell.o;
        const anvil_i64 n = cell.n;
        const int ih0 = oh * p.sh - p.pt, iw0 = ow * p.sw - p.pl;
        // The group's first input channel: o itself for the pools.
        const TX* xc = x + (n * p.C + (anvil_i64)(o / p.Og) * p.Cg) * plane;

        if (p.op == ANVIL_WIN_CONV) {
            float acc = bias ? anvil_load(bias + o) : 0.0f;
            const TW* wo = w + (anvil_i64)o * p.Cg * p.KH * p.KW;
            for (int c = 0; c < p.Cg; ++c, xc += plane)
                for (int i = 0; i < p.KH; ++i) {
                    const int ih = ih0 + i * p.dh;
                    if (ih < 0 || ih >= p.H) continue;  // padding adds 0
                    for (int j = 0; j < p.KW; ++j) {
                        const int iw = iw0 + j * p.dw;
                        if (iw >= 0 && iw < p.W)
                            acc += anvil_load(xc + (anvil_i64)ih * p.W + iw) * anvil_load(wo + (c * p.KH + i) * p.KW + j);
                    }
                }
            anvil_store(y + e, epi ? anvil_epilogue_apply(*epi, acc, e, arena) : acc);
            continue;
        }

        // Pools: only cells of x take part, so padding never wins a max.
        const bool is_max = p.op == ANVIL_WIN_MAX;
        float acc = is_max ? anvil_neg_inf() : 0.0f;
        int cells = 0;
        for (int i = 0; i < p.KH; ++i) {
            const int ih = ih0 + i * p.dh;
            if (ih < 0 || ih >= p.H) continue;
            for (int j = 0; j < p.KW; ++j) {
                const int iw = iw0 + j * p.dw;
                if (iw < 0 || iw >= p.W) continue;
                const float v = anvil_load(xc + (anvil_i64)ih * p.W + iw);
                acc = is_max ? fmaxf(acc, v) : acc + v;
                ++cells;
            }
        }
        // infer_shapes bounds the padding by half the kernel: every window
        // holds a cell of x, so cells > 0.
        if (p.op == ANVIL_WIN_AVG) acc /= (float)cells;
        if (p.op == ANVIL_WIN_AVG_PAD) acc /= (float)(p.KH * p.KW);
        anvil_store(y + e, epi ? anvil_epilogue_apply(*epi, acc, e, arena) : acc);
    }
}

#endif  // ANVIL_RTASKS_WINDOW_CUH
