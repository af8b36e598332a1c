// Emitted source -> CUBIN through NVRTC, cached on disk (keyed by a hash of
// the source, the options and NVRTC's version), with every kernel's resources.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace anvil {


struct KernelResources {
    std::string name;
    int registers = 0;
    int smem_bytes = 0;     // static shared memory
    int spill_stores = 0;   // bytes
    int spill_loads = 0;    // bytes
    int stack_bytes = 0;
    int64_t code_bytes = 0;  // its machine code, called functions included (cubin_text.h)
};

struct CubinResult {
    std::string cubin;     // bytes
    std::string arch;      // what it was compiled for ("sm_90")
    std::string log;       // NVRTC's log (ptxas -v included)
    std::vector<KernelResources> kernels;
    bool cached = false;
    double seconds = 0;
};

// Compiles `source` for `arch` ("sm_90", "sm_90a"). On a compile error,
// throws UserError with NVRTC's log and the path where the source was dumped.
CubinResult compile_nvrtc(const std::string& source, const std::string& arch);

// `source` as PTX for the virtual architecture `arch` ("compute_90"), with
// `extra` options (such as "-DANVIL_COPY_PARAMS=0"): for static checks of
// the code the device compiler makes of a tile. Not cached.
std::string compile_ptx(const std::string& source, const std::string& arch, const std::vector<std::string>& extra = {});

}  // namespace anvil
