// The shared tail of the graph passes that rewrite a few vertices (the fold
// stage's): every original vertex kept, rewritten or dropped, new vertices
// appended, then one new Graph built with the edges renumbered.
#pragma once
#include <optional>
#include <vector>

#include "frontend/graph.h"

namespace anvil {

class GraphRewrite {
public:
    // A vertex as it will be. Operands are ids: below graph.size() an
    // original vertex, else an added one.
    struct Node {
        Value value;
        std::vector<int> operands;
    };

    explicit GraphRewrite(const Graph& graph);

    Node& node(int id) { return *nodes_.at(static_cast<size_t>(id)); }
    bool kept(int id) const { return nodes_.at(static_cast<size_t>(id)).has_value(); }
    void drop(int id) { nodes_.at(static_cast<size_t>(id)).reset(); }
    void replace(int id, Node n) { nodes_.at(static_cast<size_t>(id)) = std::move(n); }
    int add(Value value, std::vector<int> operands = {});

    // The new graph. Params and constants that only dropped or rewritten
    // vertices read are dropped too; one that nothing read before stays (it
    // is part of the model's I/O). Every output must survive.
    Graph build(const char* pass) const;

private:
    const Graph& graph_;
    std::vector<std::optional<Node>> nodes_;
};

}  // namespace anvil
