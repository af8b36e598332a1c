// A tensor whose values the importer knows: an initializer, a Constant, or
// the folded result of a shape computation. Values are held as doubles,
// which represent every f32 and every integer an ONNX shape needs exactly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/shape.h"

namespace anvil {

// ONNX's element types, as its TensorProto.DataType numbers them.
enum class OnnxType : int {
    undefined = 0, float32 = 1, uint8 = 2, int8 = 3, uint16 = 4, int16 = 5, int32 = 6, int64 = 7,
    string = 8, boolean = 9, float16 = 10, float64 = 11, uint32 = 12, uint64 = 13, bfloat16 = 16,
};
const char* onnx_type_name(OnnxType t);
bool is_onnx_float(OnnxType t);

struct ConstTensor {
    OnnxType type = OnnxType::float32;
    Shape shape;
    std::vector<double> v;  // row-major, numel(shape) values

    int64_t numel() const { return static_cast<int64_t>(v.size()); }
    bool scalar_like() const { return v.size() == 1; }
    // The values as integers (shape operands, axes); they must be whole.
    std::vector<int64_t> ints() const;
};

// Rounds every value to what `type` holds (f32 rounding, integer wrap is
// not modelled: shape values are small).
ConstTensor cast_to(const ConstTensor& t, OnnxType type);

}  // namespace anvil
