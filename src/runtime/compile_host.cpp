// compile_host: emitted source -> shared object through the host C++
// compiler ($ANVIL_HOST_CXX, else c++), for the host backend. Cached on disk
// by content_hash(source + flags + the compiler's --version line).
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <mutex>

#include "runtime/disk_cache.h"
#include "anvil/error.h"
#include "runtime/compile_host.h"

namespace anvil {

namespace {

const char* const kFlags = "-std=c++17 -O2 -fPIC -shared -x c++";

std::string host_cxx() {
    const char* cxx = std::getenv("ANVIL_HOST_CXX");
    return cxx && *cxx ? cxx : "c++";
}

// A path as one shell word.
std::string quoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

struct Run {
    int status = -1;  // exit status, -1 when the command could not run
    std::string output;
};

// Runs a shell command, stdout and stderr together.
Run run_command(const std::string& cmd) {
    Run r;
    FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!pipe) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
    const int st = ::pclose(pipe);
    r.status = (st != -1 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
    return r;
}

// The first line of `cxx --version`: a different compiler or version
// compiles into a different cache entry.
std::string compiler_version(const std::string& cxx) {
    static std::mutex mutex;
    static std::string cached_for, version;
    std::lock_guard<std::mutex> lock(mutex);
    if (cached_for != cxx || version.empty()) {
        const Run r = run_command(cxx + " --version");
        if (r.status != 0)
            throw UserError("the host C++ compiler '" + cxx + "' does not run (" + r.output +
                            "); set ANVIL_HOST_CXX to a C++17 compiler");
        version = r.output.substr(0, r.output.find('\n'));
        cached_for = cxx;
    }
    return version;
}

}  // namespace

HostLibrary compile_host(const std::string& source, const std::string& link_flags) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string cxx = host_cxx();
    // "verified": entries carry a checksum trailer (disk_cache.h); older ones are never read.
    const std::string key = content_hash(source + "\n" + kFlags + (link_flags.empty() ? "" : " " + link_flags) + "\n" +
                                         compiler_version(cxx) + "\nverified");
    HostLibrary lib;
    lib.path = cache_path("host", key + ".so");
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    if (verify_cache_entry(lib.path)) {  // before dlopen: a damaged library is rebuilt, never loaded
        lib.cached = true;
        lib.seconds = seconds();
        return lib;
    }

    // The source stays next to the library: it is what a failure points to.
    const std::string src = cache_path("host", key + ".cpp");
    write_file_atomic(src, source);
    // Compile into a private name, then rename: the .so appears complete or not at all.
    static std::atomic<unsigned> serial{0};
    const std::string tmp = lib.path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(serial++);
    const Run r = run_command(cxx + " " + kFlags + " " + quoted(src) + " -o " + quoted(tmp) + " " + link_flags);
    if (r.status != 0) {
        std::remove(tmp.c_str());
        throw UserError("the host C++ compiler '" + cxx + "' could not compile the emitted source " + src +
                        " (exit status " + std::to_string(r.status) + "):\n" + r.output);
    }
    // Sealed with its checksum, then renamed into place.
    const std::optional<std::string> built = read_file(tmp);
    std::remove(tmp.c_str());
    if (!built) throw UserError("cannot read the host library " + tmp + " the compiler wrote");
    write_cache_entry(lib.path, *built);
    lib.seconds = seconds();
    return lib;
}

}  // namespace anvil
