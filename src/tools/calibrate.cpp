// Device ceilings by microbenchmark. Each kernel runs long enough (a few
// milliseconds) for the launch to vanish in its time; the best of several
// runs is the ceiling, since noise only ever makes a run slower.
#include "tools/calibrate.h"

#include <algorithm>
#include <chrono>
#include <ctime>

#include "runtime/cuda_driver.h"
#include "anvil/error.h"
#include "runtime/compile_nvrtc.h"

namespace anvil {

const std::string& calibration_source() {
    static const std::string source = R"CUDA(
// Streams n 16-byte words from src to dst: every byte crosses DRAM twice.
extern "C" __global__ void anvil_copy(const float4* __restrict__ src, float4* __restrict__ dst, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = src[i];
}

// Eight independent FMA chains per thread hide the FMA latency.
extern "C" __global__ void anvil_fma(float* sink, int iters, float a, float b) {
    float x[8];
    for (int k = 0; k < 8; ++k) x[k] = threadIdx.x * 1e-3f + k;
    for (int i = 0; i < iters; ++i)
#pragma unroll
        for (int k = 0; k < 8; ++k) x[k] = fmaf(x[k], a, b);
    float s = 0.f;
    for (int k = 0; k < 8; ++k) s += x[k];
    if (s == 1234.5f) sink[threadIdx.x] = s;  // never true; keeps the work alive
}

// Eight independent m16n8k16 accumulators per warp keep the tensor pipe full.
#define ANVIL_MMA_KERNEL(NAME, TYPE)                                                                  \
extern "C" __global__ void NAME(float* sink, int iters) {                                           \
    const unsigned a0 = 0x3c003c00u ^ threadIdx.x, a1 = 0x3c003c00u, b0 = 0x3c003c00u ^ (threadIdx.x << 3); \
    float c[8][4];                                                                                  \
    for (int k = 0; k < 8; ++k) c[k][0] = c[k][1] = c[k][2] = c[k][3] = 0.f;                        \
    for (int i = 0; i < iters; ++i)                                                                 \
        _Pragma("unroll") for (int k = 0; k < 8; ++k)                                               \
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." TYPE "." TYPE ".f32 "              \
                         "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"                    \
                         : "+f"(c[k][0]), "+f"(c[k][1]), "+f"(c[k][2]), "+f"(c[k][3])                \
                         : "r"(a0), "r"(a1), "r"(a0), "r"(a1), "r"(b0), "r"(a1));                    \
    float s = 0.f;                                                                                  \
    for (int k = 0; k < 8; ++k) s += c[k][0] + c[k][1] + c[k][2] + c[k][3];                         \
    if (s == 1234.5f) sink[threadIdx.x] = s;                                                        \
}
ANVIL_MMA_KERNEL(anvil_mma_f16, "f16")
ANVIL_MMA_KERNEL(anvil_mma_bf16, "bf16")
)CUDA";
    return source;
}

namespace {

struct Device {
    const CudaDriver& drv;
    CUdevice dev = 0;
    CUcontext ctx = nullptr;
    CUmodule module = nullptr;
    CUstream stream = nullptr;
    CUevent start = nullptr, end = nullptr;
    std::string name;
    int sms = 0;

    Device(const CudaDriver& d, int ordinal) : drv(d) {
        int count = 0;
        cuda_check(drv, drv.cuDeviceGetCount(&count), "cuDeviceGetCount");
        if (ordinal < 0 || ordinal >= count)
            throw UserError("CUDA device " + std::to_string(ordinal) + " does not exist: there are " +
                            std::to_string(count));
        cuda_check(drv, drv.cuDeviceGet(&dev, ordinal), "cuDeviceGet");
        char buf[256] = {};
        cuda_check(drv, drv.cuDeviceGetName(buf, sizeof buf - 1, dev), "cuDeviceGetName");
        name = buf;
        int major = 0, minor = 0;
        cuda_check(drv, drv.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
        cuda_check(drv, drv.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
        cuda_check(drv, drv.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev), "cuDeviceGetAttribute");
        if (major < 8) throw UserError("calibrate: " + name + " has no mma.sync for f16/bf16 (compute capability 8.0 or newer is needed)");
        cuda_check(drv, drv.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
        cuda_check(drv, drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
        const CubinResult cubin = compile_nvrtc(calibration_source(), "sm_" + std::to_string(major) + std::to_string(minor));
        cuda_check(drv, drv.cuModuleLoadData(&module, cubin.cubin.data()), "cuModuleLoadData (the calibration kernels)");
        cuda_check(drv, drv.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
        cuda_check(drv, drv.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
        cuda_check(drv, drv.cuEventCreate(&end, CU_EVENT_DEFAULT), "cuEventCreate");
    }
    ~Device() {
        drv.cuCtxSetCurrent(ctx);
        if (start) drv.cuEventDestroy(start);
        if (end) drv.cuEventDestroy(end);
        if (stream) drv.cuStreamDestroy(stream);
        if (module) drv.cuModuleUnload(module);
        if (ctx) drv.cuDevicePrimaryCtxRelease(dev);
    }

    // The shortest of `runs` launches of `kernel`, in seconds, after one warm-up.
    double best_time(const char* kernel, unsigned blocks, unsigned threads, void** args, int runs = 5) {
        CUfunction f = nullptr;
        cuda_check(drv, drv.cuModuleGetFunction(&f, module, kernel), std::string("cuModuleGetFunction('") + kernel + "')");
        double best = 1e30;
        for (int r = 0; r <= runs; ++r) {
            cuda_check(drv, drv.cuEventRecord(start, stream), "cuEventRecord");
            cuda_check(drv, drv.cuLaunchKernel(f, blocks, 1, 1, threads, 1, 1, 0, stream, args, nullptr),
                       std::string("cuLaunchKernel('") + kernel + "')");
            cuda_check(drv, drv.cuEventRecord(end, stream), "cuEventRecord");
            // Every kernel here ends in milliseconds; a longer wait is a broken device.
            const auto t0 = std::chrono::steady_clock::now();
            for (CUresult q; (q = drv.cuStreamQuery(stream)) != CUDA_SUCCESS;) {
                if (q != CUDA_ERROR_NOT_READY) cuda_check(drv, q, std::string("running ") + kernel);
                if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(30))
                    throw UserError(std::string("calibrate: ") + kernel + " did not finish within 30 s");
            }
            float ms = 0;
            cuda_check(drv, drv.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
            if (r > 0) best = std::min(best, ms * 1e-3);
        }
        return best;
    }
};

std::string today() {
    const std::time_t now = std::time(nullptr);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", std::gmtime(&now));
    return buf;
}

}  // namespace

Ceilings calibrate(int ordinal) {
    std::string why;
    const CudaDriver* drv = cuda_driver(&why);
    if (!drv) throw UserError("calibrate needs a CUDA device: " + why);
    Device d(*drv, ordinal);
    Ceilings c;
    c.device = d.name;
    c.date = today();

    // 2 x 512 MiB: far beyond any L2, so every byte comes from DRAM.
    const long long words = (512ll << 20) / 16;
    CUdeviceptr src = 0, dst = 0;
    cuda_check(*drv, drv->cuMemAlloc(&src, words * 16), "cuMemAlloc (512 MiB)");
    try {
        cuda_check(*drv, drv->cuMemAlloc(&dst, words * 16), "cuMemAlloc (512 MiB)");
        cuda_check(*drv, drv->cuMemsetD8Async(src, 1, words * 16, d.stream), "cuMemsetD8");
        long long n = words;
        void* copy_args[] = {&src, &dst, &n};
        c.copy_bytes_per_s = 2.0 * words * 16 / d.best_time("anvil_copy", d.sms * 8, 256, copy_args);
    } catch (...) {
        drv->cuMemFree(src);
        if (dst) drv->cuMemFree(dst);
        throw;
    }
    drv->cuMemFree(src);
    drv->cuMemFree(dst);

    CUdeviceptr sink = 0;
    cuda_check(*drv, drv->cuMemAlloc(&sink, 1024 * sizeof(float)), "cuMemAlloc (the sink)");
    const unsigned blocks = static_cast<unsigned>(d.sms) * 4, threads = 256;
    const double lanes = static_cast<double>(blocks) * threads;
    try {
        int iters = 1 << 16;
        float a = 0.999f, b = 1e-3f;
        void* fma_args[] = {&sink, &iters, &a, &b};
        c.fp32_flops_per_s = lanes * iters * 8 * 2 / d.best_time("anvil_fma", blocks, threads, fma_args);
        // Per warp and iteration: 8 mma of 16x8x16, 2 FLOPs per multiply-add.
        int mma_iters = 1 << 13;
        void* mma_args[] = {&sink, &mma_iters};
        const double mma_flops = lanes / 32 * mma_iters * 8 * (2.0 * 16 * 8 * 16);
        c.tensor_f16_flops_per_s = mma_flops / d.best_time("anvil_mma_f16", blocks, threads, mma_args);
        c.tensor_bf16_flops_per_s = mma_flops / d.best_time("anvil_mma_bf16", blocks, threads, mma_args);
    } catch (...) {
        drv->cuMemFree(sink);
        throw;
    }
    drv->cuMemFree(sink);
    return c;
}

}  // namespace anvil
