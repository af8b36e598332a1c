// The reference executor: every node evaluated in float64, producers first,
// with no rounding of intermediates to their storage dtype. It trusts the
// shapes infer_shapes wrote (the graph must have been through it) and aims
// to be obviously right rather than fast: plain index loops for elementwise
// ops and data movement, Eigen for matmul and row statistics.
#include "anvil/reference.h"

#include <Eigen/Dense>
#include <algorithm>
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

void eval_node(const Value& v, const std::vector<const RefTensor*>& in, RefTensor& out) {
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
        default: break;
    }
    ANVIL_CHECK(false, std::string("reference: op not implemented: ") + op_name(v.op));
}

}  // namespace

std::map<std::string, RefTensor> reference_execute(const Graph& graph, const TensorMap& values) {
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
        for (VertexId u : graph.operands(v)) in.push_back(&result.at(graph.value(u).name));
        out.data.assign(static_cast<size_t>(numel(val.shape)), 0.0);
        eval_node(val, in, out);
    }
    return result;
}

}  // namespace anvil
