// Fixed-width descriptors of rOperators and tasks. The host compiler fills
// them (src/tile/decompose.cpp, src/codegen/emit.cpp) and the device code
// reads them, so this file is both included by anvil's C++ and pasted into
// every emitted .cu. Plain C: no includes, no templates, no constructors.
//
// Every params struct is written once, as a field list: a macro that
// names each field through F(type, name), A(type, name, n) (an array) or
// A2(type, name, n, m) (an array of arrays); F, A and A2 are macro
// parameters, so no field may have one of these names. The lists expand into
// the struct definitions; src/codegen/params_text.cpp expands the same
// lists into the emitted initialisers, each value after its field's name,
// so that a field added, removed or moved here reaches the emitted tables.
// Comments inside a list are /* */: a // comment would swallow the
// continuation backslash.
#ifndef ANVIL_RTASKS_PARAMS_CUH
#define ANVIL_RTASKS_PARAMS_CUH

#define ANVIL_DECLARE_FIELD(type, name) type name;
#define ANVIL_DECLARE_ARRAY(type, name, n) type name[n];
#define ANVIL_DECLARE_MATRIX(type, name, n, m) type name[n][m];
#define ANVIL_DECLARE_FIELDS(LIST) LIST(ANVIL_DECLARE_FIELD, ANVIL_DECLARE_ARRAY, ANVIL_DECLARE_MATRIX)

// Params in a tile: a tile function gets its rOp's params by reference into
// a table in global memory and copies them into a local first. Its K loops
// issue cp.async (asm with a memory clobber) and stores through generic
// pointers, after each of which the compiler must assume global memory
// changed and reload every field it still needs: through the reference, a
// conv2d tile variant shared by several rOps reloaded p.H, p.W and p.Og per
// staged element (103 global loads in its PTX; 2 with the copy). A local
// whose address never escapes is no memory the asm can touch. (A variant
// with one rOp gets the same from the compiler: its one call site passes a
// constant address.) The GEMV walks and the row tiles keep the reference:
// the copy made them spill, or (indexed by a runtime rank) lived in local
// memory; the row tiles read the fields they need into locals once
// (docs/perf/param-loads-*.md, row-tiles-2026-11-28.md). ANVIL_COPY_PARAMS=0 restores the
// reference everywhere, for comparisons (scripts/bench_param_loads.sh).
#ifndef ANVIL_COPY_PARAMS
#define ANVIL_COPY_PARAMS 1
#endif
#if ANVIL_COPY_PARAMS
#define ANVIL_LOCAL_PARAMS(type, local, ref) const type local = ref
#else
#define ANVIL_LOCAL_PARAMS(type, local, ref) const type& local = ref
#endif

#define ANVIL_MAX_RANK 6
#define ANVIL_MAX_BATCH_RANK 4

typedef long long anvil_i64;

// Storage types as run-time codes (the values of anvil::DType), for the
// operands of an epilogue, whose types are not template arguments.
enum AnvilDTypeCode { ANVIL_DT_F32 = 0, ANVIL_DT_F16 = 1, ANVIL_DT_BF16 = 2, ANVIL_DT_I32 = 3 };

// Epilogues: a short program of elementwise steps applied in registers to
// each value an rTask computes, before it is stored (fusion: the nodes it
// stands for never store their results). Value 0 is the rTask's own
// result, value k the result of step k - 1; the stored value is the last.
// Every input is a strided view over the index space of the rTask's
// output, which is contiguous, so the device finds an element's operands
// from its offset in the output alone. Step ops are AnvilEwOp codes.
#define ANVIL_EPI_MAX_STEPS 8
#define ANVIL_EPI_MAX_INPUTS 6

// Operand references of a step.
#define ANVIL_EPI_NONE (-1)            // no operand (the op ignores it)
#define ANVIL_EPI_VALUE(k) (k)         // value k, 0 <= k <= ANVIL_EPI_MAX_STEPS
#define ANVIL_EPI_INPUT(i) (16 + (i))  // input view i
#define ANVIL_EPI_SCALAR 32            // the step's scalar

#define ANVIL_EPI_STEP_FIELDS(F, A, A2) \
    F(int, op)     /* AnvilEwOp */     \
    F(int, a)      /* operand references */ \
    F(int, b)                          \
    F(float, scalar)
struct AnvilEpiStep {
    ANVIL_DECLARE_FIELDS(ANVIL_EPI_STEP_FIELDS)
};

// Epilogues live in one table of the emitted source; an rOp's params name
// their entry (entry 0 is empty: zero-initialised params have none).
#define ANVIL_EPILOGUE_FIELDS(F, A, A2)                                                       \
    F(int, nsteps)   /* 0..ANVIL_EPI_MAX_STEPS */                                           \
    F(int, ninputs)  /* 0..ANVIL_EPI_MAX_INPUTS */                                          \
    F(int, rank)     /* of shape, 1..ANVIL_MAX_RANK */                                      \
    F(int, pad_)                                                                            \
    A(AnvilEpiStep, steps, ANVIL_EPI_MAX_STEPS)                                             \
    A(int, in_dtype, ANVIL_EPI_MAX_INPUTS)  /* AnvilDTypeCode */                            \
    A(anvil_i64, shape, ANVIL_MAX_RANK)     /* the output's, adjacent dims merged where every view allows */ \
    A(anvil_i64, in_off, ANVIL_EPI_MAX_INPUTS)                                              \
    A2(anvil_i64, in_stride, ANVIL_EPI_MAX_INPUTS, ANVIL_MAX_RANK)  /* elements; 0 where broadcast */
struct AnvilEpilogue {
    ANVIL_DECLARE_FIELDS(ANVIL_EPILOGUE_FIELDS)
};

// Elementwise functions. A tile of an elementwise rOperator is a range of
// `tile_elems` consecutive elements of its iteration shape.
enum AnvilEwOp {
    ANVIL_EW_CONST = 0,  // out = scalar
    ANVIL_EW_COPY,       // out = a  (transpose, slice, concat parts, reshape copies)
    ANVIL_EW_ADD, ANVIL_EW_SUB, ANVIL_EW_MUL, ANVIL_EW_DIV, ANVIL_EW_MAX, ANVIL_EW_MIN, ANVIL_EW_POW,
    ANVIL_EW_RELU, ANVIL_EW_SIGMOID, ANVIL_EW_TANH, ANVIL_EW_EXP, ANVIL_EW_LOG, ANVIL_EW_SQRT,
    ANVIL_EW_RSQRT, ANVIL_EW_NEG, ANVIL_EW_ABS, ANVIL_EW_SILU, ANVIL_EW_GELU, ANVIL_EW_GELU_TANH,
    ANVIL_EW_ERF,
    ANVIL_EW_COUNT
};

// out[i] = f(a[i], b[i]) over the iteration `shape`; every operand is a
// strided view of the arena (byte offset of element 0, strides in elements),
// so broadcasting (stride 0), transposes and slices need no other code.
#define ANVIL_EW_PARAMS_FIELDS(F, A, A2)                                                    \
    F(int, op)                  /* AnvilEwOp */                                           \
    F(int, rank)                /* of shape, 0..ANVIL_MAX_RANK */                         \
    F(int, ninputs)             /* 0..2 */                                                \
    F(int, epilogue)            /* index into the epilogue table (AnvilEpilogue); 0: none */ \
    F(anvil_i64, numel)         /* product of shape */                                    \
    F(anvil_i64, tile_elems)    /* elements per tile */                                   \
    A(anvil_i64, shape, ANVIL_MAX_RANK)                                                   \
    F(anvil_i64, out_off)                                                                 \
    A(anvil_i64, out_stride, ANVIL_MAX_RANK)                                              \
    A(anvil_i64, in_off, 2)                                                               \
    A2(anvil_i64, in_stride, 2, ANVIL_MAX_RANK)                                            \
    F(float, scalar)            /* ANVIL_EW_CONST */                                      \
    F(int, pad2_)
struct EwParams {
    ANVIL_DECLARE_FIELDS(ANVIL_EW_PARAMS_FIELDS)
};

// Row ops a matmul applies to its finished tile (shared-memory fusion).
enum AnvilMmRowOp { ANVIL_MM_ROW_NONE = 0, ANVIL_MM_ROW_SOFTMAX, ANVIL_MM_ROW_LAYERNORM, ANVIL_MM_ROW_RMSNORM };

// A norm of A's rows that a GEMM tile (CUDA-core or tensor-core) computes
// itself (rtasks/a_norm.cuh); its gamma and beta are folded into B and the bias.
enum AnvilMmANorm { ANVIL_MM_A_NORM_NONE = 0, ANVIL_MM_A_LAYERNORM, ANVIL_MM_A_RMSNORM };

// How a matmul tile computes: staged through shared memory on CUDA cores
// (matmul.cuh), streamed for at most ANVIL_GEMV_MAX_M rows (gemv.cuh: bm is
// then only the rows a tile covers, and bk is unused), or on tensor cores
// (matmul_tc.cuh: f16 and bf16; f32 as TF32 or 3xTF32 where the run's
// precision allows). A conv2d tile computes tiled (conv2d.cuh) or on
// tensor cores (conv2d_tc.cuh, f16 and bf16). ANVIL_MM_WGMMA: Hopper's
// warpgroup MMA (matmul_wgmma.cuh, f16 and bf16, sm_90a; only on request
// until its cross-check has passed on a device).
enum AnvilMmAlgo {
    ANVIL_MM_TILED = 0,
    ANVIL_MM_GEMV = 1,
    ANVIL_MM_TENSOR = 2,
    ANVIL_MM_TENSOR_TF32 = 3,
    ANVIL_MM_TENSOR_3XTF32 = 4,
    ANVIL_MM_WGMMA = 5
};

// C[b] = op(A[b]) @ op(B[b]) for every batch index b; a tile is one BM x BN
// block of one batch. BM, BN, BK are template arguments of the device code;
// bm, bn and bk repeat them for the host (footprints, emission).
// row_op: a row op fused over N (tiles_n == 1: a tile holds whole rows),
// applied after `epilogue` to the tile kept in shared memory, then the
// `row_epilogue` (0: none) before the store.
#define ANVIL_MATMUL_PARAMS_FIELDS(F, A, A2)                                               \
    F(int, M) F(int, N) F(int, K)                                                        \
    F(int, bm) F(int, bn) F(int, bk)                                                     \
    F(int, tiles_m) F(int, tiles_n)                                                      \
    F(int, batch_rank)          /* 0..ANVIL_MAX_BATCH_RANK */                            \
    F(int, epilogue)            /* index into the epilogue table; 0: none */             \
    F(int, row_op)              /* AnvilMmRowOp */                                       \
    F(int, row_epilogue)                                                                 \
    F(int, gamma_dtype)         /* AnvilDTypeCode of the norms' gamma and beta */        \
    F(int, beta_dtype)                                                                   \
    F(float, eps)                                                                        \
    F(int, algo)                /* AnvilMmAlgo */                                        \
    F(int, stages)              /* tensor cores: cp.async stages (0: ANVIL_TC_STAGES) */ \
    F(int, a_rms)               /* 1: A's rows are RMS-normalised in the tile (GEMV) */  \
    F(int, b_fixed)             /* 1: B is an input or param: no task writes it */       \
    F(float, a_rms_eps)                                                                  \
    F(int, a_norm)              /* AnvilMmANorm: A's rows normalised in the tile (a_norm.cuh) */ \
    F(float, a_norm_eps)                                                                 \
    F(anvil_i64, a_map)         /* A's tensor map in the arena (wgmma, TMA); 0: none */   \
    F(anvil_i64, b_map)         /* B's, only beside A's */                               \
    F(anvil_i64, batches)                                                                \
    F(anvil_i64, a_off) F(anvil_i64, b_off) F(anvil_i64, c_off)                          \
    F(anvil_i64, gamma_off)     /* contiguous over N; < 0: absent */                     \
    F(anvil_i64, beta_off)                                                               \
    F(anvil_i64, a_sm)          /* element strides of A along M and K (after transpose_a) */ \
    F(anvil_i64, a_sk)                                                                   \
    F(anvil_i64, b_sk) F(anvil_i64, b_sn)                                                \
    F(anvil_i64, c_sm) F(anvil_i64, c_sn)                                                \
    A(anvil_i64, batch_shape, ANVIL_MAX_BATCH_RANK)                                      \
    A(anvil_i64, a_sb, ANVIL_MAX_BATCH_RANK)  /* 0 where A is broadcast */               \
    A(anvil_i64, b_sb, ANVIL_MAX_BATCH_RANK)                                             \
    A(anvil_i64, c_sb, ANVIL_MAX_BATCH_RANK)
struct MatmulParams {
    ANVIL_DECLARE_FIELDS(ANVIL_MATMUL_PARAMS_FIELDS)
};

// Row-wise operators: each "row" is one reduction instance. Its kept
// multi-index locates it, its reduced multi-index walks it.
enum AnvilRowOp {
    ANVIL_ROW_SOFTMAX = 0,  // out has the input's shape
    ANVIL_ROW_LAYERNORM,    // out has the input's shape; gamma, beta over the row
    ANVIL_ROW_RMSNORM,      // out has the input's shape; gamma over the row
    ANVIL_ROW_SUM,          // out has one element per row
    ANVIL_ROW_MEAN,
    ANVIL_ROW_MAX,
    // A split-K GEMM's reduction (src/schedule/split_k.cpp): each row is one
    // output, its row_len terms the f32 partial sums of the K slices, added
    // in slice order by one thread, then the GEMM's epilogue; no graph op.
    ANVIL_ROW_SPLIT_SUM,
    // A split-K reduce that also applies the row op `norm_op` (softmax,
    // layernorm or rmsnorm) over the GEMM's rows: each row is one row of the
    // GEMM's contiguous output (row_len = N <= ANVIL_ROW_WARP_MAX), its
    // elements' k_split partials slice_stride apart; the GEMM's epilogue,
    // then the row op, then `row_epilogue`; out is the row op's output, and
    // where other rOps read the GEMM's result, pre_off its copy.
    ANVIL_ROW_SPLIT_NORM,
    ANVIL_ROW_COUNT
};
// Rows up to this long (without an epilogue) are reduced by one warp each,
// in registers (rtasks/rowwise.cuh); longer ones by the whole block. A
// split-K reduce applies a row op over rows up to this long (four values a
// thread of the block in registers).
#define ANVIL_ROW_WARP_MAX 1024

#define ANVIL_ROW_PARAMS_FIELDS(F, A, A2)                                                  \
    F(int, op)                  /* AnvilRowOp */                                         \
    F(int, kept_rank)           /* 0..ANVIL_MAX_RANK */                                  \
    F(int, red_rank)            /* 1..ANVIL_MAX_RANK */                                  \
    F(int, rows_per_tile)                                                                \
    F(anvil_i64, rows)          /* product of kept_shape */                              \
    F(anvil_i64, row_len)       /* product of red_shape */                               \
    F(anvil_i64, in_off) F(anvil_i64, out_off)                                           \
    F(anvil_i64, gamma_off)     /* gamma/beta: contiguous, indexed by the row position */ \
    F(anvil_i64, beta_off)                                                               \
    A(anvil_i64, kept_shape, ANVIL_MAX_RANK)                                             \
    A(anvil_i64, kept_in, ANVIL_MAX_RANK)   /* element strides of the input */           \
    A(anvil_i64, kept_out, ANVIL_MAX_RANK)  /* element strides of the output */          \
    A(anvil_i64, red_shape, ANVIL_MAX_RANK)                                              \
    A(anvil_i64, red_in, ANVIL_MAX_RANK)                                                 \
    A(anvil_i64, red_out, ANVIL_MAX_RANK)   /* 0 for reductions (one output per row) */  \
    F(float, eps)                                                                        \
    F(int, epilogue)            /* index into the epilogue table; 0: none */             \
    F(int, norm_op)             /* ANVIL_ROW_SPLIT_NORM: the AnvilRowOp after the sum */ \
    F(int, row_epilogue)        /* ... its epilogue (after the row op); 0: none */       \
    F(int, k_split)             /* ... the partials per element */                       \
    F(int, mid_dtype)           /* ... AnvilDTypeCode the GEMM's result is rounded to */ \
    F(anvil_i64, slice_stride)  /* ... elements between one slice's partials and the next's */ \
    F(anvil_i64, pre_off)       /* ... where it also stores the GEMM's result (mid_dtype); < 0: not */
struct RowParams {
    ANVIL_DECLARE_FIELDS(ANVIL_ROW_PARAMS_FIELDS)
};

// A sliding window over the H and W of an NCHW tensor x [N, C, H, W] giving
// y [N, O, OH, OW]: conv2d (y = x (*) w + bias, `groups` groups of Cg input
// and Og output channels) and the pools (O = C, groups = C, Cg = Og = 1, no
// w). Output cell (oh, ow) reads rows oh * sh - pt + i * dh, i < KH, and
// columns likewise; cells outside x are padding (bottom and right padding
// only set OH and OW). x, w and y are contiguous.
enum AnvilWinOp {
    ANVIL_WIN_CONV = 0,     // sum of x * w over Cg x KH x KW, + bias
    ANVIL_WIN_MAX,          // padding never wins
    ANVIL_WIN_AVG,          // divided by the cells of x in the window
    ANVIL_WIN_AVG_PAD,      // divided by KH * KW (count_include_pad)
    ANVIL_WIN_COUNT
};

// Two kinds read it. conv2d (implicit GEMM): per image and group, GEMM
// M = OH * OW pixels, N = Og channels, K = Cg * KH * KW, a tile is one
// bm x bn block: tile = (((ks * N + n) * groups + g) * tiles_m + tm) * tiles_n + tn,
// ks the K slice of a split-K partials rOp (k_split > 1: slice ks sums k in
// [ks * k_slice, (ks + 1) * k_slice) and writes f32 y block ks of
// [k_split][N][O][OH][OW]; only slice 0 adds the bias; 0 otherwise).
// window (direct): a tile is `tile_elems` consecutive elements of y.
#define ANVIL_WINDOW_PARAMS_FIELDS(F, A, A2)                                               \
    F(int, op)                  /* AnvilWinOp */                                         \
    F(int, N) F(int, C) F(int, H) F(int, W) F(int, O) F(int, OH) F(int, OW)              \
    F(int, KH) F(int, KW) F(int, sh) F(int, sw) F(int, pt) F(int, pl) F(int, dh) F(int, dw) \
    F(int, groups) F(int, Cg) F(int, Og)                                                 \
    F(int, bm)                  /* bm .. tiles_n: conv2d kind only */                    \
    F(int, bn) F(int, bk) F(int, tiles_m) F(int, tiles_n)                                \
    F(int, epilogue)            /* index into the epilogue table; 0: none */             \
    F(int, algo)                /* conv2d: ANVIL_MM_TILED, ANVIL_MM_TENSOR, _TF32 or _3XTF32 (AnvilMmAlgo) */ \
    F(int, stages)              /* conv2d on tensor cores: cp.async stages (0: ANVIL_TC_STAGES) */ \
    F(int, k_split)             /* conv2d split-K partials: K slices (0, 1: whole) */ \
    F(int, k_slice)             /* ... each k_slice long (the last may be shorter) */ \
    F(anvil_i64, tile_elems)    /* window kind only */                                   \
    F(anvil_i64, x_off) F(anvil_i64, w_off)                                              \
    F(anvil_i64, bias_off)      /* < 0: no bias */                                       \
    F(anvil_i64, y_off)
struct WindowParams {
    ANVIL_DECLARE_FIELDS(ANVIL_WINDOW_PARAMS_FIELDS)
};

// Per-channel affine (inference batchnorm) over x [N, C, inner...]:
// y = (x - mean[c]) * rsqrt(var[c] + eps) * scale[c] + bias[c], with
// c = (i / inner) % C. A tile is `tile_elems` consecutive elements.
#define ANVIL_CHANNEL_PARAMS_FIELDS(F, A, A2)                                              \
    F(int, C)                                                                            \
    F(int, pad_)                                                                         \
    F(anvil_i64, inner)         /* product of the dims after C (1 for rank 2) */         \
    F(anvil_i64, numel)                                                                  \
    F(anvil_i64, tile_elems)                                                             \
    F(anvil_i64, x_off) F(anvil_i64, y_off) F(anvil_i64, scale_off)                      \
    F(anvil_i64, bias_off) F(anvil_i64, mean_off) F(anvil_i64, var_off)                  \
    F(float, eps)                                                                        \
    F(int, pad2_)
struct ChannelParams {
    ANVIL_DECLARE_FIELDS(ANVIL_CHANNEL_PARAMS_FIELDS)
};

// Row gather (embedding): out[p, :] = table[ids[p], :] for every position p
// of ids; a tile is rows [tile * rows_per_tile, ...). An id outside [0, V)
// is never read through: the task records ANVIL_BAD_INDEX and the run stops.
#define ANVIL_GATHER_PARAMS_FIELDS(F, A, A2)                                               \
    F(int, V) F(int, D)                                                                  \
    F(int, rows_per_tile)                                                                \
    F(int, pad_)                                                                         \
    F(anvil_i64, rows)          /* number of ids */                                      \
    F(anvil_i64, table_off) F(anvil_i64, ids_off) F(anvil_i64, out_off)
struct GatherParams {
    ANVIL_DECLARE_FIELDS(ANVIL_GATHER_PARAMS_FIELDS)
};

// Which device function (a kind template with its template arguments: the
// "variant", numbered by emit.cpp) runs an rOp, and where its params stand
// in that kind's params table.
struct AnvilROpRef {
    int variant;
    int index;
};

// One task: one tile of one rOperator. It waits for the counters
// waits[wait_begin .. + wait_count) (those covering the published outputs it
// reads) and, once published, adds 1 to signals[signal_begin .. + signal_count).
struct AnvilTask {
    int op;
    int tile;
    int wait_begin;
    int wait_count;
    int signal_begin;
    int signal_count;
    int ticket_begin;  // the tickets it takes after its arrivals (AnvilSync::tickets)
    int ticket_count;
};

// What went wrong in a run, written once by the first task that fails.
enum AnvilStatusCode {
    ANVIL_OK = 0,
    ANVIL_DEADLOCK = 1,   // a waited counter was not complete within the spin bound
    ANVIL_BAD_INDEX = 2,  // a gathered index was out of range
    ANVIL_BAD_VARIANT = 3,  // a task's rOp names a variant its kernel's dispatcher has no case for
    ANVIL_SIMT_CHECK = 4,   // simt backend: a thread-level check failed (the message is the library's)
};

struct AnvilStatus {
    int code;
    int task;        // the task that failed
    int waiting_on;  // ANVIL_DEADLOCK: the counter it waited for; ANVIL_BAD_INDEX: the
                     // position (flat, row-major) of the bad index in its tensor;
                     // ANVIL_BAD_VARIANT: the task's rOp
    int detail;      // ANVIL_BAD_INDEX: the bad index; ANVIL_BAD_VARIANT: the variant
};

// One task's measured timeline, written by its block's thread 0 when the
// source is emitted with ANVIL_TRACE (the profiler's --trace): when it
// began waiting for its dependencies, when its body started, when every
// thread had finished the body (a barrier), when it had published; all
// %globaltimer nanoseconds (host: CLOCK_MONOTONIC). body_end_ns to end_ns
// is the arrivals' cost (release atomics), which the H200 traces of
// 2026-11-28 could not tell from the body's.
//
// A GEMM's body (and a GEMV's ring walk) is cut into phases by marks its K
// loop leaves (trace_marks.cuh), each when every thread has reached it: its first
// copies about to be issued (the end of the prologue: params, placement,
// tables), its first slice in shared memory (the pipeline's fill), its K
// loop ended (the epilogue follows). mark_ns[m] counts nanoseconds from start_ns;
// ANVIL_NO_MARK where the task left no such mark (every other kind).
enum AnvilTraceMark { ANVIL_MARK_STAGING = 0, ANVIL_MARK_FIRST_SLICE, ANVIL_MARK_LOOP_END, ANVIL_TRACE_MARKS };
#define ANVIL_NO_MARK 0xffffffffu
struct AnvilTraceRecord {
    unsigned long long ready_ns;
    unsigned long long start_ns;
    unsigned long long body_end_ns;
    unsigned long long end_ns;
    unsigned sm;     // %smid (host: the worker thread)
    unsigned block;  // the block of its launch
    unsigned mark_ns[ANVIL_TRACE_MARKS];
};

#endif
