// Blocked weights for batch-1 GEMVs: each tile's weight slice one run of memory.
//
// A GEMV tile streams a BN-column slice of its weight W [K, N]: K pieces of
// BN elements, each a whole row of N apart. At BN * element of 32-128 bytes
// that stream touches a new DRAM page every piece. Declared as
// [N / B, K, B] instead, column block b of W is one contiguous run, and the
// GEMV a batched one, x [1, K] broadcast over the N / B blocks, whose output
// [N / B, 1, B] is the original [1, N] row read through a free reshape. The
// tiles then stream contiguous memory (a BN <= B tile of a block reads pieces
// B apart, inside the block). The pointwise ops after the matmul (bias,
// activation, residual) move onto the blocks with it, so that they still
// fuse into its epilogue. The blocked weight is a recipe over the
// original (ParamFold::Part::blocked), built when the run's values are
// placed in the arena, so the model's own params and the reference are
// unchanged. Off by default until a device measures it
// (scripts/gpu_bench.sh layouts; `--blocked-weights`).
#pragma once
#include "frontend/graph.h"

namespace anvil {

// The column block the pass uses: one 64-column block holds the widest GEMV
// tile decompose gives a batch-1 matmul (its gemv BN), so the policies keep
// their choices up to it.
inline constexpr int64_t kWeightBlockColumns = 64;

// The graph with every eligible batch-1 matmul reading a blocked weight;
// unchanged when none is. Eligible: one output row from x [1, K], a 2-D
// float param W [K, N] read by nothing else, neither operand transposed, no
// norm of A computed in the tile (a_norm: GEMM tiles only), N a multiple of
// `block` (a power of two) and at least two blocks wide.
Graph block_gemv_weights(const Graph& graph, int64_t block = kWeightBlockColumns);

}  // namespace anvil
