#include "base/tensor.h"

#include <cmath>
#include <cstring>

namespace anvil {

HostTensor::HostTensor(DType t, Shape s)
    : dtype(t), shape(std::move(s)), bytes(static_cast<size_t>(anvil::numel(shape)) * dtype_size(t)) {}

double HostTensor::get(int64_t i) const {
    const std::byte* p = bytes.data() + i * dtype_size(dtype);
    switch (dtype) {
        case DType::f32: { float f; std::memcpy(&f, p, 4); return f; }
        case DType::i32: { int32_t v; std::memcpy(&v, p, 4); return v; }
        case DType::f16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_float(h); }
        case DType::bf16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_float(h); }
    }
    return 0;
}

void HostTensor::set(int64_t i, double v) {
    std::byte* p = bytes.data() + i * dtype_size(dtype);
    switch (dtype) {
        case DType::f32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
        case DType::i32: { int32_t x = static_cast<int32_t>(v); std::memcpy(p, &x, 4); break; }
        case DType::f16: { uint16_t h = float_to_f16(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
        case DType::bf16: { uint16_t h = float_to_bf16(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    }
}

std::vector<double> HostTensor::to_doubles() const {
    std::vector<double> out(static_cast<size_t>(numel()));
    for (int64_t i = 0; i < numel(); ++i) out[i] = get(i);
    return out;
}

double relative_l2_error(const std::vector<double>& got, const std::vector<double>& want) {
    double num = 0, den = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        double g = i < got.size() ? got[i] : 0.0;
        // Where the exact result is itself NaN or infinite (pow of a negative
        // base, log of 0), the run must give the same, and the element takes
        // no part in the norm (issue 17: such a model is computed right).
        if (!std::isfinite(want[i])) {
            const bool same = std::isnan(want[i]) ? std::isnan(g) : g == want[i];
            if (!same) return INFINITY;
            continue;
        }
        num += (g - want[i]) * (g - want[i]);
        den += want[i] * want[i];
    }
    if (got.size() != want.size() || std::isnan(num)) return INFINITY;
    return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace anvil
