#include "base/reshape_strides.h"

namespace anvil {

std::optional<Strides> reshape_strides(const Shape& in, const Strides& in_strides, const Shape& out) {
    if (numel(in) != numel(out) || in_strides.size() != in.size()) return std::nullopt;
    if (numel(out) == 0) return contiguous_strides(out);
    Strides st(out.size(), 0);
    size_t i = 0, j = 0;
    while (i < out.size() || j < in.size()) {
        const size_t i0 = i, j0 = j;
        int64_t po = i < out.size() ? out[i++] : 1;
        int64_t pi = j < in.size() ? in[j++] : 1;
        while (po != pi) {
            if (po < pi) po *= out[i++];
            else pi *= in[j++];
        }
        // The input dims [j0, j) walk one run of memory from the innermost's stride.
        int64_t inner = 1, expect = 0;
        bool seen = false;
        for (size_t d = j; d-- > j0;) {
            if (in[d] == 1) continue;
            if (seen && in_strides[d] != expect) return std::nullopt;
            if (!seen) inner = in_strides[d];
            expect = in_strides[d] * in[d];
            seen = true;
        }
        for (size_t d = i; d-- > i0;) {
            st[d] = inner;
            inner *= out[d];
        }
    }
    return st;
}

}  // namespace anvil
