// Reading a strided tensor through a reshape without a copy.
#pragma once
#include <optional>

#include "base/shape.h"

namespace anvil {

// The strides that read a tensor of shape `in`, laid out with `in_strides`,
// as the row-major reshape to `out` (same element count): within each run of
// dims whose products match (as tile_region's reshape_map cuts them) the
// input dims must be one run of memory (each stride the next's times its
// extent, size-1 dims aside); nullopt where they are not (a column view
// [M, n] of a wider row flattened to [M * n]) or the counts differ.
std::optional<Strides> reshape_strides(const Shape& in, const Strides& in_strides, const Shape& out);

}  // namespace anvil
