// Shape and dtype inference (spec/model-format.md, "Operators"): visits the
// nodes producers-first, checks every operand and attribute, and fills in each
// node's shape. One function per op family; each either returns the node's
// shape or throws a UserError pointing at the best place in the file:
//   - a problem with one operand: where that operand's name is written;
//   - a problem with one attribute: where that attribute is written;
//   - a mismatch between operands, or anything else: the node itself.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <array>
#include <string>
#include <vector>

#include "base/checked.h"
#include "frontend/graph.h"
#include "frontend/infer_shapes.h"

namespace anvil {

namespace {

// Everything one node's checks need, and the three ways to fail.
struct NodeCtx {
    const Value& v;
    std::vector<const Value*> in;  // operands, in operand order

    std::string subject() const { return "node '" + v.name + "'"; }
    std::string op() const { return op_name(v.op); }
    const Shape& shape(size_t i) const { return in[i]->shape; }

    SourceLoc operand_loc(size_t i) const {
        return i < v.input_locs.size() ? v.input_locs[i] : v.loc;
    }
    // An attribute left at its default has no place of its own: point at the node.
    SourceLoc attr_loc(const std::string& attr) const {
        auto it = v.attr_locs.find(attr);
        return it != v.attr_locs.end() ? it->second : v.loc;
    }
    // Whether the user wrote this attribute (defaults have no place in attr_locs).
    bool written(const std::string& attr) const { return v.attr_locs.count(attr) != 0; }
    [[noreturn]] void fail(const std::string& what) const { user_error(v.loc, subject(), what); }
    [[noreturn]] void fail_operand(size_t i, const std::string& what) const {
        user_error(operand_loc(i), subject(), what);
    }
    [[noreturn]] void fail_attr(const std::string& attr, const std::string& what) const {
        user_error(attr_loc(attr), subject(), what);
    }

    // A possibly negative axis, checked against `rank`. `what` names it in
    // the message, e.g. "axis 3" or "axis 3 in axes [0, 3]".
    int axis(const std::string& attr, int64_t axis, const Shape& x, const std::string& what) const {
        int rank = static_cast<int>(x.size());
        if (auto a = normalize_axis(axis, rank)) return *a;
        std::string valid = rank == 0 ? "a scalar has no axes"
                                      : "valid axes are " + std::to_string(-rank) + ".." +
                                            std::to_string(rank - 1);
        fail_attr(attr, op() + " " + what + " is out of range for rank " + std::to_string(rank) +
                            " (x is " + shape_str(x) + "); " + valid);
    }
};

std::string role_name(Role r) { return r == Role::input ? "input" : "param"; }

// Which operand positions take i32 indices rather than float data.
bool is_index_operand(Op op, int index) { return op == Op::embedding && index == 1; }

// "a's dimension 0 is 2, b's dimension 0 is 4": the first (from the right)
// pair of dimensions that breaks numpy broadcasting.
std::string broadcast_conflict(const Shape& a, const Shape& b) {
    size_t n = std::min(a.size(), b.size());
    for (size_t k = 1; k <= n; ++k) {
        int64_t da = a[a.size() - k], db = b[b.size() - k];
        if (da != db && da != 1 && db != 1)
            return "a's dimension " + std::to_string(a.size() - k) + " is " + std::to_string(da) +
                   ", b's dimension " + std::to_string(b.size() - k) + " is " + std::to_string(db);
    }
    return "";
}

void check_dims(const NodeCtx& c, const std::string& attr, const std::string& what, const Shape& s) {
    if (static_cast<int>(s.size()) > kMaxRank)
        c.fail_attr(attr, what + " has rank " + std::to_string(s.size()) + "; the rank of a tensor is at most " +
                              std::to_string(kMaxRank));
    for (int64_t d : s)
        if (d <= 0)
            c.fail_attr(attr, what + " has a dimension " + std::to_string(d) +
                                  "; dimensions must be positive");
    if (std::string why = shape_size_problem(s); !why.empty()) c.fail_attr(attr, what + " is too large: " + why);
}

Shape infer_constant(const NodeCtx& c) {
    double value = c.v.attrs.get_float("value");
    if (!std::isfinite(value) || std::fabs(value) > dtype_max(c.v.dtype))
        c.fail_attr("value", "constant value " + fmt::format("{}", value) + " is not a finite " +
                                 dtype_name(c.v.dtype) + " number (at most " + fmt::format("{}", dtype_max(c.v.dtype)) +
                                 " in magnitude)");
    Shape s = c.v.attrs.has("shape") ? c.v.attrs.get_ints("shape") : Shape{};
    check_dims(c, "shape", "constant shape " + shape_str(s), s);
    return s;
}

Shape infer_binary(const NodeCtx& c) {
    const Shape &a = c.shape(0), &b = c.shape(1);
    if (auto s = broadcast_shapes(a, b)) return *s;
    c.fail(c.op() + " operands do not broadcast: a is " + shape_str(a) + ", b is " + shape_str(b) + " (" +
           broadcast_conflict(a, b) + "; trailing dimensions must be equal or 1)");
}

Shape infer_softmax(const NodeCtx& c) {
    int64_t axis = c.v.attrs.get_int("axis");
    c.axis("axis", axis, c.shape(0), "axis " + std::to_string(axis));
    return c.shape(0);
}

void check_eps(const NodeCtx& c);

Shape infer_layernorm(const NodeCtx& c) {
    check_eps(c);
    const Shape& x = c.shape(0);
    int64_t axis_attr = c.v.attrs.get_int("axis");
    int axis = c.axis("axis", axis_attr, x, "axis " + std::to_string(axis_attr));
    Shape trailing(x.begin() + axis, x.end());
    const char* names[] = {"x", "gamma", "beta"};
    for (size_t i = 1; i <= 2; ++i)
        if (c.shape(i) != trailing)
            c.fail_operand(i, std::string("layernorm ") + names[i] + " '" + c.in[i]->name + "' is " +
                                  shape_str(c.shape(i)) + ", but it must be " + shape_str(trailing) +
                                  ": the dims of x " + shape_str(x) + " from axis " +
                                  std::to_string(axis_attr) + " on");
    return x;
}

// An eps the kernels add in f32: finite, in f32 too, and positive (batchnorm,
// whose variances are given: non-negative).
void check_eps(const NodeCtx& c) {
    double eps = c.v.attrs.get_float("eps");
    float f = static_cast<float>(eps);
    if (c.v.op == Op::batchnorm) {
        if (eps < 0) c.fail_attr("eps", "batchnorm eps must be non-negative, got " + fmt::format("{}", eps));
        if (!std::isfinite(eps) || !std::isfinite(f))
            c.fail_attr("eps", "batchnorm eps must be a finite number that f32 holds, got " + fmt::format("{}", eps));
        return;
    }
    if (!(eps > 0) || !std::isfinite(eps) || !(f > 0) || !std::isfinite(f))
        c.fail_attr("eps", c.op() + " eps must be a finite positive number that f32 holds (such as 1e-5), got " +
                               fmt::format("{}", eps));
}

Shape infer_rmsnorm(const NodeCtx& c) {
    check_eps(c);
    const Shape& x = c.shape(0);
    if (x.empty()) c.fail_operand(0, "rmsnorm needs x of rank at least 1, but x is a scalar");
    Shape want{x.back()};
    if (c.shape(1) != want)
        c.fail_operand(1, "rmsnorm gamma '" + c.in[1]->name + "' is " + shape_str(c.shape(1)) +
                              ", but it must be " + shape_str(want) + ": the last dimension of x " +
                              shape_str(x));
    return x;
}

Shape infer_reduce(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    const std::vector<int64_t>& axes = c.v.attrs.get_ints("axes");
    if (axes.empty()) c.fail_attr("axes", c.op() + " axes is empty; name at least one axis to reduce");
    std::vector<bool> reduced(x.size(), false);
    for (int64_t a : axes) {
        int n = c.axis("axes", a, x, "axis " + std::to_string(a) + " in axes " + shape_str(axes));
        if (reduced[n])
            c.fail_attr("axes", c.op() + " axes " + shape_str(axes) + " name axis " + std::to_string(n) +
                                    " twice (x is " + shape_str(x) + ")");
        reduced[n] = true;
    }
    bool keep = c.v.attrs.get_bool("keepdims");
    Shape out;
    for (size_t d = 0; d < x.size(); ++d) {
        if (!reduced[d]) out.push_back(x[d]);
        else if (keep) out.push_back(1);
    }
    return out;
}

Shape infer_matmul(const NodeCtx& c) {
    const Shape &a = c.shape(0), &b = c.shape(1);
    const char* names[] = {"a", "b"};
    for (size_t i = 0; i < 2; ++i) {
        const Shape& s = c.shape(i);
        if (s.size() >= 2) continue;
        std::string hint = s.empty() ? "use mul to scale by a scalar"
                                     : "reshape it to [1, " + std::to_string(s[0]) + "] or [" +
                                           std::to_string(s[0]) + ", 1]";
        c.fail_operand(i, std::string("matmul operand ") + names[i] + " '" + c.in[i]->name + "' is " +
                              shape_str(s) + ", but matmul needs rank 2 or more (" + hint + ")");
    }
    bool ta = c.v.attrs.get_bool("transpose_a"), tb = c.v.attrs.get_bool("transpose_b");
    // The stored last two dims of each operand, then the logical M, K and K, N.
    int64_t a0 = a[a.size() - 2], a1 = a.back(), b0 = b[b.size() - 2], b1 = b.back();
    int64_t m = ta ? a1 : a0, ka = ta ? a0 : a1;
    int64_t kb = tb ? b1 : b0, n = tb ? b0 : b1;
    if (ka != kb) {
        // Say which transpose flag, flipped, would make the shapes fit.
        int64_t ka_flipped = ta ? a1 : a0, kb_flipped = tb ? b0 : b1;
        auto flag = [](const char* name, bool now) { return std::string(name) + ": " + (now ? "false" : "true"); };
        std::string hint;
        if (ka == kb_flipped) hint = "did you mean " + flag("transpose_b", tb) + "?";
        else if (ka_flipped == kb) hint = "did you mean " + flag("transpose_a", ta) + "?";
        else if (ka_flipped == kb_flipped)
            hint = "did you mean " + flag("transpose_a", ta) + " and " + flag("transpose_b", tb) + "?";
        else hint = "K is " + std::to_string(ka) + " in a and " + std::to_string(kb) + " in b";
        c.fail("matmul inner dimensions differ: a is " + shape_str(a) + (ta ? " transposed" : "") + ", b is " +
               shape_str(b) + (tb ? " transposed" : "") + " (" + hint + ")");
    }
    Shape batch_a(a.begin(), a.end() - 2), batch_b(b.begin(), b.end() - 2);
    auto batch = broadcast_shapes(batch_a, batch_b);
    if (!batch)
        c.fail("matmul batch dimensions do not broadcast: a is " + shape_str(a) + ", b is " + shape_str(b) +
               " (batch dims " + shape_str(batch_a) + " and " + shape_str(batch_b) + "; " +
               broadcast_conflict(batch_a, batch_b) + "; they must be equal or 1)");
    Shape out = *batch;
    out.push_back(m);
    out.push_back(n);
    return out;
}

Shape infer_transpose(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    const std::vector<int64_t>& perm = c.v.attrs.get_ints("perm");
    if (perm.size() != x.size())
        c.fail_attr("perm", "transpose perm " + shape_str(perm) + " has " + std::to_string(perm.size()) +
                                " entries, but x is " + shape_str(x) + " of rank " + std::to_string(x.size()));
    std::vector<bool> seen(x.size(), false);
    Shape out;
    for (int64_t p : perm) {
        int a = c.axis("perm", p, x, "axis " + std::to_string(p) + " in perm " + shape_str(perm));
        if (seen[a])
            c.fail_attr("perm", "transpose perm " + shape_str(perm) + " is not a permutation of 0.." +
                                    std::to_string(x.size() - 1) + ": axis " + std::to_string(a) +
                                    " appears twice");
        seen[a] = true;
        out.push_back(x[a]);
    }
    return out;
}

Shape infer_reshape(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    Shape s = c.v.attrs.get_ints("shape");
    std::string what = "reshape shape " + shape_str(s);
    int wild = -1;
    int64_t known = 1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            if (wild >= 0) c.fail_attr("shape", what + " has more than one -1");
            wild = static_cast<int>(i);
        } else if (s[i] <= 0) {
            c.fail_attr("shape", what + " has an entry " + std::to_string(s[i]) +
                                     "; entries must be positive, or -1 once");
        } else {
            std::optional<int64_t> k = checked_mul(known, s[i]);
            if (!k)  // past any count x can have
                c.fail_attr("shape", "reshape element count differs: x is " + shape_str(x) + " (" +
                                         std::to_string(numel(x)) + " elements), shape " + shape_str(s) +
                                         " has more than a 64-bit count holds");
            known = *k;
        }
    }
    int64_t count = numel(x);
    if (wild >= 0) {
        if (count % known != 0)
            c.fail_attr("shape", "reshape cannot fill the -1 of " + shape_str(s) + ": x is " + shape_str(x) + " (" +
                                     std::to_string(count) + " elements), not a multiple of " +
                                     std::to_string(known));
        s[wild] = count / known;
    } else if (known != count) {
        c.fail_attr("shape", "reshape element count differs: x is " + shape_str(x) + " (" + std::to_string(count) +
                                 " elements), shape " + shape_str(s) + " has " + std::to_string(known));
    }
    check_dims(c, "shape", what, s);
    return s;
}

Shape infer_concat(const NodeCtx& c) {
    const Shape& first = c.shape(0);
    int64_t axis_attr = c.v.attrs.get_int("axis");
    int axis = c.axis("axis", axis_attr, first, "axis " + std::to_string(axis_attr));
    Shape out = first;
    for (size_t i = 1; i < c.in.size(); ++i) {
        const Shape& s = c.shape(i);
        std::string pair = "'" + c.in[0]->name + "' is " + shape_str(first) + ", '" + c.in[i]->name + "' is " +
                           shape_str(s);
        if (s.size() != first.size()) c.fail_operand(i, "concat inputs differ in rank: " + pair);
        for (size_t d = 0; d < s.size(); ++d)
            if (static_cast<int>(d) != axis && s[d] != first[d])
                c.fail_operand(i, "concat inputs differ in dimension " + std::to_string(d) +
                                      ", which is not the concat axis " + std::to_string(axis) + ": " + pair);
        out[axis] += s[axis];
    }
    return out;
}

Shape infer_slice(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    int64_t axis_attr = c.v.attrs.get_int("axis");
    int axis = c.axis("axis", axis_attr, x, "axis " + std::to_string(axis_attr));
    int64_t dim = x[axis];
    int64_t step = c.v.attrs.get_int("step");
    if (step <= 0) c.fail_attr("step", "slice step must be positive, got " + std::to_string(step));
    int64_t start = c.v.attrs.get_int("start");
    std::optional<int64_t> end;
    if (c.v.attrs.has("end")) end = c.v.attrs.get_int("end");
    int64_t len = slice_bounds(dim, start, end, step).len;
    if (len == 0) {
        std::string where = c.written("start") || !c.written("end") ? "start" : "end";
        c.fail_attr(where, "slice along axis " + std::to_string(axis_attr) + " of x " + shape_str(x) +
                               " with start " + std::to_string(start) + ", end " +
                               (end ? std::to_string(*end) : "(the end)") + " is empty (that dimension has size " +
                               std::to_string(dim) + "); a tensor's dimensions must be positive");
    }
    Shape out = x;
    out[axis] = len;
    return out;
}

// ---------------------------------------------------------------- spatial ops
// conv2d and the pools slide a window over the H and W of an [N, C, H, W] x,
// as PyTorch does (floor-mode output size). A kernel, stride or dilation is
// an int or [h, w]; a padding is an int, [h, w] or [top, left, bottom, right].
// The loader stores an int as a one-element list.

// An int-or-list attribute as the user wrote it: 3 or [3, 2].
std::string list_str(const std::vector<int64_t>& v) { return v.size() == 1 ? std::to_string(v[0]) : shape_str(v); }

// A shape of another rank made [N, C, H, W], for a hint: leading 1s added,
// or the leading dims merged into N.
Shape as_rank4(const Shape& s) {
    if (s.size() < 4) {
        Shape out(4 - s.size(), 1);
        out.insert(out.end(), s.begin(), s.end());
        return out;
    }
    int64_t n = numel(Shape(s.begin(), s.end() - 3));
    return {n, s[s.size() - 3], s[s.size() - 2], s.back()};
}

void check_nchw(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    if (x.size() != 4)
        c.fail_operand(0, c.op() + " x '" + c.in[0]->name + "' is " + shape_str(x) +
                              ", but it must have rank 4: [N, C, H, W] (reshape it to " + shape_str(as_rank4(x)) +
                              ")");
}

// A kernel, stride or dilation: {h, w}, each positive.
std::array<int64_t, 2> hw_attr(const NodeCtx& c, const std::string& attr) {
    const std::vector<int64_t>& v = c.v.attrs.get_ints(attr);
    if (v.size() != 1 && v.size() != 2)
        c.fail_attr(attr, c.op() + " " + attr + " must be an int or [h, w], got " + list_str(v));
    for (int64_t e : v)
        if (e <= 0) c.fail_attr(attr, c.op() + " " + attr + " must be positive, got " + list_str(v));
        else if (e > kMaxDim)
            c.fail_attr(attr, c.op() + " " + attr + " must be at most " + std::to_string(kMaxDim) +
                                  " (2^31 - 1), got " + list_str(v));
    return {v.front(), v.back()};
}

struct Padding {
    int64_t top = 0, left = 0, bottom = 0, right = 0;
};

Padding padding_attr(const NodeCtx& c) {
    const std::vector<int64_t>& v = c.v.attrs.get_ints("padding");
    if (v.size() != 1 && v.size() != 2 && v.size() != 4)
        c.fail_attr("padding", c.op() + " padding must be an int, [h, w] or [top, left, bottom, right], got " +
                                   list_str(v));
    for (int64_t e : v)
        if (e < 0) c.fail_attr("padding", c.op() + " padding must be non-negative, got " + list_str(v));
        else if (e > kMaxDim)
            c.fail_attr("padding", c.op() + " padding must be at most " + std::to_string(kMaxDim) +
                                       " (2^31 - 1), got " + list_str(v));
    if (v.size() == 4) return {v[0], v[1], v[2], v[3]};
    return {v.front(), v.back(), v.front(), v.back()};
}

// The window arithmetic of the kernels (rtasks/window.cuh, conv2d.cuh) is in
// 32-bit ints: the padded input and the dilated kernel must each span at
// most kMaxDim along H and W. With every value within kMaxDim (hw_attr,
// padding_attr), these sums and products cannot overflow int64.
void check_window_extent(const NodeCtx& c, const Shape& x, const Padding& pad, std::array<int64_t, 2> kernel,
                         std::array<int64_t, 2> dilation) {
    const char* axis[] = {"H", "W"};
    const int64_t padded[] = {x[2] + pad.top + pad.bottom, x[3] + pad.left + pad.right};
    for (int i = 0; i < 2; ++i) {
        if (padded[i] > kMaxDim)
            c.fail_attr("padding", c.op() + " padding " + list_str(c.v.attrs.get_ints("padding")) + " makes x " +
                                       shape_str(x) + " " + std::to_string(padded[i]) + " long along " + axis[i] +
                                       ", more than " + std::to_string(kMaxDim) + " (2^31 - 1)");
        const int64_t span = dilation[i] * (kernel[i] - 1) + 1;
        if (span > kMaxDim)
            c.fail_attr(c.v.op == Op::conv2d ? "dilation" : "kernel",
                        c.op() + " window spans " + std::to_string(span) + " along " + axis[i] + ", more than " +
                            std::to_string(kMaxDim) + " (2^31 - 1)");
    }
}

// PyTorch's floor-mode output size along one dimension; 0 when the dilated
// kernel does not fit in the padded input.
int64_t window_count(int64_t in, int64_t pad_lo, int64_t pad_hi, int64_t kernel, int64_t stride, int64_t dilation) {
    int64_t room = in + pad_lo + pad_hi - dilation * (kernel - 1) - 1;
    return room < 0 ? 0 : room / stride + 1;
}

Shape infer_conv2d(const NodeCtx& c) {
    const Shape &x = c.shape(0), &w = c.shape(1);
    check_nchw(c);
    if (w.size() != 4)
        c.fail_operand(1, "conv2d w '" + c.in[1]->name + "' is " + shape_str(w) +
                              ", but it must have rank 4: [O, C/groups, KH, KW]");
    std::array<int64_t, 2> stride = hw_attr(c, "stride"), dilation = hw_attr(c, "dilation");
    Padding pad = padding_attr(c);
    int64_t groups = c.v.attrs.get_int("groups");
    std::string g = std::to_string(groups);
    if (groups < 1) c.fail_attr("groups", "conv2d groups must be at least 1, got " + g);
    int64_t C = x[1], O = w[0];
    if (C % groups != 0)
        c.fail_attr("groups", "conv2d groups " + g + " does not divide the channels of x " + shape_str(x) + " (C = " +
                                  std::to_string(C) + "); groups must divide both C and O");
    if (O % groups != 0)
        c.fail_attr("groups", "conv2d groups " + g + " does not divide the output channels of w " + shape_str(w) +
                                  " (O = " + std::to_string(O) + "); groups must divide both C and O");
    if (w[1] != C / groups) {
        // The groups that would make w fit, if there is one.
        std::string hint = "w is [O, C/groups, KH, KW]";
        if (C % w[1] == 0 && O % (C / w[1]) == 0) hint = "did you mean groups: " + std::to_string(C / w[1]) + "?";
        c.fail_operand(1, "conv2d w '" + c.in[1]->name + "' is " + shape_str(w) + ", but x '" + c.in[0]->name +
                              "' is " + shape_str(x) + " with groups " + g + ": w's dimension 1 must be C/groups = " +
                              std::to_string(C / groups) + " (" + hint + ")");
    }
    if (c.in.size() == 3 && c.shape(2) != Shape{O})
        c.fail_operand(2, "conv2d bias '" + c.in[2]->name + "' is " + shape_str(c.shape(2)) + ", but it must be [" +
                              std::to_string(O) + "]: one value per output channel of w " + shape_str(w));
    check_window_extent(c, x, pad, {w[2], w[3]}, dilation);
    int64_t oh = window_count(x[2], pad.top, pad.bottom, w[2], stride[0], dilation[0]);
    int64_t ow = window_count(x[3], pad.left, pad.right, w[3], stride[1], dilation[1]);
    if (oh == 0 || ow == 0)
        c.fail("conv2d kernel does not fit: w " + shape_str(w) + " with dilation " +
               list_str(c.v.attrs.get_ints("dilation")) + " spans " + std::to_string(dilation[0] * (w[2] - 1) + 1) +
               " x " + std::to_string(dilation[1] * (w[3] - 1) + 1) + ", but x " + shape_str(x) + " with padding " +
               list_str(c.v.attrs.get_ints("padding")) + " is " + std::to_string(x[2] + pad.top + pad.bottom) +
               " x " + std::to_string(x[3] + pad.left + pad.right) +
               " (add padding, or use a smaller kernel or dilation)");
    return {x[0], O, oh, ow};
}

// maxpool2d and avgpool2d.
Shape infer_pool(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    check_nchw(c);
    std::array<int64_t, 2> kernel = hw_attr(c, "kernel");
    std::array<int64_t, 2> stride = c.v.attrs.has("stride") ? hw_attr(c, "stride") : kernel;
    // Only maxpool2d dilates (ONNX's AveragePool does from opset 19).
    const std::array<int64_t, 2> dilation = c.v.attrs.has("dilation") ? hw_attr(c, "dilation") : std::array<int64_t, 2>{1, 1};
    Padding pad = padding_attr(c);
    check_window_extent(c, x, pad, kernel, dilation);
    // As PyTorch: padding at most half the (dilated) kernel on every side.
    // Then, in floor mode, every undilated window holds at least one cell of
    // x, so an average never divides by zero; a dilated max window may skip
    // every cell of a small x and is then -inf, as in PyTorch.
    std::string k = list_str(c.v.attrs.get_ints("kernel"));
    std::string p = list_str(c.v.attrs.get_ints("padding"));
    const int64_t half_h = (dilation[0] * (kernel[0] - 1) + 1) / 2, half_w = (dilation[1] * (kernel[1] - 1) + 1) / 2;
    bool bad_h = std::max(pad.top, pad.bottom) > half_h;
    if (bad_h || std::max(pad.left, pad.right) > half_w)
        c.fail_attr("padding", c.op() + " padding " + p + " is more than half the " +
                                   (dilation == std::array<int64_t, 2>{1, 1} ? "" : "dilated ") + "kernel " + k +
                                   ": at most " + std::to_string(bad_h ? half_h : half_w) + " along " +
                                   (bad_h ? "H" : "W") +
                                   " (PyTorch refuses this too: a window could then hold only padding)");
    int64_t oh = window_count(x[2], pad.top, pad.bottom, kernel[0], stride[0], dilation[0]);
    int64_t ow = window_count(x[3], pad.left, pad.right, kernel[1], stride[1], dilation[1]);
    if (oh == 0 || ow == 0)
        c.fail(c.op() + " kernel " + k + " is larger than x " + shape_str(x) + " with padding " + p + " (" +
               std::to_string(x[2] + pad.top + pad.bottom) + " x " + std::to_string(x[3] + pad.left + pad.right) +
               "); use a smaller kernel");
    return {x[0], x[1], oh, ow};
}

Shape infer_global_avgpool(const NodeCtx& c) {
    check_nchw(c);
    return {c.shape(0)[0], c.shape(0)[1], 1, 1};
}

Shape infer_batchnorm(const NodeCtx& c) {
    const Shape& x = c.shape(0);
    if (x.size() < 2) {
        Shape hint = x.empty() ? Shape{1, 1} : Shape{1, x[0]};
        c.fail_operand(0, "batchnorm x '" + c.in[0]->name + "' is " + shape_str(x) +
                              ", but it must have rank 2 or more: [N, C, ...] (reshape it to " + shape_str(hint) +
                              ")");
    }
    const char* names[] = {"x", "scale", "bias", "mean", "var"};
    for (size_t i = 1; i <= 4; ++i)
        if (c.shape(i) != Shape{x[1]})
            c.fail_operand(i, std::string("batchnorm ") + names[i] + " '" + c.in[i]->name + "' is " +
                                  shape_str(c.shape(i)) + ", but it must be [" + std::to_string(x[1]) +
                                  "]: one value per channel of x " + shape_str(x) + " (its dimension 1)");
    check_eps(c);
    return x;
}

Shape infer_embedding(const NodeCtx& c) {
    const Shape &table = c.shape(0), &ids = c.shape(1);
    const Value& id = *c.in[1];
    if (table.size() != 2)
        c.fail_operand(0, "embedding table '" + c.in[0]->name + "' is " + shape_str(table) +
                              ", but it must have rank 2: [V, D]");
    if (id.dtype != DType::i32) {
        std::string fix = id.role == Role::node ? "a node's result is never i32; feed the ids from an i32 input or param"
                                                : "declare " + role_name(id.role) + " '" + id.name + "' with dtype: i32";
        c.fail_operand(1, "embedding ids '" + id.name + "' is " + dtype_name(id.dtype) + ", but ids must be i32 (" +
                              fix + ")");
    }
    if (static_cast<int>(ids.size()) + 1 > kMaxRank)
        c.fail_operand(1, "embedding ids '" + id.name + "' is " + shape_str(ids) + ", so the result would have rank " +
                              std::to_string(ids.size() + 1) + "; the rank of a tensor is at most " +
                              std::to_string(kMaxRank) + " (reshape the ids to fewer dimensions)");
    Shape out = ids;
    out.push_back(table[1]);
    return out;
}

Shape infer_node(const NodeCtx& c) {
    switch (op_info(c.v.op).cls) {
        case OpClass::Source: return infer_constant(c);
        case OpClass::Unary: return c.shape(0);
        case OpClass::Binary: return infer_binary(c);
        case OpClass::Matmul: return infer_matmul(c);
        default: break;
    }
    switch (c.v.op) {
        case Op::softmax: return infer_softmax(c);
        case Op::layernorm: return infer_layernorm(c);
        case Op::rmsnorm: return infer_rmsnorm(c);
        case Op::reduce_sum:
        case Op::reduce_mean:
        case Op::reduce_max: return infer_reduce(c);
        case Op::transpose: return infer_transpose(c);
        case Op::reshape: return infer_reshape(c);
        case Op::concat: return infer_concat(c);
        case Op::slice: return infer_slice(c);
        case Op::conv2d: return infer_conv2d(c);
        case Op::maxpool2d:
        case Op::avgpool2d: return infer_pool(c);
        case Op::global_avgpool: return infer_global_avgpool(c);
        case Op::batchnorm: return infer_batchnorm(c);
        case Op::embedding: return infer_embedding(c);
        default: break;
    }
    c.fail("op '" + c.op() + "' is in the model format but not implemented yet");
}

// The checks every node gets before its op's own: implemented, arity, dtypes.
void check_common(const NodeCtx& c) {
    const OpInfo& info = op_info(c.v.op);
    if (!info.implemented) c.fail("op '" + info.name + "' is in the model format but not implemented yet");
    int n = static_cast<int>(c.in.size());
    if (n < info.min_inputs || (info.max_inputs >= 0 && n > info.max_inputs)) {
        std::string want = info.max_inputs < 0 ? "at least " + std::to_string(info.min_inputs)
                           : info.min_inputs == info.max_inputs
                               ? std::to_string(info.min_inputs)
                               : std::to_string(info.min_inputs) + " to " + std::to_string(info.max_inputs);
        c.fail(info.name + " takes " + want + " inputs, got " + std::to_string(n));
    }
    if (!is_float(c.v.dtype))
        c.fail_attr("dtype", std::string("a node's dtype must be f32, f16 or bf16, not ") + dtype_name(c.v.dtype) +
                                 " (i32 is only for inputs and params that feed embedding ids)");
    for (int i = 0; i < n; ++i) {
        if (is_float(c.in[i]->dtype) || is_index_operand(c.v.op, i)) continue;
        if (c.v.op == Op::embedding)  // the table: an i32 one is most likely the ids, swapped
            c.fail_operand(i, "embedding table '" + c.in[i]->name + "' is " + dtype_name(c.in[i]->dtype) +
                                  ", but the table must be float (f32, f16, bf16)" +
                                  (n == 2 && is_float(c.in[1]->dtype) ? "; embedding takes [table, ids]: are they swapped?"
                                                                      : ""));
        c.fail_operand(i, info.name + " input '" + c.in[i]->name + "' is " + dtype_name(c.in[i]->dtype) + ", but " +
                              info.name + " takes only float tensors (f32, f16, bf16); i32 is only for embedding ids");
    }
}

}  // namespace

Shape infer_node_shape(const Value& node, const std::vector<const Value*>& operands) {
    const NodeCtx c{node, operands};
    check_common(c);
    Shape s = infer_node(c);
    if (static_cast<int>(s.size()) > kMaxRank)
        c.fail(c.op() + " result " + shape_str(s) + " has rank " + std::to_string(s.size()) +
               "; the rank of a tensor is at most " + std::to_string(kMaxRank));
    if (std::string why = shape_size_problem(s); !why.empty())
        c.fail(c.op() + " result " + shape_str(s) + " is too large: " + why);
    return s;
}

Graph infer_shapes(Graph graph) {
    GraphStore& g = graph.g;
    for (VertexId v : graph.topological_order()) {
        Value& val = g[v];
        if (val.role != Role::node) {
            // Declared shapes were checked by the loader; hand-built graphs get the same rule.
            std::string subject = role_name(val.role) + " '" + val.name + "'";
            if (static_cast<int>(val.shape.size()) > kMaxRank)
                user_error(val.loc, subject, "shape " + shape_str(val.shape) + " has rank " +
                                                 std::to_string(val.shape.size()) +
                                                 "; the rank of a tensor is at most " + std::to_string(kMaxRank));
            for (int64_t d : val.shape)
                if (d <= 0) user_error(val.loc, subject, "shape " + shape_str(val.shape) + " has a dimension " +
                                                             std::to_string(d) + "; dimensions must be positive");
            if (std::string why = shape_size_problem(val.shape); !why.empty())
                user_error(val.loc, subject, "shape " + shape_str(val.shape) + " is too large: " + why);
            continue;
        }
        std::vector<const Value*> operands;
        for (VertexId u : graph.operands(v)) operands.push_back(&g[u]);
        val.shape = infer_node_shape(val, operands);
    }
    // An i32 tensor that feeds no index operand has no use (spec: "dtype").
    // One that feeds a float operand was refused above, at the use.
    for (VertexId v = 0; v < boost::num_vertices(g); ++v) {
        const Value& val = g[v];
        if (val.role == Role::node || is_float(val.dtype)) continue;
        bool feeds_index = false;
        for (auto [e, end] = boost::out_edges(v, g); e != end; ++e)
            feeds_index |= is_index_operand(g[boost::target(*e, g)].op, g[*e].index);
        if (!feeds_index)
            user_error(val.loc, role_name(val.role) + " '" + val.name + "'",
                       "dtype i32 is only for tensors that feed embedding ids, and this one feeds none");
    }
    return graph;
}

}  // namespace anvil
