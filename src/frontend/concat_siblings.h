// Concatenating sibling matmuls at compile time (QKV, gate/up).
//
// Matmuls that read the same activation with constant 2-D weights of the same
// K, dtype and layout are one matmul over the weights joined along N. Each
// sibling becomes a slice of the joined output's columns, under its own name,
// so readers and outputs are unchanged. Only where such a column range is one
// contiguous run (every output dim but the last is 1: a batch-1 decode step),
// which decompose makes a view of the joined output, not a copy; the joined
// weight is a recipe over the originals (ParamFold::Part::concat), built when
// the run's values are placed in the arena. The activation is then read once
// per tile of one wider matmul, and its producer has one consumer to feed.
#pragma once
#include "frontend/graph.h"

namespace anvil {

// The graph with every group of such siblings joined; unchanged when none.
Graph concat_sibling_matmuls(const Graph& graph);

}  // namespace anvil
