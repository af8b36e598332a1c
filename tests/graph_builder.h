// Builds Graph values by hand, as build_graph would from a file, so that
// passes after the loader can be tested without YAML.
//
// Every declaration stands on its own line of a fictitious file "test.yaml",
// numbered from 1 in the order declared. On a node's line the mapping starts
// at column 3, operand i is written at column 20 + i, and an attribute given
// explicitly at column 40 + its position in the op table (defaults have no
// place, as with the loader).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "frontend/graph.h"
#include "frontend/infer_shapes.h"

namespace anvil::test {

inline SourceLoc test_loc(int line, int col) { return SourceLoc{"test.yaml", line, col}; }
inline int operand_col(int i) { return 20 + i; }
inline int attr_col(Op op, const std::string& name) {
    const std::vector<AttrSpec>& specs = op_info(op).attrs;
    for (size_t k = 0; k < specs.size(); ++k)
        if (specs[k].name == name) return 40 + static_cast<int>(k);
    throw InternalError("attr_col: " + std::string(op_name(op)) + " has no attribute " + name);
}

// Attribute values, spelled out so that overloads are never ambiguous.
inline AttrValue I(int64_t v) { return AttrValue{v}; }
inline AttrValue F(double v) { return AttrValue{v}; }
inline AttrValue B(bool v) { return AttrValue{v}; }
inline AttrValue S(const char* v) { return AttrValue{std::string(v)}; }
inline AttrValue L(std::vector<int64_t> v) { return AttrValue{std::move(v)}; }

class GraphBuilder {
public:
    explicit GraphBuilder(DType default_dtype = DType::f32) : dtype_(default_dtype) {
        graph_.model_name = "test";
        graph_.model_path = "test.yaml";
    }

    VertexId input(const std::string& name, Shape shape, std::optional<DType> t = std::nullopt) {
        return tensor(Role::input, name, std::move(shape), t);
    }
    VertexId param(const std::string& name, Shape shape, std::optional<DType> t = std::nullopt) {
        return tensor(Role::param, name, std::move(shape), t);
    }

    // Operands may be declared later (a file is a graph, not a program).
    // Attributes not given get the op table's default, as the loader fills
    // them in.
    VertexId node(const std::string& name, Op op, const std::vector<std::string>& inputs,
                  const std::map<std::string, AttrValue>& attrs = {}, std::optional<DType> t = std::nullopt) {
        Value v;
        v.name = name;
        v.role = Role::node;
        v.op = op;
        v.dtype = t.value_or(dtype_);
        v.explicit_dtype = t.has_value();
        int line = next_line();
        v.loc = test_loc(line, 3);
        for (size_t i = 0; i < inputs.size(); ++i) v.input_locs.push_back(test_loc(line, operand_col(int(i))));
        for (const auto& [key, value] : attrs) {
            v.attrs.values[key] = value;
            v.attr_locs[key] = test_loc(line, attr_col(op, key));
        }
        for (const AttrSpec& spec : op_info(op).attrs)
            if (!v.attrs.has(spec.name) && spec.default_value) v.attrs.values[spec.name] = *spec.default_value;
        VertexId id = add(v);
        for (size_t i = 0; i < inputs.size(); ++i) uses_.push_back({inputs[i], id, int(i)});
        return id;
    }

    GraphBuilder& output(const std::string& name) {
        outputs_.push_back(name);
        return *this;
    }

    // The line a declaration stands on.
    int line(const std::string& name) const { return lines_.at(name); }

    // The graph so far, with every operand name resolved into an edge.
    Graph graph() const {
        Graph g = graph_;
        for (const Use& u : uses_) boost::add_edge(at(u.producer), u.consumer, Operand{u.index}, g.g);
        for (const std::string& name : outputs_) g.outputs.push_back(at(name));
        return g;
    }

private:
    VertexId tensor(Role role, const std::string& name, Shape shape, std::optional<DType> t) {
        Value v;
        v.name = name;
        v.role = role;
        v.shape = std::move(shape);
        v.dtype = t.value_or(dtype_);
        v.loc = test_loc(next_line(), 3);
        return add(v);
    }
    int next_line() { return static_cast<int>(lines_.size()) + 1; }
    VertexId add(const Value& v) {
        if (lines_.count(v.name)) throw InternalError("GraphBuilder: duplicate name " + v.name);
        lines_[v.name] = v.loc.line;
        VertexId id = boost::add_vertex(v, graph_.g);
        ids_[v.name] = id;
        return id;
    }
    VertexId at(const std::string& name) const {
        auto it = ids_.find(name);
        if (it == ids_.end()) throw InternalError("GraphBuilder: unknown name " + name);
        return it->second;
    }

    struct Use {
        std::string producer;
        VertexId consumer;
        int index;
    };

    DType dtype_;
    Graph graph_;
    std::vector<Use> uses_;
    std::vector<std::string> outputs_;
    std::map<std::string, int> lines_;
    std::map<std::string, VertexId> ids_;
};

// The message of the UserError infer_shapes throws, or "" if it accepts.
// How a tensor's values are drawn: normal (std a) or uniform in [a, b).
inline void set_init(Graph& g, const std::string& name, InitKind kind, double a, double b = 0) {
    Value& v = g.g[*g.find(name)];
    v.init.kind = kind;
    v.init.std = a;
    v.init.low = a;
    v.init.high = b;
}

inline std::string error_of(const GraphBuilder& b) {
    try {
        infer_shapes(b.graph());
    } catch (const UserError& e) {
        return e.what();
    }
    return "";
}

// "test.yaml:LINE:COL: node 'NAME': "
inline std::string at(int line, int col, const std::string& subject) {
    return "test.yaml:" + std::to_string(line) + ":" + std::to_string(col) + ": " + subject + ": ";
}
inline std::string at_node(const GraphBuilder& b, const std::string& n) { return at(b.line(n), 3, "node '" + n + "'"); }
inline std::string at_operand(const GraphBuilder& b, const std::string& n, int i) {
    return at(b.line(n), operand_col(i), "node '" + n + "'");
}
inline std::string at_attr(const GraphBuilder& b, const std::string& n, Op op, const std::string& attr) {
    return at(b.line(n), attr_col(op, attr), "node '" + n + "'");
}

// How many nodes of `g` compute `op` (what a graph pass removed or made).
inline int count_op(const Graph& g, Op op) {
    int n = 0;
    for (VertexId v : g.of_role(Role::node)) n += g.value(v).op == op;
    return n;
}

}  // namespace anvil::test
