// Element types of tensors. Computation always accumulates in f32 (or wider);
// the dtype is only how a value is stored.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace anvil {

enum class DType : int { f32 = 0, f16 = 1, bf16 = 2, i32 = 3 };

const char* dtype_name(DType t);
std::optional<DType> parse_dtype(const std::string& s);
int dtype_size(DType t);  // bytes per element
bool is_float(DType t);

// Relative L2 tolerance of a result stored in this type (issue 2's contract).
double dtype_tolerance(DType t);

// The largest finite magnitude the type stores (f16 65504, f32 FLT_MAX, ...).
double dtype_max(DType t);

// Round-to-nearest-even conversions, bit-exact with the device code in
// rtasks/platform.cuh.
uint16_t float_to_f16(float f);
float f16_to_float(uint16_t h);
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);

// The value a float becomes once stored as t (identity for f32).
float round_to(DType t, float f);

}  // namespace anvil
