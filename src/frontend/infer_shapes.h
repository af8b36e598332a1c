#pragma once
#include "frontend/graph.h"

namespace anvil {

// Shape and dtype inference with every check of the spec; returns the graph
// with node shapes and dtypes filled in. Throws UserError.
Graph infer_shapes(Graph graph);

}  // namespace anvil
