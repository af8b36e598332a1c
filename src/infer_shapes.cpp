// Shape and dtype inference (spec/model-format.md, "Operators"): visits the
// nodes producers-first, checks every operand and attribute, and fills in each
// node's shape. One function per op family; each either returns the node's
// shape or throws a UserError pointing at the best place in the file:
//   - a problem with one operand: where that operand's name is written;
//   - a problem with one attribute: where that attribute is written;
//   - a mismatch between operands, or anything else: the node itself.
#include <algorithm>
#include <string>
#include <vector>

#include "anvil/graph.h"

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
    // Whether the user wrote this attribute (the loader places defaults at the node).
    bool written(const std::string& attr) const {
        auto it = v.attr_locs.find(attr);
        return it != v.attr_locs.end() && (it->second.line != v.loc.line || it->second.col != v.loc.col);
    }
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
}

Shape infer_constant(const NodeCtx& c) {
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

Shape infer_layernorm(const NodeCtx& c) {
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

Shape infer_rmsnorm(const NodeCtx& c) {
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
            known *= s[i];
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
    for (int i = 0; i < n; ++i)
        if (!is_float(c.in[i]->dtype) && !is_index_operand(c.v.op, i))
            c.fail_operand(i, info.name + " input '" + c.in[i]->name + "' is " + dtype_name(c.in[i]->dtype) +
                                  ", but " + info.name +
                                  " takes only float tensors (f32, f16, bf16); i32 is only for embedding ids");
}

std::string role_name(Role r) { return r == Role::input ? "input" : "param"; }

}  // namespace

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
            continue;
        }
        NodeCtx c{val, {}};
        for (VertexId u : graph.operands(v)) c.in.push_back(&g[u]);
        check_common(c);
        Shape s = infer_node(c);
        ANVIL_CHECK(static_cast<int>(s.size()) <= kMaxRank && numel(s) > 0,
                    "infer_shapes: bad shape " + shape_str(s) + " for '" + val.name + "'");
        val.shape = std::move(s);
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
