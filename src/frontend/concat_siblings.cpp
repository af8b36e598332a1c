#include "frontend/concat_siblings.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "frontend/affine_fold.h"
#include "frontend/batch1_matmul.h"
#include "frontend/graph_rewrite.h"

namespace anvil {

namespace {

// What siblings must share: activation, layouts, dtypes, K.
using SiblingKey = std::tuple<VertexId, bool, bool, DType, DType, int64_t>;

}  // namespace

Graph concat_sibling_matmuls(const Graph& graph) {
    std::map<SiblingKey, std::vector<VertexId>> groups;
    std::vector<SiblingKey> order;  // groups in the order their first member comes
    for (VertexId v : graph.topological_order()) {
        const Value& val = graph.value(v);
        if (!constant_weight_matmul(graph, v) || !one_output_row(val.shape)) continue;
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
        std::vector<VertexId>& members = groups[key];
        if (members.size() < 2) continue;
        std::sort(members.begin(), members.end());  // the file's order (a folded node keeps its last node's place)
        changed = true;
        const bool tb = std::get<2>(key);
        const int w_axis = tb ? 0 : 1;  // the weight's axis along N
        const Value& first = graph.value(members.front());
        const VertexId x = graph.operands(members.front())[0];

        ParamFold joined;
        joined.part = ParamFold::Part::concat;
        joined.channel_axis = w_axis;
        std::string name;
        int64_t n_total = 0;
        for (VertexId m : members) {
            const Value& w = graph.value(graph.operands(m)[1]);
            joined.pieces.push_back(FoldSource{w.name, w.fold, w.shape});
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
        const int m_id = rw.add(std::move(mv), {static_cast<int>(x), w_id});

        // Each sibling: its columns of the joined output.
        int64_t at = 0;
        for (VertexId m : members) {
            const Value& val = graph.value(m);
            Value sv = val;
            sv.op = Op::slice;
            sv.attrs = Attrs{};
            sv.attrs.values["axis"] = static_cast<int64_t>(val.shape.size() - 1);
            sv.attrs.values["start"] = at;
            sv.attrs.values["end"] = at + val.shape.back();
            sv.attrs.values["step"] = int64_t{1};
            sv.attr_locs.clear();
            sv.input_locs = {val.loc};
            rw.replace(static_cast<int>(m), GraphRewrite::Node{sv, {m_id}});
            at += val.shape.back();
        }
    }
    return changed ? rw.build("concat_sibling_matmuls") : graph;
}

}  // namespace anvil
