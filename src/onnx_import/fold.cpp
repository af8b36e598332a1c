#include "onnx_import/fold.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "anvil/error.h"
#include "base/checked.h"

namespace anvil {

namespace {

// The most elements one folded tensor may have (16 Mi: 128 MiB of doubles)
// beyond the size of its node's largest input (a weight transposed at
// import is as large as the weight). Shape subgraphs fold tensors of a few
// elements; a mask or a position table folds a few million at most.
constexpr int64_t kMaxFoldedElements = int64_t{1} << 24;

int64_t largest(const std::vector<const ConstTensor*>& in) {
    int64_t m = 0;
    for (const ConstTensor* t : in) m = std::max(m, t ? t->numel() : 0);
    return m;
}

}  // namespace

// Every tensor folding computes is allocated here, its size checked first
// (libFuzzer: a ConstantOfShape of 2.4 G elements ran out of memory).
ConstTensor folded_tensor(const OnnxNode& n, OnnxType type, const Shape& s, const std::vector<const ConstTensor*>& from) {
    const std::optional<int64_t> count = checked_numel(s);
    if (!count || *count > std::max(kMaxFoldedElements, largest(from)))
        n.fail("folding it at import makes a constant of shape " + shape_str(s) + ", more than the " +
               std::to_string(kMaxFoldedElements) + " elements a folded tensor may have");
    ConstTensor r;
    r.type = type;
    r.shape = s;
    r.v.assign(static_cast<size_t>(*count), 0.0);
    return r;
}

namespace {

std::string dims_str(const std::vector<int64_t>& s) { return shape_str(s); }

const ConstTensor& need(const OnnxNode& n, const std::vector<std::optional<ConstTensor>>& in, size_t i) {
    if (i >= in.size() || !in[i]) n.fail("input " + std::to_string(i) + " is missing");
    return *in[i];
}

// Row-major index helpers.
std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
    std::vector<int64_t> idx(s.size());
    for (int d = static_cast<int>(s.size()) - 1; d >= 0; --d) {
        idx[d] = s[d] ? flat % s[d] : 0;
        flat = s[d] ? flat / s[d] : 0;
    }
    return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
    int64_t f = 0;
    for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + idx[d];
    return f;
}

ConstTensor unary(const ConstTensor& a, double (*f)(double)) {
    ConstTensor r = a;
    for (double& x : r.v) x = f(x);
    return cast_to(r, a.type);
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }
double relu(double x) { return x > 0 ? x : 0; }
double neg(double x) { return -x; }
double recip(double x) { return 1 / x; }
double not_(double x) { return x == 0 ? 1 : 0; }

ConstTensor reduce(const OnnxNode& n, const ConstTensor& a, std::optional<std::vector<int64_t>> axes,
                   const std::string& kind) {
    const int rank = static_cast<int>(a.shape.size());
    std::vector<bool> reduced(rank, false);
    if (!axes || axes->empty()) {
        if (!axes && n.get_int("noop_with_empty_axes", 0)) return a;
        std::fill(reduced.begin(), reduced.end(), true);
    } else {
        for (int64_t ax : *axes) reduced[norm_axis(n, ax, rank)] = true;
    }
    const bool keep = n.get_int("keepdims", 1) != 0;
    Shape kept;  // the output with every reduced dim kept as 1
    for (int d = 0; d < rank; ++d) kept.push_back(reduced[d] ? 1 : a.shape[d]);
    ConstTensor r = folded_tensor(n, a.type, kept, {&a});
    const double init = kind == "max" ? -INFINITY : kind == "min" ? INFINITY : kind == "prod" ? 1 : 0;
    std::fill(r.v.begin(), r.v.end(), init);
    std::vector<int64_t> count(r.v.size(), 0);
    for (int64_t i = 0; i < a.numel(); ++i) {
        std::vector<int64_t> idx = unravel(i, a.shape);
        for (int d = 0; d < rank; ++d)
            if (reduced[d]) idx[d] = 0;
        const int64_t o = ravel(idx, kept);
        double& acc = r.v[o];
        const double x = a.v[i];
        if (kind == "max") acc = std::max(acc, x);
        else if (kind == "min") acc = std::min(acc, x);
        else if (kind == "prod") acc *= x;
        else acc += x;
        ++count[o];
    }
    if (kind == "mean")
        for (size_t i = 0; i < r.v.size(); ++i) r.v[i] /= std::max<int64_t>(count[i], 1);
    if (!keep) {
        r.shape.clear();
        for (int d = 0; d < rank; ++d)
            if (!reduced[d]) r.shape.push_back(a.shape[d]);
    }
    return cast_to(r, a.type);
}

ConstTensor transpose(const OnnxNode& n, const ConstTensor& a, const std::vector<int64_t>& perm) {
    Shape s;
    for (int64_t p : perm) s.push_back(a.shape[p]);
    ConstTensor r = folded_tensor(n, a.type, s, {&a});
    for (int64_t i = 0; i < r.numel(); ++i) {
        std::vector<int64_t> oi = unravel(i, r.shape), ii(a.shape.size());
        for (size_t d = 0; d < perm.size(); ++d) ii[perm[d]] = oi[d];
        r.v[i] = a.v[ravel(ii, a.shape)];
    }
    return r;
}

std::vector<int64_t> transpose_perm(const OnnxNode& n, int rank) {
    std::vector<int64_t> perm(rank);
    std::iota(perm.rbegin(), perm.rend(), 0);
    if (auto p = n.get_ints("perm")) {
        if (static_cast<int>(p->size()) != rank) n.fail("perm " + dims_str(*p) + " does not match rank " + std::to_string(rank));
        std::vector<bool> seen(rank, false);
        for (int64_t& x : *p) {
            x = norm_axis(n, x, rank);
            if (seen[x]) n.fail("perm " + dims_str(*p) + " repeats an axis");
            seen[x] = true;
        }
        perm = *p;
    }
    return perm;
}

Shape expand_shape(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& target) {
    auto b = broadcast_shapes(in, target);
    if (!b) n.fail("cannot expand " + shape_str(in) + " to " + dims_str(target));
    return *b;
}

ConstTensor broadcast_to(const OnnxNode& n, const ConstTensor& a, const Shape& out) {
    const ConstTensor z = folded_tensor(n, a.type, out, {&a});
    return broadcast_binary(n, a, z, a.type, [](double x, double) { return x; });
}

}  // namespace

int norm_axis(const OnnxNode& n, int64_t axis, int rank) {
    auto a = normalize_axis(axis, rank);
    if (!a) n.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
    return *a;
}

ConstTensor broadcast_binary(const OnnxNode& n, const ConstTensor& a, const ConstTensor& b, OnnxType out,
                             double (*f)(double, double)) {
    auto s = broadcast_shapes(a.shape, b.shape);
    if (!s) n.fail("operands " + shape_str(a.shape) + " and " + shape_str(b.shape) + " do not broadcast");
    ConstTensor r = folded_tensor(n, out, *s, {&a, &b});
    const Strides sa = broadcast_strides(a.shape, *s), sb = broadcast_strides(b.shape, *s);
    for (int64_t i = 0; i < r.numel(); ++i) {
        std::vector<int64_t> idx = unravel(i, *s);
        int64_t ia = 0, ib = 0;
        for (size_t d = 0; d < idx.size(); ++d) ia += idx[d] * sa[d], ib += idx[d] * sb[d];
        r.v[i] = f(a.v[ia], b.v[ib]);
    }
    return cast_to(r, out);
}

Shape unsqueeze_shape(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& axes) {
    const int rank = static_cast<int>(in.size() + axes.size());
    std::vector<bool> inserted(rank, false);
    for (int64_t a : axes) {
        int ax = norm_axis(n, a, rank);
        if (inserted[ax]) n.fail("axes " + dims_str(axes) + " repeat an axis");
        inserted[ax] = true;
    }
    Shape r;
    size_t j = 0;
    for (int d = 0; d < rank; ++d) r.push_back(inserted[d] ? 1 : in[j++]);
    return r;
}

Shape squeeze_shape(const OnnxNode& n, const Shape& in, const std::optional<std::vector<int64_t>>& axes) {
    const int rank = static_cast<int>(in.size());
    std::vector<bool> drop(rank, false);
    if (!axes) {
        for (int d = 0; d < rank; ++d) drop[d] = in[d] == 1;
    } else {
        for (int64_t a : *axes) {
            int ax = norm_axis(n, a, rank);
            if (in[ax] != 1) n.fail("cannot squeeze axis " + std::to_string(a) + " of " + shape_str(in) + ": it is not 1");
            drop[ax] = true;
        }
    }
    Shape r;
    for (int d = 0; d < rank; ++d)
        if (!drop[d]) r.push_back(in[d]);
    return r;
}

Shape reshape_shape(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& target, bool allowzero) {
    Shape r;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < target.size(); ++i) {
        int64_t d = target[i];
        if (d == 0 && !allowzero) {
            if (i >= in.size()) n.fail("shape " + dims_str(target) + " copies dim " + std::to_string(i) + " of " + shape_str(in) + ", which has none");
            d = in[i];
        }
        if (d == -1) {
            if (infer >= 0) n.fail("shape " + dims_str(target) + " has more than one -1");
            infer = static_cast<int>(i);
            r.push_back(1);
            continue;
        }
        if (d < 0) n.fail("shape " + dims_str(target) + " has a negative dimension");
        known *= d;
        r.push_back(d);
    }
    const int64_t total = numel(in);
    if (infer >= 0) {
        if (known == 0 || total % known) n.fail("cannot reshape " + shape_str(in) + " to " + dims_str(target));
        r[infer] = total / known;
    }
    if (numel(r) != total) n.fail("cannot reshape " + shape_str(in) + " (" + std::to_string(total) + " elements) to " + dims_str(target));
    return r;
}

Shape flatten_shape(const OnnxNode& n, const Shape& in) {
    const int rank = static_cast<int>(in.size());
    int64_t axis = n.get_int("axis", 1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) n.fail("axis " + std::to_string(n.get_int("axis", 1)) + " is out of range for rank " + std::to_string(rank));
    int64_t a = 1, b = 1;
    for (int d = 0; d < rank; ++d) (d < axis ? a : b) *= in[d];
    return {a, b};
}

std::vector<SliceAxis> slice_axes(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& starts,
                                  const std::vector<int64_t>& ends, std::optional<std::vector<int64_t>> axes,
                                  std::optional<std::vector<int64_t>> steps) {
    const int rank = static_cast<int>(in.size());
    if (!axes) {
        axes.emplace(starts.size());
        std::iota(axes->begin(), axes->end(), 0);
    }
    if (!steps) steps.emplace(starts.size(), 1);
    if (ends.size() != starts.size() || axes->size() != starts.size() || steps->size() != starts.size())
        n.fail("starts, ends, axes and steps differ in length");
    std::vector<SliceAxis> r;
    for (size_t i = 0; i < starts.size(); ++i) {
        const int ax = norm_axis(n, (*axes)[i], rank);
        const int64_t dim = in[ax], step = (*steps)[i];
        if (step == 0) n.fail("a slice step is 0");
        auto clamp_index = [&](int64_t v, int64_t lo, int64_t hi) {
            if (v < 0) v = v < -dim ? -dim - 1 + dim : v + dim;  // very negative clamps below
            return std::clamp(v, lo, hi);
        };
        int64_t s = starts[i], e = ends[i];
        if (s < 0) s = std::max<int64_t>(s + dim, step > 0 ? 0 : -1);
        if (e < 0) e = std::max<int64_t>(e + dim, -1);
        (void)clamp_index;
        if (step > 0) {
            s = std::clamp<int64_t>(s, 0, dim);
            e = std::clamp<int64_t>(e, 0, dim);
        } else {
            s = std::clamp<int64_t>(s, -1, dim - 1);
            e = std::clamp<int64_t>(e, -1, dim - 1);
        }
        int64_t len = step > 0 ? (e - s + step - 1) / step : (s - e + (-step) - 1) / (-step);
        r.push_back({ax, s, step, std::max<int64_t>(len, 0)});
    }
    return r;
}

bool can_fold(const std::string& op) {
    static const char* ops[] = {
        "Identity", "Dropout", "Cast", "CastLike", "Constant", "ConstantOfShape", "Gather", "Unsqueeze", "Squeeze",
        "Concat", "Reshape", "Flatten", "Transpose", "Slice", "Expand", "Range", "Equal", "Less", "Greater",
        "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Where", "Add", "Sub", "Mul", "Div", "Pow", "Mod",
        "Sqrt", "Reciprocal", "Neg", "Abs", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Relu", "Floor", "Ceil", "Min",
        "Max", "Clip", "ReduceProd", "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "Split", "Tile", "Sin",
        "Cos", "Sum", "ScatterND"};
    return std::find_if(std::begin(ops), std::end(ops), [&](const char* o) { return op == o; }) != std::end(ops);
}

std::vector<ConstTensor> fold(const OnnxNode& n, const std::vector<std::optional<ConstTensor>>& in) {
    const std::string& op = n.op();
    auto x = [&](size_t i) -> const ConstTensor& { return need(n, in, i); };
    auto has = [&](size_t i) { return i < in.size() && in[i].has_value(); };
    auto binary = [&](double (*f)(double, double), std::optional<OnnxType> out = std::nullopt) {
        return std::vector<ConstTensor>{broadcast_binary(n, x(0), x(1), out.value_or(x(0).type), f)};
    };
    const bool ints = !is_onnx_float(has(0) ? x(0).type : OnnxType::float32);

    if (op == "Identity" || op == "Dropout") return {x(0)};
    if (op == "Cast") return {cast_to(x(0), static_cast<OnnxType>(n.get_int("to", 1)))};
    if (op == "CastLike") return {cast_to(x(0), x(1).type)};
    if (op == "Add") return binary([](double a, double b) { return a + b; });
    if (op == "Sub") return binary([](double a, double b) { return a - b; });
    if (op == "Mul") return binary([](double a, double b) { return a * b; });
    if (op == "Div") {
        if (ints) return binary([](double a, double b) { return b == 0 ? 0.0 : std::trunc(a / b); });
        return binary([](double a, double b) { return a / b; });
    }
    if (op == "Pow") return binary([](double a, double b) { return std::pow(a, b); });
    if (op == "Mod") {
        if (n.get_int("fmod", 0)) return binary([](double a, double b) { return std::fmod(a, b); });
        return binary([](double a, double b) {
            double m = std::fmod(a, b);
            return (m != 0 && ((m < 0) != (b < 0))) ? m + b : m;
        });
    }
    if (op == "Equal") return binary([](double a, double b) { return double(a == b); }, OnnxType::boolean);
    if (op == "Less") return binary([](double a, double b) { return double(a < b); }, OnnxType::boolean);
    if (op == "Greater") return binary([](double a, double b) { return double(a > b); }, OnnxType::boolean);
    if (op == "LessOrEqual") return binary([](double a, double b) { return double(a <= b); }, OnnxType::boolean);
    if (op == "GreaterOrEqual") return binary([](double a, double b) { return double(a >= b); }, OnnxType::boolean);
    if (op == "And") return binary([](double a, double b) { return double(a != 0 && b != 0); }, OnnxType::boolean);
    if (op == "Or") return binary([](double a, double b) { return double(a != 0 || b != 0); }, OnnxType::boolean);
    if (op == "Not") return {unary(x(0), not_)};
    if (op == "Sqrt") return {unary(x(0), [](double a) { return std::sqrt(a); })};
    if (op == "Reciprocal") return {unary(x(0), recip)};
    if (op == "Neg") return {unary(x(0), neg)};
    if (op == "Abs") return {unary(x(0), [](double a) { return std::fabs(a); })};
    if (op == "Exp") return {unary(x(0), [](double a) { return std::exp(a); })};
    if (op == "Log") return {unary(x(0), [](double a) { return std::log(a); })};
    if (op == "Erf") return {unary(x(0), [](double a) { return std::erf(a); })};
    if (op == "Tanh") return {unary(x(0), [](double a) { return std::tanh(a); })};
    if (op == "Sigmoid") return {unary(x(0), sigmoid)};
    if (op == "Relu") return {unary(x(0), relu)};
    if (op == "Floor") return {unary(x(0), [](double a) { return std::floor(a); })};
    if (op == "Ceil") return {unary(x(0), [](double a) { return std::ceil(a); })};
    if (op == "Sin") return {unary(x(0), [](double a) { return std::sin(a); })};
    if (op == "Cos") return {unary(x(0), [](double a) { return std::cos(a); })};
    if (op == "Min" || op == "Max" || op == "Sum") {
        ConstTensor acc = x(0);
        for (size_t i = 1; i < in.size(); ++i) {
            acc = broadcast_binary(n, acc, x(i), acc.type,
                                   op == "Min"   ? +[](double a, double b) { return std::min(a, b); }
                                   : op == "Max" ? +[](double a, double b) { return std::max(a, b); }
                                                 : +[](double a, double b) { return a + b; });
        }
        return {acc};
    }
    if (op == "Clip") {
        ConstTensor r = x(0);
        double lo = -INFINITY, hi = INFINITY;
        if (has(1)) lo = x(1).v.at(0);
        if (has(2)) hi = x(2).v.at(0);
        if (n.has("min")) lo = n.get_float("min", 0);
        if (n.has("max")) hi = n.get_float("max", 0);
        for (double& v : r.v) v = std::min(std::max(v, lo), hi);
        return {r};
    }
    if (op == "Constant") {
        const auto* a = n.proto().attribute_size() == 1 ? &n.proto().attribute(0) : nullptr;
        if (!a) n.fail("needs exactly one value attribute");
        ConstTensor r;
        if (a->name() == "value") {
            ANVIL_CHECK(false, "Constant 'value' is read by the importer");
        } else if (a->name() == "value_float") {
            r.v = {a->f()};
        } else if (a->name() == "value_floats") {
            r.v.assign(a->floats().begin(), a->floats().end());
            r.shape = {static_cast<int64_t>(r.v.size())};
        } else if (a->name() == "value_int") {
            r.type = OnnxType::int64;
            r.v = {static_cast<double>(a->i())};
        } else if (a->name() == "value_ints") {
            r.type = OnnxType::int64;
            for (int64_t i : a->ints()) r.v.push_back(static_cast<double>(i));
            r.shape = {static_cast<int64_t>(r.v.size())};
        } else {
            n.fail("attribute '" + a->name() + "' is not supported");
        }
        return {r};
    }
    if (op == "ConstantOfShape") {
        // zeros here; the importer fills in the 'value' attribute's value
        const Shape s = x(0).ints();
        for (int64_t d : s)
            if (d < 0) n.fail("shape " + dims_str(s) + " has a negative dimension");
        return {folded_tensor(n, OnnxType::float32, s, {})};
    }
    if (op == "Gather") {
        const ConstTensor& d = x(0);
        const ConstTensor& idx = x(1);
        const int rank = static_cast<int>(d.shape.size());
        const int axis = norm_axis(n, n.get_int("axis", 0), rank);
        Shape s(d.shape.begin(), d.shape.begin() + axis);
        s.insert(s.end(), idx.shape.begin(), idx.shape.end());
        s.insert(s.end(), d.shape.begin() + axis + 1, d.shape.end());
        ConstTensor r = folded_tensor(n, d.type, s, {&d, &idx});
        int64_t outer = 1, inner = 1, at = 0;
        for (int i = 0; i < axis; ++i) outer *= d.shape[i];
        for (int i = axis + 1; i < rank; ++i) inner *= d.shape[i];
        const int64_t dim = d.shape[axis];
        for (int64_t o = 0; o < outer; ++o)
            for (double fi : idx.v) {
                int64_t k = static_cast<int64_t>(fi);
                if (k < 0) k += dim;
                if (k < 0 || k >= dim) n.fail("index " + std::to_string(static_cast<int64_t>(fi)) + " is out of range for a dimension of " + std::to_string(dim));
                for (int64_t i = 0; i < inner; ++i) r.v[at++] = d.v[(o * dim + k) * inner + i];
            }
        return {r};
    }
    if (op == "Unsqueeze" || op == "Squeeze") {
        std::optional<std::vector<int64_t>> axes = n.get_ints("axes");
        if (has(1)) axes = x(1).ints();
        ConstTensor r = x(0);
        if (op == "Unsqueeze") {
            if (!axes) n.fail("needs axes");
            r.shape = unsqueeze_shape(n, r.shape, *axes);
        } else {
            r.shape = squeeze_shape(n, r.shape, axes);
        }
        return {r};
    }
    if (op == "Reshape") {
        ConstTensor r = x(0);
        r.shape = reshape_shape(n, r.shape, x(1).ints(), n.get_int("allowzero", 0) != 0);
        return {r};
    }
    if (op == "Flatten") {
        ConstTensor r = x(0);
        r.shape = flatten_shape(n, r.shape);
        return {r};
    }
    if (op == "Expand") return {broadcast_to(n, x(0), expand_shape(n, x(0).shape, x(1).ints()))};
    if (op == "Transpose") return {transpose(n, x(0), transpose_perm(n, static_cast<int>(x(0).shape.size())))};
    if (op == "Concat") {
        const int rank = static_cast<int>(x(0).shape.size());
        const int axis = norm_axis(n, n.get_int("axis", 0), rank);
        Shape s = x(0).shape;
        s[axis] = 0;
        std::vector<const ConstTensor*> parts;
        for (size_t i = 0; i < in.size(); ++i) {
            if (x(i).shape.size() != x(0).shape.size()) n.fail("operands differ in rank");
            for (int d = 0; d < rank; ++d)
                if (d != axis && x(i).shape[d] != x(0).shape[d])
                    n.fail("operands " + shape_str(x(0).shape) + " and " + shape_str(x(i).shape) + " differ off the axis");
            s[axis] += x(i).shape[axis];
            parts.push_back(&x(i));
        }
        ConstTensor r = folded_tensor(n, x(0).type, s, parts);
        int64_t outer = 1;
        for (int d = 0; d < axis; ++d) outer *= s[d];
        auto at = r.v.begin();
        for (int64_t o = 0; o < outer; ++o)
            for (size_t i = 0; i < in.size(); ++i) {
                const int64_t chunk = x(i).numel() / std::max<int64_t>(outer, 1);
                at = std::copy(x(i).v.begin() + o * chunk, x(i).v.begin() + (o + 1) * chunk, at);
            }
        return {r};
    }
    if (op == "Slice") {
        std::optional<std::vector<int64_t>> axes, steps;
        if (has(3)) axes = x(3).ints();
        if (has(4)) steps = x(4).ints();
        const ConstTensor& d = x(0);
        std::vector<SliceAxis> sl = slice_axes(n, d.shape, x(1).ints(), x(2).ints(), axes, steps);
        Shape out = d.shape;
        std::vector<int64_t> start(d.shape.size(), 0), step(d.shape.size(), 1);
        for (const SliceAxis& s : sl) out[s.axis] = s.len, start[s.axis] = s.start, step[s.axis] = s.step;
        ConstTensor r = folded_tensor(n, d.type, out, {&d});
        for (int64_t i = 0; i < r.numel(); ++i) {
            std::vector<int64_t> idx = unravel(i, out);
            for (size_t k = 0; k < idx.size(); ++k) idx[k] = start[k] + idx[k] * step[k];
            r.v[i] = d.v[ravel(idx, d.shape)];
        }
        return {r};
    }
    if (op == "Range") {
        const double start = x(0).v.at(0), limit = x(1).v.at(0), delta = x(2).v.at(0);
        if (delta == 0) n.fail("delta is 0");
        const int64_t count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - start) / delta)));
        ConstTensor r = folded_tensor(n, x(0).type, {count}, {});
        for (int64_t i = 0; i < count; ++i) r.v[i] = start + i * delta;
        return {cast_to(r, r.type)};
    }
    if (op == "Where") {
        const ConstTensor &c = x(0), &a = x(1), &b = x(2);
        auto s1 = broadcast_shapes(c.shape, a.shape);
        auto s = s1 ? broadcast_shapes(*s1, b.shape) : std::nullopt;
        if (!s) n.fail("operands do not broadcast");
        ConstTensor cc = broadcast_to(n, c, *s), aa = broadcast_to(n, a, *s), bb = broadcast_to(n, b, *s);
        for (size_t i = 0; i < aa.v.size(); ++i) aa.v[i] = cc.v[i] != 0 ? aa.v[i] : bb.v[i];
        return {aa};
    }
    if (op == "ReduceProd" || op == "ReduceSum" || op == "ReduceMean" || op == "ReduceMax" || op == "ReduceMin") {
        std::optional<std::vector<int64_t>> axes = n.get_ints("axes");
        if (has(1)) axes = x(1).ints();
        std::string kind = op.substr(6);
        std::transform(kind.begin(), kind.end(), kind.begin(), ::tolower);
        return {reduce(n, x(0), axes, kind)};
    }
    if (op == "Tile") {
        const std::vector<int64_t> reps = x(1).ints();
        const ConstTensor& d = x(0);
        if (reps.size() != d.shape.size()) n.fail("repeats do not match the rank");
        Shape s;
        for (size_t k = 0; k < reps.size(); ++k) {
            if (reps[k] < 0) n.fail("repeats hold " + std::to_string(reps[k]) + "; each must be 0 or more");
            const std::optional<int64_t> len = checked_mul(d.shape[k], reps[k]);
            s.push_back(len ? *len : -1);  // -1: refused just below
        }
        if (std::count(s.begin(), s.end(), -1)) n.fail("repeats make a dimension past 64 bits");
        ConstTensor r = folded_tensor(n, d.type, s, {&d});
        for (int64_t i = 0; i < r.numel(); ++i) {
            std::vector<int64_t> idx = unravel(i, r.shape);
            for (size_t k = 0; k < idx.size(); ++k) idx[k] %= d.shape[k];
            r.v[i] = d.v[ravel(idx, d.shape)];
        }
        return {r};
    }
    if (op == "ScatterND") {  // swin builds its shifted-window mask by slice assignments
        const ConstTensor &d = x(0), &idx = x(1), &up = x(2);
        const std::string reduction = n.get_string("reduction", "none");
        double (*apply)(double, double) =
            reduction == "none"  ? +[](double, double u) { return u; }
            : reduction == "add" ? +[](double a, double u) { return a + u; }
            : reduction == "mul" ? +[](double a, double u) { return a * u; }
            : reduction == "max" ? +[](double a, double u) { return std::max(a, u); }
            : reduction == "min" ? +[](double a, double u) { return std::min(a, u); }
                                 : nullptr;
        if (!apply) n.fail("reduction '" + reduction + "' is not one of none, add, mul, max, min");
        const int64_t rank = static_cast<int64_t>(d.shape.size());
        const int64_t k = idx.shape.empty() ? 0 : idx.shape.back();
        if (idx.shape.empty() || k < 1 || k > rank)
            n.fail("indices " + shape_str(idx.shape) + " must end in a dim of 1 to " + std::to_string(rank));
        int64_t slice = 1;
        for (int64_t a = k; a < rank; ++a) slice *= d.shape[a];
        const int64_t count = idx.numel() / k;
        if (up.numel() != count * slice)
            n.fail("updates " + shape_str(up.shape) + " hold " + std::to_string(up.numel()) + " values, not the " +
                   std::to_string(count * slice) + " the indices " + shape_str(idx.shape) + " address");
        ConstTensor r = folded_tensor(n, d.type, d.shape, {&d});
        r.v = d.v;
        for (int64_t c = 0; c < count; ++c) {
            int64_t at = 0;
            for (int64_t a = 0; a < k; ++a) {
                int64_t i = static_cast<int64_t>(idx.v[c * k + a]);
                if (i < 0) i += d.shape[a];
                if (i < 0 || i >= d.shape[a])
                    n.fail("index " + std::to_string(static_cast<int64_t>(idx.v[c * k + a])) + " is out of range for a dimension of " +
                           std::to_string(d.shape[a]));
                at = at * d.shape[a] + i;
            }
            for (int64_t s = 0; s < slice; ++s) r.v[at * slice + s] = apply(r.v[at * slice + s], up.v[c * slice + s]);
        }
        return {cast_to(r, d.type)};
    }
    if (op == "Split") {
        const ConstTensor& d = x(0);
        const int rank = static_cast<int>(d.shape.size());
        const int axis = norm_axis(n, n.get_int("axis", 0), rank);
        std::vector<int64_t> sizes;
        if (has(1)) sizes = x(1).ints();
        else if (auto s = n.get_ints("split")) sizes = *s;
        const int outs = n.proto().output_size();
        if (sizes.empty()) {
            if (d.shape[axis] % outs) n.fail("cannot split " + std::to_string(d.shape[axis]) + " into " + std::to_string(outs) + " equal parts");
            sizes.assign(outs, d.shape[axis] / outs);
        }
        std::vector<ConstTensor> r;
        int64_t at = 0;
        for (int64_t len : sizes) {
            ConstTensor starts{OnnxType::int64, {1}, {double(at)}}, ends{OnnxType::int64, {1}, {double(at + len)}},
                axes{OnnxType::int64, {1}, {double(axis)}};
            onnx::NodeProto slice;
            slice.set_op_type("Slice");
            slice.set_name(n.proto().name());
            OnnxNode sn(slice, "");
            r.push_back(fold(sn, {d, starts, ends, axes})[0]);
            at += len;
        }
        return r;
    }
    n.fail("cannot be evaluated at import");
}

}  // namespace anvil
