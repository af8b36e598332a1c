// Emitted source -> shared object through the host C++ compiler (the host
// backend), cached on disk like CUBINs.
#pragma once
#include <string>

namespace anvil {

struct HostLibrary {
    std::string path;  // the cached shared object
    bool cached = false;
    double seconds = 0;
};

// Compiles `source` as C++ into a shared object (the host backend).
HostLibrary compile_host(const std::string& source);

}  // namespace anvil
