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

// A layernorm or rmsnorm computed inside the GEMM tiles that read it, at any M.
//
// y = norm(x) @ W + b = xhat @ (g ⊙ W) + (beta @ W + b), xhat = (x - mean) * rstd
// per row of x (rmsnorm: mean 0, no beta). Gamma scales W's K rows and beta
// @ W becomes (or joins) the bias, both recipes over the originals folded
// when the run's values are placed (affine_fold.h); the CUDA-core or
// tensor-core tile computes its rows' mean and rstd over the whole row
// before its K loop and normalises A in shared memory as each slice lands
// (rtasks/a_norm.cuh). The matmul carries kMatmulNormAttr and
// kMatmulNormEpsAttr, its tiles are never GEMVs nor split along K, and the
// norm's wave of rowwise tasks disappears. Only where every reader of the
// norm is a matmul with a constant 2-D weight reading it as A (not
// transposed), the norm is no output, its gamma and beta are params over
// x's last axis, and x has the norm's dtype. A bias param added right after
// a matmul (its one reader) takes beta @ W; otherwise an add of it follows
// the matmul (an epilogue after fusion). Run after fold_rmsnorm_into_matmuls:
// an rmsnorm a GEMV can hold stays there.
inline constexpr const char* kMatmulNormAttr = "a_norm";  // "layernorm" or "rmsnorm"
inline constexpr const char* kMatmulNormEpsAttr = "a_norm_eps";

// The graph with every such norm folded into its readers; unchanged when none.
Graph fold_norms_into_gemm_tiles(const Graph& graph);

}  // namespace anvil
