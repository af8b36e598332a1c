// Elementwise rTasks: one tile is `tile_elems` consecutive elements of the
// iteration shape; the block's threads take them in a strided loop, so
// consecutive threads touch consecutive elements (coalesced when the
// output is contiguous).
#ifndef ANVIL_RTASKS_ELEMENTWISE_CUH
#define ANVIL_RTASKS_ELEMENTWISE_CUH

#include "primitives.cuh"

// A forgotten case below would silently compute 0: adding an op to
// AnvilEwOp must fail here until anvil_ew_apply handles it.
static_assert(ANVIL_EW_COUNT == 21, "AnvilEwOp changed: update anvil_ew_apply in elementwise.cuh");

// f(a, b) in f32. b is the second input, or EwParams::scalar when the op
// has fewer than two inputs.
ANVIL_DEVICE float anvil_ew_apply(int op, float a, float b, float scalar) {
    switch (op) {
        case ANVIL_EW_CONST: return scalar;
        case ANVIL_EW_COPY: return a;
        case ANVIL_EW_ADD: return a + b;
        case ANVIL_EW_SUB: return a - b;
        case ANVIL_EW_MUL: return a * b;
        case ANVIL_EW_DIV: return a / b;
        case ANVIL_EW_MAX: return fmaxf(a, b);
        case ANVIL_EW_MIN: return fminf(a, b);
        case ANVIL_EW_POW: return powf(a, b);
        case ANVIL_EW_RELU: return a > 0.0f ? a : 0.0f;
        case ANVIL_EW_SIGMOID: return 1.0f / (1.0f + expf(-a));
        case ANVIL_EW_TANH: return tanhf(a);
        case ANVIL_EW_EXP: return expf(a);
        case ANVIL_EW_LOG: return logf(a);
        case ANVIL_EW_SQRT: return sqrtf(a);
        case ANVIL_EW_RSQRT: return anvil_rsqrt(a);
        case ANVIL_EW_NEG: return -a;
        case ANVIL_EW_ABS: return fabsf(a);
        case ANVIL_EW_SILU: return a / (1.0f + expf(-a));
        case ANVIL_EW_GELU: return 0.5f * a * (1.0f + erff(a * 0.70710678118654752f));
        case ANVIL_EW_GELU_TANH: {
            const float k = 0.79788456080286536f;  // sqrt(2 / pi)
            return 0.5f * a * (1.0f + tanhf(k * (a + 0.044715f * a * a * a)));
        }
    }
    return 0.0f;
}

template <class TO, class TA, class TB>
ANVIL_TASK void anvil_ew_tile(const EwParams& p, int tile, char* arena) {
    static_assert(anvil_storage<TO>::ok, "anvil_ew_tile: TO must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TA>::ok, "anvil_ew_tile: TA must be a storage type (float, int, anvil_f16, anvil_bf16)");
    static_assert(anvil_storage<TB>::ok, "anvil_ew_tile: TB must be a storage type (float, int, anvil_f16, anvil_bf16)");
    TO* out = anvil_at<TO>(arena, p.out_off);
    const TA* a = anvil_at<const TA>(arena, p.in_off[0]);
    const TB* b = anvil_at<const TB>(arena, p.in_off[1]);
    const anvil_i64 begin = (anvil_i64)tile * p.tile_elems;
    const anvil_i64 end = begin + p.tile_elems < p.numel ? begin + p.tile_elems : p.numel;
    for (anvil_i64 i = begin + anvil_thread(); i < end; i += ANVIL_THREADS) {
        anvil_i64 oo, ao, bo;
        anvil_offsets3(i, p.rank, p.shape, p.out_stride, p.in_stride[0], p.in_stride[1], &oo, &ao, &bo);
        if (p.op == ANVIL_EW_COPY) {
            anvil_copy(out + oo, a + ao);
            continue;
        }
        const float x = p.ninputs >= 1 ? anvil_load(a + ao) : 0.0f;
        const float y = p.ninputs >= 2 ? anvil_load(b + bo) : p.scalar;
        anvil_store(out + oo, anvil_ew_apply(p.op, x, y, p.scalar));
    }
}

#endif  // ANVIL_RTASKS_ELEMENTWISE_CUH
