// Turning emitted source into something that runs: a CUBIN through NVRTC, or
// a shared library through the host C++ compiler. Both are cached on disk,
// keyed by a hash of the source, the options and the compiler's version.
#pragma once
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
};

struct CubinResult {
    std::string cubin;     // bytes
    std::string log;       // NVRTC's log (ptxas -v included)
    std::vector<KernelResources> kernels;
    bool cached = false;
    double seconds = 0;
};

// Compiles `source` for `arch` ("sm_90", "sm_90a"). On a compile error,
// throws UserError with NVRTC's log and the path where the source was dumped.
CubinResult compile_nvrtc(const std::string& source, const std::string& arch);

struct HostLibrary {
    std::string path;  // the cached shared object
    bool cached = false;
    double seconds = 0;
};

// Compiles `source` as C++ into a shared object (the host backend).
HostLibrary compile_host(const std::string& source);

// The cache directory ($ANVIL_CACHE_DIR, else $XDG_CACHE_HOME/anvil, else ~/.cache/anvil).
std::string cache_dir();

// 64-bit FNV-1a, as hex: stable across runs and machines.
std::string content_hash(const std::string& text);

}  // namespace anvil
