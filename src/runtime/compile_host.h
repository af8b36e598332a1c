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

// Compiles `source` as C++ into a shared object (the host backend), linked
// with `link_flags` (the simt backend's Boost.Context), which the cache key holds.
HostLibrary compile_host(const std::string& source, const std::string& link_flags = "");

}  // namespace anvil
