#include "base/shape.h"

#include <algorithm>

namespace anvil {

int64_t numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

Strides contiguous_strides(const Shape& s) {
    Strides st(s.size());
    int64_t acc = 1;
    for (size_t i = s.size(); i-- > 0;) {
        st[i] = acc;
        acc *= s[i];
    }
    return st;
}

std::string shape_str(const Shape& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) {
        if (i) r += ", ";
        r += std::to_string(s[i]);
    }
    return r + "]";
}

std::optional<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
    size_t rank = std::max(a.size(), b.size());
    Shape out(rank);
    for (size_t i = 0; i < rank; ++i) {
        int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
        int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
        if (da != db && da != 1 && db != 1) return std::nullopt;
        out[i] = da == 1 ? db : da;
    }
    return out;
}

Strides broadcast_strides(const Shape& in, const Shape& out) {
    Strides cs = contiguous_strides(in);
    Strides st(out.size(), 0);
    size_t lead = out.size() - in.size();
    for (size_t i = 0; i < in.size(); ++i)
        st[lead + i] = in[i] == 1 ? 0 : cs[i];
    return st;
}

SliceBounds slice_bounds(int64_t dim, int64_t start, std::optional<int64_t> end, int64_t step) {
    auto clamp = [dim](int64_t i) {
        if (i < 0) i += dim;
        return std::min(std::max<int64_t>(i, 0), dim);
    };
    int64_t s = clamp(start);
    int64_t e = end ? clamp(*end) : dim;
    SliceBounds b;
    b.start = s;
    // Written so that no step overflows; a step past the dimension takes one
    // element, and is stored as the dimension (the same slice), so that the
    // strides built from it stay within the tensor.
    b.len = e > s ? 1 + (e - s - 1) / step : 0;
    b.step = std::min(step, std::max<int64_t>(dim, 1));
    return b;
}

std::optional<int> normalize_axis(int64_t axis, int rank) {
    if (axis < -rank || axis >= rank) return std::nullopt;
    return static_cast<int>(axis < 0 ? axis + rank : axis);
}

}  // namespace anvil
