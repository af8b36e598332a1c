// The reference executor: every node evaluated in float64, producers first,
// with no rounding of intermediates to their storage dtype. It trusts the
// shapes infer_shapes wrote (the graph must have been through it) and aims
// to be obviously right rather than fast: plain index loops for elementwise,
// spatial ops and data movement, Eigen for matmul and row statistics.
#include "reference/reference.h"

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace anvil {

namespace {

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatMap = Eigen::Map<const RowMat>;
using MatMap = Eigen::Map<RowMat>;

int norm_axis(int64_t axis, size_t rank) {
    auto a = normalize_axis(axis, static_cast<int>(rank));
    ANVIL_CHECK(a.has_value(), "reference: axis out of range (was infer_shapes run?)");
    return *a;
}

// The element offset, under `strides`, of the flat (row-major) index `flat`
// of a tensor of shape `shape`. With broadcast or permuted strides this reads
// an operand as if it had the result's shape.
int64_t offset_of(int64_t flat, const Shape& shape, const Strides& strides) {
    int64_t off = 0;
    for (size_t d = shape.size(); d-- > 0;) {
        off += (flat % shape[d]) * strides[d];
        flat /= shape[d];
    }
    return off;
}

// A tensor viewed as [outer, dim, inner] around one axis.
struct AxisView {
    int64_t outer = 1, dim = 1, inner = 1;
};
AxisView around(const Shape& s, int axis) {
    AxisView v;
    for (int d = 0; d < axis; ++d) v.outer *= s[d];
    v.dim = s[axis];
    for (size_t d = axis + 1; d < s.size(); ++d) v.inner *= s[d];
    return v;
}

double unary(Op op, const Attrs& attrs, double x) {
    switch (op) {
        case Op::relu: return x > 0 ? x : 0.0;
        case Op::sigmoid: return 1.0 / (1.0 + std::exp(-x));
        case Op::tanh: return std::tanh(x);
        case Op::exp: return std::exp(x);
        case Op::log: return std::log(x);
        case Op::sqrt: return std::sqrt(x);
        case Op::rsqrt: return 1.0 / std::sqrt(x);
        case Op::neg: return -x;
        case Op::abs: return std::abs(x);
        case Op::silu: return x / (1.0 + std::exp(-x));
        case Op::gelu:
            if (attrs.get_string("approximate") == "tanh") {
                const double k = std::sqrt(2.0 / std::acos(-1.0));  // sqrt(2 / pi)
                return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
            }
            return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
        case Op::erf: return std::erf(x);
        default: break;
    }
    ANVIL_CHECK(false, std::string("reference: not a unary op: ") + op_name(op));
    return 0;
}

double binary(Op op, double a, double b) {
    switch (op) {
        case Op::add: return a + b;
        case Op::sub: return a - b;
        case Op::mul: return a * b;
        case Op::div: return a / b;
        case Op::max: return std::max(a, b);
        case Op::min: return std::min(a, b);
        case Op::pow: return std::pow(a, b);
        default: break;
    }
    ANVIL_CHECK(false, std::string("reference: not a binary op: ") + op_name(op));
    return 0;
}

void eval_binary(const Value& v, const RefTensor& a, const RefTensor& b, RefTensor& out) {
    Strides sa = broadcast_strides(a.shape, out.shape), sb = broadcast_strides(b.shape, out.shape);
    for (int64_t i = 0; i < numel(out.shape); ++i)
        out.data[i] = binary(v.op, a.data[offset_of(i, out.shape, sa)], b.data[offset_of(i, out.shape, sb)]);
}

void eval_softmax(const Value& v, const RefTensor& x, RefTensor& out) {
    AxisView w = around(x.shape, norm_axis(v.attrs.get_int("axis"), x.shape.size()));
    for (int64_t o = 0; o < w.outer; ++o)
        for (int64_t in = 0; in < w.inner; ++in) {
            auto at = [&](int64_t j) { return (o * w.dim + j) * w.inner + in; };
            double mx = -std::numeric_limits<double>::infinity();
            for (int64_t j = 0; j < w.dim; ++j) mx = std::max(mx, x.data[at(j)]);
            double sum = 0;
            for (int64_t j = 0; j < w.dim; ++j) sum += out.data[at(j)] = std::exp(x.data[at(j)] - mx);
            for (int64_t j = 0; j < w.dim; ++j) out.data[at(j)] /= sum;
        }
}

// layernorm and rmsnorm: x viewed as rows of `cols` values, gamma (and beta)
// one row that applies to every row.
void eval_norm(const Value& v, const std::vector<const RefTensor*>& in, RefTensor& out) {
    const RefTensor& x = *in[0];
    int64_t cols = v.op == Op::layernorm ? numel(in[1]->shape) : x.shape.back();
    int64_t rows = numel(x.shape) / cols;
    double eps = v.attrs.get_float("eps");
    ConstMatMap X(x.data.data(), rows, cols);
    MatMap Y(out.data.data(), rows, cols);
    Eigen::Map<const Eigen::RowVectorXd> gamma(in[1]->data.data(), cols);
    for (int64_t r = 0; r < rows; ++r) {
        if (v.op == Op::layernorm) {
            Eigen::Map<const Eigen::RowVectorXd> beta(in[2]->data.data(), cols);
            double mean = X.row(r).mean();
            double var = (X.row(r).array() - mean).square().mean();  // biased
            Y.row(r) = ((X.row(r).array() - mean) / std::sqrt(var + eps) * gamma.array() + beta.array()).matrix();
        } else {
            double ms = X.row(r).array().square().mean();
            Y.row(r) = (X.row(r).array() / std::sqrt(ms + eps) * gamma.array()).matrix();
        }
    }
}

void eval_reduce(const Value& v, const RefTensor& x, RefTensor& out) {
    // Each input element adds into the output element that drops (or keeps
    // as 1) the reduced axes: stride 0 along them, the output's elsewhere.
    Shape kept = x.shape;
    for (int64_t a : v.attrs.get_ints("axes")) kept[norm_axis(a, x.shape.size())] = 1;
    Strides to_out = contiguous_strides(kept);
    for (size_t d = 0; d < kept.size(); ++d)
        if (kept[d] == 1) to_out[d] = 0;
    bool is_max = v.op == Op::reduce_max;
    std::fill(out.data.begin(), out.data.end(), is_max ? -std::numeric_limits<double>::infinity() : 0.0);
    for (int64_t i = 0; i < numel(x.shape); ++i) {
        double& o = out.data[offset_of(i, x.shape, to_out)];
        o = is_max ? std::max(o, x.data[i]) : o + x.data[i];
    }
    if (v.op == Op::reduce_mean) {
        double count = static_cast<double>(numel(x.shape) / numel(kept));
        for (double& o : out.data) o /= count;
    }
}

void eval_matmul(const Value& v, const RefTensor& a, const RefTensor& b, RefTensor& out) {
    bool ta = v.attrs.get_bool("transpose_a"), tb = v.attrs.get_bool("transpose_b");
    int64_t ar = a.shape[a.shape.size() - 2], ac = a.shape.back();
    int64_t br = b.shape[b.shape.size() - 2], bc = b.shape.back();
    int64_t m = out.shape[out.shape.size() - 2], n = out.shape.back();
    // Batch dims broadcast: strides in units of whole matrices.
    Shape batch(out.shape.begin(), out.shape.end() - 2);
    Strides sa = broadcast_strides(Shape(a.shape.begin(), a.shape.end() - 2), batch);
    Strides sb = broadcast_strides(Shape(b.shape.begin(), b.shape.end() - 2), batch);
    for (int64_t i = 0; i < numel(batch); ++i) {
        ConstMatMap A(a.data.data() + offset_of(i, batch, sa) * ar * ac, ar, ac);
        ConstMatMap B(b.data.data() + offset_of(i, batch, sb) * br * bc, br, bc);
        MatMap C(out.data.data() + i * m * n, m, n);
        RowMat lhs = ta ? RowMat(A.transpose()) : RowMat(A);
        RowMat rhs = tb ? RowMat(B.transpose()) : RowMat(B);
        C.noalias() = lhs * rhs;
    }
}

void eval_transpose(const Value& v, const RefTensor& x, RefTensor& out) {
    // Output axis k walks input axis perm[k].
    Strides xs = contiguous_strides(x.shape), st;
    for (int64_t p : v.attrs.get_ints("perm")) st.push_back(xs[norm_axis(p, x.shape.size())]);
    for (int64_t i = 0; i < numel(out.shape); ++i) out.data[i] = x.data[offset_of(i, out.shape, st)];
}

void eval_concat(const Value& v, const std::vector<const RefTensor*>& in, RefTensor& out) {
    int axis = norm_axis(v.attrs.get_int("axis"), out.shape.size());
    AxisView o = around(out.shape, axis);
    int64_t at = 0;  // where along the axis the current input starts
    for (const RefTensor* x : in) {
        AxisView w = around(x->shape, axis);
        for (int64_t r = 0; r < w.outer; ++r)
            std::copy_n(x->data.begin() + r * w.dim * w.inner, w.dim * w.inner,
                        out.data.begin() + (r * o.dim + at) * o.inner);
        at += w.dim;
    }
}

void eval_slice(const Value& v, const RefTensor& x, RefTensor& out) {
    int axis = norm_axis(v.attrs.get_int("axis"), x.shape.size());
    AxisView w = around(x.shape, axis);
    std::optional<int64_t> end;
    if (v.attrs.has("end")) end = v.attrs.get_int("end");
    SliceBounds b = slice_bounds(w.dim, v.attrs.get_int("start"), end, v.attrs.get_int("step"));
    int64_t start = b.start, step = b.step, len = b.len;
    ANVIL_CHECK(len == out.shape[axis], "reference: slice length disagrees with infer_shapes");
    for (int64_t r = 0; r < w.outer; ++r)
        for (int64_t j = 0; j < len; ++j)
            std::copy_n(x.data.begin() + (r * w.dim + start + j * step) * w.inner, w.inner,
                        out.data.begin() + (r * len + j) * w.inner);
}

// ---------------------------------------------------------------- spatial ops
// x is [N, C, H, W]. Output cell (oh, ow) of conv2d and the pools reads the
// input rows oh * stride - pad_top + i * dilation (columns likewise); cells
// outside x are padding. The bottom and right padding only set the output
// size, which infer_shapes has fixed.

// An int-or-[h, w] attribute (the loader stores an int as one entry) as {h, w}.
std::array<int64_t, 2> hw(const Attrs& a, const std::string& name) {
    const std::vector<int64_t>& v = a.get_ints(name);
    return {v.front(), v.back()};
}

// The top and left padding of an int, [h, w] or [top, left, bottom, right].
std::array<int64_t, 2> top_left(const Attrs& a) {
    const std::vector<int64_t>& v = a.get_ints("padding");
    return {v[0], v.size() == 1 ? v[0] : v[1]};
}

void eval_conv2d(const Value& v, const std::vector<const RefTensor*>& in, RefTensor& out) {
    const RefTensor &x = *in[0], &w = *in[1];
    const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
    const int64_t O = w.shape[0], Cg = w.shape[1], KH = w.shape[2], KW = w.shape[3];
    const int64_t OH = out.shape[2], OW = out.shape[3];
    const auto [sh, sw] = hw(v.attrs, "stride");
    const auto [dh, dw] = hw(v.attrs, "dilation");
    const auto [pt, pl] = top_left(v.attrs);
    const int64_t per_group = O / v.attrs.get_int("groups");  // output channels of one group
    // One output plane at a time, adding in one weight's contribution over
    // the whole plane: each output still sums bias, then c, i, j in order.
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o) {
            double* y = out.data.data() + (n * O + o) * OH * OW;
            std::fill(y, y + OH * OW, in.size() == 3 ? in[2]->data[o] : 0.0);
            const int64_t c0 = o / per_group * Cg;  // the group's first input channel
            for (int64_t c = 0; c < Cg; ++c) {
                const double* plane = x.data.data() + (n * C + c0 + c) * H * W;
                for (int64_t i = 0; i < KH; ++i)
                    for (int64_t j = 0; j < KW; ++j) {
                        const double wv = w.data[((o * Cg + c) * KH + i) * KW + j];
                        for (int64_t oh = 0; oh < OH; ++oh) {
                            const int64_t ih = oh * sh - pt + i * dh;
                            if (ih < 0 || ih >= H) continue;  // padding: adds 0
                            for (int64_t ow = 0; ow < OW; ++ow) {
                                const int64_t iw = ow * sw - pl + j * dw;
                                if (iw >= 0 && iw < W) y[oh * OW + ow] += wv * plane[ih * W + iw];
                            }
                        }
                    }
            }
        }
}

// maxpool2d and avgpool2d: padding never wins a max; an average divides by
// the cells of x in the window, or by the kernel area with count_include_pad.
void eval_pool(const Value& v, const RefTensor& x, RefTensor& out) {
    const bool is_max = v.op == Op::maxpool2d;
    const int64_t H = x.shape[2], W = x.shape[3], OH = out.shape[2], OW = out.shape[3];
    const auto [kh, kw] = hw(v.attrs, "kernel");
    const auto [sh, sw] = v.attrs.has("stride") ? hw(v.attrs, "stride") : std::array<int64_t, 2>{kh, kw};
    const auto [dh, dw] = is_max ? hw(v.attrs, "dilation") : std::array<int64_t, 2>{1, 1};
    const auto [pt, pl] = top_left(v.attrs);
    const bool include_pad = !is_max && v.attrs.get_bool("count_include_pad");
    for (int64_t plane = 0; plane < x.shape[0] * x.shape[1]; ++plane) {
        const double* src = x.data.data() + plane * H * W;
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
                int64_t cells = 0;
                for (int64_t i = 0; i < kh; ++i)
                    for (int64_t j = 0; j < kw; ++j) {
                        const int64_t ih = oh * sh - pt + i * dh, iw = ow * sw - pl + j * dw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        acc = is_max ? std::max(acc, src[ih * W + iw]) : acc + src[ih * W + iw];
                        ++cells;
                    }
                // A dilated max window may skip every cell of x: -inf, as PyTorch's.
                ANVIL_CHECK(cells > 0 || is_max, "reference: a pooling window of '" + v.name +
                                                     "' holds only padding (infer_shapes bounds padding by half the kernel)");
                if (!is_max) acc /= static_cast<double>(include_pad ? kh * kw : cells);
                out.data[(plane * OH + oh) * OW + ow] = acc;
            }
    }
}

void eval_global_avgpool(const RefTensor& x, RefTensor& out) {
    const int64_t area = x.shape[2] * x.shape[3];
    for (int64_t plane = 0; plane < x.shape[0] * x.shape[1]; ++plane) {
        double sum = 0;
        for (int64_t k = 0; k < area; ++k) sum += x.data[plane * area + k];
        out.data[plane] = sum / static_cast<double>(area);
    }
}

// x [N, C, ...]: every element takes the statistics of its channel, dim 1.
void eval_batchnorm(const Value& v, const std::vector<const RefTensor*>& in, RefTensor& out) {
    const RefTensor& x = *in[0];
    const int64_t C = x.shape[1], inner = numel(x.shape) / (x.shape[0] * C);
    const double eps = v.attrs.get_float("eps");
    const std::vector<double> &scale = in[1]->data, &bias = in[2]->data, &mean = in[3]->data, &var = in[4]->data;
    for (int64_t i = 0; i < numel(x.shape); ++i) {
        int64_t c = i / inner % C;
        out.data[i] = (x.data[i] - mean[c]) / std::sqrt(var[c] + eps) * scale[c] + bias[c];
    }
}

// Row ids[p] of the table for every position p of ids. An id outside the
// table is the user's error, found at run time: it names where it stands.
void eval_embedding(const Value& v, const std::vector<std::string>& names, const std::vector<const RefTensor*>& in,
                    RefTensor& out) {
    const RefTensor &table = *in[0], &ids = *in[1];
    const int64_t V = table.shape[0], D = table.shape[1];
    for (int64_t p = 0; p < numel(ids.shape); ++p) {
        const double id = ids.data[p];  // an exact integer: ids are i32
        if (!(id >= 0 && id < static_cast<double>(V))) {
            Shape position(ids.shape.size());
            int64_t rest = p;
            for (size_t d = ids.shape.size(); d-- > 0; rest /= ids.shape[d]) position[d] = rest % ids.shape[d];
            user_error(v.input_locs.size() > 1 ? v.input_locs[1] : v.loc, "node '" + v.name + "'",
                       "embedding id " + std::to_string(static_cast<int64_t>(id)) + " at position " +
                           shape_str(position) + " of ids '" + names[1] + "' is outside [0, " + std::to_string(V) +
                           "): table '" + names[0] + "' has " + std::to_string(V) + " rows");
        }
        std::copy_n(table.data.begin() + static_cast<int64_t>(id) * D, D, out.data.begin() + p * D);
    }
}

// names: the operands' names, for run-time errors.
void eval_node(const Value& v, const std::vector<std::string>& names, const std::vector<const RefTensor*>& in,
               RefTensor& out) {
    switch (op_info(v.op).cls) {
        case OpClass::Source:
            std::fill(out.data.begin(), out.data.end(), v.attrs.get_float("value"));
            return;
        case OpClass::Unary:
            for (size_t i = 0; i < out.data.size(); ++i) out.data[i] = unary(v.op, v.attrs, in[0]->data[i]);
            return;
        case OpClass::Binary: return eval_binary(v, *in[0], *in[1], out);
        case OpClass::Matmul: return eval_matmul(v, *in[0], *in[1], out);
        default: break;
    }
    switch (v.op) {
        case Op::softmax: return eval_softmax(v, *in[0], out);
        case Op::layernorm:
        case Op::rmsnorm: return eval_norm(v, in, out);
        case Op::reduce_sum:
        case Op::reduce_mean:
        case Op::reduce_max: return eval_reduce(v, *in[0], out);
        case Op::transpose: return eval_transpose(v, *in[0], out);
        case Op::reshape: out.data = in[0]->data; return;
        case Op::concat: return eval_concat(v, in, out);
        case Op::slice: return eval_slice(v, *in[0], out);
        case Op::conv2d: return eval_conv2d(v, in, out);
        case Op::maxpool2d:
        case Op::avgpool2d: return eval_pool(v, *in[0], out);
        case Op::global_avgpool: return eval_global_avgpool(*in[0], out);
        case Op::batchnorm: return eval_batchnorm(v, in, out);
        case Op::embedding: return eval_embedding(v, names, in, out);
        default: break;
    }
    ANVIL_CHECK(false, std::string("reference: op not implemented: ") + op_name(v.op));
}

}  // namespace

namespace {

std::map<std::string, RefTensor> execute(const Graph& graph, const TensorMap& values, bool round_results) {
    std::map<std::string, RefTensor> result;
    for (VertexId v : graph.topological_order()) {
        const Value& val = graph.value(v);
        RefTensor& out = result[val.name];
        out.shape = val.shape;
        if (val.role != Role::node) {
            auto it = values.find(val.name);
            ANVIL_CHECK(it != values.end(), "reference: no value for '" + val.name + "'");
            ANVIL_CHECK(it->second.shape == val.shape, "reference: value of '" + val.name + "' has shape " +
                                                           shape_str(it->second.shape) + ", declared " +
                                                           shape_str(val.shape));
            out.data = it->second.to_doubles();
            continue;
        }
        std::vector<const RefTensor*> in;
        std::vector<std::string> names;
        for (VertexId u : graph.operands(v)) {
            names.push_back(graph.value(u).name);
            in.push_back(&result.at(names.back()));
        }
        out.data.assign(static_cast<size_t>(numel(val.shape)), 0.0);
        eval_node(val, names, in, out);
        if (round_results && is_float(val.dtype))
            for (double& x : out.data) x = round_to(val.dtype, static_cast<float>(x));
    }
    return result;
}

}  // namespace

std::map<std::string, RefTensor> reference_execute(const Graph& graph, const TensorMap& values) {
    return execute(graph, values, false);
}

std::map<std::string, RefTensor> reference_execute_rounded(const Graph& graph, const TensorMap& values) {
    return execute(graph, values, true);
}

}  // namespace anvil
