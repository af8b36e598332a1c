#include "frontend/concat_siblings.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "frontend/affine_fold.h"
#include "frontend/batch1_matmul.h"
#include "base/reshape_strides.h"
#include "frontend/graph_rewrite.h"

namespace anvil {

namespace {

// What siblings must share: activation, layouts, dtypes, K.
using SiblingKey = std::tuple<VertexId, bool, bool, DType, DType, int64_t>;

bool is_op(const Graph& g, VertexId v, Op op) {
    const Value& val = g.value(v);
    return val.role == Role::node && val.op == op;
}

// Whether every reader of v, once v is a column view with strides `st` of
// the joined output, reads it in place: a matmul (any strides), a transpose
// read only by matmuls (transpose_views makes it a view of their operand
// strides), or a reshape whose strides over `st` exist and whose readers do
// the same. decompose's slice_read_view is the same rule; anything else
// (elementwise, rowwise, an output) would read a strided copy.
bool view_readers(const Graph& g, VertexId v, const Strides& st, const std::vector<bool>& is_output, std::string& why) {
    const std::vector<VertexId> readers = g.consumers(v);
    if (is_output[v]) return why = "'" + g.value(v).name + "' is an output", false;
    if (readers.empty()) return why = "'" + g.value(v).name + "' has no reader", false;
    for (VertexId r : readers) {
        const Value& rv = g.value(r);
        if (is_op(g, r, Op::matmul)) continue;
        if (is_op(g, r, Op::transpose) && !is_output[r] && rv.dtype == g.value(v).dtype) {
            const std::vector<VertexId> tr = g.consumers(r);
            bool matmuls = !tr.empty();
            for (VertexId c : tr) matmuls = matmuls && is_op(g, c, Op::matmul);
            if (matmuls) continue;
        }
        if (is_op(g, r, Op::reshape) && rv.dtype == g.value(v).dtype) {
            const auto rs = reshape_strides(g.value(v).shape, st, rv.shape);
            if (rs && view_readers(g, r, *rs, is_output, why)) continue;
            if (!rs) why = "reshape '" + rv.name + "' of a column view has no strides";
            return false;
        }
        return why = "'" + rv.name + "' (" + op_name(rv.op) + ") reads '" + g.value(v).name + "' row-major", false;
    }
    return true;
}

// The add of a bias param [N] that is matmul m's one reader, if any.
std::optional<std::pair<VertexId, VertexId>> bias_add(const Graph& g, VertexId m, const std::vector<bool>& is_output) {
    if (is_output[m] || g.consumers(m).size() != 1) return std::nullopt;
    const VertexId a = g.consumers(m).front();
    const std::vector<VertexId> ops = g.operands(a);
    if (!is_op(g, a, Op::add) || ops.size() != 2 || ops[0] == ops[1] || g.value(a).shape != g.value(m).shape ||
        g.value(a).dtype != g.value(m).dtype)
        return std::nullopt;
    const VertexId b = ops[0] == m ? ops[1] : ops[0];
    const Value& bv = g.value(b);
    if (bv.role != Role::param || !is_float(bv.dtype) || bv.shape != Shape{g.value(m).shape.back()}) return std::nullopt;
    return std::make_pair(a, b);
}

// A group of many-row siblings that may join: each member's matmul, the
// value its readers see (its bias add, or itself) and the bias param.
struct ColumnMember {
    VertexId matmul, seen;
    std::optional<VertexId> bias;
};

// The members of a many-row group whose every reader takes a column view,
// with their biases; empty when fewer than two qualify alike. `left_out`
// gets each member left out, with why.
std::vector<ColumnMember> column_members(const Graph& g, const std::vector<VertexId>& members, int64_t n_total,
                                         const std::vector<bool>& is_output,
                                         std::vector<std::pair<VertexId, std::string>>& left_out) {
    std::vector<ColumnMember> with_bias, plain;
    for (VertexId m : members) {
        const auto ba = bias_add(g, m, is_output);
        ColumnMember c{m, ba ? ba->first : m, ba ? std::optional<VertexId>(ba->second) : std::nullopt};
        Shape joined = g.value(c.seen).shape;
        joined.back() = n_total;
        std::string why;
        if (!view_readers(g, c.seen, contiguous_strides(joined), is_output, why)) {
            left_out.push_back({m, why});
            continue;
        }
        (c.bias ? with_bias : plain).push_back(c);
    }
    // Biases join into one param: of one dtype, the most members that share one.
    std::map<DType, std::vector<ColumnMember>> by_dtype;
    for (const ColumnMember& c : with_bias) by_dtype[g.value(*c.bias).dtype].push_back(c);
    std::vector<ColumnMember> best;
    for (auto& [t, cs] : by_dtype)
        if (cs.size() > best.size()) best = cs;
    std::vector<ColumnMember> chosen = best.size() >= 2 && best.size() >= plain.size() ? best
                                       : plain.size() >= 2                             ? plain
                                                                                       : std::vector<ColumnMember>{};
    for (const auto* set : {&with_bias, &plain})
        for (const ColumnMember& c : *set) {
            bool in = false;
            for (const ColumnMember& k : chosen) in = in || k.matmul == c.matmul;
            if (in) continue;
            std::string why = "no other member reads alike";
            if (!chosen.empty() && c.bias && chosen.front().bias)
                why = "its bias is " + std::string(dtype_name(g.value(*c.bias).dtype)) + ", the joined ones' " +
                      dtype_name(g.value(*chosen.front().bias).dtype);
            else if (!chosen.empty())
                why = c.bias ? "it has a bias add, the joined ones none" : "the joined ones have bias adds, it has none";
            left_out.push_back({c.matmul, why});
        }
    return chosen;
}

}  // namespace

Graph concat_sibling_matmuls(const Graph& graph, std::vector<std::string>* not_joined) {
    std::vector<bool> is_output(graph.size(), false);
    for (VertexId v : graph.outputs) is_output[v] = true;
    std::map<SiblingKey, std::vector<VertexId>> groups;
    std::vector<SiblingKey> order;  // groups in the order their first member comes
    for (VertexId v : graph.topological_order()) {
        const Value& val = graph.value(v);
        if (!constant_weight_matmul(graph, v)) continue;
        const std::vector<VertexId> ops = graph.operands(v);
        const Value& w = graph.value(ops[1]);
        const bool tb = val.attrs.get_bool("transpose_b");
        const SiblingKey key{ops[0], val.attrs.get_bool("transpose_a"), tb, w.dtype, val.dtype, w.shape[tb ? 1 : 0]};
        auto& members = groups[key];
        if (members.empty()) order.push_back(key);
        members.push_back(v);
    }

    GraphRewrite rw(graph);
    bool changed = false;
    for (const SiblingKey& key : order) {
        std::vector<VertexId> members = groups[key];
        if (members.size() < 2) continue;
        std::sort(members.begin(), members.end());  // the file's order (a folded node keeps its last node's place)
        const bool tb = std::get<2>(key);
        const int w_axis = tb ? 0 : 1;  // the weight's axis along N
        int64_t n_all = 0;
        for (VertexId m : members) n_all += graph.value(m).shape.back();

        // One row: every column range is a contiguous run (a view at an
        // offset). Many rows: a column range is strided; only members whose
        // readers take such a view join, with their bias adds.
        std::vector<ColumnMember> column;
        if (!one_output_row(graph.value(members.front()).shape)) {
            std::vector<std::pair<VertexId, std::string>> left_out;
            column = column_members(graph, members, n_all, is_output, left_out);
            for (const auto& [m, why] : left_out) {
                if (not_joined) not_joined->push_back(graph.value(m).name + ": " + why);
                rw.node(static_cast<int>(m)).value.attrs.values[kNotJoinedAttr] = why;  // --dump-after fold shows it
                changed = true;
            }
            if (column.empty()) continue;
            members.clear();
            for (const ColumnMember& c : column) members.push_back(c.matmul);
        }
        changed = true;
        const Value& first = graph.value(members.front());
        const VertexId x = graph.operands(members.front())[0];

        ParamFold joined;
        joined.part = ParamFold::Part::concat;
        joined.channel_axis = w_axis;
        std::string name;
        int64_t n_total = 0;
        for (VertexId m : members) {
            const Value& w = graph.value(graph.operands(m)[1]);
            joined.pieces.push_back(fold_source(w));
            name += (name.empty() ? "" : "+") + graph.value(m).name;  // '+' is no name character of the format
            n_total += w.shape[static_cast<size_t>(w_axis)];
        }
        Value wv = graph.value(graph.operands(members.front())[1]);
        wv.name = name + "+weight";
        wv.shape[static_cast<size_t>(w_axis)] = n_total;
        wv.fold = std::make_shared<const ParamFold>(joined);
        const int w_id = rw.add(std::move(wv));

        Value mv = first;
        mv.name = name;
        mv.shape.back() = n_total;
        int seen_id = rw.add(std::move(mv), {static_cast<int>(x), w_id});

        // Biases: one add of the biases joined (an epilogue of the joined GEMM after fusion).
        const bool biased = !column.empty() && column.front().bias.has_value();
        if (biased) {
            ParamFold bias;
            bias.part = ParamFold::Part::concat;
            bias.channel_axis = 0;
            std::string add_name;
            for (const ColumnMember& c : column) {
                bias.pieces.push_back(fold_source(graph.value(*c.bias)));
                add_name += (add_name.empty() ? "" : "+") + graph.value(c.seen).name;
            }
            Value bv = graph.value(*column.front().bias);
            bv.name = add_name + "+bias";
            bv.shape = {n_total};
            bv.fold = std::make_shared<const ParamFold>(bias);
            const int b_id = rw.add(std::move(bv));
            Value av = graph.value(column.front().seen);
            av.name = add_name;
            av.shape.back() = n_total;
            av.input_locs = {first.loc, graph.value(*column.front().bias).loc};
            seen_id = rw.add(std::move(av), {seen_id, b_id});
            for (const ColumnMember& c : column) rw.drop(static_cast<int>(c.matmul));
        }

        // Each sibling (its bias add where it has one): its columns of the joined output.
        int64_t at = 0;
        for (size_t i = 0; i < members.size(); ++i) {
            const VertexId s = biased ? column[i].seen : members[i];
            const Value& val = graph.value(s);
            Value sv = val;
            sv.op = Op::slice;
            sv.attrs = Attrs{};
            sv.attrs.values["axis"] = static_cast<int64_t>(val.shape.size() - 1);
            sv.attrs.values["start"] = at;
            sv.attrs.values["end"] = at + val.shape.back();
            sv.attrs.values["step"] = int64_t{1};
            sv.attr_locs.clear();
            sv.input_locs = {val.loc};
            rw.replace(static_cast<int>(s), GraphRewrite::Node{sv, {seen_id}});
            at += val.shape.back();
        }
    }
    return changed ? rw.build("concat_sibling_matmuls") : graph;
}

std::map<std::string, std::string> not_joined_members(const Graph& joined) {
    std::map<std::string, std::string> left;
    for (VertexId v = 0; v < joined.size(); ++v) {
        const Value& val = joined.value(v);
        if (val.attrs.has(kNotJoinedAttr)) left[val.name] = val.attrs.get_string(kNotJoinedAttr);
    }
    return left;
}

}  // namespace anvil
