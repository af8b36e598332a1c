#include "base/checked.h"

namespace anvil {

std::optional<int64_t> checked_add(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

std::optional<int64_t> checked_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) {
        std::optional<int64_t> m = checked_mul(n, d);
        if (!m) return std::nullopt;
        n = *m;
    }
    return n;
}

std::string shape_size_problem(const Shape& s) {
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] <= 0)
            return "dimension " + std::to_string(i) + " is " + std::to_string(s[i]) + "; dimensions must be positive";
        if (s[i] > kMaxDim)
            return "dimension " + std::to_string(i) + " is " + std::to_string(s[i]) + ", more than " +
                   std::to_string(kMaxDim) + " (2^31 - 1), the largest dimension anvil takes";
    }
    std::optional<int64_t> n = checked_numel(s);
    if (!n) return "its element count overflows 64 bits";
    if (*n > kMaxElements)
        return std::to_string(*n) + " elements, more than " + std::to_string(kMaxElements) +
               " (2^31 - 1), the most anvil takes in one tensor";
    return "";
}

}  // namespace anvil
