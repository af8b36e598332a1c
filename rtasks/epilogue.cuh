// Elementwise math on values in registers: the scalar functions of the
// elementwise ops, and the epilogue programs (params.cuh) built from them
// that fused rOps apply to every value before storing it.
#ifndef ANVIL_RTASKS_EPILOGUE_CUH
#define ANVIL_RTASKS_EPILOGUE_CUH

#include "primitives.cuh"

// A forgotten case below would silently compute 0: adding an op to
// AnvilEwOp must fail here until anvil_ew_apply handles it.
static_assert(ANVIL_EW_COUNT == 22, "AnvilEwOp changed: update anvil_ew_apply in epilogue.cuh");

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
        case ANVIL_EW_ERF: return erff(a);
    }
    return 0.0f;
}

// The epilogue table's entry `index`. Declared here, defined by the emitted
// source after the table (the rtasks are pasted before any table).
ANVIL_DEVICE const AnvilEpilogue& anvil_epilogue(int index);

// Element `off` of a view whose storage type is only known at run time.
ANVIL_DEVICE float anvil_load_dyn(const char* base, int dtype, anvil_i64 off) {
    switch (dtype) {
        case ANVIL_DT_F16: return anvil_load((const anvil_f16*)base + off);
        case ANVIL_DT_BF16: return anvil_load((const anvil_bf16*)base + off);
        case ANVIL_DT_I32: return anvil_load((const int*)base + off);
        default: return anvil_load((const float*)base + off);
    }
}

// The operand `ref` of a step: a value computed so far, an input (loaded
// once per element, before the steps) or the scalar. Loops run to the
// compile-time maxima and compare against the run-time reference, so that
// every array is indexed by constants once unrolled and stays in registers.
ANVIL_DEVICE float anvil_epi_operand(int ref, float scalar, const float* vals, const float* ins) {
    float x = 0.0f;
#pragma unroll
    for (int k = 0; k <= ANVIL_EPI_MAX_STEPS; ++k)
        if (ref == ANVIL_EPI_VALUE(k)) x = vals[k];
#pragma unroll
    for (int i = 0; i < ANVIL_EPI_MAX_INPUTS; ++i)
        if (ref == ANVIL_EPI_INPUT(i)) x = ins[i];
    if (ref == ANVIL_EPI_SCALAR) x = scalar;
    return x;
}

// The interpreter of epilogue `e`: value v of the output element at
// element offset `at` of the rTask's (contiguous) output. The emitted
// source runs most epilogues as straight-line functions instead
// (src/codegen/epilogue_text.cpp); this is their fallback, for programs
// beyond kMaxStraightLineEpilogues.
ANVIL_TASK float anvil_epilogue_interpret(const AnvilEpilogue& e, float v, anvil_i64 at, char* arena) {
    // Each input's element offset, from the output's multi-index.
    anvil_i64 offs[ANVIL_EPI_MAX_INPUTS];
#pragma unroll
    for (int i = 0; i < ANVIL_EPI_MAX_INPUTS; ++i) offs[i] = 0;
    for (int d = e.rank - 1; d >= 0; --d) {
        const anvil_i64 idx = at % e.shape[d];
        at /= e.shape[d];
#pragma unroll
        for (int i = 0; i < ANVIL_EPI_MAX_INPUTS; ++i) offs[i] += idx * e.in_stride[i][d];
    }
    // Every input once: a step that uses one twice, or two steps, share the load.
    float ins[ANVIL_EPI_MAX_INPUTS];
#pragma unroll
    for (int i = 0; i < ANVIL_EPI_MAX_INPUTS; ++i)
        ins[i] = i < e.ninputs ? anvil_load_dyn(arena + e.in_off[i], e.in_dtype[i], offs[i]) : 0.0f;
    float vals[ANVIL_EPI_MAX_STEPS + 1];
#pragma unroll
    for (int k = 0; k <= ANVIL_EPI_MAX_STEPS; ++k) vals[k] = v;
#pragma unroll
    for (int k = 0; k < ANVIL_EPI_MAX_STEPS; ++k) {
        if (k >= e.nsteps) break;
        const AnvilEpiStep s = e.steps[k];
        const float a = anvil_epi_operand(s.a, s.scalar, vals, ins);
        const float b = anvil_epi_operand(s.b, s.scalar, vals, ins);
        vals[k + 1] = v = anvil_ew_apply(s.op, a, b, s.scalar);
    }
    return v;
}

// The emitted source's dispatcher, defined after the epilogue table: for
// up to N values of a thread (bit l of `mask`: v[l] is one, the output
// element at offset at[l]), the straight-line function of `e`'s table
// entry, or the interpreter; v is updated in place.
template <int N>
ANVIL_DEVICE void anvil_epilogue_straight(const AnvilEpilogue& e, float* v, const anvil_i64* at, unsigned mask,
                                          char* arena);

// The epilogue `e` (an entry of the emitted table) applied to value v of the
// output element at offset `at`. Not inlined on the GPU (ANVIL_TASK): a
// GEMM micro-tile stores many values, and one call per value keeps the
// kernel small.
ANVIL_TASK float anvil_epilogue_apply(const AnvilEpilogue& e, float v, anvil_i64 at, char* arena) {
    anvil_epilogue_straight<1>(e, &v, &at, 1u, arena);
    return v;
}

// ANVIL_EPI_BATCH values, and their elements, passed by value: a call
// keeps them in registers.
struct AnvilEpiBatch {
    float v[ANVIL_EPI_BATCH];
    anvil_i64 at[ANVIL_EPI_BATCH];
};

// The epilogue for up to ANVIL_EPI_BATCH values at once (bit l of `mask`:
// v[l] is one, of element at[l]): their operands' loads are in flight
// together, where a call per value waits a round trip for each.
ANVIL_TASK AnvilEpiBatch anvil_epilogue_apply_batch(const AnvilEpilogue& e, AnvilEpiBatch b, unsigned mask, char* arena) {
    anvil_epilogue_straight<ANVIL_EPI_BATCH>(e, b.v, b.at, mask, arena);
    return b;
}

// A thread's NV values through epilogue e, ANVIL_EPI_BATCH per call.
// take(f, v, at) gives value f (0 <= f < NV) and its element in v and at,
// and whether it is one (inside the output); store(f, v) stores it after
// the epilogue. Unrolled: f is a constant in every take and store, so a
// tile's accumulators stay in registers.
template <int NV, class Take, class Store>
ANVIL_DEVICE void anvil_epilogue_each(const AnvilEpilogue& e, char* arena, const Take& take, const Store& store) {
#pragma unroll
    for (int f0 = 0; f0 < NV; f0 += ANVIL_EPI_BATCH) {
        AnvilEpiBatch b;
        unsigned mask = 0;
#pragma unroll
        for (int l = 0; l < ANVIL_EPI_BATCH; ++l) {
            b.v[l] = 0.0f;
            b.at[l] = 0;
            if (f0 + l < NV && take(f0 + l, b.v[l], b.at[l])) mask |= 1u << l;
        }
        if (mask) b = anvil_epilogue_apply_batch(e, b, mask, arena);
#pragma unroll
        for (int l = 0; l < ANVIL_EPI_BATCH; ++l)
            if (f0 + l < NV && (mask >> l & 1u)) store(f0 + l, b.v[l]);
    }
}

#endif  // ANVIL_RTASKS_EPILOGUE_CUH
