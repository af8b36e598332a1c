// How a run's values sit in the arena: one zeroed image with every input
// and param at its buffer's offset, and the outputs read back from it. Both
// backends use these, so the host and the device see the same bytes.
#pragma once
#include <vector>

#include "tile/tile_graph.h"
#include "frontend/values.h"

namespace anvil {

// The arena's bytes before a run (size: arena_size(tg)). Throws UserError
// when a value is missing or has another dtype or shape than the model's.
// A folded param (tg.param_folds) is taken from `values` when there, else
// computed from the originals (frontend/affine_fold.h).
std::vector<char> arena_image(const TileGraph& tg, const TensorMap& values);

// `values` with every folded param of `tg` computed once, for callers that
// run one schedule many times (the fold is float64 work over the weights).
TensorMap with_folded_params(const TileGraph& tg, TensorMap values);

// The arena's size in bytes: the tensors', then the table of tensor maps
// (tile/tensor_maps.h; zero in the image until the backend writes them),
// at least 1, rounded up to 256 like cudaMalloc.
size_t arena_size(const TileGraph& tg);

// The value of every output, from an arena of arena_size(tg) bytes.
TensorMap read_outputs(const TileGraph& tg, const char* arena);

}  // namespace anvil
