// Row-wise rTasks: one tile is rows [tile*rows_per_tile, ...). The block
// reduces each row cooperatively: its threads stride over the row, then a
// block reduction gives every thread the row's statistic.
#ifndef ANVIL_RTASKS_ROWWISE_CUH
#define ANVIL_RTASKS_ROWWISE_CUH

#include "epilogue.cuh"
#include "tiling.cuh"

static_assert(ANVIL_ROW_COUNT == 8, "AnvilRowOp changed: update anvil_row_tile in rowwise.cuh");

// The one stride of a view whose dims merge into a single run (each dim's
// stride is the next non-unit dim's times its extent), or -1: the element at
// flat index i is then at i * stride, with no division. Rank 0, or every
// extent 1: 0. Called once per tile (the arrays are indexed by a runtime rank).
ANVIL_DEVICE anvil_i64 anvil_flat_stride(int rank, const anvil_i64* shape, const anvil_i64* stride) {
    anvil_i64 unit = -1, span = 1;
    for (int d = rank - 1; d >= 0; --d) {
        if (shape[d] == 1) continue;
        if (unit < 0) {
            unit = stride[d];
        } else if (stride[d] != unit * span) {
            return -1;
        }
        span *= shape[d];
    }
    return unit < 0 ? 0 : unit;
}

// Element offset of the j-th element of a row (row-major over red_shape)
// when the row is no single run. 32-bit division: verify_tile_graph keeps
// rows and row_len within int.
ANVIL_DEVICE anvil_i64 anvil_row_offset(const RowParams& p, int j, const anvil_i64* stride) {
    anvil_i64 o = 0;
    for (int d = p.red_rank - 1; d >= 0; --d) {
        const int e = (int)p.red_shape[d];
        o += (anvil_i64)(j % e) * stride[d];
        j /= e;
    }
    return o;
}

// Where a tile's rows and their elements lie, worked out once per tile: the
// flat strides (anvil_flat_stride, -1: none) of the kept dims in the input
// and output and of the reduced dims in the input and output.
struct AnvilRowWalk {
    anvil_i64 row_in, row_out, el_in, el_out;
};
ANVIL_DEVICE AnvilRowWalk anvil_row_walk(const RowParams& p) {
    const AnvilRowWalk w = {anvil_flat_stride(p.kept_rank, p.kept_shape, p.kept_in),
                            anvil_flat_stride(p.kept_rank, p.kept_shape, p.kept_out),
                            anvil_flat_stride(p.red_rank, p.red_shape, p.red_in),
                            anvil_flat_stride(p.red_rank, p.red_shape, p.red_out)};
    return w;
}

// Row r's first element in the input (*ib) and output (*ob).
ANVIL_DEVICE void anvil_row_bases(const RowParams& p, const AnvilRowWalk& w, int r, anvil_i64* ib, anvil_i64* ob) {
    if (w.row_in >= 0 && w.row_out >= 0) {
        *ib = r * w.row_in;
        *ob = r * w.row_out;
    } else {
        anvil_offsets2(r, p.kept_rank, p.kept_shape, p.kept_in, p.kept_out, ib, ob);
    }
}

// Element j's offset from its row's base, by the flat stride `el` or, where
// the row is no single run, the multi-index.
ANVIL_DEVICE anvil_i64 anvil_row_at(const RowParams& p, anvil_i64 el, int j, const anvil_i64* stride) {
    return el >= 0 ? j * el : anvil_row_offset(p, j, stride);
}

// A split-K GEMM's reduce (no block reduction): a thread per output,
// consecutive threads on consecutive outputs, each adding its partials in
// slice order (the same bits on every run), four slices' loads issued
// before their adds. Its own function, so that the other row ops'
// registers do not pay for it. The fields it needs are read once, before
// the loop: a copy of the params indexed by the runtime rank lived in
// local memory, and a field read in the loop is read again after every
// store through a generic pointer.
template <class TI, class TO>
ANVIL_TASK void anvil_row_split_sum(const RowParams& p, anvil_i64 r0, anvil_i64 r1, const AnvilEpilogue* epi,
                                    char* arena) {
    const AnvilRowWalk w = anvil_row_walk(p);
    const int ways = (int)p.row_len, end = (int)r1;
    const anvil_i64 slice = p.red_in[0];
    const TI* const in0 = anvil_at<const TI>(arena, p.in_off);
    TO* const out0 = anvil_at<TO>(arena, p.out_off);
    for (int r = (int)r0 + anvil_thread(); r < end; r += ANVIL_THREADS) {
        anvil_i64 ib, ob;
        anvil_row_bases(p, w, r, &ib, &ob);
        const TI* in = in0 + ib;
        float s = 0.0f;
        int k = 0;
        for (; k + 4 <= ways; k += 4, in += 4 * slice) {
            const float a0 = anvil_load(in), a1 = anvil_load(in + slice), a2 = anvil_load(in + 2 * slice),
                        a3 = anvil_load(in + 3 * slice);
            s += a0;
            s += a1;
            s += a2;
            s += a3;
        }
        for (; k < ways; ++k, in += slice) s += anvil_load(in);
        anvil_store(out0 + ob, epi ? anvil_epilogue_apply(*epi, s, ob, arena) : s);
    }
}

#if ANVIL_THREADS > 1
// Rows up to ANVIL_ROW_WARP_MAX long are reduced by one warp each, held in
// registers (ANVIL_ROW_PER_LANE values a lane): the tile's rows run side by side,
// their loads all in flight at once, reduced by shuffles. The block-wide
// walk below takes a memory round trip per pass per row, with barriers
// between: on the H100 (2026-11-27) a tile of six 128-wide softmax rows
// took 12 us that way.
#define ANVIL_ROW_PER_LANE (ANVIL_ROW_WARP_MAX / 32)
#define ANVIL_ROW_LOAD_GROUP 8
static_assert(ANVIL_ROW_PER_LANE % ANVIL_ROW_LOAD_GROUP == 0, "rowwise.cuh: whole load groups a lane");

// Only rows that are single runs in the input and output (anvil_row_walk's
// el_in, el_out >= 0): element j at j * stride, so the unrolled loops cost
// a multiply-add an element.
template <class TI, class TO, class TG, class TB>
ANVIL_DEVICE void anvil_row_by_warps(const RowParams& p, const AnvilRowWalk& w, int r0, int r1, const TG* gamma,
                                     const TB* beta, char* arena) {
    const int lane = anvil_thread() & 31, warps = ANVIL_THREADS / 32;
    const int n = (int)p.row_len;
    const float inv_n = 1.0f / (float)n;
    // 32-bit element offsets (the caller checks they fit): 64-bit ones for
    // all 32 elements a lane, worked out ahead of the loads, spilled.
    const int el_in = (int)w.el_in, el_out = (int)w.el_out;
    const TI* const in0 = anvil_at<const TI>(arena, p.in_off);
    TO* const out0 = anvil_at<TO>(arena, p.out_off);
    for (int r = r0 + (anvil_thread() >> 5); r < r1; r += warps) {  // the same row in every lane
        anvil_i64 ib, ob;
        anvil_row_bases(p, w, r, &ib, &ob);
        const TI* in = in0 + ib;
        TO* out = out0 + ob;
        float v[ANVIL_ROW_PER_LANE];  // element lane + 32 i of the row
        // Eight loads at a time, in flight together; a group the row ends
        // before is skipped. One block of all 32 had ptxas hoist every
        // address ahead of the loads, and spill.
#pragma unroll
        for (int g = 0; g < ANVIL_ROW_PER_LANE; g += ANVIL_ROW_LOAD_GROUP) {
            if (32 * g < n) {
#pragma unroll
                for (int i = g; i < g + ANVIL_ROW_LOAD_GROUP; ++i) {
                    const int j = lane + 32 * i;
                    v[i] = j < n ? (float)anvil_load(in + j * el_in) : 0.0f;
                }
            } else {
#pragma unroll
                for (int i = g; i < g + ANVIL_ROW_LOAD_GROUP; ++i) v[i] = 0.0f;
            }
        }
        float stat = 0.0f, scale = 1.0f, shift = 0.0f;  // y = (x - shift) * scale
        if (p.op == ANVIL_ROW_SOFTMAX || p.op == ANVIL_ROW_MAX) {
            float m = anvil_neg_inf();
#pragma unroll
            for (int i = 0; i < ANVIL_ROW_PER_LANE; ++i)
                if (lane + 32 * i < n) m = fmaxf(m, v[i]);
            m = anvil_warp_max(m);
            stat = m;
            if (p.op == ANVIL_ROW_SOFTMAX) {
                float e = 0.0f;
#pragma unroll
                for (int i = 0; i < ANVIL_ROW_PER_LANE; ++i)
                    if (lane + 32 * i < n) {
                        v[i] = expf(v[i] - m);
                        e += v[i];
                    }
                scale = 1.0f / anvil_warp_sum(e);
            }
        } else {
            if (p.op != ANVIL_ROW_RMSNORM) {
                float t = 0.0f;
#pragma unroll
                for (int i = 0; i < ANVIL_ROW_PER_LANE; ++i) t += v[i];  // 0 past the row's end
                stat = anvil_warp_sum(t);
                shift = stat * inv_n;
            }
            if (p.op == ANVIL_ROW_LAYERNORM || p.op == ANVIL_ROW_RMSNORM) {
                // A second pass over (x - mean): no cancellation of E[x^2] - mean^2.
                float q = 0.0f;
#pragma unroll
                for (int i = 0; i < ANVIL_ROW_PER_LANE; ++i)
                    if (lane + 32 * i < n) q += (v[i] - shift) * (v[i] - shift);
                scale = anvil_rsqrt(anvil_warp_sum(q) * inv_n + p.eps);
            }
        }
        if (p.op == ANVIL_ROW_SUM || p.op == ANVIL_ROW_MEAN || p.op == ANVIL_ROW_MAX) {
            if (lane == 0) anvil_store(out, p.op == ANVIL_ROW_MEAN ? stat * inv_n : stat);
            continue;
        }
#pragma unroll
        for (int i = 0; i < ANVIL_ROW_PER_LANE; ++i) {
            const int j = lane + 32 * i;
            if (j >= n) break;  // the row's end: a branch per store keeps ptxas from hoisting them all (it spilled)
            float y;
            if (p.op == ANVIL_ROW_SOFTMAX) {
                y = v[i] * scale;
            } else {  // gamma and beta belong to the norms alone (softmax leaves their offsets unset)
                y = (v[i] - shift) * scale;
                if (gamma) y *= anvil_load(gamma + j);
                if (beta && p.op == ANVIL_ROW_LAYERNORM) y += anvil_load(beta + j);
            }
            anvil_store(out + j * el_out, y);
        }
    }
}
#endif

// v as a store to storage type `dtype` and a load back would give it.
ANVIL_DEVICE float anvil_round_dyn(int dtype, float v) {
    switch (dtype) {
        case ANVIL_DT_F16: return anvil_f16_to_f32(anvil_f32_to_f16(v));
        case ANVIL_DT_BF16: return anvil_bf16_to_f32(anvil_f32_to_bf16(v));
        default: return v;
    }
}

// Stores v as storage type `dtype` at element `off` of `base`.
ANVIL_DEVICE void anvil_store_dyn(char* base, int dtype, anvil_i64 off, float v) {
    switch (dtype) {
        case ANVIL_DT_F16: anvil_store((anvil_f16*)base + off, v); break;
        case ANVIL_DT_BF16: anvil_store((anvil_bf16*)base + off, v); break;
        default: anvil_store((float*)base + off, v); break;
    }
}

// A split-K GEMM's reduce fused with the row op over its rows
// (ANVIL_ROW_SPLIT_NORM, src/schedule/split_k.cpp): the block takes the
// tile's rows one after another, each thread holding elements tid + 256 i
// of the row in registers. Each element's partials are added in slice
// order (anvil_row_split_sum's sums; a slice's loads all in flight), then
// the GEMM's epilogue and the rounding to the GEMM's storage type (the
// bits a separate reduce stores and its row op reads; stored at pre_off
// too where other rOps read them), then the row op in
// two passes over the registers (no E[x^2] - mean^2) with the block-wide
// walk's sums and order, gamma and beta, the row op's epilogue. A block
// per row, not a warp: the epilogues are calls, one after another in a
// thread (a warp per row of 768 makes 24 dependent calls a lane, the block
// 3), and four values a thread leave the calls few registers to save. Its
// own function, so that the other row ops' registers do not pay for it.
#define ANVIL_SPLIT_NORM_PER_THREAD (ANVIL_ROW_WARP_MAX / ANVIL_THREADS)

template <class TI, class TO, class TG, class TB>
ANVIL_TASK void anvil_row_split_norm(const RowParams& p, anvil_i64 r0, anvil_i64 r1, char* arena) {
    // The fields read after a store, read once (no copy of the whole params:
    // the caller built it on its stack).
    const int k_split = p.k_split, mid_dtype = p.mid_dtype;
    const anvil_i64 slice_stride = p.slice_stride, pre_off = p.pre_off, in_off = p.in_off, out_off = p.out_off;
    const float eps = p.eps;
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    const AnvilEpilogue* post = p.row_epilogue ? &anvil_epilogue(p.row_epilogue) : 0;
    const TG* gamma = p.gamma_off >= 0 ? anvil_at<const TG>(arena, p.gamma_off) : 0;
    const TB* beta = p.beta_off >= 0 ? anvil_at<const TB>(arena, p.beta_off) : 0;
    const int tid = anvil_thread(), n = (int)p.row_len, op = p.norm_op;
    const float inv_n = 1.0f / (float)n;
    for (anvil_i64 r = r0; r < r1; ++r) {
        const anvil_i64 row = r * n;  // its first element in the GEMM's output, each slice of partials, and out
        const TI* in = anvil_at<const TI>(arena, in_off) + row;
        float v[ANVIL_SPLIT_NORM_PER_THREAD];  // element tid + ANVIL_THREADS i of the row
#pragma unroll
        for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i) v[i] = 0.0f;
        for (int k = 0; k < k_split; ++k) {
#pragma unroll
            for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i) {
                const int j = tid + ANVIL_THREADS * i;
                if (j < n) v[i] += anvil_load(in + k * slice_stride + j);
            }
        }
#pragma unroll
        for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i) {
            const int j = tid + ANVIL_THREADS * i;
            if (j < n) v[i] = anvil_round_dyn(mid_dtype, epi ? anvil_epilogue_apply(*epi, v[i], row + j, arena) : v[i]);
        }
        if (pre_off >= 0) {
#pragma unroll
            for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i) {
                const int j = tid + ANVIL_THREADS * i;
                if (j < n) anvil_store_dyn(arena + pre_off, mid_dtype, row + j, v[i]);
            }
        }
        float scale = 1.0f, shift = 0.0f;  // y = (x - shift) * scale
        if (op == ANVIL_ROW_SOFTMAX) {
            float m = anvil_neg_inf();
#pragma unroll
            for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i)
                if (tid + ANVIL_THREADS * i < n) m = fmaxf(m, v[i]);
            m = anvil_block_max(m);
            float e = 0.0f;
#pragma unroll
            for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i)
                if (tid + ANVIL_THREADS * i < n) {
                    v[i] = expf(v[i] - m);
                    e += v[i];
                }
            scale = 1.0f / anvil_block_sum(e);
        } else {
            if (op == ANVIL_ROW_LAYERNORM) {
                float t = 0.0f;
#pragma unroll
                for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i)
                    if (tid + ANVIL_THREADS * i < n) t += v[i];
                shift = anvil_block_sum(t) * inv_n;
            }
            float q = 0.0f;
#pragma unroll
            for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i)
                if (tid + ANVIL_THREADS * i < n) {
                    const float d = v[i] - shift;
                    q += d * d;
                }
            scale = anvil_rsqrt(anvil_block_sum(q) * inv_n + eps);
        }
        TO* out = anvil_at<TO>(arena, out_off) + row;
#pragma unroll
        for (int i = 0; i < ANVIL_SPLIT_NORM_PER_THREAD; ++i) {
            const int j = tid + ANVIL_THREADS * i;
            if (j >= n) continue;
            float y;
            if (op == ANVIL_ROW_SOFTMAX) {
                y = v[i] * scale;
            } else {
                y = (v[i] - shift) * scale;
                if (gamma) y *= anvil_load(gamma + j);
                if (beta && op == ANVIL_ROW_LAYERNORM) y += anvil_load(beta + j);
            }
            anvil_store(out + j, post ? anvil_epilogue_apply(*post, y, row + j, arena) : y);
        }
    }
}

// gamma_off / beta_off < 0: the operand is absent (a scale of 1, a shift of 0).
// The block-wide walk reads each field it needs once, before its loops (a
// field read after a store through a generic pointer is read again), and
// finds an element by anvil_row_at (a multiply where the row is one run).
template <class TI, class TO, class TG, class TB>
ANVIL_TASK void anvil_row_tile(const RowParams& p, int tile, char* arena) {
    static_assert(anvil_storage<TI>::ok && anvil_storage<TO>::ok && anvil_storage<TG>::ok && anvil_storage<TB>::ok,
                  "anvil_row_tile: TI, TO, TG, TB must be storage types (float, int, anvil_f16, anvil_bf16)");
    const TG* gamma = p.gamma_off >= 0 ? anvil_at<const TG>(arena, p.gamma_off) : 0;
    const TB* beta = p.beta_off >= 0 ? anvil_at<const TB>(arena, p.beta_off) : 0;
    // A fused epilogue takes each value before its store, located by its
    // offset in out (contiguous: the input's shape, or one value per row).
    const AnvilEpilogue* epi = p.epilogue ? &anvil_epilogue(p.epilogue) : 0;
    const int op = p.op, n = (int)p.row_len;
    const float inv_n = 1.0f / (float)n, eps = p.eps;
    const int tid = anvil_thread();

    const AnvilSpan rows = anvil_tile_span(tile, p.rows_per_tile, p.rows);
    const int r0 = (int)rows.begin, r1 = (int)rows.end;
    if (op == ANVIL_ROW_SPLIT_SUM) return anvil_row_split_sum<TI, TO>(p, r0, r1, epi, arena);
    if (op == ANVIL_ROW_SPLIT_NORM) return anvil_row_split_norm<TI, TO, TG, TB>(p, r0, r1, arena);
    const AnvilRowWalk w = anvil_row_walk(p);
#if ANVIL_THREADS > 1
    // Not with an epilogue: its call per value would spill the row's registers.
    const anvil_i64 el_max = 0x7fffffff / ANVIL_ROW_WARP_MAX;  // its element offsets fit in int
    if (!epi && n <= ANVIL_ROW_WARP_MAX && w.el_in >= 0 && w.el_out >= 0 && w.el_in <= el_max && w.el_out <= el_max)
        return anvil_row_by_warps<TI, TO, TG, TB>(p, w, r0, r1, gamma, beta, arena);
#endif
    const TI* const in0 = anvil_at<const TI>(arena, p.in_off);
    TO* const out0 = anvil_at<TO>(arena, p.out_off);
    const anvil_i64 el_in = w.el_in, el_out = w.el_out;
    for (int r = r0; r < r1; ++r) {
        anvil_i64 ib, ob;
        anvil_row_bases(p, w, r, &ib, &ob);
        const TI* in = in0 + ib;
        TO* out = out0 + ob;

        switch (op) {
            case ANVIL_ROW_SOFTMAX: {
                float m = anvil_neg_inf();
                for (int j = tid; j < n; j += ANVIL_THREADS) m = fmaxf(m, anvil_load(in + anvil_row_at(p, el_in, j, p.red_in)));
                m = anvil_block_max(m);
                float s = 0.0f;
                for (int j = tid; j < n; j += ANVIL_THREADS) s += expf(anvil_load(in + anvil_row_at(p, el_in, j, p.red_in)) - m);
                const float inv = 1.0f / anvil_block_sum(s);
                for (int j = tid; j < n; j += ANVIL_THREADS) {
                    const float x = anvil_load(in + anvil_row_at(p, el_in, j, p.red_in));
                    const anvil_i64 at = anvil_row_at(p, el_out, j, p.red_out);
                    float y = expf(x - m) * inv;
                    if (epi) y = anvil_epilogue_apply(*epi, y, ob + at, arena);
                    anvil_store(out + at, y);
                }
                break;
            }
            case ANVIL_ROW_LAYERNORM:
            case ANVIL_ROW_RMSNORM: {
                float mean = 0.0f;
                if (op == ANVIL_ROW_LAYERNORM) {
                    float s = 0.0f;
                    for (int j = tid; j < n; j += ANVIL_THREADS) s += anvil_load(in + anvil_row_at(p, el_in, j, p.red_in));
                    mean = anvil_block_sum(s) * inv_n;
                }
                // Second pass over (x - mean): no cancellation of E[x^2] - mean^2.
                // rmsnorm is the same with mean = 0.
                float q = 0.0f;
                for (int j = tid; j < n; j += ANVIL_THREADS) {
                    const float d = anvil_load(in + anvil_row_at(p, el_in, j, p.red_in)) - mean;
                    q += d * d;
                }
                const float rstd = anvil_rsqrt(anvil_block_sum(q) * inv_n + eps);
                for (int j = tid; j < n; j += ANVIL_THREADS) {
                    float y = (anvil_load(in + anvil_row_at(p, el_in, j, p.red_in)) - mean) * rstd;
                    if (gamma) y *= anvil_load(gamma + j);
                    if (beta && op == ANVIL_ROW_LAYERNORM) y += anvil_load(beta + j);
                    const anvil_i64 at = anvil_row_at(p, el_out, j, p.red_out);
                    if (epi) y = anvil_epilogue_apply(*epi, y, ob + at, arena);
                    anvil_store(out + at, y);
                }
                break;
            }
            case ANVIL_ROW_SUM:
            case ANVIL_ROW_MEAN: {
                float s = 0.0f;
                for (int j = tid; j < n; j += ANVIL_THREADS) s += anvil_load(in + anvil_row_at(p, el_in, j, p.red_in));
                s = anvil_block_sum(s);
                if (op == ANVIL_ROW_MEAN) s *= inv_n;
                if (tid == 0) anvil_store(out, epi ? anvil_epilogue_apply(*epi, s, ob, arena) : s);
                break;
            }
            case ANVIL_ROW_MAX: {
                float m = anvil_neg_inf();
                for (int j = tid; j < n; j += ANVIL_THREADS) m = fmaxf(m, anvil_load(in + anvil_row_at(p, el_in, j, p.red_in)));
                m = anvil_block_max(m);
                if (tid == 0) anvil_store(out, epi ? anvil_epilogue_apply(*epi, m, ob, arena) : m);
                break;
            }
        }
    }
}

#endif  // ANVIL_RTASKS_ROWWISE_CUH
