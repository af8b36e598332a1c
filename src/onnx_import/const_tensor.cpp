#include "onnx_import/const_tensor.h"

#include <cmath>
#include <limits>

#include "anvil/error.h"

namespace anvil {

const char* onnx_type_name(OnnxType t) {
    switch (t) {
        case OnnxType::float32: return "float";
        case OnnxType::uint8: return "uint8";
        case OnnxType::int8: return "int8";
        case OnnxType::uint16: return "uint16";
        case OnnxType::int16: return "int16";
        case OnnxType::int32: return "int32";
        case OnnxType::int64: return "int64";
        case OnnxType::string: return "string";
        case OnnxType::boolean: return "bool";
        case OnnxType::float16: return "float16";
        case OnnxType::float64: return "double";
        case OnnxType::uint32: return "uint32";
        case OnnxType::uint64: return "uint64";
        case OnnxType::bfloat16: return "bfloat16";
        default: return "an unknown type";
    }
}

bool is_onnx_float(OnnxType t) {
    return t == OnnxType::float32 || t == OnnxType::float16 || t == OnnxType::float64 || t == OnnxType::bfloat16;
}

std::vector<int64_t> ConstTensor::ints() const {
    // INT64_MAX ("to the end" of a Slice, as PyTorch exports x[3:]) is 2^63
    // as a double, past llround's range: the ends saturate.
    constexpr double two63 = 9223372036854775808.0;
    std::vector<int64_t> r;
    r.reserve(v.size());
    for (double x : v)
        r.push_back(x >= two63 ? std::numeric_limits<int64_t>::max()
                    : x <= -two63 ? std::numeric_limits<int64_t>::min()
                                  : static_cast<int64_t>(std::llround(x)));
    return r;
}

ConstTensor cast_to(const ConstTensor& t, OnnxType type) {
    ConstTensor r = t;
    r.type = type;
    for (double& x : r.v) {
        if (type == OnnxType::float32 || type == OnnxType::float16 || type == OnnxType::bfloat16)
            x = static_cast<double>(static_cast<float>(x));
        else if (type == OnnxType::boolean)
            x = x != 0 ? 1 : 0;
        else if (!is_onnx_float(type))
            x = std::trunc(x);
    }
    return r;
}

}  // namespace anvil
