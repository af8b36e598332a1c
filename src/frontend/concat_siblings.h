// Concatenating sibling matmuls at compile time (QKV, gate/up).
//
// Matmuls that read the same activation with constant 2-D weights of the same
// K, dtype and layout are one matmul over the weights joined along N. Each
// sibling becomes a slice of the joined output's columns, under its own name,
// so readers and outputs are unchanged; the joined weight is a recipe over the
// originals (ParamFold::Part::concat), built when the run's values are placed
// in the arena. The activation is then read once per tile of one wider
// matmul, and its producer has one consumer to feed.
//
// One output row (a batch-1 decode step): each column range is one contiguous
// run, which decompose makes a view of the joined output at an offset.
// Many rows (BERT's, ViT's q/k/v): a column range is strided (row stride the
// joined width), so a sibling joins only where every reader reads it in place
// through strides: a matmul, a transpose read only by matmuls (a view after
// transpose_views), or a reshape that keeps strides (the heads' [S, H, D])
// read the same way; decompose's slice_read_view makes it that view. An add
// of a bias param [N] right after each sibling joins too (one add of the
// biases joined, a concat recipe; the joined GEMM's epilogue after fusion),
// and the slices are then of that add. A group whose members are read any
// other way (an elementwise op, a residual add, an output) is not joined: its
// slices would be strided copies. Each member left out carries why in its
// kNotJoinedAttr (printed by --dump-after fold), and `not_joined`, when
// given, receives "name: why" for each.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "frontend/graph.h"

namespace anvil {

// The matmul attribute (internal, not a model-format attribute) saying why a
// sibling of many rows was not joined.
inline constexpr const char* kNotJoinedAttr = "not_joined";

// The graph with every group of such siblings joined; unchanged when none.
Graph concat_sibling_matmuls(const Graph& graph, std::vector<std::string>* not_joined = nullptr);

// The members a joined graph left out, by name, with why (their
// kNotJoinedAttr): what `anvil schedule` reports of the join.
std::map<std::string, std::string> not_joined_members(const Graph& joined);

}  // namespace anvil
