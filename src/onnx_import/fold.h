// Constant folding: evaluates an ONNX node whose inputs are all known at
// import (shape computations, weight preprocessing, the probes of pattern
// checks) in float64, rounding each result to its ONNX element type.
#pragma once
#include <optional>
#include <vector>

#include "onnx_import/const_tensor.h"
#include "onnx_import/onnx_node.h"

namespace anvil {

// Whether fold() knows `op`.
bool can_fold(const std::string& op);

// The node's outputs. `in` holds one entry per input (nullopt: an optional
// input left out). Refuses (through node.fail) what it cannot evaluate.
std::vector<ConstTensor> fold(const OnnxNode& node, const std::vector<std::optional<ConstTensor>>& in);

// A tensor of zeros of shape `s` that node `n` computes from `from`: every
// tensor folding makes is allocated here. Past 16 Mi elements, and past its
// largest input's size, it is refused naming the node.
ConstTensor folded_tensor(const OnnxNode& n, OnnxType type, const Shape& s, const std::vector<const ConstTensor*>& from);

// numpy broadcasting of a binary elementwise function; operands that do not
// broadcast are refused naming node `n`.
ConstTensor broadcast_binary(const OnnxNode& n, const ConstTensor& a, const ConstTensor& b, OnnxType out,
                             double (*f)(double, double));

// Shared with the lowering of run-time tensors: ONNX's shape rules.
Shape unsqueeze_shape(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& axes);
Shape squeeze_shape(const OnnxNode& n, const Shape& in, const std::optional<std::vector<int64_t>>& axes);
Shape reshape_shape(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& target, bool allowzero);
Shape flatten_shape(const OnnxNode& n, const Shape& in);
int norm_axis(const OnnxNode& n, int64_t axis, int rank);

// One axis of an ONNX Slice after clamping: start, step, and length.
struct SliceAxis {
    int axis;
    int64_t start, step, len;
};
std::vector<SliceAxis> slice_axes(const OnnxNode& n, const Shape& in, const std::vector<int64_t>& starts,
                                  const std::vector<int64_t>& ends, std::optional<std::vector<int64_t>> axes,
                                  std::optional<std::vector<int64_t>> steps);

}  // namespace anvil
