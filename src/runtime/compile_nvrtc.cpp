// compile_nvrtc: emitted source -> CUBIN through NVRTC, cached on disk by
// content_hash(source + options + NVRTC version). ptxas -v is always on: its
// report (registers, spills, shared memory per kernel) is part of the result.
#include <nvrtc.h>

#include <chrono>
#include <regex>
#include <sstream>
#include <vector>

#include "runtime/disk_cache.h"
#include "anvil/error.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/cubin_text.h"

namespace anvil {

namespace {

std::string nvrtc_version() {
    int major = 0, minor = 0;
    nvrtcVersion(&major, &minor);
    return std::to_string(major) + "." + std::to_string(minor);
}

void check(nvrtcResult r, const char* what) {
    if (r != NVRTC_SUCCESS) throw InternalError(std::string("NVRTC ") + what + ": " + nvrtcGetErrorString(r));
}

// ptxas -v compiles every entry function with the functions it calls and
// prints, per entry:
//   ptxas info    : Compiling entry function 'anvil_megakernel' for 'sm_90'
//   ptxas info    : Function properties for anvil_megakernel
//   ptxas         .     8 bytes stack frame, 32 bytes spill stores, 0 bytes spill loads
//   ptxas info    : Used 48 registers, used 1 barriers, 8 bytes cumulative stack size, 36 bytes smem
//   ptxas info    : Function properties for _Z14anvil_row_tile...   (a called function)
//   ptxas         .     0 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads
// A kernel's spills are its own plus those of the functions it calls (the
// rTask kinds are __noinline__); its stack is the cumulative size when given.
std::vector<KernelResources> parse_ptxas(const std::string& log) {
    static const std::regex entry(R"(Compiling entry function '([^']+)')");
    static const std::regex frame(R"((\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads)");
    static const std::regex regs(R"(Used (\d+) registers)");
    static const std::regex smem(R"((\d+) bytes smem)");
    static const std::regex stack(R"((\d+) bytes cumulative stack size)");
    std::vector<KernelResources> out;
    std::istringstream in(log);
    std::string line;
    std::smatch m;
    bool entry_frame = false;  // the next frame line is the entry's own
    while (std::getline(in, line)) {
        if (std::regex_search(line, m, entry)) {
            out.push_back({});
            out.back().name = m[1];
            entry_frame = true;
        } else if (out.empty()) {
            continue;
        } else if (std::regex_search(line, m, frame)) {
            if (entry_frame) out.back().stack_bytes = std::stoi(m[1]);
            out.back().spill_stores += std::stoi(m[2]);
            out.back().spill_loads += std::stoi(m[3]);
            entry_frame = false;
        } else if (std::regex_search(line, m, regs)) {
            out.back().registers = std::stoi(m[1]);
            if (std::regex_search(line, m, smem)) out.back().smem_bytes = std::stoi(m[1]);
            if (std::regex_search(line, m, stack)) out.back().stack_bytes = std::stoi(m[1]);
        }
    }
    return out;
}

// The ptxas report of `log` beside each kernel's code in `cubin`.
std::vector<KernelResources> kernels_of(const std::string& log, const std::string& cubin) {
    std::vector<KernelResources> out = parse_ptxas(log);
    for (KernelResources& k : out) k.code_bytes = cubin_text_bytes(cubin, k.name);
    return out;
}

// NVRTC on `source` with `options`: the compiled program (the caller
// destroys it) and its log; on a compile error, UserError with the log and
// the path where the source was dumped (as `key`.cu).
nvrtcProgram run_nvrtc(const std::string& source, const std::vector<std::string>& options, const std::string& arch,
                       const std::string& key, std::string& log) {
    nvrtcProgram prog;
    check(nvrtcCreateProgram(&prog, source.c_str(), "anvil_megakernel.cu", 0, nullptr, nullptr), "create");
    std::vector<const char*> argv;
    for (const auto& opt : options) argv.push_back(opt.c_str());
    const nvrtcResult compiled = nvrtcCompileProgram(prog, static_cast<int>(argv.size()), argv.data());
    size_t log_size = 0;
    nvrtcGetProgramLogSize(prog, &log_size);
    log.assign(log_size, '\0');
    if (log_size > 0) nvrtcGetProgramLog(prog, log.data());
    while (!log.empty() && log.back() == '\0') log.pop_back();
    if (compiled != NVRTC_SUCCESS) {
        nvrtcDestroyProgram(&prog);
        const std::string dump = cache_path("failed", key + ".cu");
        write_file_atomic(dump, source);
        throw UserError("NVRTC could not compile the emitted source for " + arch + " (" +
                        nvrtcGetErrorString(compiled) + "); the source is in " + dump + "\nNVRTC log:\n" + log);
    }
    return prog;
}

}  // namespace

CubinResult compile_nvrtc(const std::string& source, const std::string& arch) {
    const auto t0 = std::chrono::steady_clock::now();
    if (arch.rfind("sm_", 0) != 0)
        throw UserError("cannot compile for '" + arch + "': a CUBIN needs a real architecture such as sm_90");
    const std::vector<std::string> options = {"--gpu-architecture=" + arch, "-std=c++17", "--ptxas-options=-v"};
    std::string key_text = source;
    for (const auto& opt : options) key_text += "\n" + opt;
    key_text += "\nnvrtc " + nvrtc_version() + "\nverified";  // entries with a checksum (disk_cache.h)
    const std::string key = content_hash(key_text);
    const std::string cubin_path = cache_path("nvrtc", key + ".cubin");
    const std::string log_path = cache_path("nvrtc", key + ".log");

    CubinResult result;
    result.arch = arch;
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    if (auto cubin = read_cache_entry(cubin_path)) {
        if (auto log = read_cache_entry(log_path)) {
            result.cubin = std::move(*cubin);
            result.log = std::move(*log);
            result.kernels = kernels_of(result.log, result.cubin);
            result.cached = true;
            result.seconds = seconds();
            return result;
        }
    }

    std::string log;
    nvrtcProgram prog = run_nvrtc(source, options, arch, key, log);
    size_t size = 0;
    check(nvrtcGetCUBINSize(prog, &size), "cubin size");
    result.cubin.resize(size);
    check(nvrtcGetCUBIN(prog, result.cubin.data()), "cubin");
    nvrtcDestroyProgram(&prog);

    result.log = log;
    result.kernels = kernels_of(log, result.cubin);
    // The log first: a reader that finds the CUBIN always finds its log.
    write_cache_entry(log_path, log);
    write_cache_entry(cubin_path, result.cubin);
    result.seconds = seconds();
    return result;
}

std::string compile_ptx(const std::string& source, const std::string& arch, const std::vector<std::string>& extra) {
    if (arch.rfind("compute_", 0) != 0)
        throw UserError("cannot emit PTX for '" + arch + "': PTX needs a virtual architecture such as compute_90");
    std::vector<std::string> options = {"--gpu-architecture=" + arch, "-std=c++17"};
    options.insert(options.end(), extra.begin(), extra.end());
    std::string log;
    nvrtcProgram prog = run_nvrtc(source, options, arch, content_hash(source), log);
    size_t size = 0;
    check(nvrtcGetPTXSize(prog, &size), "ptx size");
    std::string ptx(size, '\0');
    check(nvrtcGetPTX(prog, ptx.data()), "ptx");
    nvrtcDestroyProgram(&prog);
    while (!ptx.empty() && ptx.back() == '\0') ptx.pop_back();
    return ptx;
}

}  // namespace anvil
