// Checked arithmetic on sizes: every product or sum of dimensions, strides,
// offsets, window extents and byte counts that a user's numbers reach goes
// through these, so that an overflow is a refusal, never a wrapped value.
// Also the structural size limits every tensor must meet (they keep each
// dimension and element count within the 32-bit fields of the emitted tables).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "base/shape.h"

namespace anvil {

// The largest dimension, and the most elements in one tensor: 2^31 - 1, what
// the int fields of the emitted parameter tables (rtasks/params.cuh) hold.
// With every dimension and element count within it, the int64 arithmetic of
// decompose and the kernels (a product of two of them) cannot overflow.
constexpr int64_t kMaxDim = 2147483647;
constexpr int64_t kMaxElements = 2147483647;

std::optional<int64_t> checked_add(int64_t a, int64_t b);
std::optional<int64_t> checked_mul(int64_t a, int64_t b);

// The product of the dimensions; nullopt when it overflows int64.
std::optional<int64_t> checked_numel(const Shape& s);

// What is wrong with a shape's size, as a sentence fragment ("dimension 0
// is 3000000000, more than 2147483647 ..."), or "" when every dimension is at least
// 1 and at most kMaxDim and the element count at most kMaxElements.
std::string shape_size_problem(const Shape& s);

}  // namespace anvil
