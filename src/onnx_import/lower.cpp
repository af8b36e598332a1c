// Lowering: one ONNX node on run-time tensors becomes one or more anvil
// nodes. Anything anvil cannot compute exactly is refused, naming the node.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "anvil/error.h"
#include "onnx_import/fold.h"
#include "onnx_import/importer.h"

namespace anvil {

namespace {

using Ints = std::vector<int64_t>;

struct Ctx {
    Importer& im;
    const OnnxNode& n;
    int index;

    const OnnxValue& val(int k) const { return im.value(n, n.input(k)); }
    const Shape& shape(int k) const { return val(k).shape; }
    bool present(int k) const { return !n.input(k).empty(); }
    std::string rt(int k) const { return im.runtime(n, n.input(k)); }
    std::string out_hint() const { return n.output(0); }
    // A constant operand's values; refuses a run-time one.
    const ConstTensor& constant(int k, const std::string& what) const {
        const OnnxValue& v = val(k);
        if (!v.constant) n.fail("its " + what + " ('" + n.input(k) + "') must be known at import, not computed at run time");
        return *v.constant;
    }
    std::string emit(Op op, const std::vector<std::string>& in, std::map<std::string, AttrValue> attrs = {},
                     const std::string& suffix = "") const {
        return im.emit(op, in, std::move(attrs), suffix.empty() ? out_hint() : out_hint() + "_" + suffix);
    }
    // Output `out` of the node is anvil tensor `anvil`, of the shape anvil infers for it.
    void define(const std::string& anvil, int out = 0) const { im.define(n.output(out), anvil, im.shape_of(anvil)); }
};

Shape broadcast_or_fail(const Ctx& c, const Shape& a, const Shape& b) {
    auto s = broadcast_shapes(a, b);
    if (!s) c.n.fail("operands " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    return *s;
}

void binary(const Ctx& c, Op op) {
    if (c.n.has("broadcast")) c.n.fail("the 'broadcast' attribute of opsets before 7 is not supported");
    c.define(c.emit(op, {c.rt(0), c.rt(1)}));
}

void unary(const Ctx& c, Op op) { c.define(c.emit(op, {c.rt(0)})); }

std::string clamp(const Ctx& c, std::string x, double lo, double hi, const std::string& tag) {
    if (lo == 0 && std::isinf(hi) && hi > 0) return c.emit(Op::relu, {x}, {}, tag);
    if (!std::isinf(lo)) x = c.emit(Op::max, {x, c.im.scalar(lo)}, {}, tag + "_lo");
    if (!std::isinf(hi)) x = c.emit(Op::min, {x, c.im.scalar(hi)}, {}, tag);
    return x;
}

void lower_clip(const Ctx& c) {
    double lo = -INFINITY, hi = INFINITY;
    if (c.n.has("min")) lo = c.n.get_float("min", 0);
    if (c.n.has("max")) hi = c.n.get_float("max", 0);
    if (c.n.num_inputs() > 1 && c.present(1)) lo = c.constant(1, "min").v.at(0);
    if (c.n.num_inputs() > 2 && c.present(2)) hi = c.constant(2, "max").v.at(0);
    c.define(clamp(c, c.rt(0), lo, hi, "clip"));
}

// hardsigmoid(x) = clamp(alpha x + beta, 0, 1); hardswish = x hardsigmoid(x) with alpha 1/6, beta 1/2.
void lower_hard(const Ctx& c, bool swish) {
    const double alpha = swish ? 1.0 / 6 : c.n.get_float("alpha", 0.2f), beta = swish ? 0.5 : c.n.get_float("beta", 0.5f);
    std::string x = c.rt(0);
    std::string t = c.emit(Op::mul, {x, c.im.scalar(alpha)}, {}, "scaled");
    t = c.emit(Op::add, {t, c.im.scalar(beta)}, {}, "shifted");
    t = clamp(c, t, 0, 1, swish ? "gate" : "");
    if (swish) t = c.emit(Op::mul, {x, t});
    c.define(t);
}

// The spatial dims of a convolution or pool's x [N, C, ...]: 2, or 1 (run
// as 2-D over [N, C, 1, L]); 3-D and others are refused.
int window_dims(const Ctx& c, const Shape& x) {
    if (x.size() == 3 || x.size() == 4) return static_cast<int>(x.size()) - 2;
    c.n.fail("x is " + shape_str(x) + ": " +
             (x.size() == 5 ? std::string("3-D convolutions and pools are not supported") : "not [N, C, L] or [N, C, H, W]") +
             " (anvil's are 2-D, and 1-D ones run as 2-D)");
}

// A 1-D shape [N, C, L] (or weights [O, C/g, K]) as the 2-D [N, C, 1, L].
Shape lift_1d(Shape s) {
    s.insert(s.begin() + 2, 1);
    return s;
}

// A spatial attribute, in its 2-D form: `fallback` is that form when the
// attribute is absent; a 1-D one gains a unit leading entry (0 in pads).
Ints spatial(const Ctx& c, const char* name, Ints fallback, int dims = 2) {
    auto v = c.n.get_ints(name);
    if (!v) return fallback;
    if (v->size() != fallback.size() / 2 * dims)
        c.n.fail(std::string("attribute '") + name + "' has " + std::to_string(v->size()) + " values for " +
                 std::to_string(dims) + " spatial dims");
    // Bounded before any shape arithmetic (a stride of 0 divided by zero; libFuzzer):
    // products of two of these stay within 64 bits.
    const int64_t least = std::string(name) == "pads" ? 0 : 1, most = (int64_t{1} << 31) - 1;
    for (int64_t x : *v)
        if (x < least || x > most)
            c.n.fail(std::string("attribute '") + name + "' holds " + std::to_string(x) + "; each must be from " +
                     std::to_string(least) + " to " + std::to_string(most));
    if (dims == 2) return *v;
    if (v->size() == 2) return {0, (*v)[0], 0, (*v)[1]};  // pads: begin, end
    return {least, (*v)[0]};
}

// ONNX pads [top, left, bottom, right] (its x1_begin, x2_begin, x1_end,
// x2_end), with auto_pad resolved for the given kernel, stride, dilation.
// x is the 2-D form (1-D lifted).
Ints resolve_pads(const Ctx& c, const Shape& x, const Ints& kernel, const Ints& stride, const Ints& dil, int dims) {
    const std::string auto_pad = c.n.get_string("auto_pad", "NOTSET");
    if (auto_pad == "NOTSET") {
        return spatial(c, "pads", {0, 0, 0, 0}, dims);  // each from 0 to 2^31 - 1
    }
    if (auto_pad == "VALID") return {0, 0, 0, 0};
    if (auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER") c.n.fail("auto_pad '" + auto_pad + "' is not supported");
    Ints p(4);
    for (int d = 0; d < 2; ++d) {
        const int64_t in = x[2 + d], out = (in + stride[d] - 1) / stride[d];
        const int64_t total = std::max<int64_t>(0, (out - 1) * stride[d] + (kernel[d] - 1) * dil[d] + 1 - in);
        const int64_t small = total / 2, big = total - small;
        p[d] = auto_pad == "SAME_UPPER" ? small : big;
        p[2 + d] = auto_pad == "SAME_UPPER" ? big : small;
    }
    return p;
}

// The input of a zero-valued constant Pad in front of this node that pads
// only H and W (rank 4), so the consumer can take its pads instead; its
// result is used by nothing else.
struct FoldedPad {
    std::string input;
    Ints pads;  // top, left, bottom, right
};
std::optional<FoldedPad> folded_pad(const Ctx& c) {
    const std::string& x = c.n.input(0);
    const int p = c.im.producer(x);
    if (p < 0 || c.im.producer_op(x) != "Pad" || c.im.consumers(x).size() != 1 || c.im.is_graph_output(x))
        return std::nullopt;
    const OnnxNode pad(c.im.node_at(p), c.im.path());
    if (pad.get_string("mode", "constant") != "constant") return std::nullopt;
    Ints pads;
    if (auto a = pad.get_ints("pads")) pads = *a;
    else if (pad.num_inputs() > 1 && c.im.is_const(pad.input(1))) pads = c.im.value(pad, pad.input(1)).constant->ints();
    else return std::nullopt;
    for (int64_t v : pads)  // what a conv's pads may hold (spatial): the Pad then lowers alone
        if (v < 0 || v > (int64_t{1} << 31) - 1) return std::nullopt;
    double fill = pad.get_float("value", 0.0f);
    if (pad.num_inputs() > 2 && !pad.input(2).empty()) {
        if (!c.im.is_const(pad.input(2))) return std::nullopt;
        fill = c.im.value(pad, pad.input(2)).constant->v.at(0);
    }
    if (pad.num_inputs() > 3 && !pad.input(3).empty()) return std::nullopt;  // axes
    if (fill != 0 || pads.size() != 8) return std::nullopt;
    if (pads[0] || pads[1] || pads[4] || pads[5]) return std::nullopt;
    for (int64_t v : pads)
        if (v < 0) return std::nullopt;
    if (!c.im.known(pad.input(0)) || c.im.is_const(pad.input(0))) return std::nullopt;
    return FoldedPad{pad.input(0), {pads[2], pads[3], pads[6], pads[7]}};
}

// The 2-D result y of a window op as the node's output (a 1-D op's without its unit H).
void define_window_result(const Ctx& c, const std::string& y, int dims) {
    if (dims == 2) return c.define(y);
    Shape out = c.im.shape_of(y);
    out.erase(out.begin() + 2);
    c.define(c.im.reshape(y, out, c.out_hint()));
}

void lower_conv(const Ctx& c) {
    c.n.allow_only({"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
    const int dims = window_dims(c, c.shape(0));
    if (c.shape(1).size() != c.shape(0).size())
        c.n.fail("x is " + shape_str(c.shape(0)) + " and w " + shape_str(c.shape(1)) + ": their ranks differ");
    const Shape w = dims == 1 ? lift_1d(c.shape(1)) : c.shape(1);
    const Ints kernel = spatial(c, "kernel_shape", {w[2], w[3]}, dims);
    if (kernel[0] != w[2] || kernel[1] != w[3]) c.n.fail("kernel_shape " + shape_str(kernel) + " differs from w " + shape_str(w));
    const Ints stride = spatial(c, "strides", {1, 1}, dims), dil = spatial(c, "dilations", {1, 1}, dims);
    std::string x = c.rt(0);
    Shape xs = c.shape(0);
    if (dims == 1) x = c.im.reshape(x, xs = lift_1d(xs), c.out_hint() + "_2d_x");
    Ints pads = resolve_pads(c, xs, kernel, stride, dil, dims);
    if (auto fp = folded_pad(c)) {
        x = c.im.runtime(c.n, fp->input);
        xs = c.im.value(c.n, fp->input).shape;
        for (int k = 0; k < 4; ++k) pads[k] += fp->pads[k];
    }
    std::vector<std::string> in = {x, dims == 1 ? c.im.reshape(c.rt(1), w, c.out_hint() + "_2d_w") : c.rt(1)};
    if (c.n.num_inputs() > 2 && c.present(2)) in.push_back(c.rt(2));
    const int64_t groups = c.n.get_int("group", 1);
    if (groups <= 0 || xs[1] != w[1] * groups)
        c.n.fail("x has " + std::to_string(xs[1]) + " channels, but w " + shape_str(c.shape(1)) + " with group " +
                 std::to_string(groups) + " needs " + std::to_string(w[1] * groups));
    std::string y = c.emit(Op::conv2d, in, {{"stride", stride}, {"dilation", dil}, {"padding", pads}, {"groups", groups}},
                           dims == 1 ? "2d" : "");
    define_window_result(c, y, dims);
}

void lower_pool(const Ctx& c, bool is_max) {
    if (is_max) c.n.allow_only({"auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"});
    else c.n.allow_only({"auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides"});
    const int dims = window_dims(c, c.shape(0));
    Shape xs = dims == 1 ? lift_1d(c.shape(0)) : c.shape(0);
    auto k = c.n.get_ints("kernel_shape");
    if (!k) c.n.fail("attribute 'kernel_shape' is missing");
    const Ints kernel = spatial(c, "kernel_shape", {0, 0}, dims);
    const Ints stride = spatial(c, "strides", {1, 1}, dims);
    const Ints dil = spatial(c, "dilations", {1, 1}, dims);
    if (c.n.get_int("storage_order", 0) != 0) c.n.fail("storage_order 1 is not supported");
    Ints pads = resolve_pads(c, xs, kernel, stride, dil, dims);
    bool include_pad = c.n.get_int("count_include_pad", 0) != 0;
    std::string x = c.rt(0);
    if (dims == 1) x = c.im.reshape(x, xs, c.out_hint() + "_2d_x");
    if (dims == 2 && !is_max && !include_pad && pads == Ints{0, 0, 0, 0}) {
        // A zero Pad in front averages its zeros: the pool's own padding, counted.
        if (auto fp = folded_pad(c)) {
            x = c.im.runtime(c.n, fp->input);
            xs = c.im.value(c.n, fp->input).shape;
            pads = fp->pads;
            include_pad = true;
        }
    }
    const bool ceil_mode = c.n.get_int("ceil_mode", 0) != 0;
    for (int d = 0; d < 2; ++d) {
        const int64_t reach = dil[d] * (kernel[d] - 1) + 1;  // the dilated kernel
        const int64_t span = xs[2 + d] + pads[d] + pads[2 + d] - reach;
        if (span < 0) c.n.fail("the kernel " + shape_str(kernel) + " is larger than the padded input " + shape_str(c.shape(0)));
        int64_t o = (ceil_mode ? (span + stride[d] - 1) / stride[d] : span / stride[d]) + 1;
        // As PyTorch: the last window must start inside the input or its leading padding.
        if (ceil_mode && (o - 1) * stride[d] >= xs[2 + d] + pads[d]) --o;
        const int64_t extra = (o - 1) * stride[d] + reach - (xs[2 + d] + pads[d] + pads[2 + d]);
        if (extra > 0) {
            if (!is_max && include_pad)
                c.n.fail("ceil_mode with count_include_pad divides the last windows by a count anvil's avgpool2d "
                         "cannot express");
            pads[2 + d] += extra;  // cells past the end: never win a max, never counted in an average
        }
    }
    std::map<std::string, AttrValue> attrs = {{"kernel", kernel}, {"stride", stride}, {"padding", pads}};
    if (is_max) attrs["dilation"] = dil;
    else attrs["count_include_pad"] = include_pad;
    define_window_result(c, c.emit(is_max ? Op::maxpool2d : Op::avgpool2d, {x}, attrs, dims == 1 ? "2d" : ""), dims);
}

// Over every spatial dim of x [N, C, ...], kept as 1s.
void lower_global_pool(const Ctx& c, bool is_max) {
    const Shape& xs = c.shape(0);
    if (xs.size() < 3) c.n.fail("x " + shape_str(xs) + " has no spatial dims");
    Ints axes;
    for (size_t d = 2; d < xs.size(); ++d) axes.push_back(static_cast<int64_t>(d));
    if (!is_max && xs.size() == 4) return c.define(c.emit(Op::global_avgpool, {c.rt(0)}));
    c.define(c.emit(is_max ? Op::reduce_max : Op::reduce_mean, {c.rt(0)}, {{"axes", axes}, {"keepdims", true}}));
}

Ints reduce_axes(const Ctx& c, int rank) {
    std::optional<Ints> axes = c.n.get_ints("axes");
    if (c.n.num_inputs() > 1 && c.present(1)) axes = c.constant(1, "axes").ints();
    Ints r;
    if (!axes || axes->empty()) {
        if (c.n.get_int("noop_with_empty_axes", 0)) return r;
        r.resize(rank);
        std::iota(r.begin(), r.end(), 0);
        return r;
    }
    for (int64_t a : *axes) r.push_back(norm_axis(c.n, a, rank));
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    return r;
}

void lower_reduce(const Ctx& c, Op op, bool negate) {
    const Shape& xs = c.shape(0);
    const Ints axes = reduce_axes(c, static_cast<int>(xs.size()));
    const bool keep = c.n.get_int("keepdims", 1) != 0;
    if (axes.empty()) return c.define(c.rt(0));
    std::string x = c.rt(0);
    if (negate) x = c.emit(Op::neg, {x}, {}, "neg");
    std::string r = c.emit(op, {x}, {{"axes", axes}, {"keepdims", keep}}, negate ? "max" : "");
    if (negate) r = c.emit(Op::neg, {r});
    c.define(r);
}

void lower_softmax(const Ctx& c) {
    const Shape& xs = c.shape(0);
    const int rank = static_cast<int>(xs.size());
    const int axis = norm_axis(c.n, c.n.get_int("axis", c.im.opset() >= 13 ? -1 : 1), rank);
    if (c.im.opset() >= 13 || axis == rank - 1) {
        c.define(c.emit(Op::softmax, {c.rt(0)}, {{"axis", int64_t(axis)}}));
        return;
    }
    // Before opset 13, Softmax normalises over all dims from `axis` on.
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < rank; ++d) (d < axis ? outer : inner) *= xs[d];
    std::string x = c.im.reshape(c.rt(0), {outer, inner}, c.out_hint() + "_2d");
    std::string s = c.emit(Op::softmax, {x}, {{"axis", int64_t(-1)}}, "2d_softmax");
    c.define(c.im.reshape(s, xs, c.out_hint()));
}

void lower_layernorm(const Ctx& c) {
    const Shape& xs = c.shape(0);
    const int rank = static_cast<int>(xs.size());
    const int axis = norm_axis(c.n, c.n.get_int("axis", -1), rank);
    const Shape trailing(xs.begin() + axis, xs.end());
    auto operand = [&](int k, double fill) -> std::string {
        if (c.n.num_inputs() <= k || !c.present(k))
            return c.im.const_param(ConstTensor{OnnxType::float32, trailing, std::vector<double>(numel(trailing), fill)},
                                    c.out_hint() + (k == 1 ? "_gamma" : "_beta"));
        if (c.shape(k) == trailing) return c.rt(k);
        const ConstTensor& t = c.constant(k, k == 1 ? "scale" : "bias");
        if (!broadcast_shapes(t.shape, trailing) || *broadcast_shapes(t.shape, trailing) != trailing)
            c.n.fail("its " + std::string(k == 1 ? "scale" : "bias") + " " + shape_str(t.shape) +
                     " does not broadcast to the normalised dims " + shape_str(trailing));
        ConstTensor zero{OnnxType::float32, trailing, std::vector<double>(numel(trailing), 0.0)};
        return c.im.const_param(broadcast_binary(c.n, t, zero, OnnxType::float32, [](double a, double b) { return a + b; }),
                                c.out_hint() + (k == 1 ? "_gamma" : "_beta"));
    };
    const std::string g = operand(1, 1.0), b = operand(2, 0.0);
    c.define(c.emit(Op::layernorm, {c.rt(0), g, b},
                    {{"axis", int64_t(axis)}, {"eps", double(c.n.get_float("epsilon", 1e-5f))}}));
}

void lower_batchnorm(const Ctx& c) {
    if (c.n.get_int("training_mode", 0) != 0) c.n.fail("training_mode 1 is not supported (inference only)");
    if (c.shape(0).size() < 2) c.n.fail("x " + shape_str(c.shape(0)) + " has no channel dim");
    std::vector<std::string> in = {c.rt(0)};
    for (int k = 1; k <= 4; ++k) {
        if (c.shape(k) != Shape{c.shape(0)[1]})
            c.n.fail("operand " + std::to_string(k) + " is " + shape_str(c.shape(k)) + ", not [C] = [" +
                     std::to_string(c.shape(0)[1]) + "]");
        in.push_back(c.rt(k));
    }
    c.define(c.emit(Op::batchnorm, in, {{"eps", double(c.n.get_float("epsilon", 1e-5f))}}));
}

// MatMul with numpy's rank-1 rules: anvil's matmul needs rank >= 2.
std::string matmul(const Ctx& c, std::string a, Shape as, std::string b, Shape bs, bool ta = false, bool tb = false,
                   const std::string& tag = "") {
    if (as.empty() || bs.empty())  // a scalar has no matrix (libFuzzer: indexed before the start)
        c.n.fail("a is " + shape_str(as) + " and b is " + shape_str(bs) + "; a matrix product needs operands of rank 1 or more");
    const bool a1 = as.size() == 1, b1 = bs.size() == 1;
    if (a1) a = c.im.reshape(a, {1, as[0]}, c.out_hint() + "_a2d");
    if (b1) b = c.im.reshape(b, {bs[0], 1}, c.out_hint() + "_b2d");
    std::map<std::string, AttrValue> attrs;
    if (ta) attrs["transpose_a"] = true;
    if (tb) attrs["transpose_b"] = true;
    std::string r = c.emit(Op::matmul, {a, b}, attrs, (a1 || b1) ? "2d" : tag);
    Shape out = c.im.shape_of(r);  // the rank-1 operands' unit dims dropped again
    if (a1) out.erase(out.end() - 2);
    if (b1) out.erase(out.end() - 1);
    return c.im.reshape(r, out, c.out_hint());
}

void lower_gemm(const Ctx& c) {
    const bool ta = c.n.get_int("transA", 0) != 0, tb = c.n.get_int("transB", 0) != 0;
    const double alpha = c.n.get_float("alpha", 1.0f), beta = c.n.get_float("beta", 1.0f);
    if (c.shape(0).size() != 2 || c.shape(1).size() != 2) c.n.fail("A and B must be 2-D");
    const bool bias = c.n.num_inputs() > 2 && c.present(2) && beta != 0;
    std::string y = matmul(c, c.rt(0), c.shape(0), c.rt(1), c.shape(1), ta, tb, bias || alpha != 1 ? "mm" : "");
    if (alpha != 1) y = c.emit(Op::mul, {y, c.im.scalar(alpha)}, {}, bias ? "scaled" : "");
    if (bias) {
        std::string cc;
        if (beta != 1) {
            const ConstTensor& t = c.constant(2, "C (with beta != 1)");
            ConstTensor s = t;
            for (double& v : s.v) v *= beta;
            cc = c.im.const_param(cast_to(s, OnnxType::float32), c.out_hint() + "_c");
        } else {
            cc = c.rt(2);
        }
        y = c.emit(Op::add, {y, cc});
    }
    c.define(y);
}

void lower_reshape_like(const Ctx& c, const Shape& to) { c.define(c.im.reshape(c.rt(0), to, c.out_hint())); }

// Python slice of `x` along one axis, then the rest.
std::string slice(const Ctx& c, const std::string& x, int axis, int64_t start, int64_t len, int64_t step,
                  const std::string& tag) {
    return c.emit(Op::slice, {x}, {{"axis", int64_t(axis)}, {"start", start}, {"end", start + len * step}, {"step", step}},
                  tag);
}

void lower_slice(const Ctx& c) {
    Ints starts, ends;
    std::optional<Ints> axes, steps;
    if (c.im.opset() < 10) {
        starts = c.n.get_ints("starts").value_or(Ints{});
        ends = c.n.get_ints("ends").value_or(Ints{});
        axes = c.n.get_ints("axes");
    } else {
        starts = c.constant(1, "starts").ints();
        ends = c.constant(2, "ends").ints();
        if (c.n.num_inputs() > 3 && c.present(3)) axes = c.constant(3, "axes").ints();
        if (c.n.num_inputs() > 4 && c.present(4)) steps = c.constant(4, "steps").ints();
    }
    const auto sl = slice_axes(c.n, c.shape(0), starts, ends, axes, steps);
    for (const SliceAxis& a : sl)
        if (a.len == 0) {  // torch.roll by 0 (swin at a small size) concatenates an empty part: nothing
            Shape empty = c.shape(0);
            empty[a.axis] = 0;
            return c.im.define_const(c.n.output(0), ConstTensor{OnnxType::float32, empty, {}});
        }
    std::string x = c.rt(0);
    for (size_t k = 0; k < sl.size(); ++k) {
        const SliceAxis& a = sl[k];
        if (a.step < 0) c.n.fail("negative slice steps are not supported");
        if (a.start == 0 && a.step == 1 && a.len == c.shape(0)[a.axis]) continue;
        x = slice(c, x, a.axis, a.start, a.len, a.step, k + 1 == sl.size() ? "" : "ax" + std::to_string(a.axis));
    }
    c.define(x);
}

void lower_split(const Ctx& c) {
    const Shape& xs = c.shape(0);
    const int axis = norm_axis(c.n, c.n.get_int("axis", 0), static_cast<int>(xs.size()));
    Ints sizes;
    if (c.n.num_inputs() > 1 && c.present(1)) sizes = c.constant(1, "split").ints();
    else if (auto s = c.n.get_ints("split")) sizes = *s;
    const int outs = c.n.proto().output_size();
    for (int64_t v : sizes)  // each within the dim before they are summed
        if (v < 0 || v > xs[axis])
            c.n.fail("split size " + std::to_string(v) + " is outside 0.." + std::to_string(xs[axis]));
    if (sizes.empty()) {
        const int64_t chunk = (xs[axis] + outs - 1) / outs;  // opset 18 lets the last part be smaller
        for (int k = 0; k < outs; ++k) sizes.push_back(std::min(chunk, xs[axis] - k * chunk));
    }
    if (static_cast<int>(sizes.size()) != outs || std::accumulate(sizes.begin(), sizes.end(), int64_t(0)) != xs[axis])
        c.n.fail("split sizes " + shape_str(sizes) + " do not divide dim " + std::to_string(xs[axis]) + " into " +
                 std::to_string(outs) + " outputs");
    int64_t at = 0;
    for (int k = 0; k < outs; ++k) {
        if (sizes[k] <= 0) c.n.fail("output " + std::to_string(k) + " would be empty");
        std::string part = c.im.emit(Op::slice, {c.rt(0)},
                                     {{"axis", int64_t(axis)}, {"start", at}, {"end", at + sizes[k]}}, c.n.output(k));
        c.define(part, k);
        at += sizes[k];
    }
}

void lower_concat(const Ctx& c) {
    const Shape& first = c.shape(0);
    const int rank = static_cast<int>(first.size());
    const int axis = norm_axis(c.n, c.n.get_int("axis", 0), rank);
    std::vector<std::string> in;
    for (int k = 0; k < c.n.num_inputs(); ++k) {
        const Shape& s = c.shape(k);
        if (static_cast<int>(s.size()) != rank) c.n.fail("operands differ in rank");
        if (s[axis] != 0) in.push_back(c.rt(k));  // ONNX allows empty parts; anvil's concat does not
    }
    if (in.empty()) c.n.fail("every operand is empty along axis " + std::to_string(axis));
    c.define(in.size() == 1 ? in[0] : c.emit(Op::concat, in, {{"axis", int64_t(axis)}}));
}

void lower_gather(const Ctx& c) {
    const Shape& ds = c.shape(0);
    const int rank = static_cast<int>(ds.size());
    const int axis = norm_axis(c.n, c.n.get_int("axis", 0), rank);
    const OnnxValue& idx = c.val(1);
    if (!idx.constant) {
        // Run-time ids into a constant table: an embedding.
        if (axis != 0) c.n.fail("run-time indices are supported on axis 0 only (as an embedding)");
        if (!c.val(0).constant) c.n.fail("run-time indices into a run-time tensor are not supported");
        const ConstTensor& table = *c.val(0).constant;
        int64_t width = 1;
        for (int d = 1; d < rank; ++d) width *= ds[d];
        ConstTensor t2 = table;
        t2.shape = {ds[0], width};
        const std::string ids = idx.anvil;  // an int graph input: refused by runtime() anywhere else
        c.im.use_as_ids(c.n, ids, ds[0]);
        const std::string tab = c.im.const_param(cast_to(t2, OnnxType::float32), c.n.input(0));
        std::string r = c.emit(Op::embedding, {tab, ids}, {}, rank == 2 ? "" : "rows");
        Shape out = idx.shape;
        out.insert(out.end(), ds.begin() + 1, ds.end());
        return c.define(c.im.reshape(r, out, c.out_hint()));
    }
    std::vector<int64_t> ids = idx.constant->ints();
    for (int64_t& i : ids) {
        if (i < 0) i += ds[axis];
        if (i < 0 || i >= ds[axis]) c.n.fail("index out of range for a dim of " + std::to_string(ds[axis]));
    }
    std::string x = c.rt(0);
    std::string r;
    const bool progression = ids.size() >= 1 && [&] {
        if (ids.size() == 1) return true;
        const int64_t step = ids[1] - ids[0];
        if (step <= 0) return false;
        for (size_t k = 1; k < ids.size(); ++k)
            if (ids[k] - ids[k - 1] != step) return false;
        return true;
    }();
    if (ids.empty()) c.n.fail("gathers nothing");
    if (progression) {
        const int64_t step = ids.size() > 1 ? ids[1] - ids[0] : 1;
        r = slice(c, x, axis, ids[0], static_cast<int64_t>(ids.size()), step, "pick");
    } else {
        std::vector<std::string> parts;
        for (size_t k = 0; k < ids.size(); ++k) parts.push_back(slice(c, x, axis, ids[k], 1, 1, "pick" + std::to_string(k)));
        r = c.emit(Op::concat, parts, {{"axis", int64_t(axis)}}, "picked");
    }
    Shape out(ds.begin(), ds.begin() + axis);
    out.insert(out.end(), idx.shape.begin(), idx.shape.end());
    out.insert(out.end(), ds.begin() + axis + 1, ds.end());
    c.define(c.im.reshape(r, out, c.out_hint()));
}

void lower_pad(const Ctx& c) {
    if (c.n.get_string("mode", "constant") != "constant")
        c.n.fail("mode '" + c.n.get_string("mode", "") + "' is not supported (constant padding only)");
    const Shape& xs = c.shape(0);
    const int rank = static_cast<int>(xs.size());
    Ints pads;
    double fill = c.n.get_float("value", 0.0f);
    if (auto a = c.n.get_ints("pads")) pads = *a;
    else pads = c.constant(1, "pads").ints();
    for (int64_t v : pads)
        if (v < -((int64_t{1} << 31) - 1) || v > (int64_t{1} << 31) - 1)
            c.n.fail("pads holds " + std::to_string(v) + "; each must be within +-(2^31 - 1)");
    if (c.n.num_inputs() > 2 && c.present(2)) fill = c.constant(2, "constant_value").v.at(0);
    if (c.n.num_inputs() > 3 && c.present(3)) {
        Ints axes = c.constant(3, "axes").ints(), full(2 * rank, 0);
        for (size_t k = 0; k < axes.size(); ++k) {
            const int a = norm_axis(c.n, axes[k], rank);
            full[a] = pads.at(k);
            full[rank + a] = pads.at(axes.size() + k);
        }
        pads = full;
    }
    if (static_cast<int>(pads.size()) != 2 * rank) c.n.fail("pads has " + std::to_string(pads.size()) + " values for rank " + std::to_string(rank));
    if (!std::isfinite(fill)) c.n.fail("a non-finite pad value is not supported");
    std::string x = c.rt(0);
    Shape s = xs;
    for (int d = 0; d < rank; ++d) {
        const int64_t before = pads[d], after = pads[rank + d];
        if (before < 0 || after < 0) {  // negative pads crop
            const int64_t start = std::max<int64_t>(0, -before), len = s[d] - start - std::max<int64_t>(0, -after);
            if (len <= 0) c.n.fail("negative pads crop axis " + std::to_string(d) + " to nothing");
            x = slice(c, x, d, start, len, 1, "crop" + std::to_string(d));
            s[d] = len;
        }
        std::vector<std::string> parts;
        auto band = [&](int64_t width, const char* side) {
            Shape b = s;
            b[d] = width;
            parts.push_back(c.emit(Op::constant, {}, {{"value", fill}, {"shape", Ints(b.begin(), b.end())}},
                                   std::string(side) + std::to_string(d)));
        };
        if (before > 0) band(before, "before");
        parts.push_back(x);
        if (after > 0) band(after, "after");
        if (parts.size() > 1) {
            x = c.emit(Op::concat, parts, {{"axis", int64_t(d)}}, "pad" + std::to_string(d));
            s[d] += std::max<int64_t>(before, 0) + std::max<int64_t>(after, 0);
        }
    }
    c.define(x);
}

void lower_expand(const Ctx& c) {
    const Ints target = c.constant(1, "shape").ints();
    const Shape out = broadcast_or_fail(c, c.shape(0), Shape(target.begin(), target.end()));
    if (out == c.shape(0)) {
        c.define(c.rt(0));
        return;
    }
    // x + zeros(out): numpy broadcasting is exactly Expand.
    std::string z = c.emit(Op::constant, {}, {{"value", 0.0}, {"shape", Ints(out.begin(), out.end())}}, "zeros");
    c.define(c.emit(Op::add, {c.rt(0), z}));
}

void lower_where(const Ctx& c) {
    const ConstTensor& cond = c.constant(0, "condition");
    const bool all = std::all_of(cond.v.begin(), cond.v.end(), [](double v) { return v != 0; });
    const bool none = std::none_of(cond.v.begin(), cond.v.end(), [](double v) { return v != 0; });
    Shape out = broadcast_or_fail(c, broadcast_or_fail(c, cond.shape, c.shape(1)), c.shape(2));
    if (all || none) {
        const int k = all ? 1 : 2;
        if (c.shape(k) == out) {
            c.define(c.rt(k));
            return;
        }
    }
    // a * cond + b * (1 - cond), exact for finite run-time operands (one
    // term is 0). A constant operand's term is computed here, so a -inf or
    // finfo.min fill (masked_fill of a causal mask) is exact too.
    std::string terms[2];
    for (int k = 1; k <= 2; ++k) {
        ConstTensor pick = cast_to(cond, OnnxType::float32);
        if (k == 2)
            for (double& v : pick.v) v = 1 - v;
        const std::string tag = k == 1 ? "a" : "b";
        if (const auto& operand = c.val(k).constant) {
            const ConstTensor term = broadcast_binary(c.n, pick, *operand, OnnxType::float32,
                                                      [](double p, double v) { return p != 0 ? v : 0.0; });
            terms[k - 1] = c.im.const_param(term, c.out_hint() + "_" + tag);
        } else {
            terms[k - 1] = c.emit(Op::mul, {c.rt(k), c.im.const_param(pick, c.out_hint() + (k == 1 ? "_mask" : "_unmask"))},
                                  {}, tag);
        }
    }
    c.define(c.emit(Op::add, {terms[0], terms[1]}));
}

void lower_variadic(const Ctx& c, Op op) {
    std::string acc = c.rt(0);
    for (int k = 1; k < c.n.num_inputs(); ++k) {
        acc = c.emit(op, {acc, c.rt(k)}, {}, k + 1 == c.n.num_inputs() ? "" : "part" + std::to_string(k));
    }
    c.define(acc);
}

}  // namespace

void lower_node(Importer& im, const OnnxNode& n, int index) {
    const Ctx c{im, n, index};
    const std::string& op = n.op();
    if (op == "Erf" || op == "Tanh" || op == "Sigmoid") {
        if (match_activation(im, n, index)) return;
    }
    if (op == "Erf") return unary(c, Op::erf);
    if (op == "Add") return binary(c, Op::add);
    if (op == "Sub") return binary(c, Op::sub);
    if (op == "Mul") return binary(c, Op::mul);
    if (op == "Div") return binary(c, Op::div);
    if (op == "Pow") return binary(c, Op::pow);
    if (op == "Max") return lower_variadic(c, Op::max);
    if (op == "Min") return lower_variadic(c, Op::min);
    if (op == "Sum") return lower_variadic(c, Op::add);
    if (op == "Relu") return unary(c, Op::relu);
    if (op == "Sigmoid") return unary(c, Op::sigmoid);
    if (op == "Tanh") return unary(c, Op::tanh);
    if (op == "Exp") return unary(c, Op::exp);
    if (op == "Log") return unary(c, Op::log);
    if (op == "Sqrt") return unary(c, Op::sqrt);
    if (op == "Neg") return unary(c, Op::neg);
    if (op == "Abs") return unary(c, Op::abs);
    if (op == "Reciprocal") return c.define(c.emit(Op::div, {im.scalar(1.0), c.rt(0)}));
    if (op == "Identity" || op == "Dropout") {
        // Dropout in training mode is the identity only at ratio 0 (torchvision's
        // swin calls F.dropout(p=0.0) without training=False).
        auto known = [&](int k) -> std::optional<double> {
            if (n.num_inputs() <= k || !c.present(k)) return std::nullopt;
            if (!im.is_const(n.input(k))) return NAN;
            return im.value(n, n.input(k)).constant->v.at(0);
        };
        const std::optional<double> training = known(2), ratio = known(1);
        if (op == "Dropout" && training && *training != 0 && !(ratio && *ratio == 0))
            n.fail("training_mode must be false at inference (or the ratio a constant 0)");
        return c.define(c.rt(0));
    }
    if (op == "Cast" || op == "CastLike") {
        const OnnxType to = op == "Cast" ? static_cast<OnnxType>(n.get_int("to", 1)) : c.val(1).type;
        // anvil holds every float tensor of an imported model in f32: a cast
        // that would round to a narrower type cannot be expressed.
        if (to == OnnxType::float16 || to == OnnxType::bfloat16)
            n.fail(std::string("a run-time cast to ") + onnx_type_name(to) + " is not supported (anvil holds imported tensors in f32)");
        if (!is_onnx_float(to) || !is_onnx_float(c.val(0).type))
            n.fail(std::string("casts a run-time tensor to ") + onnx_type_name(to) +
                   ": integer arithmetic at run time is not supported (anvil computes in floats)");
        return c.define(c.rt(0));
    }
    if (op == "Clip") return lower_clip(c);
    if (op == "HardSigmoid") return lower_hard(c, false);
    if (op == "HardSwish") return lower_hard(c, true);
    if (op == "Softmax") return lower_softmax(c);
    if (op == "LayerNormalization") return lower_layernorm(c);
    if (op == "BatchNormalization") return lower_batchnorm(c);
    if (op == "Conv") return lower_conv(c);
    if (op == "MaxPool") return lower_pool(c, true);
    if (op == "AveragePool") return lower_pool(c, false);
    if (op == "GlobalAveragePool" || op == "GlobalMaxPool") return lower_global_pool(c, op == "GlobalMaxPool");
    if (op == "ReduceMean") {
        if (match_norm(im, n, index)) return;
        return lower_reduce(c, Op::reduce_mean, false);
    }
    if (op == "ReduceSum") return lower_reduce(c, Op::reduce_sum, false);
    if (op == "ReduceMax") return lower_reduce(c, Op::reduce_max, false);
    if (op == "ReduceMin") return lower_reduce(c, Op::reduce_max, true);
    if (op == "MatMul") {
        return c.define(matmul(c, c.rt(0), c.shape(0), c.rt(1), c.shape(1)));
    }
    if (op == "Gemm") return lower_gemm(c);
    if (op == "Flatten") return lower_reshape_like(c, flatten_shape(n, c.shape(0)));
    if (op == "Reshape") {
        const Ints target = im.opset() < 5 ? n.get_ints("shape").value_or(Ints{}) : c.constant(1, "shape").ints();
        return lower_reshape_like(c, reshape_shape(n, c.shape(0), target, n.get_int("allowzero", 0) != 0));
    }
    if (op == "Squeeze" || op == "Unsqueeze") {
        std::optional<Ints> axes = n.get_ints("axes");
        if (n.num_inputs() > 1 && c.present(1)) axes = c.constant(1, "axes").ints();
        if (op == "Unsqueeze") {
            if (!axes) n.fail("needs axes");
            return lower_reshape_like(c, unsqueeze_shape(n, c.shape(0), *axes));
        }
        return lower_reshape_like(c, squeeze_shape(n, c.shape(0), axes));
    }
    if (op == "Transpose") {
        const int rank = static_cast<int>(c.shape(0).size());
        Ints perm(rank);
        std::iota(perm.rbegin(), perm.rend(), 0);
        if (auto p = n.get_ints("perm")) perm = *p;
        if (static_cast<int>(perm.size()) != rank) n.fail("perm " + shape_str(perm) + " does not match rank " + std::to_string(rank));
        for (int64_t& p : perm) p = norm_axis(n, p, rank);
        bool identity = true;
        for (int d = 0; d < rank; ++d) identity = identity && perm[d] == d;
        if (identity) return c.define(c.rt(0));
        return c.define(c.emit(Op::transpose, {c.rt(0)}, {{"perm", perm}}));
    }
    if (op == "Concat") return lower_concat(c);
    if (op == "Split") return lower_split(c);
    if (op == "Slice") return lower_slice(c);
    if (op == "Gather") return lower_gather(c);
    if (op == "Pad") return lower_pad(c);
    if (op == "Expand") return lower_expand(c);
    if (op == "Where") return lower_where(c);
    if (can_fold(op))
        n.fail("is supported only when its inputs are known at import (a shape computation), but input '" +
               [&] {
                   for (int k = 0; k < n.num_inputs(); ++k)
                       if (c.present(k) && !im.is_const(n.input(k))) return n.input(k);
                   return std::string("?");
               }() +
               "' is computed at run time");
    n.fail("op " + op + " is not supported by anvil's importer");
}

}  // namespace anvil
