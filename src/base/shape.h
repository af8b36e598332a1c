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

// Python slicing along one dimension: negative start/end count from the
// end, both are clamped to [0, dim], step > 0. len may be 0.
struct SliceBounds {
    int64_t start = 0;
    int64_t step = 1;
    int64_t len = 0;
};
SliceBounds slice_bounds(int64_t dim, int64_t start, std::optional<int64_t> end, int64_t step);

// Normalises a possibly negative axis against rank; nullopt if out of range.
std::optional<int> normalize_axis(int64_t axis, int rank);

}  // namespace anvil
