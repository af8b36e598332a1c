// Finding a usable CUDA device without linking the driver: anvil must start
// and run its host paths on machines that have no GPU and no libcuda.
#include <dlfcn.h>

#include <string>

#include "anvil/pipeline.h"

namespace anvil {

std::string cuda_unavailable_reason() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return "no CUDA driver (libcuda.so.1 could not be loaded)";
    using InitFn = int (*)(unsigned);
    using CountFn = int (*)(int*);
    auto init = reinterpret_cast<InitFn>(dlsym(lib, "cuInit"));
    auto count = reinterpret_cast<CountFn>(dlsym(lib, "cuDeviceGetCount"));
    if (!init || !count) return "the CUDA driver lacks cuInit/cuDeviceGetCount";
    if (int rc = init(0); rc != 0) return "no CUDA device (cuInit failed with error " + std::to_string(rc) + ")";
    int n = 0;
    if (count(&n) != 0 || n == 0) return "no CUDA device";
    return "";
}

}  // namespace anvil
