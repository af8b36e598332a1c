// The host backend on hand-built tile graphs and schedules: every rTask kind
// and op code against a naive loop in f32, f16 and bf16, conversions bit for
// bit, tile-level dependencies across blocks, and a broken schedule that must
// end in a deadlock report instead of a hang.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "anvil/error.h"
#include "anvil/pipeline.h"
#include "runtime/host_backend.h"

namespace anvil_test {

using namespace anvil;

// ---------------------------------------------------------------- building

// A TileGraph built by hand: tensors laid out one after another in the
// arena, 256-byte aligned.
struct Builder {
    TileGraph tg;
    explicit Builder(const std::string& model) { tg.model_name = model; }

    int64_t tensor(const std::string& name, DType t, const Shape& shape) {
        TensorBuffer b;
        b.name = name;
        b.dtype = t;
        b.shape = shape;
        b.offset = tg.arena_bytes;
        b.bytes = numel(shape) * dtype_size(t);
        tg.arena_bytes += (b.bytes + 255) / 256 * 256;
        tg.buffers.push_back(b);
        return b.offset;
    }
    int64_t input(const std::string& n, DType t, const Shape& s) { tg.inputs.push_back(n); return tensor(n, t, s); }
    int64_t param(const std::string& n, DType t, const Shape& s) { tg.params.push_back(n); return tensor(n, t, s); }
    int64_t output(const std::string& n, DType t, const Shape& s) { tg.outputs.push_back(n); return tensor(n, t, s); }

    template <class P>
    void rop(const std::string& name, TaskKind kind, std::vector<DType> dtypes, const P& params, int tiles) {
        ROp op;
        op.name = name;
        op.kind = kind;
        op.dtypes = std::move(dtypes);
        op.params = params;
        op.tiles = tiles;
        tg.rops.push_back(op);
    }
};

struct View {
    int64_t off = 0;
    Strides strides;
};

EwParams ew_params(AnvilEwOp op, const Shape& shape, const View& out, const std::vector<View>& ins,
                   int64_t tile_elems, float scalar = 0) {
    EwParams p{};
    p.op = op;
    p.rank = static_cast<int>(shape.size());
    p.ninputs = static_cast<int>(ins.size());
    p.numel = numel(shape);
    p.tile_elems = tile_elems;
    for (int d = 0; d < p.rank; ++d) {
        p.shape[d] = shape[d];
        p.out_stride[d] = out.strides[d];
        for (size_t i = 0; i < ins.size(); ++i) p.in_stride[i][d] = ins[i].strides[d];
    }
    p.out_off = out.off;
    for (size_t i = 0; i < ins.size(); ++i) p.in_off[i] = ins[i].off;
    p.scalar = scalar;
    return p;
}

int ew_tiles(const EwParams& p) { return static_cast<int>((p.numel + p.tile_elems - 1) / p.tile_elems); }

RowParams row_params(AnvilRowOp op, const Shape& kept, const Strides& kept_in, const Strides& kept_out,
                     const Shape& red, const Strides& red_in, const Strides& red_out, int64_t in_off,
                     int64_t out_off, int64_t gamma_off, int64_t beta_off, int rows_per_tile) {
    RowParams p{};
    p.op = op;
    p.kept_rank = static_cast<int>(kept.size());
    p.red_rank = static_cast<int>(red.size());
    p.rows_per_tile = rows_per_tile;
    p.rows = numel(kept);
    p.row_len = numel(red);
    p.in_off = in_off;
    p.out_off = out_off;
    p.gamma_off = gamma_off;
    p.beta_off = beta_off;
    for (size_t d = 0; d < kept.size(); ++d) {
        p.kept_shape[d] = kept[d];
        p.kept_in[d] = kept_in[d];
        p.kept_out[d] = kept_out[d];
    }
    for (size_t d = 0; d < red.size(); ++d) {
        p.red_shape[d] = red[d];
        p.red_in[d] = red_in[d];
        p.red_out[d] = red_out[d];
    }
    p.eps = 1e-5f;
    return p;
}

int row_tiles(const RowParams& p) { return static_cast<int>((p.rows + p.rows_per_tile - 1) / p.rows_per_tile); }

// An operand of a matmul: element strides along its two matrix axes (after
// any transpose) and along the batch axes.
struct MatView {
    int64_t off = 0;
    int64_t s0 = 0, s1 = 0;
    Strides sb;
};

MatmulParams mm_params(int M, int N, int K, int bm, int bn, int bk, const Shape& batch, const MatView& a,
                       const MatView& b, const MatView& c) {
    MatmulParams p{};
    p.M = M;
    p.N = N;
    p.K = K;
    p.bm = bm;
    p.bn = bn;
    p.bk = bk;
    p.tiles_m = (M + bm - 1) / bm;
    p.tiles_n = (N + bn - 1) / bn;
    p.batch_rank = static_cast<int>(batch.size());
    p.batches = numel(batch);
    p.a_off = a.off;
    p.a_sm = a.s0;
    p.a_sk = a.s1;
    p.b_off = b.off;
    p.b_sk = b.s0;
    p.b_sn = b.s1;
    p.c_off = c.off;
    p.c_sm = c.s0;
    p.c_sn = c.s1;
    for (size_t d = 0; d < batch.size(); ++d) {
        p.batch_shape[d] = batch[d];
        p.a_sb[d] = a.sb[d];
        p.b_sb[d] = b.sb[d];
        p.c_sb[d] = c.sb[d];
    }
    return p;
}

int mm_tiles(const MatmulParams& p) { return static_cast<int>(p.batches * p.tiles_m * p.tiles_n); }

// (rop, tile) -> the (rop, tile) pairs it reads.
using DepFn = std::function<std::vector<std::pair<int, int>>(int rop, int tile)>;

// Every tile of every rOp, rOp after rOp. round_robin: one launch, task i
// on block i % blocks. per_op: the baseline's shape, one launch per rOp
// with one task per block and no dependencies.
Schedule make_schedule(const TileGraph& tg, int blocks, const DepFn& deps = {}, bool per_op = false) {
    Schedule s;
    s.policy = per_op ? "per_op (by hand)" : "round robin (by hand)";
    s.tiles = tg;
    std::vector<int> base;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        base.push_back(static_cast<int>(s.tasks.size()));
        for (int t = 0; t < tg.rops[r].tiles; ++t) {
            Task task;
            task.rop = static_cast<int>(r);
            task.tile = t;
            if (deps && !per_op)
                for (auto [pr, pt] : deps(static_cast<int>(r), t)) task.deps.push_back(base[pr] + pt);
            s.tasks.push_back(task);
        }
    }
    if (per_op) {
        for (size_t r = 0; r < tg.rops.size(); ++r) {
            Launch l;
            l.name = "anvil_op_" + std::to_string(r);
            for (int t = 0; t < tg.rops[r].tiles; ++t) l.queues.push_back({base[r] + t});
            s.launches.push_back(l);
        }
    } else {
        Launch l;
        l.name = "anvil_megakernel";
        l.queues.resize(static_cast<size_t>(blocks));
        for (size_t i = 0; i < s.tasks.size(); ++i) l.queues[i % blocks].push_back(static_cast<int>(i));
        s.launches.push_back(l);
    }
    return s;
}

// ---------------------------------------------------------------- values

struct Inputs {
    std::mt19937 rng{1234};
    TensorMap values;
    HostTensor& fill(const TileGraph& tg, const std::string& name, double lo, double hi, bool random_sign = false) {
        const TensorBuffer* buf = nullptr;
        for (const auto& b : tg.buffers)
            if (b.name == name) buf = &b;
        REQUIRE(buf != nullptr);
        HostTensor t(buf->dtype, buf->shape);
        std::uniform_real_distribution<double> u(lo, hi);
        for (int64_t i = 0; i < t.numel(); ++i) {
            double v = u(rng);
            if (random_sign && (rng() & 1)) v = -v;
            t.set(i, v);
        }
        return values[name] = std::move(t);
    }
};

// |got - want| <= rtol(dtype) * |want| + 1e-5 * mag + 1e-6, where mag is
// the size of the terms that produced want (rounding of the f32 math).
double rtol_of(DType t) { return t == DType::f16 ? 1e-3 : t == DType::bf16 ? 8e-3 : 1e-5; }

void expect_close(const std::string& what, const HostTensor& got, const std::vector<double>& want,
                  const std::vector<double>& mag) {
    REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < got.numel(); ++i) {
        const double g = got.get(i), w = want[i];
        const double tol = rtol_of(got.dtype) * std::fabs(w) + 1e-5 * mag[i] + 1e-6;
        if (!(std::fabs(g - w) <= tol)) {
            if (first < 0) first = i;
            ++bad;
        }
    }
    INFO(what << " (" << dtype_name(got.dtype) << "): " << bad << " of " << got.numel() << " elements off; first at "
              << first << ": got " << (first >= 0 ? got.get(first) : 0) << ", want " << (first >= 0 ? want[first] : 0));
    CHECK(bad == 0);
}

void expect_close(const std::string& what, const HostTensor& got, const std::vector<double>& want) {
    std::vector<double> mag(want.size());
    for (size_t i = 0; i < want.size(); ++i) mag[i] = std::fabs(want[i]);
    expect_close(what, got, want, mag);
}

// ---------------------------------------------------------------- elementwise

double ref_ew(int op, double a, double b, double scalar) {
    switch (op) {
        case ANVIL_EW_CONST: return scalar;
        case ANVIL_EW_COPY: return a;
        case ANVIL_EW_ADD: return a + b;
        case ANVIL_EW_SUB: return a - b;
        case ANVIL_EW_MUL: return a * b;
        case ANVIL_EW_DIV: return a / b;
        case ANVIL_EW_MAX: return std::max(a, b);
        case ANVIL_EW_MIN: return std::min(a, b);
        case ANVIL_EW_POW: return std::pow(a, b);
        case ANVIL_EW_RELU: return a > 0 ? a : 0;
        case ANVIL_EW_SIGMOID: return 1 / (1 + std::exp(-a));
        case ANVIL_EW_TANH: return std::tanh(a);
        case ANVIL_EW_EXP: return std::exp(a);
        case ANVIL_EW_LOG: return std::log(a);
        case ANVIL_EW_SQRT: return std::sqrt(a);
        case ANVIL_EW_RSQRT: return 1 / std::sqrt(a);
        case ANVIL_EW_NEG: return -a;
        case ANVIL_EW_ABS: return std::fabs(a);
        case ANVIL_EW_SILU: return a / (1 + std::exp(-a));
        case ANVIL_EW_GELU: return 0.5 * a * (1 + std::erf(a / std::sqrt(2.0)));
        case ANVIL_EW_GELU_TANH:
            return 0.5 * a * (1 + std::tanh(std::sqrt(2 / M_PI) * (a + 0.044715 * a * a * a)));
        case ANVIL_EW_ERF: return std::erf(a);
    }
    return NAN;
}

// Iteration shape [5, 67]. x is stored [67, 5] and read transposed; y is
// [67], broadcast along the first axis; p holds positive values (log, sqrt,
// rsqrt, pow's base).
constexpr int64_t kEwR = 5, kEwC = 67;

struct EwCase {
    AnvilEwOp op;
    const char* name;
    std::vector<char> ins;  // 'x' (transposed), 'y' (broadcast), 'p' (positive)
};

const std::vector<EwCase>& ew_cases() {
    static const std::vector<EwCase> cases = {
        {ANVIL_EW_CONST, "const", {}},        {ANVIL_EW_COPY, "copy", {'x'}},
        {ANVIL_EW_ADD, "add", {'x', 'y'}},    {ANVIL_EW_SUB, "sub", {'x', 'y'}},
        {ANVIL_EW_MUL, "mul", {'x', 'y'}},    {ANVIL_EW_DIV, "div", {'x', 'y'}},
        {ANVIL_EW_MAX, "max", {'x', 'y'}},    {ANVIL_EW_MIN, "min", {'y', 'x'}},
        {ANVIL_EW_POW, "pow", {'p', 'y'}},    {ANVIL_EW_RELU, "relu", {'x'}},
        {ANVIL_EW_SIGMOID, "sigmoid", {'x'}}, {ANVIL_EW_TANH, "tanh", {'x'}},
        {ANVIL_EW_EXP, "exp", {'x'}},         {ANVIL_EW_LOG, "log", {'p'}},
        {ANVIL_EW_SQRT, "sqrt", {'p'}},       {ANVIL_EW_RSQRT, "rsqrt", {'p'}},
        {ANVIL_EW_NEG, "neg", {'x'}},         {ANVIL_EW_ABS, "abs", {'x'}},
        {ANVIL_EW_SILU, "silu", {'x'}},       {ANVIL_EW_GELU, "gelu", {'x'}},
        {ANVIL_EW_GELU_TANH, "gelu_tanh", {'y'}}, {ANVIL_EW_ERF, "erf", {'x'}},
    };
    return cases;
}

Schedule ew_schedule(DType t, bool per_op = false) {
    Builder b(std::string("ew_") + dtype_name(t));
    const View x{b.input("x", t, {kEwC, kEwR}), {1, kEwR}};
    const View y{b.input("y", t, {kEwC}), {0, 1}};
    const View p{b.param("p", t, {kEwR, kEwC}), {kEwC, 1}};
    for (const EwCase& c : ew_cases()) {
        const View out{b.output(c.name, t, {kEwR, kEwC}), {kEwC, 1}};
        std::vector<View> ins;
        for (char i : c.ins) ins.push_back(i == 'x' ? x : i == 'y' ? y : p);
        const EwParams ep = ew_params(c.op, {kEwR, kEwC}, out, ins, 64, 1.5f);
        b.rop(c.name, TaskKind::elementwise, {t, t, t}, ep, ew_tiles(ep));
    }
    return make_schedule(b.tg, 3, {}, per_op);
}

TensorMap ew_values(const TileGraph& tg) {
    Inputs in;
    in.fill(tg, "x", -2, 2);
    in.fill(tg, "y", 0.5, 2, true);
    in.fill(tg, "p", 0.25, 2);
    return in.values;
}

void check_ew(const TensorMap& values, const TensorMap& out) {
    for (const EwCase& c : ew_cases()) {
        std::vector<double> want;
        for (int64_t i = 0; i < kEwR; ++i)
            for (int64_t j = 0; j < kEwC; ++j) {
                auto val = [&](char k) {
                    return k == 'x' ? values.at("x").get(j * kEwR + i)
                                    : k == 'y' ? values.at("y").get(j) : values.at("p").get(i * kEwC + j);
                };
                const double a = c.ins.size() > 0 ? val(c.ins[0]) : 0;
                const double bb = c.ins.size() > 1 ? val(c.ins[1]) : 0;
                want.push_back(ref_ew(c.op, a, bb, 1.5));
            }
        expect_close(c.name, out.at(c.name), want);
    }
}

// ---------------------------------------------------------------- rowwise

// r: [4, 37, 6]. Rows over the last axis, over the middle axis, and over
// the last two axes.
constexpr int64_t kR0 = 4, kR1 = 37, kR2 = 6;

Schedule row_schedule(DType t) {
    Builder b(std::string("rows_") + dtype_name(t));
    const Shape full{kR0, kR1, kR2};
    const int64_t in = b.input("r", t, full);
    const int64_t g = b.param("g", t, {kR2}), be = b.param("be", t, {kR2});
    const int64_t g2 = b.param("g2", t, {kR1 * kR2}), be2 = b.param("be2", t, {kR1 * kR2});
    const Strides last_kept{kR1 * kR2, kR2}, mid_kept{kR1 * kR2, 1};
    auto add = [&](const char* name, AnvilRowOp op, const RowParams& p) {
        b.rop(name, TaskKind::rowwise, {t, t, t, t}, p, row_tiles(p));
    };
    auto last = [&](const char* name, AnvilRowOp op, int64_t gamma, int64_t beta) {
        const int64_t out = b.output(name, t, full);
        add(name, op, row_params(op, {kR0, kR1}, last_kept, last_kept, {kR2}, {1}, {1}, in, out, gamma, beta, 5));
    };
    last("softmax_last", ANVIL_ROW_SOFTMAX, -1, -1);
    last("layernorm_last", ANVIL_ROW_LAYERNORM, g, be);
    last("rmsnorm_last", ANVIL_ROW_RMSNORM, g, -1);
    {
        const int64_t out = b.output("softmax_mid", t, full);
        add("softmax_mid", ANVIL_ROW_SOFTMAX,
            row_params(ANVIL_ROW_SOFTMAX, {kR0, kR2}, mid_kept, mid_kept, {kR1}, {kR2}, {kR2}, in, out, -1, -1, 5));
    }
    {
        const int64_t out = b.output("layernorm_2ax", t, full);
        add("layernorm_2ax", ANVIL_ROW_LAYERNORM,
            row_params(ANVIL_ROW_LAYERNORM, {kR0}, {kR1 * kR2}, {kR1 * kR2}, {kR1, kR2}, {kR2, 1}, {kR2, 1}, in, out,
                       g2, be2, 1));
    }
    for (auto [name, op] : {std::pair{"sum_mid", ANVIL_ROW_SUM}, {"mean_mid", ANVIL_ROW_MEAN}, {"max_mid", ANVIL_ROW_MAX}}) {
        const int64_t out = b.output(name, t, {kR0, kR2});
        add(name, op, row_params(op, {kR0, kR2}, mid_kept, {kR2, 1}, {kR1}, {kR2}, {0}, in, out, -1, -1, 7));
    }
    return make_schedule(b.tg, 3);
}

TensorMap row_values(const TileGraph& tg) {
    Inputs in;
    in.fill(tg, "r", -2, 2);
    in.fill(tg, "g", 0.5, 1.5);
    in.fill(tg, "be", -0.5, 0.5);
    in.fill(tg, "g2", 0.5, 1.5);
    in.fill(tg, "be2", -0.5, 0.5);
    return in.values;
}

void check_rows(const TensorMap& v, const TensorMap& out) {
    const HostTensor& r = v.at("r");
    auto x = [&](int64_t i, int64_t j, int64_t k) { return r.get((i * kR1 + j) * kR2 + k); };
    const std::vector<double> ones(static_cast<size_t>(kR0 * kR1 * kR2), 1.0);
    std::vector<double> sm_last(ones.size()), ln_last(ones.size()), rms_last(ones.size()), sm_mid(ones.size()),
        ln_2ax(ones.size());
    auto at = [&](int64_t i, int64_t j, int64_t k) { return static_cast<size_t>((i * kR1 + j) * kR2 + k); };
    for (int64_t i = 0; i < kR0; ++i) {
        for (int64_t j = 0; j < kR1; ++j) {  // rows over the last axis
            double m = -INFINITY, s = 0, mean = 0, var = 0, ms = 0;
            for (int64_t k = 0; k < kR2; ++k) m = std::max(m, x(i, j, k)), mean += x(i, j, k) / kR2;
            for (int64_t k = 0; k < kR2; ++k)
                s += std::exp(x(i, j, k) - m), var += std::pow(x(i, j, k) - mean, 2) / kR2, ms += x(i, j, k) * x(i, j, k) / kR2;
            for (int64_t k = 0; k < kR2; ++k) {
                sm_last[at(i, j, k)] = std::exp(x(i, j, k) - m) / s;
                ln_last[at(i, j, k)] = (x(i, j, k) - mean) / std::sqrt(var + 1e-5) * v.at("g").get(k) + v.at("be").get(k);
                rms_last[at(i, j, k)] = x(i, j, k) / std::sqrt(ms + 1e-5) * v.at("g").get(k);
            }
        }
        for (int64_t k = 0; k < kR2; ++k) {  // rows over the middle axis
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < kR1; ++j) m = std::max(m, x(i, j, k));
            for (int64_t j = 0; j < kR1; ++j) s += std::exp(x(i, j, k) - m);
            for (int64_t j = 0; j < kR1; ++j) sm_mid[at(i, j, k)] = std::exp(x(i, j, k) - m) / s;
        }
        double mean = 0, var = 0;  // one row over the last two axes
        for (int64_t j = 0; j < kR1 * kR2; ++j) mean += r.get(i * kR1 * kR2 + j) / (kR1 * kR2);
        for (int64_t j = 0; j < kR1 * kR2; ++j) var += std::pow(r.get(i * kR1 * kR2 + j) - mean, 2) / (kR1 * kR2);
        for (int64_t j = 0; j < kR1 * kR2; ++j)
            ln_2ax[static_cast<size_t>(i * kR1 * kR2 + j)] =
                (r.get(i * kR1 * kR2 + j) - mean) / std::sqrt(var + 1e-5) * v.at("g2").get(j) + v.at("be2").get(j);
    }
    expect_close("softmax_last", out.at("softmax_last"), sm_last, ones);
    expect_close("softmax_mid", out.at("softmax_mid"), sm_mid, ones);
    expect_close("layernorm_last", out.at("layernorm_last"), ln_last, ones);
    expect_close("layernorm_2ax", out.at("layernorm_2ax"), ln_2ax, ones);
    expect_close("rmsnorm_last", out.at("rmsnorm_last"), rms_last, ones);

    std::vector<double> sum(kR0 * kR2), mean(kR0 * kR2), mx(kR0 * kR2, -INFINITY), mag(kR0 * kR2), mag_mean(kR0 * kR2);
    for (int64_t i = 0; i < kR0; ++i)
        for (int64_t k = 0; k < kR2; ++k)
            for (int64_t j = 0; j < kR1; ++j) {
                sum[i * kR2 + k] += x(i, j, k);
                mean[i * kR2 + k] += x(i, j, k) / kR1;
                mag[i * kR2 + k] += std::fabs(x(i, j, k));
                mag_mean[i * kR2 + k] += std::fabs(x(i, j, k)) / kR1;
                mx[i * kR2 + k] = std::max(mx[i * kR2 + k], x(i, j, k));
            }
    expect_close("sum_mid", out.at("sum_mid"), sum, mag);
    expect_close("mean_mid", out.at("mean_mid"), mean, mag_mean);
    expect_close("max_mid", out.at("max_mid"), mx);
}

// ---------------------------------------------------------------- matmul

const int kSizes[] = {1, 37, 129};
constexpr int kBig = 129;
// The batched case: C[i, j] = A[i] @ B[j] over batch [2, 3]; A stored
// transposed as At [2, K, M], B stored transposed as Bt [3, N, K].
constexpr int kBM = 37, kBN = 70, kBK = 129;

std::string mm_name(int M, int N, int K) {
    return "mm_" + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K);
}

Schedule mm_schedule(DType t) {
    Builder b(std::string("matmul_") + dtype_name(t));
    // A and B of every size are the top-left corners of one 129 x 129 tensor each.
    const int64_t a = b.input("A", t, {kBig, kBig}), bb = b.param("B", t, {kBig, kBig});
    for (int M : kSizes)
        for (int N : kSizes)
            for (int K : kSizes) {
                const std::string name = mm_name(M, N, K);
                const int64_t c = b.output(name, t, {M, N});
                // One configuration with another tile shape (another template instance).
                const bool small = M == 37 && N == 129 && K == 129;
                const MatmulParams p = mm_params(M, N, K, small ? 32 : 64, small ? 16 : 64, small ? 8 : 16, {},
                                                 {a, kBig, 1, {}}, {bb, kBig, 1, {}}, {c, N, 1, {}});
                b.rop(name, TaskKind::matmul, {t, t, t}, p, mm_tiles(p));
            }
    const int64_t at = b.input("At", t, {2, kBK, kBM}), bt = b.param("Bt", t, {3, kBN, kBK});
    const int64_t c = b.output("bmm", t, {2, 3, kBM, kBN});
    const MatmulParams p = mm_params(kBM, kBN, kBK, 64, 64, 16, {2, 3}, {at, 1, kBM, {kBK * kBM, 0}},
                                     {bt, 1, kBK, {0, kBN * kBK}}, {c, kBN, 1, {3 * kBM * kBN, kBM * kBN}});
    b.rop("bmm", TaskKind::matmul, {t, t, t}, p, mm_tiles(p));
    return make_schedule(b.tg, 3);
}

TensorMap mm_values(const TileGraph& tg) {
    Inputs in;
    for (const char* n : {"A", "B", "At", "Bt"}) in.fill(tg, n, -1, 1);
    return in.values;
}

void check_mm(const TensorMap& v, const TensorMap& out) {
    const HostTensor &A = v.at("A"), &B = v.at("B");
    for (int M : kSizes)
        for (int N : kSizes)
            for (int K : kSizes) {
                std::vector<double> want(static_cast<size_t>(M) * N), mag(want.size());
                for (int m = 0; m < M; ++m)
                    for (int n = 0; n < N; ++n)
                        for (int k = 0; k < K; ++k) {
                            const double p = A.get(m * kBig + k) * B.get(k * kBig + n);
                            want[m * N + n] += p;
                            mag[m * N + n] += std::fabs(p);
                        }
                expect_close(mm_name(M, N, K), out.at(mm_name(M, N, K)), want, mag);
            }
    const HostTensor &At = v.at("At"), &Bt = v.at("Bt");
    std::vector<double> want(static_cast<size_t>(6) * kBM * kBN), mag(want.size());
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 3; ++j)
            for (int m = 0; m < kBM; ++m)
                for (int n = 0; n < kBN; ++n)
                    for (int k = 0; k < kBK; ++k) {
                        const double p = At.get((i * kBK + k) * kBM + m) * Bt.get((j * kBN + n) * kBK + k);
                        const size_t o = static_cast<size_t>(((i * 3 + j) * kBM + m) * kBN + n);
                        want[o] += p;
                        mag[o] += std::fabs(p);
                    }
    expect_close("bmm", out.at("bmm"), want, mag);
}

// ---------------------------------------------------------------- conversions

// Every f16 value and every midpoint between neighbours (the ties), both
// signs, plus special and random floats: stored as f16 and bf16 they must
// round exactly as src/dtype.cpp does.
std::vector<float> conversion_probes() {
    std::vector<float> v = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 65520.0f, 1e-8f, 2.9802322e-8f, 3e-8f,
                            INFINITY, -INFINITY, NAN, 3.4e38f, -1.1754944e-38f, 1.0e-45f};
    for (uint16_t h = 0; h < 0x7c00; ++h) {
        const double lo = f16_to_float(h), hi = f16_to_float(static_cast<uint16_t>(h + 1));
        for (double x : {lo, (lo + hi) / 2}) {
            v.push_back(static_cast<float>(x));
            v.push_back(static_cast<float>(-x));
        }
    }
    std::mt19937 rng(7);
    for (int i = 0; i < 20000; ++i) {
        uint32_t u = rng();
        float f;
        std::memcpy(&f, &u, 4);
        v.push_back(f);
    }
    return v;
}

Schedule conversion_schedule(int64_t n) {
    Builder b("conversions");
    const int64_t f = b.input("f", DType::f32, {n});
    const int64_t h = b.input("h", DType::f16, {65536}), bf = b.input("bf", DType::bf16, {65536});
    const int64_t i = b.input("i", DType::i32, {4});
    auto copy = [&](const char* name, DType to, DType from, int64_t src, const Shape& shape) {
        const EwParams p = ew_params(ANVIL_EW_COPY, shape, {b.output(name, to, shape), {1}}, {{src, {1}}}, 4096);
        b.rop(name, TaskKind::elementwise, {to, from, DType::f32}, p, ew_tiles(p));
    };
    copy("f_to_f16", DType::f16, DType::f32, f, {n});
    copy("f_to_bf16", DType::bf16, DType::f32, f, {n});
    copy("f16_to_f", DType::f32, DType::f16, h, {65536});
    copy("bf16_to_f", DType::f32, DType::bf16, bf, {65536});
    copy("i_to_i", DType::i32, DType::i32, i, {4});
    copy("i_to_f", DType::f32, DType::i32, i, {4});
    // Mixed operand types in one op: f32 = f16 + bf16.
    const EwParams p = ew_params(ANVIL_EW_ADD, {256}, {b.output("mixed", DType::f32, {256}), {1}}, {{h, {1}}, {bf, {1}}}, 100);
    b.rop("mixed", TaskKind::elementwise, {DType::f32, DType::f16, DType::bf16}, p, ew_tiles(p));
    // Scalars that are not finite must survive emission as literals.
    for (auto [name, value] : {std::pair{"neg_inf", -INFINITY}, {"nan", NAN}, {"tiny", 1.0e-45f}}) {
        const EwParams c = ew_params(ANVIL_EW_CONST, {3}, {b.output(name, DType::f32, {3}), {1}}, {}, 64, value);
        b.rop(name, TaskKind::elementwise, {DType::f32, DType::f32, DType::f32}, c, 1);
    }
    return make_schedule(b.tg, 2);
}

// ---------------------------------------------------------------- chain

// y = 2x (ew), z = tanh(y) (ew, tile i reads y's tile i), o = z @ w (matmul,
// a tile reads the z tiles holding its rows), s = softmax(o) (rows, a tile
// reads the matmul tiles holding its rows). Tasks go round robin over 3
// blocks, so every producer tile sits on another block than its consumer.
constexpr int kCM = 28, kCK = 16, kCN = 20;

Schedule chain_schedule(int blocks) {
    Builder b("chain");
    const DType f = DType::f32;
    const int64_t x = b.input("x", f, {kCM, kCK}), w = b.param("w", f, {kCK, kCN});
    const int64_t y = b.tensor("y", f, {kCM, kCK}), z = b.tensor("z", f, {kCM, kCK}), o = b.tensor("o", f, {kCM, kCN});
    const int64_t s = b.output("s", f, {kCM, kCN});
    const EwParams p0 = ew_params(ANVIL_EW_MUL, {kCM * kCK}, {y, {1}}, {{x, {1}}}, 64, 2.0f);
    const EwParams p1 = ew_params(ANVIL_EW_TANH, {kCM * kCK}, {z, {1}}, {{y, {1}}}, 64);
    const MatmulParams p2 = mm_params(kCM, kCN, kCK, 16, 16, 8, {}, {z, kCK, 1, {}}, {w, kCN, 1, {}}, {o, kCN, 1, {}});
    const RowParams p3 = row_params(ANVIL_ROW_SOFTMAX, {kCM}, {kCN}, {kCN}, {kCN}, {1}, {1}, o, s, -1, -1, 4);
    b.rop("double", TaskKind::elementwise, {f, f, f}, p0, ew_tiles(p0));
    b.rop("tanh", TaskKind::elementwise, {f, f, f}, p1, ew_tiles(p1));
    b.rop("mm", TaskKind::matmul, {f, f, f}, p2, mm_tiles(p2));
    b.rop("softmax", TaskKind::rowwise, {f, f, f, f}, p3, row_tiles(p3));
    REQUIRE(b.tg.rops[0].tiles == 7);  // 7 % 3 != 0: consumer tile i is on another block than producer tile i
    auto deps = [&](int rop, int tile) {
        std::vector<std::pair<int, int>> d;
        if (rop == 1) d.push_back({0, tile});
        if (rop == 2) {  // rows [16 tm, 16 tm + 16) of z = elements [16 tm * K, ...)
            const int tm = tile / p2.tiles_n;
            const int e0 = tm * 16 * kCK, e1 = std::min(kCM, tm * 16 + 16) * kCK;
            for (int t = e0 / 64; t <= (e1 - 1) / 64; ++t) d.push_back({1, t});
        }
        if (rop == 3) {  // rows [4 tile, 4 tile + 4) live in matmul row tiles
            const int r0 = tile * 4, r1 = std::min(kCM, r0 + 4) - 1;
            for (int tm = r0 / 16; tm <= r1 / 16; ++tm)
                for (int tn = 0; tn < p2.tiles_n; ++tn) d.push_back({2, tm * p2.tiles_n + tn});
        }
        return d;
    };
    return make_schedule(b.tg, blocks, deps);
}

std::vector<double> chain_reference(const TensorMap& v) {
    const HostTensor &x = v.at("x"), &w = v.at("w");
    std::vector<double> s(kCM * kCN);
    for (int m = 0; m < kCM; ++m) {
        std::vector<double> o(kCN);
        for (int n = 0; n < kCN; ++n)
            for (int k = 0; k < kCK; ++k) o[n] += std::tanh(2 * x.get(m * kCK + k)) * w.get(k * kCN + n);
        const double mx = *std::max_element(o.begin(), o.end());
        double sum = 0;
        for (double e : o) sum += std::exp(e - mx);
        for (int n = 0; n < kCN; ++n) s[m * kCN + n] = std::exp(o[n] - mx) / sum;
    }
    return s;
}

// ---------------------------------------------------------------- deadlock

// Two rOps of two tiles; block 0 runs [0, 2], block 1 runs [1, 3]. Task 0
// waits for task 2, which comes after it in its own block's queue.
Schedule deadlock_schedule(bool bystander) {
    Builder b("broken");
    const int64_t x = b.input("x", DType::f32, {128});
    const int64_t y = b.output("y", DType::f32, {128}), z = b.output("z", DType::f32, {128});
    const EwParams p0 = ew_params(ANVIL_EW_NEG, {128}, {y, {1}}, {{x, {1}}}, 64);
    const EwParams p1 = ew_params(ANVIL_EW_EXP, {128}, {z, {1}}, {{x, {1}}}, 64);
    b.rop("first", TaskKind::elementwise, {DType::f32, DType::f32, DType::f32}, p0, 2);
    b.rop("second", TaskKind::elementwise, {DType::f32, DType::f32, DType::f32}, p1, 2);
    Schedule s = make_schedule(b.tg, 2);
    s.tasks[0].deps = {2};
    if (bystander) s.tasks[3].deps = {0};  // block 1 ends up waiting too, and must stop
    return s;
}

// The schedules above, for the compile tests (test_compile.cpp).
std::vector<std::pair<std::string, Schedule>> backend_schedules() {
    std::vector<std::pair<std::string, Schedule>> all;
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        all.push_back({std::string("elementwise ") + dtype_name(t), ew_schedule(t)});
        all.push_back({std::string("rowwise ") + dtype_name(t), row_schedule(t)});
        all.push_back({std::string("matmul ") + dtype_name(t), mm_schedule(t)});
    }
    all.push_back({"elementwise per-op", ew_schedule(DType::f32, true)});
    all.push_back({"conversions", conversion_schedule(16)});
    all.push_back({"chain", chain_schedule(3)});
    all.push_back({"deadlock", deadlock_schedule(true)});
    return all;
}

}  // namespace anvil_test

using namespace anvil;
using namespace anvil_test;

TEST_CASE("host backend: every elementwise op over broadcast and transposed views", "[backend]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        CAPTURE(dtype_name(t));
        const Schedule s = ew_schedule(t);
        REQUIRE(s.tiles.rops.size() == static_cast<size_t>(ANVIL_EW_COUNT));  // every op code is covered
        const TensorMap v = ew_values(s.tiles);
        check_ew(v, run_host(s, v, {3, 10.0}));
    }
}

TEST_CASE("host backend: the per-op shape (one launch per rOp, one task per block) runs", "[backend]") {
    const Schedule s = ew_schedule(DType::f32, true);
    REQUIRE(s.launches.size() == static_cast<size_t>(ANVIL_EW_COUNT));
    const TensorMap v = ew_values(s.tiles);
    check_ew(v, run_host(s, v, {2, 10.0}));
}

TEST_CASE("host backend: every row op, including a middle-axis softmax", "[backend]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        CAPTURE(dtype_name(t));
        const Schedule s = row_schedule(t);
        const TensorMap v = row_values(s.tiles);
        check_rows(v, run_host(s, v, {3, 10.0}));
    }
}

TEST_CASE("host backend: matmul with M, N, K in {1, 37, 129} and transposed, broadcast batches", "[backend]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16}) {
        CAPTURE(dtype_name(t));
        const Schedule s = mm_schedule(t);
        const TensorMap v = mm_values(s.tiles);
        check_mm(v, run_host(s, v, {3, 10.0}));
    }
}

TEST_CASE("host backend: stored f16 and bf16 are bit-identical to dtype.cpp", "[backend]") {
    const std::vector<float> probes = conversion_probes();
    const int64_t n = static_cast<int64_t>(probes.size());
    const Schedule s = conversion_schedule(n);
    TensorMap v;
    HostTensor f(DType::f32, {n}), h(DType::f16, {65536}), bf(DType::bf16, {65536}), i(DType::i32, {4});
    std::memcpy(f.bytes.data(), probes.data(), probes.size() * 4);
    for (uint32_t k = 0; k < 65536; ++k) {
        const uint16_t bits = static_cast<uint16_t>(k);
        std::memcpy(h.bytes.data() + 2 * k, &bits, 2);
        std::memcpy(bf.bytes.data() + 2 * k, &bits, 2);
    }
    const int32_t ints[4] = {16777217, -7, 2147483647, 0};
    std::memcpy(i.bytes.data(), ints, sizeof ints);
    v["f"] = f;
    v["h"] = h;
    v["bf"] = bf;
    v["i"] = i;
    const TensorMap out = run_host(s, v, {2, 10.0});

    auto u16 = [](const HostTensor& t, int64_t k) { uint16_t x; std::memcpy(&x, t.bytes.data() + 2 * k, 2); return x; };
    auto u32 = [](const HostTensor& t, int64_t k) { uint32_t x; std::memcpy(&x, t.bytes.data() + 4 * k, 4); return x; };
    auto bits = [](float x) { uint32_t u; std::memcpy(&u, &x, 4); return u; };
    int64_t bad16 = 0, badb = 0, bad_back16 = 0, bad_backb = 0;
    for (int64_t k = 0; k < n; ++k) {
        bad16 += u16(out.at("f_to_f16"), k) != float_to_f16(probes[k]);
        badb += u16(out.at("f_to_bf16"), k) != float_to_bf16(probes[k]);
    }
    for (uint32_t k = 0; k < 65536; ++k) {
        bad_back16 += u32(out.at("f16_to_f"), k) != bits(f16_to_float(static_cast<uint16_t>(k)));
        bad_backb += u32(out.at("bf16_to_f"), k) != bits(bf16_to_float(static_cast<uint16_t>(k)));
    }
    CHECK(bad16 == 0);
    CHECK(badb == 0);
    CHECK(bad_back16 == 0);
    CHECK(bad_backb == 0);
    for (int k = 0; k < 4; ++k) {
        CHECK(static_cast<int32_t>(u32(out.at("i_to_i"), k)) == ints[k]);  // same type: bits, not through f32
        CHECK(out.at("i_to_f").get(k) == static_cast<double>(static_cast<float>(ints[k])));
    }
    for (int k = 0; k < 3; ++k) {
        CHECK(out.at("neg_inf").get(k) == -INFINITY);
        CHECK(std::isnan(out.at("nan").get(k)));
        CHECK(out.at("tiny").get(k) == static_cast<double>(1.0e-45f));
    }
    for (int k = 0; k < 256; ++k) {
        const float want = f16_to_float(static_cast<uint16_t>(k)) + bf16_to_float(static_cast<uint16_t>(k));
        CHECK(out.at("mixed").get(k) == static_cast<double>(want));
    }
}

TEST_CASE("host backend: a chain of rOps with tile-level deps across blocks", "[backend]") {
    for (int blocks : {3, 5}) {
        const Schedule s = chain_schedule(blocks);
        Inputs in;
        in.fill(s.tiles, "x", -1, 1);
        in.fill(s.tiles, "w", -1, 1);
        const std::vector<double> want = chain_reference(in.values);
        const std::vector<double> ones(want.size(), 1.0);
        for (int workers : {1, 2, 3, 8}) {
            CAPTURE(blocks, workers);
            const TensorMap out = run_host(s, in.values, {workers, 10.0});
            expect_close("chain", out.at("s"), want, ones);
        }
    }
}

TEST_CASE("host backend: a task waiting for a later task of its own block is a deadlock, not a hang", "[backend]") {
    for (int workers : {1, 2}) {
        CAPTURE(workers);
        const Schedule s = deadlock_schedule(false);
        Inputs in;
        in.fill(s.tiles, "x", -1, 1);
        const auto t0 = std::chrono::steady_clock::now();
        try {
            run_host(s, in.values, {workers, 0.3});
            FAIL("the broken schedule ran to completion");
        } catch (const UserError& e) {
            const std::string msg = e.what();
            INFO(msg);
            CHECK(msg.find("task 0 (rop 'first' tile 0) waited more than 0.3 s for task 2 (rop 'second' tile 0): deadlock") !=
                  std::string::npos);
        }
        CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5.0);
    }
    SECTION("blocks waiting on the stuck task stop too") {
        const Schedule s = deadlock_schedule(true);
        Inputs in;
        in.fill(s.tiles, "x", -1, 1);
        const auto t0 = std::chrono::steady_clock::now();
        CHECK_THROWS_WITH(run_host(s, in.values, {2, 0.3}), Catch::Contains("deadlock"));
        CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5.0);
    }
}

TEST_CASE("host backend: a missing or mistyped input is a UserError", "[backend]") {
    const Schedule s = chain_schedule(3);
    Inputs in;
    in.fill(s.tiles, "x", -1, 1);
    CHECK_THROWS_WITH(run_host(s, in.values, {2, 10.0}), Catch::Contains("no value was given for tensor 'w'"));
    in.values["w"] = HostTensor(DType::f16, {kCK, kCN});
    CHECK_THROWS_WITH(run_host(s, in.values, {2, 10.0}), Catch::Contains("the value of tensor 'w' is f16"));
}
