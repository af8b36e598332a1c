#pragma once
#include "frontend/graph.h"

namespace anvil {

// Shape and dtype inference with every check of the spec; returns the graph
// with node shapes and dtypes filled in. Throws UserError.
Graph infer_shapes(Graph graph);

// One node's shape (`node` with its op, attributes and dtype; its operands
// with their shapes and dtypes), with every check infer_shapes makes of it:
// for a frontend that builds a model node by node (the ONNX importer).
Shape infer_node_shape(const Value& node, const std::vector<const Value*>& operands);

}  // namespace anvil
