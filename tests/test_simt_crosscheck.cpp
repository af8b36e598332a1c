// The GPU cross-check of the simt emulation (issue 12, item 6): the same
// kernels (crosscheck/kernels.cuh), calling each inline-PTX wrapper of
// rtasks/platform.cuh (mma.sync m16n8k16 in f16 and bf16, m16n8k8 in tf32
// and cvt.rna.tf32.f32, the warp
// shuffles and block collectives, cp.async.cg and cp.async.ca of 4, 8 and
// 16 bytes with zero-fill and their commit/wait groups, ldmatrix x1, x2 and
// x4 with and without .trans; on sm_90a wgmma.mma_async m64n64k16 and
// m64n128k16 in f16 and bf16 with its fence/commit/wait and shared-memory
// descriptors, mbarrier init/arrive.expect_tx/try_wait.parity and
// cp.async.bulk), compiled with NVRTC and run on the device through
// the driver, and compiled in the simt configuration (the module
// crosscheck/simt_module.cpp, built beside this binary) and run on the
// emulator, on the same random inputs. Inputs whose products and sums are
// exact in f32 must agree bit for bit; general random mma inputs within a
// tight bound (the hardware's order of accumulation is its own, the
// emulator sums in double and rounds once). Without a GPU the kernels are
// still compiled for sm_90 and the emulator's results are checked against
// plain C++; only the device runs are skipped.
#include <catch2/catch.hpp>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "anvil/error.h"
#include "codegen/emit.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/cuda_driver.h"
#include "runtime/tensor_map.h"

using namespace anvil;

namespace anvil {
const std::map<std::string, std::string>& embedded_crosscheck();  // generated at build time
}

namespace {

using Bytes = std::vector<unsigned char>;

// A tensor map a kernel reads from its input: put at byte `at`, over the
// tensor at byte `tensor` of the same input (the view's base an offset
// until the input's address is known).
struct MapAt {
    size_t at, tensor;
    TmaView view;
};
// `in` with each map encoded by `encode` for the input at `address`.
template <class Encode>
Bytes with_maps(Bytes in, std::uint64_t address, const std::vector<MapAt>& maps, Encode encode) {
    for (const MapAt& m : maps) {
        TmaView v = m.view;
        v.base = address + m.tensor;
        const AnvilTensorMap map = encode(v);
        std::memcpy(in.data() + m.at, &map, sizeof map);
    }
    return in;
}

// The device's source: the rtasks prelude the kernels need, with its quoted
// includes dropped (the files are pasted in order), then the kernels.
std::string crosscheck_source() {
    std::string src = "#define ANVIL_SMEM_BYTES 27648\n";
    for (const char* file : {"params.cuh", "tensor_map.cuh", "simt.cuh", "platform.cuh"}) {
        std::istringstream in(rtask_source(file));
        for (std::string line; std::getline(in, line);)
            if (line.rfind("#include \"", 0) != 0) src += line + "\n";
    }
    return src + embedded_crosscheck().at("kernels.cuh");
}

const char* const kKernels[] = {"xc_mma_f16",  "xc_mma_bf16",    "xc_mma_tf32", "xc_cvt_tf32", "xc_collectives",
                                "xc_cp_async", "xc_cp_async_ca", "xc_ldmatrix"};
// Hopper's own (sm_90a only: a device of compute capability 9.0 runs them).
const char* const kHopperKernels[] = {"xc_wgmma_n64_f16",     "xc_wgmma_n64_bf16",     "xc_wgmma_n128_f16",
                                      "xc_wgmma_n128_bf16",   "xc_wgmma_n64_f16_mn",   "xc_wgmma_n64_bf16_mn",
                                      "xc_wgmma_n128_f16_mn", "xc_wgmma_n128_bf16_mn", "xc_bulk_copy",
                                      "xc_tma_2d",            "xc_tma_wgmma_f16",      "xc_tma_wgmma_bf16",
                                      "xc_tma_wgmma_mn_f16",  "xc_tma_wgmma_mn_bf16"};

// The kernels in the simt configuration: the module built beside this binary.
class SimtKernels {
public:
    SimtKernels() {
        const auto path = std::filesystem::read_symlink("/proc/self/exe").parent_path() / ANVIL_CROSSCHECK_MODULE;
        handle_ = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle_) throw UserError(std::string("dlopen: ") + ::dlerror());
    }
    ~SimtKernels() { ::dlclose(handle_); }
    Bytes run(const char* kernel, const Bytes& in, size_t out_bytes, const std::vector<MapAt>& maps = {}) const {
        using Fn = int (*)(const unsigned char*, unsigned char*, char*, int);
        const auto fn = reinterpret_cast<Fn>(::dlsym(handle_, kernel));
        REQUIRE(fn != nullptr);
        Bytes out(out_bytes, 0xab);
        char msg[1024];
        // The input 64-byte aligned, as the device's allocations are (a map's alignment).
        std::vector<std::uint64_t> aligned((in.size() + 127) / 8);
        unsigned char* at = reinterpret_cast<unsigned char*>(
            (reinterpret_cast<std::uintptr_t>(aligned.data()) + 63) & ~static_cast<std::uintptr_t>(63));
        const Bytes mapped = with_maps(in, reinterpret_cast<std::uintptr_t>(at), maps, encode_tma_simt);
        std::memcpy(at, mapped.data(), mapped.size());
        const int failed = fn(at, out.data(), msg, sizeof msg);
        INFO(kernel << ": " << msg);
        REQUIRE(failed == 0);
        return out;
    }

private:
    void* handle_ = nullptr;
};

// The kernels on CUDA device 0, compiled by NVRTC for its architecture and
// launched as one block of 256 threads through the driver table the cuda
// backend uses.
class DeviceKernels {
public:
    DeviceKernels() : drv_(*cuda_driver()) {
        cuda_check(drv_, drv_.cuDeviceGet(&dev_, 0), "cuDeviceGet");
        cuda_check(drv_, drv_.cuDevicePrimaryCtxRetain(&ctx_, dev_), "cuDevicePrimaryCtxRetain");
        cuda_check(drv_, drv_.cuCtxSetCurrent(ctx_), "cuCtxSetCurrent");
        // sm_90 as sm_90a: the same kernels plus Hopper's wgmma and bulk copies.
        arch_ = cuda_device_arch(0);
        if (arch_ == "sm_90") arch_ = "sm_90a";
        const CubinResult cubin = compile_nvrtc(crosscheck_source(), arch_);
        cuda_check(drv_, drv_.cuModuleLoadData(&module_, cubin.cubin.data()), "cuModuleLoadData");
    }
    ~DeviceKernels() {
        drv_.cuCtxSetCurrent(ctx_);
        if (module_) drv_.cuModuleUnload(module_);
        drv_.cuDevicePrimaryCtxRelease(dev_);
    }
    Bytes run(const char* kernel, const Bytes& in, size_t out_bytes, const std::vector<MapAt>& maps = {}) const {
        CUfunction f = nullptr;
        cuda_check(drv_, drv_.cuModuleGetFunction(&f, module_, kernel), std::string("cuModuleGetFunction ") + kernel);
        CUdeviceptr d_in = 0, d_out = 0;
        Bytes out(out_bytes, 0xab);
        cuda_check(drv_, drv_.cuMemAlloc(&d_in, in.size()), "cuMemAlloc");
        cuda_check(drv_, drv_.cuMemAlloc(&d_out, out.size()), "cuMemAlloc");
        const Bytes mapped =
            with_maps(in, d_in, maps, [this](const TmaView& v) { return encode_tma_device(drv_, v); });
        cuda_check(drv_, drv_.cuMemcpyHtoD(d_in, mapped.data(), mapped.size()), "cuMemcpyHtoD");
        cuda_check(drv_, drv_.cuMemcpyHtoD(d_out, out.data(), out.size()), "cuMemcpyHtoD");
        void* args[] = {&d_in, &d_out};
        cuda_check(drv_, drv_.cuLaunchKernel(f, 1, 1, 1, 256, 1, 1, 0, nullptr, args, nullptr),
                   std::string("cuLaunchKernel ") + kernel);
        // A synchronous copy on the legacy stream waits for the kernel.
        cuda_check(drv_, drv_.cuMemcpyDtoH(out.data(), d_out, out.size()), std::string("running ") + kernel);
        drv_.cuMemFree(d_in);
        drv_.cuMemFree(d_out);
        return out;
    }

    bool hopper() const { return arch_ == "sm_90a"; }

private:
    std::string arch_;
    const CudaDriver& drv_;
    CUdevice dev_ = 0;
    CUcontext ctx_ = nullptr;
    CUmodule module_ = nullptr;
};

template <class T>
T word(const Bytes& b, size_t i) {
    T v;
    std::memcpy(&v, b.data() + i * sizeof(T), sizeof v);
    return v;
}
template <class T>
void put(Bytes& b, size_t i, T v) {
    std::memcpy(b.data() + i * sizeof(T), &v, sizeof v);
}

// ---- mma: per warp A (16x16 halves), B (16x8 halves, [k][n]), C (16x8 floats)
const size_t kMmaIn = 8 * 1280, kMmaOut = 8 * 512;

unsigned short to_half(float f, bool bf16) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    if (bf16) return static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    // f16, round to nearest even, for normal values in range (all used here).
    if ((u & 0x7fffffffu) == 0) return static_cast<unsigned short>(u >> 16);
    const unsigned sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    const unsigned r = a + 0xfffu + ((a >> 13) & 1u);
    return static_cast<unsigned short>(sign | ((r - 0x38000000u) >> 13));
}
double from_half(unsigned short h, bool bf16) {
    if (bf16) {
        const unsigned u = static_cast<unsigned>(h) << 16;
        float f;
        std::memcpy(&f, &u, 4);
        return f;
    }
    const int e = (h >> 10) & 31, m = h & 1023;
    const double v = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

// exact: A and B small integers times powers of two, C a multiple of 2^-6,
// so every product and partial sum is exact in f32 whatever the order.
// Otherwise: either sign, any significand, magnitudes from 2^-7 to 1 (normal
// in f16 and bf16).
Bytes mma_input(std::mt19937& rng, bool bf16, bool exact) {
    Bytes in(kMmaIn);
    std::uniform_int_distribution<int> small(-15, 15), shift(-3, 0), c_int(-1000, 1000), exponent(-6, 0), sign(0, 1);
    std::uniform_real_distribution<float> mantissa(0.5f, 1.0f);
    auto general = [&]() { return (sign(rng) ? -1.0f : 1.0f) * std::ldexp(mantissa(rng), exponent(rng)); };
    for (int w = 0; w < 8; ++w) {
        const size_t h = w * 640, c = w * 320 + 192;  // halves, floats
        for (int i = 0; i < 256 + 128; ++i)
            put<unsigned short>(in, h + i, to_half(exact ? std::ldexp(static_cast<float>(small(rng)), shift(rng)) : general(), bf16));
        for (int i = 0; i < 128; ++i) put<float>(in, c + i, exact ? std::ldexp(static_cast<float>(c_int(rng)), -6) : general());
    }
    return in;
}

// D = A B + C per warp (16 x 8 of C at float 192 of each warp's 320),
// summed in double and rounded once (the emulation's definition), and the
// sum of the magnitudes of its terms (the scale of a hardware rounding
// difference). a(w, r, k) and b(w, k, n) read the operands as the shape's
// kernel stores them.
template <class A, class B>
void mma_sums(int K, A a, B b, const Bytes& in, std::vector<float>* d, std::vector<double>* scale) {
    d->assign(8 * 128, 0);
    scale->assign(8 * 128, 0);
    for (int w = 0; w < 8; ++w)
        for (int r = 0; r < 16; ++r)
            for (int n = 0; n < 8; ++n) {
                double s = word<float>(in, w * 320 + 192 + r * 8 + n), m = std::fabs(s);
                for (int k = 0; k < K; ++k) {
                    const double p = a(w, r, k) * b(w, k, n);
                    s += p;
                    m += std::fabs(p);
                }
                (*d)[w * 128 + r * 8 + n] = static_cast<float>(s);
                (*scale)[w * 128 + r * 8 + n] = m;
            }
}

// m16n8k16: A (16x16) and B (16x8, [k][n]) halves at byte 0 and 512 of a warp's 1280.
void mma_reference(const Bytes& in, bool bf16, std::vector<float>* d, std::vector<double>* scale) {
    mma_sums(
        16, [&](int w, int r, int k) { return from_half(word<unsigned short>(in, w * 640 + r * 16 + k), bf16); },
        [&](int w, int k, int n) { return from_half(word<unsigned short>(in, w * 640 + 256 + k * 8 + n), bf16); }, in,
        d, scale);
}

// ---- tf32: x rounded to 11 significant bits (10 stored), to nearest, ties
// away from zero, with f32's exponent range (subnormals keep their spacing
// 2^-149 x 2^13); past the largest finite, infinity. Written from the
// definition with frexp/ldexp, apart from the emulator's bit arithmetic.
float tf32_reference(float x) {
    if (!std::isfinite(x) || x == 0) return x;
    int e;
    std::frexp(std::fabs(static_cast<double>(x)), &e);  // |x| in [2^(e-1), 2^e)
    const double spacing = std::ldexp(1.0, std::max(e, -125) - 11);
    const double r = std::floor(std::fabs(static_cast<double>(x)) / spacing + 0.5) * spacing;
    const float f = r > std::numeric_limits<float>::max() ? INFINITY : static_cast<float>(r);
    return x < 0 ? -f : f;
}

// Per warp A (16x8), B (8x8, [k][n]) and C (16x8) floats, as mma_input:
// exact (small integers times powers of two: tf32 already) or general.
Bytes mma_tf32_input(std::mt19937& rng, bool exact) {
    Bytes in(kMmaIn);
    std::uniform_int_distribution<int> small(-15, 15), shift(-3, 0), c_int(-1000, 1000), exponent(-6, 0), sign(0, 1);
    std::uniform_real_distribution<float> mantissa(0.5f, 1.0f);
    auto general = [&]() { return (sign(rng) ? -1.0f : 1.0f) * std::ldexp(mantissa(rng), exponent(rng)); };
    for (int w = 0; w < 8; ++w) {
        for (int i = 0; i < 128 + 64; ++i)
            put<float>(in, w * 320 + i, exact ? std::ldexp(static_cast<float>(small(rng)), shift(rng)) : general());
        for (int i = 0; i < 128; ++i)
            put<float>(in, w * 320 + 192 + i, exact ? std::ldexp(static_cast<float>(c_int(rng)), -6) : general());
    }
    return in;
}

// D = tf32(A) tf32(B) + C: A (16x8) and B (8x8, [k][n]) floats at 0 and 128 of a warp's 320.
void mma_tf32_reference(const Bytes& in, std::vector<float>* d, std::vector<double>* scale) {
    mma_sums(
        8, [&](int w, int r, int k) { return double(tf32_reference(word<float>(in, w * 320 + r * 8 + k))); },
        [&](int w, int k, int n) { return double(tf32_reference(word<float>(in, w * 320 + 128 + k * 8 + n))); }, in,
        d, scale);
}

// 1024 floats for cvt: every binade from subnormals to the largest finite,
// either sign, exact ties (the low 13 bits 0x1000) and their neighbours,
// values that round up into the next binade and past the largest finite,
// zeros and infinities.
const size_t kCvtIn = 1024 * 4, kCvtOut = 1024 * 4;
Bytes cvt_tf32_input(std::mt19937& rng) {
    Bytes in(kCvtIn);
    // zero, infinity, the largest finite, the tie that rounds it to infinity, the smallest tie, below it
    const unsigned kFixed[] = {0u, 0x7f800000u, 0x7f7fffffu, 0x7f7ff000u, 0x00001000u, 0x00000fffu};
    std::uniform_int_distribution<unsigned> any(0, 0x7f7fffffu), low(0, 0x1fffu), sign(0, 1), kind(0, 5);
    for (int i = 0; i < 1024; ++i) {
        unsigned u = any(rng);
        switch (kind(rng)) {
            case 0: u = (u & ~0x1fffu) | 0x1000u; break;                       // a tie
            case 1: u = (u & ~0x1fffu) | (0x1000u + (low(rng) & 1 ? 1 : -1)); break;  // beside it
            case 2: u = (u | 0x7fe000u) | (0x1000u + (low(rng) & 0xfff)); break;  // carries into the exponent
            case 3: u = (u & 0x7fffffu) | (low(rng) & 1 ? 0 : 0x7f000000u); break;  // subnormal or near the top
            default: break;
        }
        if (i < 6) u = kFixed[i];
        if (sign(rng)) u |= 0x80000000u;
        put<unsigned>(in, i, u);
    }
    return in;
}
Bytes cvt_tf32_reference(const Bytes& in) {
    Bytes out(kCvtOut);
    for (int i = 0; i < 1024; ++i) put<float>(out, i, tf32_reference(word<float>(in, i)));
    return out;
}

// ---- collectives: 256 floats, 256 ints in; 9 words per thread out
const size_t kCollIn = 256 * 8, kCollOut = 256 * 9 * 4;

Bytes collectives_input(std::mt19937& rng) {
    Bytes in(kCollIn);
    std::uniform_real_distribution<float> real(-10.0f, 10.0f);
    std::uniform_int_distribution<int> any(-1000000, 1000000);
    for (int t = 0; t < 256; ++t) put<float>(in, t, real(rng)), put<int>(in, 256 + t, any(rng));
    return in;
}

// What the wrappers define: shuffles by lane xor; the butterfly sum and max
// (a + b and b + a are the same float, so every lane agrees); the block's
// result from each warp's in warp order; thread 0's int.
Bytes collectives_reference(const Bytes& in) {
    Bytes out(kCollOut);
    float v[256], sum[256], mx[256];
    for (int t = 0; t < 256; ++t) v[t] = sum[t] = mx[t] = word<float>(in, t);
    for (int o = 16; o > 0; o >>= 1) {
        float s2[256], m2[256];
        for (int t = 0; t < 256; ++t) s2[t] = sum[t] + sum[t ^ o], m2[t] = std::fmax(mx[t], mx[t ^ o]);
        std::memcpy(sum, s2, sizeof sum);
        std::memcpy(mx, m2, sizeof mx);
    }
    float block_sum = sum[0], block_max = mx[0];
    for (int w = 1; w < 8; ++w) block_sum += sum[w * 32], block_max = std::fmax(block_max, mx[w * 32]);
    for (int t = 0; t < 256; ++t) {
        for (int s = 0; s < 5; ++s) put<float>(out, t * 9 + s, v[t ^ (1 << s)]);
        put<float>(out, t * 9 + 5, sum[t]);
        put<float>(out, t * 9 + 6, block_sum);
        put<float>(out, t * 9 + 7, block_max);
        put<int>(out, t * 9 + 8, word<int>(in, 256));
    }
    return out;
}

// ---- cp.async: 2 x 4096 random bytes, 256 sizes in 0..16; 32 bytes per thread out
const size_t kCpIn = 8192 + 256 * 4, kCpOut = 256 * 32;

Bytes cp_async_input(std::mt19937& rng) {
    Bytes in(kCpIn);
    std::uniform_int_distribution<int> byte(0, 255), size(0, 16);
    for (size_t i = 0; i < 8192; ++i) in[i] = static_cast<unsigned char>(byte(rng));
    for (int t = 0; t < 256; ++t) put<int>(in, 2048 + t, size(rng));
    return in;
}

Bytes cp_async_reference(const Bytes& in) {
    Bytes out(kCpOut);
    for (int t = 0; t < 256; ++t) {
        const int n = (t + 37) % 256, size = word<int>(in, 2048 + n);
        for (int i = 0; i < 16; ++i) {
            out[t * 32 + i] = in[n * 16 + i];
            out[t * 32 + 16 + i] = i < size ? in[4096 + n * 16 + i] : 0;
        }
    }
    return out;
}

// ---- cp.async.ca: 8192 random bytes, 3 src-sizes per thread; 32 bytes per thread out
const size_t kCpCaIn = 8192 + 256 * 12, kCpCaOut = 256 * 32;

Bytes cp_async_ca_input(std::mt19937& rng) {
    Bytes in(kCpCaIn);
    std::uniform_int_distribution<int> byte(0, 255);
    for (size_t i = 0; i < 8192; ++i) in[i] = static_cast<unsigned char>(byte(rng));
    for (int t = 0; t < 256; ++t)
        for (int k = 0; k < 3; ++k) put<int>(in, 2048 + 3 * t + k, std::uniform_int_distribution<int>(0, 16 >> k)(rng));
    return in;
}

Bytes cp_async_ca_reference(const Bytes& in) {
    Bytes out(kCpCaOut, 0x5a);
    for (int t = 0; t < 256; ++t) {
        const int n = (t + 37) % 256;
        for (int i = 0; i < 28; ++i) {
            const int k = i < 16 ? 0 : i < 24 ? 1 : 2, at = i - (k == 0 ? 0 : k == 1 ? 16 : 24);
            out[t * 32 + i] = at < word<int>(in, 2048 + 3 * n + k) ? in[n * 32 + i] : 0;
        }
    }
    return out;
}

// ---- ldmatrix: per warp four 8x8 matrices of random 16-bit elements; 14 words per thread out
const size_t kLdIn = 8 * 512, kLdOut = 256 * 14 * 4;

Bytes ldmatrix_input(std::mt19937& rng) {
    Bytes in(kLdIn);
    std::uniform_int_distribution<int> byte(0, 255);
    for (unsigned char& b : in) b = static_cast<unsigned char>(byte(rng));
    return in;
}

// The PTX ISA's ldmatrix fragment, written out independently of the
// emulator: lane l holds row l / 4, columns 2 (l % 4) and 2 (l % 4) + 1 of
// each matrix; with .trans rows 2 (l % 4) and 2 (l % 4) + 1 of column l / 4.
Bytes ldmatrix_reference(const Bytes& in) {
    Bytes out(kLdOut);
    for (int t = 0; t < 256; ++t) {
        const int w = t / 32, lane = t % 32, g = lane / 4, q = lane % 4;
        auto element = [&](int i, int r, int c) { return word<unsigned short>(in, w * 256 + i * 64 + r * 8 + c); };
        int k = 0;
        for (bool trans : {false, true})
            for (int num : {1, 2, 4})
                for (int i = 0; i < num; ++i, ++k) {
                    const unsigned lo = trans ? element(i, 2 * q, g) : element(i, g, 2 * q);
                    const unsigned hi = trans ? element(i, 2 * q + 1, g) : element(i, g, 2 * q + 1);
                    put<unsigned>(out, t * 14 + k, lo | hi << 16);
                }
    }
    return out;
}

// ---- wgmma: A (64 x 16 halves) at 0, B (N x 16 halves, [n][k]) at 2048,
// C (2 x 64 x N floats) at 8192; D (2 x 64 x N floats) out. Values as
// mma_input's: exact (every sum exact in f32) or general.
const size_t kWgIn = 8192 + 2 * 64 * 128 * 4;
size_t wgmma_out_bytes(int n) { return 2 * 64 * static_cast<size_t>(n) * 4; }

Bytes wgmma_input(std::mt19937& rng, int n, bool bf16, bool exact) {
    Bytes in(kWgIn);
    std::uniform_int_distribution<int> small(-15, 15), shift(-3, 0), c_int(-1000, 1000), exponent(-6, 0), sign(0, 1);
    std::uniform_real_distribution<float> mantissa(0.5f, 1.0f);
    auto general = [&]() { return (sign(rng) ? -1.0f : 1.0f) * std::ldexp(mantissa(rng), exponent(rng)); };
    for (int i = 0; i < (64 + n) * 16; ++i)
        put<unsigned short>(in, i, to_half(exact ? std::ldexp(static_cast<float>(small(rng)), shift(rng)) : general(), bf16));
    for (int i = 0; i < 2 * 64 * n; ++i)
        put<float>(in, 2048 + i, exact ? std::ldexp(static_cast<float>(c_int(rng)), -6) : general());
    return in;
}

// The PTX ISA's definition: warpgroup 0 D = A B + C, warpgroup 1 D = A B,
// each sum in double rounded once, and the magnitudes' sum per element.
void wgmma_reference(const Bytes& in, int n, bool bf16, std::vector<float>* d, std::vector<double>* scale) {
    d->assign(2 * 64 * n, 0);
    scale->assign(2 * 64 * n, 0);
    for (int g = 0; g < 2; ++g)
        for (int r = 0; r < 64; ++r)
            for (int c = 0; c < n; ++c) {
                const size_t at = (g * 64 + r) * n + c;
                double s = g == 0 ? word<float>(in, 2048 + at) : 0.0, m = std::fabs(s);
                for (int k = 0; k < 16; ++k) {
                    const double p = from_half(word<unsigned short>(in, r * 16 + k), bf16) *
                                     from_half(word<unsigned short>(in, 1024 + c * 16 + k), bf16);
                    s += p;
                    m += std::fabs(p);
                }
                (*d)[at] = static_cast<float>(s);
                (*scale)[at] = m;
            }
}

// ---- bulk copy: 4096 random bytes in; 32 bytes per thread out
const size_t kBulkIn = 4096, kBulkOut = 256 * 32;
Bytes bulk_reference(const Bytes& in) {
    Bytes out(kBulkOut);
    for (int t = 0; t < 256; ++t)
        for (int i = 0; i < 16; ++i) {
            out[32 * t + i] = in[16 * ((t + 37) % 256) + i];
            out[32 * t + 16 + i] = in[16 + 16 * (t % 3) + i];
        }
    return out;
}

// ---- TMA tiled copies (xc_tma_2d): two maps over a 70 x 100 tensor of
// 16-bit elements at 1024, rows 224 bytes apart; out: 7168 bytes of boxes.
const size_t kTmaIn = 1024 + 70 * 224, kTmaOut = 7168;
std::vector<MapAt> tma_maps() {
    TmaView plain;
    plain.elem_bytes = 2;
    plain.cols = 100;
    plain.rows = 70;
    plain.row_bytes = 224;
    plain.box_cols = 24;
    plain.box_rows = 40;
    TmaView swizzled = plain;
    swizzled.box_cols = 64;
    swizzled.box_rows = 24;
    swizzled.swizzle_128b = true;
    return {{0, 1024, plain}, {128, 1024, swizzled}};
}
// The PTX ISA's tile mode: box element (x, y) is the tensor's (x0 + x,
// y0 + y), zero outside; rows one after another; the 128-byte swizzle moves
// 16-byte chunk c of box row r (of 128 bytes) to chunk c ^ (r % 8).
Bytes tma_reference(const Bytes& in) {
    Bytes out(kTmaOut, 0);
    auto box = [&](size_t dst, int x0, int y0, int cols, int rows, bool swizzle) {
        for (int y = 0; y < rows; ++y)
            for (int x = 0; x < cols; ++x) {
                const int gx = x0 + x, gy = y0 + y;
                size_t at = static_cast<size_t>(y * cols + x) * 2;
                if (swizzle) at = (at & ~size_t{0x70}) | ((((at >> 4) & 7) ^ ((at >> 7) & 7)) << 4);
                if (gx < 0 || gx >= 100 || gy < 0 || gy >= 70) continue;
                std::memcpy(&out[dst + at], &in[1024 + static_cast<size_t>(gy) * 224 + gx * 2], 2);
            }
    };
    box(0, 88, 50, 24, 40, false);
    box(2048, -5, -7, 24, 40, false);
    box(4096, 40, 60, 64, 24, true);
    return out;
}

// ---- TMA then wgmma (xc_tma_wgmma_*): A a 50 x 72 tensor at 1024 (rows
// 144 bytes apart), its box of 64 x 64 from column 8; B 64 x 64 ([n][k]) at
// 9216, or (mn: xc_tma_wgmma_mn_*) 64 x 128 ([k][n]) there in two boxes;
// out: D = A B per warpgroup, 2 x 64 x N floats.
int tma_wg_n(bool mn) { return mn ? 128 : 64; }
size_t tma_wg_in(bool mn) { return 9216 + 128 * static_cast<size_t>(tma_wg_n(mn)); }
size_t tma_wg_out(bool mn) { return 2 * 64 * 4 * static_cast<size_t>(tma_wg_n(mn)); }
const char* tma_wg_kernel(bool bf16, bool mn) {
    return mn ? (bf16 ? "xc_tma_wgmma_mn_bf16" : "xc_tma_wgmma_mn_f16") : (bf16 ? "xc_tma_wgmma_bf16" : "xc_tma_wgmma_f16");
}
std::vector<MapAt> tma_wgmma_maps(bool mn) {
    TmaView a;
    a.elem_bytes = 2;
    a.cols = 72;
    a.rows = 50;
    a.row_bytes = 144;
    a.box_cols = 64;
    a.box_rows = 64;
    a.swizzle_128b = true;
    TmaView b = a;
    b.cols = static_cast<std::uint64_t>(tma_wg_n(mn));
    b.rows = 64;
    b.row_bytes = 2 * b.cols;
    return {{0, 1024, a}, {128, 9216, b}};
}
Bytes tma_wgmma_input(std::mt19937& rng, bool bf16, bool exact, bool mn) {
    Bytes in(tma_wg_in(mn), 0);
    std::uniform_int_distribution<int> small(-15, 15), shift(-3, 0), exponent(-6, 0), sign(0, 1);
    std::uniform_real_distribution<float> mantissa(0.5f, 1.0f);
    auto value = [&]() {
        return to_half(exact ? std::ldexp(static_cast<float>(small(rng)), shift(rng))
                             : (sign(rng) ? -1.0f : 1.0f) * std::ldexp(mantissa(rng), exponent(rng)),
                       bf16);
    };
    for (int i = 0; i < 50 * 72; ++i) put<unsigned short>(in, 512 + i, value());
    for (int i = 0; i < 64 * tma_wg_n(mn); ++i) put<unsigned short>(in, 4608 + i, value());
    return in;
}
void tma_wgmma_reference(const Bytes& in, bool bf16, bool mn, std::vector<float>* d, std::vector<double>* scale) {
    const int n = tma_wg_n(mn);
    d->assign(2 * 64 * static_cast<size_t>(n), 0);
    scale->assign(2 * 64 * static_cast<size_t>(n), 0);
    for (int r = 0; r < 50; ++r)
        for (int c = 0; c < n; ++c) {
            double s = 0, m = 0;
            for (int k = 0; k < 64; ++k) {
                const double p = from_half(word<unsigned short>(in, 512 + r * 72 + 8 + k), bf16) *
                                 from_half(word<unsigned short>(in, 4608 + (mn ? k * n + c : c * 64 + k)), bf16);
                s += p;
                m += std::fabs(p);
            }
            for (int g = 0; g < 2; ++g) {
                (*d)[(g * 64 + r) * static_cast<size_t>(n) + c] = static_cast<float>(s);
                (*scale)[(g * 64 + r) * static_cast<size_t>(n) + c] = m;
            }
        }
}

// The first differing byte of two results, as text ("" when equal).
std::string first_difference(const Bytes& a, const Bytes& b) {
    if (a.size() != b.size()) return "sizes differ";
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i] != b[i])
            return "byte " + std::to_string(i) + ": " + std::to_string(a[i]) + " vs " + std::to_string(b[i]);
    return "";
}

// The device's and the emulator's products agree: bit for bit on exact
// inputs, otherwise each float within 1e-5 of the magnitudes of its terms
// (`reference` fills them; the hardware's order of accumulation is its
// own), `where(i)` naming element i in a failure.
template <class Reference, class Where>
void check_products_agree(const Bytes& on_device, const Bytes& emulated, bool exact, Reference reference, Where where) {
    if (exact) {
        CHECK(first_difference(on_device, emulated) == "");
        return;
    }
    std::vector<float> d;
    std::vector<double> scale;
    reference(&d, &scale);
    for (size_t i = 0; i < d.size(); ++i) {
        INFO(where(i) << ": device " << word<float>(on_device, i) << ", emulated " << word<float>(emulated, i));
        REQUIRE(std::fabs(word<float>(on_device, i) - word<float>(emulated, i)) <= 1e-5 * scale[i]);
    }
}

}  // namespace

TEST_CASE("crosscheck: the wrapper kernels compile with NVRTC for sm_90", "[simt][crosscheck]") {
    const CubinResult r = compile_nvrtc(crosscheck_source(), "sm_90");
    CHECK(!r.cubin.empty());
    for (const char* kernel : kKernels) {
        bool found = false;
        for (const KernelResources& k : r.kernels) found = found || k.name == kernel;
        INFO(kernel);
        CHECK(found);
    }
}

TEST_CASE("crosscheck: the wrapper kernels compile with NVRTC for sm_90a, Hopper's wgmma and bulk copies too",
          "[simt][crosscheck][wgmma][compile]") {
    const CubinResult r = compile_nvrtc(crosscheck_source(), "sm_90a");
    CHECK(!r.cubin.empty());
    for (const char* kernel : kHopperKernels) {
        const KernelResources* found = nullptr;
        for (const KernelResources& k : r.kernels)
            if (k.name == kernel) found = &k;
        INFO(kernel);
        REQUIRE(found != nullptr);
        CHECK(found->spill_stores == 0);
    }
}

TEST_CASE("crosscheck: the emulated wgmma and bulk copies agree with plain C++", "[simt][crosscheck][wgmma]") {
    const SimtKernels simt;
    std::mt19937 rng(20261128);
    for (int n : {64, 128})
        for (bool bf16 : {false, true})
            for (bool exact : {true, false})
                for (bool mn : {false, true}) {
                    CAPTURE(n, bf16, exact, mn);
                    const std::string kernel =
                        "xc_wgmma_n" + std::to_string(n) + (bf16 ? "_bf16" : "_f16") + (mn ? "_mn" : "");
                    const Bytes in = wgmma_input(rng, n, bf16, exact);
                    const Bytes out = simt.run(kernel.c_str(), in, wgmma_out_bytes(n));
                    std::vector<float> d;
                    std::vector<double> scale;
                    wgmma_reference(in, n, bf16, &d, &scale);
                    for (size_t i = 0; i < d.size(); ++i) {
                        INFO("warpgroup " << i / (64 * n) << " D[" << i % (64 * n) / n << "][" << i % n << "]");
                        REQUIRE(word<float>(out, i) == d[i]);
                    }
                }
    Bytes bulk(kBulkIn);
    for (unsigned char& b : bulk) b = static_cast<unsigned char>(std::uniform_int_distribution<int>(0, 255)(rng));
    CHECK(first_difference(simt.run("xc_bulk_copy", bulk, kBulkOut), bulk_reference(bulk)) == "");
}

TEST_CASE("crosscheck: the emulated TMA tiled copies and wgmma on their swizzled boxes agree with plain C++",
          "[simt][crosscheck][wgmma][tma]") {
    const SimtKernels simt;
    std::mt19937 rng(20261129);
    Bytes tensor(kTmaIn);
    for (unsigned char& b : tensor) b = static_cast<unsigned char>(std::uniform_int_distribution<int>(0, 255)(rng));
    CHECK(first_difference(simt.run("xc_tma_2d", tensor, kTmaOut, tma_maps()), tma_reference(tensor)) == "");
    for (bool mn : {false, true})
        for (bool bf16 : {false, true})
            for (bool exact : {true, false}) {
                CAPTURE(mn, bf16, exact);
                const Bytes in = tma_wgmma_input(rng, bf16, exact, mn);
                const Bytes out = simt.run(tma_wg_kernel(bf16, mn), in, tma_wg_out(mn), tma_wgmma_maps(mn));
                std::vector<float> d;
                std::vector<double> scale;
                tma_wgmma_reference(in, bf16, mn, &d, &scale);
                const size_t n = static_cast<size_t>(tma_wg_n(mn));
                for (size_t i = 0; i < d.size(); ++i) {
                    INFO("warpgroup " << i / (64 * n) << " D[" << i % (64 * n) / n << "][" << i % n << "]");
                    // The emulation sums each k16 step in double and rounds it
                    // once: exact inputs agree bit for bit, others within f32's
                    // rounding of four partial sums.
                    if (exact)
                        REQUIRE(word<float>(out, i) == d[i]);
                    else
                        REQUIRE(std::fabs(word<float>(out, i) - d[i]) <= 4e-7 * scale[i]);
                }
            }
}

TEST_CASE("crosscheck: the emulated wrappers agree with plain C++", "[simt][crosscheck]") {
    const SimtKernels simt;
    std::mt19937 rng(20261124);
    for (int round = 0; round < 3; ++round) {
        CAPTURE(round);
        for (bool bf16 : {false, true})
            for (bool exact : {true, false}) {
                CAPTURE(bf16, exact);
                const Bytes in = mma_input(rng, bf16, exact);
                const Bytes out = simt.run(bf16 ? "xc_mma_bf16" : "xc_mma_f16", in, kMmaOut);
                std::vector<float> d;
                std::vector<double> scale;
                mma_reference(in, bf16, &d, &scale);
                for (size_t i = 0; i < d.size(); ++i) {
                    INFO("warp " << i / 128 << " D[" << i % 128 / 8 << "][" << i % 8 << "]");
                    REQUIRE(word<float>(out, i) == d[i]);
                }
            }
        for (bool exact : {true, false}) {
            CAPTURE(exact);
            const Bytes in = mma_tf32_input(rng, exact);
            const Bytes out = simt.run("xc_mma_tf32", in, kMmaOut);
            std::vector<float> d;
            std::vector<double> scale;
            mma_tf32_reference(in, &d, &scale);
            for (size_t i = 0; i < d.size(); ++i) {
                INFO("tf32: warp " << i / 128 << " D[" << i % 128 / 8 << "][" << i % 8 << "]");
                REQUIRE(word<float>(out, i) == d[i]);
            }
        }
        const Bytes cvt = cvt_tf32_input(rng);
        CHECK(first_difference(simt.run("xc_cvt_tf32", cvt, kCvtOut), cvt_tf32_reference(cvt)) == "");
        const Bytes coll = collectives_input(rng);
        CHECK(first_difference(simt.run("xc_collectives", coll, kCollOut), collectives_reference(coll)) == "");
        const Bytes cp = cp_async_input(rng);
        CHECK(first_difference(simt.run("xc_cp_async", cp, kCpOut), cp_async_reference(cp)) == "");
        const Bytes ca = cp_async_ca_input(rng);
        CHECK(first_difference(simt.run("xc_cp_async_ca", ca, kCpCaOut), cp_async_ca_reference(ca)) == "");
        const Bytes ld = ldmatrix_input(rng);
        CHECK(first_difference(simt.run("xc_ldmatrix", ld, kLdOut), ldmatrix_reference(ld)) == "");
    }
}

TEST_CASE("crosscheck: the device and the emulator agree on every wrapper", "[gpu][crosscheck]") {
    REQUIRE_DEVICE();
    const SimtKernels simt;
    const DeviceKernels device;
    std::mt19937 rng(7);
    for (int round = 0; round < 8; ++round) {
        CAPTURE(round);
        for (bool bf16 : {false, true})
            for (bool exact : {true, false}) {
                CAPTURE(bf16, exact);
                const char* kernel = bf16 ? "xc_mma_bf16" : "xc_mma_f16";
                const Bytes in = mma_input(rng, bf16, exact);
                check_products_agree(
                    device.run(kernel, in, kMmaOut), simt.run(kernel, in, kMmaOut), exact,
                    [&](std::vector<float>* d, std::vector<double>* scale) { mma_reference(in, bf16, d, scale); },
                    [](size_t i) { return fmt::format("warp {} D[{}][{}]", i / 128, i % 128 / 8, i % 8); });
            }
        for (bool exact : {true, false}) {
            CAPTURE(exact);
            const Bytes in = mma_tf32_input(rng, exact);
            check_products_agree(
                device.run("xc_mma_tf32", in, kMmaOut), simt.run("xc_mma_tf32", in, kMmaOut), exact,
                [&](std::vector<float>* d, std::vector<double>* scale) { mma_tf32_reference(in, d, scale); },
                [](size_t i) { return fmt::format("tf32: warp {} D[{}][{}]", i / 128, i % 128 / 8, i % 8); });
        }
        const Bytes cvt = cvt_tf32_input(rng);
        CHECK(first_difference(device.run("xc_cvt_tf32", cvt, kCvtOut), simt.run("xc_cvt_tf32", cvt, kCvtOut)) == "");
        const Bytes coll = collectives_input(rng);
        CHECK(first_difference(device.run("xc_collectives", coll, kCollOut), simt.run("xc_collectives", coll, kCollOut)) == "");
        const Bytes cp = cp_async_input(rng);
        CHECK(first_difference(device.run("xc_cp_async", cp, kCpOut), simt.run("xc_cp_async", cp, kCpOut)) == "");
        const Bytes ca = cp_async_ca_input(rng);
        CHECK(first_difference(device.run("xc_cp_async_ca", ca, kCpCaOut), simt.run("xc_cp_async_ca", ca, kCpCaOut)) ==
              "");
        const Bytes ld = ldmatrix_input(rng);
        CHECK(first_difference(device.run("xc_ldmatrix", ld, kLdOut), simt.run("xc_ldmatrix", ld, kLdOut)) == "");
        if (!device.hopper()) continue;
        // wgmma and the bulk copy: before ANVIL_MM_WGMMA may become a default.
        for (int n : {64, 128})
            for (bool bf16 : {false, true})
                for (bool exact : {true, false})
                    for (bool mn : {false, true}) {
                        CAPTURE(n, bf16, exact, mn);
                        const std::string kernel =
                            "xc_wgmma_n" + std::to_string(n) + (bf16 ? "_bf16" : "_f16") + (mn ? "_mn" : "");
                        const Bytes in = wgmma_input(rng, n, bf16, exact);
                        check_products_agree(
                            device.run(kernel.c_str(), in, wgmma_out_bytes(n)),
                            simt.run(kernel.c_str(), in, wgmma_out_bytes(n)), exact,
                            [&](std::vector<float>* d, std::vector<double>* scale) {
                                wgmma_reference(in, n, bf16, d, scale);
                            },
                            [n](size_t i) {
                                return fmt::format("warpgroup {} D[{}][{}]", i / (64 * n), i % (64 * n) / n, i % n);
                            });
                    }
        Bytes bulk(kBulkIn);
        for (unsigned char& b : bulk) b = static_cast<unsigned char>(std::uniform_int_distribution<int>(0, 255)(rng));
        CHECK(first_difference(device.run("xc_bulk_copy", bulk, kBulkOut), simt.run("xc_bulk_copy", bulk, kBulkOut)) == "");
        // The TMA engine's boxes (edges zero-filled, the 128-byte swizzle)
        // and wgmma reading a swizzled box: before a tile copies by TMA.
        Bytes tensor(kTmaIn);
        for (unsigned char& b : tensor) b = static_cast<unsigned char>(std::uniform_int_distribution<int>(0, 255)(rng));
        CHECK(first_difference(device.run("xc_tma_2d", tensor, kTmaOut, tma_maps()),
                               simt.run("xc_tma_2d", tensor, kTmaOut, tma_maps())) == "");
        for (bool mn : {false, true})
            for (bool bf16 : {false, true})
                for (bool exact : {true, false}) {
                    CAPTURE(mn, bf16, exact);
                    const char* kernel = tma_wg_kernel(bf16, mn);
                    const Bytes in = tma_wgmma_input(rng, bf16, exact, mn);
                    const size_t n = static_cast<size_t>(tma_wg_n(mn));
                    check_products_agree(
                        device.run(kernel, in, tma_wg_out(mn), tma_wgmma_maps(mn)),
                        simt.run(kernel, in, tma_wg_out(mn), tma_wgmma_maps(mn)), exact,
                        [&](std::vector<float>* d, std::vector<double>* scale) {
                            tma_wgmma_reference(in, bf16, mn, d, scale);
                        },
                        [n](size_t i) {
                            return fmt::format("tma wgmma: warpgroup {} D[{}][{}]", i / (64 * n), i % (64 * n) / n,
                                               i % n);
                        });
                }
    }
}
