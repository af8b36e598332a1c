// Transposes as views of a matmul's operand or output (attention heads).
//
// A matmul reads A and B and writes C through strides (batch, row, column),
// so a transpose next to one needs no copy of its own:
//   - read view: every reader of the transpose is a matmul; they read its
//     operand's bytes through the permuted strides (q, k, v: [S, H, D] ->
//     [H, S, D] become a batch stride of D and a row stride of H * D);
//   - store view: the transpose's operand is a matmul whose only reader it
//     is; the matmul writes its C straight in the transpose's row-major
//     order (ctx [H, S, D] stored as ctx_t [S, H, D]).
// The transpose carries kTransposeViewAttr; decompose makes it an alias of
// its operand's bytes (no rOp) and gives the matmul the strides. Neither
// applies to a transpose that is an output, nor to the operand of another
// view (a view's bytes are contiguous only in one of the two orders).
#pragma once
#include "frontend/graph.h"

namespace anvil {

// The transpose attribute (internal, not a model-format attribute): how its
// bytes are shared with its operand.
inline constexpr const char* kTransposeViewAttr = "view";
inline constexpr const char* kTransposeReadView = "read";    // readers see the operand permuted
inline constexpr const char* kTransposeStoreView = "store";  // the operand is stored permuted

// The graph with every such transpose marked; unchanged when none.
Graph transpose_views(const Graph& graph);

}  // namespace anvil
