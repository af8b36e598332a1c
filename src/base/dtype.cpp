#include "base/dtype.h"

#include <cmath>
#include <cstring>

namespace anvil {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::f32: return "f32";
        case DType::f16: return "f16";
        case DType::bf16: return "bf16";
        case DType::i32: return "i32";
    }
    return "?";
}

std::optional<DType> parse_dtype(const std::string& s) {
    if (s == "f32") return DType::f32;
    if (s == "f16") return DType::f16;
    if (s == "bf16") return DType::bf16;
    if (s == "i32") return DType::i32;
    return std::nullopt;
}

int dtype_size(DType t) { return (t == DType::f16 || t == DType::bf16) ? 2 : 4; }

bool is_float(DType t) { return t != DType::i32; }

double dtype_tolerance(DType t) {
    switch (t) {
        case DType::f16: return 1e-2;
        case DType::bf16: return 2e-2;
        default: return 1e-4;
    }
}

double dtype_max(DType t) {
    switch (t) {
        case DType::f16: return 65504.0;
        case DType::bf16: return 3.3895313892515355e38;  // 0x7f7f
        case DType::i32: return 2147483647.0;
        default: return 3.4028234663852886e38;  // FLT_MAX
    }
}

static uint32_t bits_of(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

static float float_of(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

float bf16_to_float(uint16_t h) { return float_of(static_cast<uint32_t>(h) << 16); }

uint16_t float_to_f16(float f) {
    uint32_t u = bits_of(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow to inf
    if (a < 0x38800000u) {  // subnormal half (or zero): scale into integer units of 2^-24
        float scaled = float_of(a) * 16777216.0f;  // exact; rounding happens in nearbyint
        return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
    }
    uint32_t mant_round = a + 0xfffu + ((a >> 13) & 1u);  // round to nearest even at bit 13
    return static_cast<uint16_t>(sign | ((mant_round - 0x38000000u) >> 13));
}

float f16_to_float(uint16_t h) {
    uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float v = static_cast<float>(mant) * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));
    return float_of(sign | ((exp + 112u) << 23) | (mant << 13));
}

float round_to(DType t, float f) {
    switch (t) {
        case DType::f16: return f16_to_float(float_to_f16(f));
        case DType::bf16: return bf16_to_float(float_to_bf16(f));
        default: return f;
    }
}

}  // namespace anvil
