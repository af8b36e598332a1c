// What the decode passes (concat_siblings, norm_fold) ask of a matmul: a
// constant weight, and one output row (a batch-1 GEMV).
#pragma once
#include "frontend/graph.h"

namespace anvil {

// Whether matmul m's weight (operand 1) is a 2-D float param distinct from its activation.
inline bool constant_weight_matmul(const Graph& g, VertexId m) {
    const Value& mv = g.value(m);
    if (mv.role != Role::node || mv.op != Op::matmul) return false;
    const std::vector<VertexId> ops = g.operands(m);
    const Value& w = g.value(ops[1]);
    return ops[0] != ops[1] && w.role == Role::param && is_float(w.dtype) && w.shape.size() == 2;
}

// Whether every dim but the last is 1 (one row: a column range is contiguous).
inline bool one_output_row(const Shape& s) {
    for (size_t d = 0; d + 1 < s.size(); ++d)
        if (s[d] != 1) return false;
    return !s.empty();
}

}  // namespace anvil
