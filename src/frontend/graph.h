// The graph IR: one vertex per tensor (an input, a param or a node's output),
// one edge per operand use, stored in a Boost.Graph adjacency_list. Graphs are
// values: passes take one and return a new one.
#pragma once
#include <boost/graph/adjacency_list.hpp>
#include <memory>
#include <string>
#include <vector>

#include "frontend/model.h"

namespace anvil {

struct ParamFold;  // frontend/affine_fold.h

enum class Role { input, param, node };

struct Value {
    std::string name;
    Role role = Role::node;
    Op op = Op::constant;   // for nodes
    Attrs attrs;            // for nodes
    Shape shape;            // declared (inputs, params) or inferred (nodes)
    DType dtype = DType::f32;
    InitSpec init;          // for inputs and params
    SourceLoc loc;
    std::vector<SourceLoc> input_locs;            // for nodes, one per operand
    std::map<std::string, SourceLoc> attr_locs;   // for nodes
    bool explicit_dtype = false;                  // node carried `dtype:`
    std::shared_ptr<const ParamFold> fold;        // a param fold_affine_chains() derived from others
};

struct Operand {
    int index = 0;  // position in the consumer's input list
};

using GraphStore = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, Value, Operand>;
using VertexId = GraphStore::vertex_descriptor;

struct Graph {
    std::string model_name;
    std::string model_path;
    uint64_t seed = 0;
    GraphStore g;
    std::vector<VertexId> outputs;  // in the order of the file's `outputs`

    const Value& value(VertexId v) const { return g[v]; }
    size_t size() const { return boost::num_vertices(g); }
    std::vector<VertexId> operands(VertexId v) const;   // in operand order
    std::vector<VertexId> consumers(VertexId v) const;
    std::optional<VertexId> find(const std::string& name) const;
    std::vector<VertexId> topological_order() const;    // producers before consumers
    std::vector<VertexId> of_role(Role r) const;         // in file order
};

// Resolves names into edges; refuses unknown names and cycles (naming the
// tensors on the cycle). Shapes of nodes are not yet known.
Graph build_graph(const Model& model);

// load_model + build_graph + infer_shapes.
Graph load_graph(const std::string& path);

}  // namespace anvil
