// rmsnorm computed inside the batch-1 matmuls that read it.
//
// y = rmsnorm(x, g) @ W = r * (x @ (g ⊙ W)) with r = rsqrt(mean(x^2) + eps)
// per row of x: g scales W's rows (a recipe over the originals, folded once
// when the run's values are placed), and the GEMV tile computes r itself from
// the x it reads (one more read of a row that is a few KB at batch 1) and
// multiplies it into each sum before the epilogue. The matmul carries
// kMatmulRmsEpsAttr; the rmsnorm node, a one-tile task twice a layer in a
// decode step, disappears. Only where every reader of the norm is such a
// matmul (constant 2-D weight, not transposed A, one output row) and the
// norm is no output; gamma must be a param of the run.
#pragma once
#include "frontend/graph.h"

namespace anvil {

// The matmul attribute (internal, not a model-format attribute) holding the
// eps of the rmsnorm of A's rows that the tile computes.
inline constexpr const char* kMatmulRmsEpsAttr = "a_rms_eps";

// The graph with every such rmsnorm folded into its readers; unchanged when none.
Graph fold_rmsnorm_into_matmuls(const Graph& graph);

}  // namespace anvil
