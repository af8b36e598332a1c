// Finding a usable CUDA device without linking the driver: the one place
// that dlopens libcuda and resolves the functions of CudaDriver.
#include "runtime/cuda_driver.h"

#include <dlfcn.h>


#include "anvil/error.h"

namespace anvil {

namespace {

struct Loaded {
    CudaDriver drv;
    std::string why;  // empty when drv is usable
};

Loaded load() {
    Loaded l;
    // Never closed: the driver stays loaded for the life of the process.
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        l.why = "no CUDA driver (libcuda.so.1 could not be loaded)";
        return l;
    }
    // cuGetProcAddress picks, for each base name, the version matching
    // CUDA_VERSION, which is the signature decltype() took from cuda.h.
    auto get_proc = reinterpret_cast<decltype(&::cuGetProcAddress)>(dlsym(lib, "cuGetProcAddress_v2"));
    if (!get_proc) {
        l.why = "the CUDA driver is too old (it has no cuGetProcAddress_v2; CUDA 12 or newer is needed)";
        return l;
    }
    std::string missing;
#define ANVIL_CUDA_RESOLVE(name)                                                                         \
    {                                                                                                    \
        void* p = nullptr;                                                                               \
        CUdriverProcAddressQueryResult found{};                                                          \
        if (get_proc(#name, &p, CUDA_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &found) != CUDA_SUCCESS ||    \
            found != CU_GET_PROC_ADDRESS_SUCCESS || !p)                                                  \
            missing += std::string(missing.empty() ? "" : ", ") + #name;                                 \
        else                                                                                             \
            l.drv.name = reinterpret_cast<decltype(l.drv.name)>(p);                                      \
    }
    ANVIL_CUDA_FUNCTIONS(ANVIL_CUDA_RESOLVE)
#undef ANVIL_CUDA_RESOLVE
    if (!missing.empty()) {
        l.why = "the CUDA driver lacks " + missing + " (for CUDA " + std::to_string(CUDA_VERSION / 1000) + "." +
                std::to_string(CUDA_VERSION % 1000 / 10) + ")";
        return l;
    }
    if (CUresult r = l.drv.cuInit(0); r != CUDA_SUCCESS) {
        l.why = "no CUDA device (" + cuda_error_str(l.drv, r, "cuInit") + ")";
        return l;
    }
    int n = 0;
    if (CUresult r = l.drv.cuDeviceGetCount(&n); r != CUDA_SUCCESS) {
        l.why = "no CUDA device (" + cuda_error_str(l.drv, r, "cuDeviceGetCount") + ")";
        return l;
    }
    if (n == 0) l.why = "no CUDA device (the driver found none)";
    return l;
}

}  // namespace

const CudaDriver* cuda_driver(std::string* why) {
    static const Loaded loaded = load();  // thread-safe once
    if (why) *why = loaded.why;
    return loaded.why.empty() ? &loaded.drv : nullptr;
}

std::string cuda_error_str(const CudaDriver& drv, CUresult r, const std::string& call) {
    const char* name = nullptr;
    const char* text = nullptr;
    if (drv.cuGetErrorName) drv.cuGetErrorName(r, &name);
    if (drv.cuGetErrorString) drv.cuGetErrorString(r, &text);
    return call + " failed: " + (name ? name : "CUDA error " + std::to_string(static_cast<int>(r))) +
           (text ? std::string(": ") + text : std::string());
}

void cuda_check(const CudaDriver& drv, CUresult r, const std::string& call) {
    if (r != CUDA_SUCCESS) throw UserError(cuda_error_str(drv, r, call));
}

std::string cuda_device_name(int ordinal) {
    std::string why;
    const CudaDriver* drv = cuda_driver(&why);
    if (!drv) throw UserError("no usable CUDA device: " + why);
    CUdevice dev = 0;
    cuda_check(*drv, drv->cuDeviceGet(&dev, ordinal), "cuDeviceGet(" + std::to_string(ordinal) + ")");
    char buf[256] = {};
    cuda_check(*drv, drv->cuDeviceGetName(buf, sizeof buf - 1, dev), "cuDeviceGetName");
    return buf;
}

std::string cuda_device_arch(int ordinal) {
    std::string why;
    const CudaDriver* drv = cuda_driver(&why);
    if (!drv) throw UserError("no usable CUDA device: " + why);
    CUdevice dev = 0;
    cuda_check(*drv, drv->cuDeviceGet(&dev, ordinal), "cuDeviceGet(" + std::to_string(ordinal) + ")");
    int major = 0, minor = 0;
    cuda_check(*drv, drv->cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev),
               "cuDeviceGetAttribute");
    cuda_check(*drv, drv->cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev),
               "cuDeviceGetAttribute");
    return "sm_" + std::to_string(major) + std::to_string(minor);
}

std::string cuda_unavailable_reason() {
    std::string why;
    cuda_driver(&why);
    return why;
}

}  // namespace anvil
