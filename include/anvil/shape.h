// Shapes and the index arithmetic every pass shares (row-major, numpy rules).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace anvil {

constexpr int kMaxRank = 6;

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel(const Shape& s);
Strides contiguous_strides(const Shape& s);  // in elements
std::string shape_str(const Shape& s);       // "[2, 3]"

// numpy broadcasting of two shapes; nullopt when they do not broadcast.
std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b);

// Strides that read a tensor of shape `in` (contiguous) as if it had the
// broadcast shape `out` (stride 0 along broadcast dimensions).
Strides broadcast_strides(const Shape& in, const Shape& out);

// Normalises a possibly negative axis against rank; nullopt if out of range.
std::optional<int> normalize_axis(int64_t axis, int rank);

}  // namespace anvil
