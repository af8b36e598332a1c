// A tensor's values on the host, stored exactly as the device stores them
// (f16/bf16 as 16-bit words), so that a run's inputs, the arena and the
// .npy files agree bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/dtype.h"
#include "base/shape.h"

namespace anvil {

struct HostTensor {
    DType dtype = DType::f32;
    Shape shape;
    std::vector<std::byte> bytes;

    HostTensor() = default;
    HostTensor(DType t, Shape s);  // zero-filled

    int64_t numel() const { return anvil::numel(shape); }
    double get(int64_t i) const;        // the stored value, widened
    void set(int64_t i, double v);      // rounds to dtype (i32: truncates toward zero)
    std::vector<double> to_doubles() const;
};

// Relative L2 error ||got - want|| / max(||want||, tiny).
double relative_l2_error(const std::vector<double>& got, const std::vector<double>& want);

}  // namespace anvil
