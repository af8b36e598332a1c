// The CUDA driver API, loaded at run time: anvil never links libcuda, so it
// starts (and runs its host paths) on machines without a GPU or a driver.
// One table of function pointers, resolved once through cuGetProcAddress
// for the CUDA version of the headers anvil was built with, so each entry
// has exactly the signature cuda.h declares (cuMemAlloc is cuMemAlloc_v2).
#pragma once
#include <cuda.h>

#include <string>

namespace anvil {

// Every driver function anvil calls. Add one here and it is resolved.
#define ANVIL_CUDA_FUNCTIONS(X)                                                                       \
    X(cuInit) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetAttribute) X(cuDeviceGetName)           \
    X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuDevicePrimaryCtxReset)               \
    X(cuCtxSetCurrent) X(cuModuleLoadData) X(cuModuleUnload) X(cuModuleGetFunction)                   \
    X(cuFuncGetAttribute) X(cuFuncSetAttribute) X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuMemAlloc) X(cuMemFree)  \
    X(cuMemcpyHtoD) X(cuMemcpyDtoH) X(cuMemsetD8Async) X(cuStreamCreate) X(cuStreamDestroy)           \
    X(cuStreamQuery) X(cuLaunchKernel) X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord)            \
    X(cuEventElapsedTime) X(cuGetErrorName) X(cuGetErrorString) X(cuStreamBeginCapture)              \
    X(cuStreamEndCapture) X(cuGraphInstantiateWithFlags) X(cuGraphLaunch) X(cuGraphDestroy) X(cuGraphExecDestroy) \
    X(cuTensorMapEncodeTiled)

struct CudaDriver {
    // A member per function, named as cuda.h spells it after its macros
    // (so `drv.cuMemAlloc(...)` reads as the plain API).
#define ANVIL_CUDA_MEMBER(name) decltype(&::name) name = nullptr;
    ANVIL_CUDA_FUNCTIONS(ANVIL_CUDA_MEMBER)
#undef ANVIL_CUDA_MEMBER
};

// The loaded driver with cuInit done, or nullptr with the reason in `why`.
// Loads once per process; later calls return the same answer.
const CudaDriver* cuda_driver(std::string* why = nullptr);

// "cuMemAlloc (the arena, 1024 bytes) failed: CUDA_ERROR_OUT_OF_MEMORY: out of memory"
std::string cuda_error_str(const CudaDriver& drv, CUresult r, const std::string& call);

// The name of CUDA device `ordinal` ("NVIDIA H100 80GB HBM3"); throws
// UserError when there is no usable device.
std::string cuda_device_name(int ordinal = 0);

// The architecture of CUDA device `ordinal` ("sm_90"), what its CUBINs are
// compiled for; throws UserError when there is no usable device.
std::string cuda_device_arch(int ordinal = 0);
// Why the cuda backend cannot run here ("" when a CUDA device is usable).
// The driver is loaded at run time so anvil starts on machines without one.
std::string cuda_unavailable_reason();

// Throws UserError with cuda_error_str when r is not CUDA_SUCCESS.
void cuda_check(const CudaDriver& drv, CUresult r, const std::string& call);

}  // namespace anvil
