// run_cuda: load the schedule's CUBIN (emitted and compiled by the pipeline
// for the device's architecture), check that every launch's waiting blocks
// can be resident together, and run the launches over the same arena,
// counters and status word as the host backend.
#include "runtime/cuda_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>

#include "runtime/arena_io.h"
#include "runtime/cuda_driver.h"
#include "codegen/emit.h"  // launch_kernels, launch_smem_bytes
#include "anvil/error.h"
#include "schedule/sync_counters.h"
#include "runtime/run_errors.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/tensor_map.h"

namespace anvil {

namespace {

const CudaDriver& driver() {
    std::string why;
    const CudaDriver* drv = cuda_driver(&why);
    if (!drv) throw UserError("the cuda backend cannot run: " + why);
    return *drv;
}

// The launch whose queues hold `task` (for naming it in an error found
// after the whole run), or 0 when none does.
size_t launch_of(const Schedule& s, int task) {
    for (size_t l = 0; l < s.launches.size(); ++l)
        for (const auto& q : s.launches[l].queues)
            if (std::find(q.begin(), q.end(), task) != q.end()) return l;
    return 0;
}

// Whether some task of `l` waits for another block: then every block of
// the launch must be resident at once, or a waiting block could hold the
// SM its producer needs. A launch of independent tasks (per_op, welder)
// may have any number of blocks.
bool has_waits(const Schedule& s, const Launch& l) {
    for (const auto& q : l.queues)
        for (int t : q)
            if (!s.tasks[t].deps.empty() || !s.tasks[t].waits.empty()) return true;
    return false;
}

// Dynamic shared memory every kernel may use without raising its attribute.
constexpr int kSmemWithoutOptIn = 48 * 1024;

}  // namespace

std::string dynamic_smem_refusal(const std::string& kernel, int dynamic_bytes, int static_bytes, int optin_bytes,
                                 const std::string& device) {
    if (static_bytes + dynamic_bytes <= optin_bytes) return "";
    return "kernel '" + kernel + "' needs " + std::to_string(dynamic_bytes) + " B of dynamic shared memory beside " +
           std::to_string(static_bytes) + " B of static, over the " + std::to_string(optin_bytes) +
           " B a block of " + device + " may use; schedule for this GPU (--gpu)";
}

struct CudaProgram::Impl {
    const CudaDriver& drv = driver();
    const Schedule& s;
    CudaRunOptions opt;
    CUdevice dev = 0;
    CUcontext ctx = nullptr;
    CUmodule module = nullptr;
    CUstream stream = nullptr;
    CUevent start = nullptr, end = nullptr;
    CUdeviceptr arena = 0, counters = 0, status = 0, trace = 0;
    size_t arena_bytes = 0, counter_bytes = 0;
    std::vector<CUfunction> functions;  // one per launch (launches may share a kernel)
    std::vector<int> smem_bytes;        // per launch, its blocks' dynamic shared memory (launch_smem_bytes)
    CUgraphExec graph = nullptr;        // run_graph's, captured on first use
    std::string name, arch;
    int sms = 0;
    // Per launch, its runs since the counters were last zeroed: the epoch it
    // publishes next (a counter belongs to one launch, so a run of some
    // launches only leaves the others' counters as they were).
    std::vector<unsigned> runs;
    bool graph_ran = false;  // the counters hold a graph run's arrivals
    // Set when the device is stuck or its context broken: the destructor
    // then resets the context instead of freeing into it.
    bool broken = false;

    Impl(const Schedule& sched, const CubinResult& cubin, const CudaRunOptions& o) : s(sched), opt(o) {
        try {
            open(cubin);
        } catch (...) {
            close();
            throw;
        }
    }
    ~Impl() { close(); }

    void check(CUresult r, const std::string& call) {
        if (r == CUDA_SUCCESS) return;
        // Errors of a kernel (an illegal address, a failed launch) stay on
        // the context: nothing more can run in it.
        if (r != CUDA_ERROR_INVALID_VALUE && r != CUDA_ERROR_OUT_OF_MEMORY && r != CUDA_ERROR_NOT_FOUND &&
            r != CUDA_ERROR_INVALID_IMAGE && r != CUDA_ERROR_NO_BINARY_FOR_GPU)
            broken = true;
        throw UserError("model '" + s.tiles.model_name + "' on the cuda backend: " + cuda_error_str(drv, r, call));
    }

    void open(const CubinResult& cubin) {
        int count = 0;
        check(drv.cuDeviceGetCount(&count), "cuDeviceGetCount");
        if (opt.device < 0 || opt.device >= count)
            throw UserError("CUDA device " + std::to_string(opt.device) + " does not exist: there are " +
                            std::to_string(count));
        check(drv.cuDeviceGet(&dev, opt.device), "cuDeviceGet");
        char buf[256] = {};
        check(drv.cuDeviceGetName(buf, sizeof buf - 1, dev), "cuDeviceGetName");
        name = buf;
        int major = 0, minor = 0;
        check(drv.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
        check(drv.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
        check(drv.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev), "cuDeviceGetAttribute");
        arch = "sm_" + std::to_string(major) + std::to_string(minor);
        check(drv.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
        check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");

        if (cubin.arch != arch && cubin.arch != arch + "a")  // sm_90a runs on sm_90 (wgmma tiles)
            throw UserError("model '" + s.tiles.model_name + "': the CUBIN was compiled for " + cubin.arch +
                            ", and CUDA device " + std::to_string(opt.device) + " (" + name + ") is " + arch + ".");
        check(drv.cuModuleLoadData(&module, cubin.cubin.data()), "cuModuleLoadData (the " + arch + " CUBIN)");
        for (const std::string& kernel : launch_kernels(s)) {
            CUfunction f = nullptr;
            check(drv.cuModuleGetFunction(&f, module, kernel.c_str()), "cuModuleGetFunction('" + kernel + "')");
            functions.push_back(f);
            smem_bytes.push_back(launch_smem_bytes(s, functions.size() - 1));
        }
        raise_smem_limits();
        check_residency();

        arena_bytes = arena_size(s.tiles);
        check(drv.cuMemAlloc(&arena, arena_bytes), "cuMemAlloc (the arena, " + std::to_string(arena_bytes) + " bytes)");
        runs.assign(s.launches.size(), 0);
        counter_bytes = std::max<size_t>(sync_counters(s).count(), 1) * sizeof(unsigned);
        check(drv.cuMemAlloc(&counters, counter_bytes), "cuMemAlloc (the task counters)");
        check(drv.cuMemAlloc(&status, sizeof(AnvilStatus)), "cuMemAlloc (the status word)");
        if (opt.emit.trace)
            check(drv.cuMemAlloc(&trace, std::max<size_t>(s.tasks.size(), 1) * sizeof(AnvilTraceRecord)),
                  "cuMemAlloc (the trace records)");
        // A blocking stream: its kernels wait for the synchronous copies
        // (legacy default stream) of upload().
        check(drv.cuStreamCreate(&stream, CU_STREAM_DEFAULT), "cuStreamCreate");
        check(drv.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
        check(drv.cuEventCreate(&end, CU_EVENT_DEFAULT), "cuEventCreate");
        // Counters start below epoch 1; the arena starts zeroed, like the host's.
        check(drv.cuMemsetD8Async(counters, 0, counter_bytes, stream), "cuMemsetD8 (the task counters)");
        check(drv.cuMemsetD8Async(arena, 0, arena_bytes, stream), "cuMemsetD8 (the arena)");
        wait("zeroing the arena", opt.host_margin_s);
    }

    // The block's scratch is dynamic shared memory (ANVIL_SMEM_DYNAMIC):
    // over 48 KiB a kernel must opt in, up to the device's limit per block.
    void raise_smem_limits() {
        int optin = 0;
        check(drv.cuDeviceGetAttribute(&optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev),
              "cuDeviceGetAttribute (the opt-in shared memory per block)");
        const std::vector<std::string> kernels = launch_kernels(s);
        for (size_t l = 0; l < functions.size(); ++l) {
            if (smem_bytes[l] <= kSmemWithoutOptIn) continue;
            int static_bytes = 0;
            check(drv.cuFuncGetAttribute(&static_bytes, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, functions[l]),
                  "cuFuncGetAttribute");
            const std::string why = dynamic_smem_refusal(kernels[l], smem_bytes[l], static_bytes, optin, name);
            if (!why.empty()) throw UserError("model '" + s.tiles.model_name + "' on the cuda backend: " + why);
            check(drv.cuFuncSetAttribute(functions[l], CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem_bytes[l]),
                  "cuFuncSetAttribute('" + kernels[l] + "', CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, " +
                      std::to_string(smem_bytes[l]) + " B)");
        }
    }

    // Every block of a launch with waits must be resident at once (the
    // deadlock-freedom argument in megakernel.cuh), with its dynamic shared
    // memory.
    void check_residency() {
        for (size_t l = 0; l < s.launches.size(); ++l) {
            const Launch& launch = s.launches[l];
            int per_sm = 0, regs = 0, smem = 0;
            check(drv.cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, functions[l], s.threads_per_block,
                                                                  static_cast<size_t>(smem_bytes[l])),
                  "cuOccupancyMaxActiveBlocksPerMultiprocessor('" + launch.name + "')");
            check(drv.cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, functions[l]), "cuFuncGetAttribute");
            check(drv.cuFuncGetAttribute(&smem, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, functions[l]),
                  "cuFuncGetAttribute");
            const std::string resources = std::to_string(s.threads_per_block) + " threads, " + std::to_string(regs) +
                                          " registers per thread, " + std::to_string(smem) + " B static and " +
                                          std::to_string(smem_bytes[l]) + " B dynamic shared memory";
            const long long blocks = static_cast<long long>(launch.queues.size());
            const long long fit = static_cast<long long>(sms) * per_sm;
            if (per_sm == 0)
                throw UserError("model '" + s.tiles.model_name + "', launch '" + launch.name + "': a block (" +
                                resources + ") does not fit on an SM of " + name);
            if (blocks > fit && has_waits(s, launch))
                throw UserError("model '" + s.tiles.model_name + "', policy '" + s.policy + "', launch '" +
                                launch.name + "': its " + std::to_string(blocks) +
                                " blocks wait on one another, so all must be resident at once, but only " +
                                std::to_string(sms) + " SMs x " + std::to_string(per_sm) + " blocks per SM = " +
                                std::to_string(fit) + " fit on " + name + " (" + resources +
                                " per block); schedule for this GPU (--gpu) or fewer blocks");
        }
    }

    // Polls the stream until its work is done, for at most `limit_s`: a
    // kernel that never ends must become an error, not a hang of anvil.
    void wait(const std::string& what, double limit_s) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int polls = 0;; ++polls) {
            const CUresult r = drv.cuStreamQuery(stream);
            if (r == CUDA_SUCCESS) return;
            if (r != CUDA_ERROR_NOT_READY) check(r, "cuStreamQuery (after " + what + ")");
            const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (waited > limit_s) {
                broken = true;
                throw UserError("model '" + s.tiles.model_name + "', policy '" + s.policy + "' on " + name + ": " +
                                what + " did not finish within " + std::to_string(static_cast<int>(limit_s)) +
                                " s although every dependency wait is bounded by " +
                                std::to_string(opt.spin_timeout_s) + " s: a task does not end");
            }
            // Spin briefly (short runs), then sleep (long ones).
            if (polls < 1000) std::this_thread::yield();
            else std::this_thread::sleep_for(std::chrono::microseconds(100));
        }
    }

    // Enqueues the status reset and launches [first, end) on `on`, launch l
    // publishing epoch_of(l).
    template <typename EpochOf>
    void enqueue(CUstream on, EpochOf epoch_of, size_t first = 0, size_t end = SIZE_MAX) {
        unsigned long long timeout_ns = static_cast<unsigned long long>(opt.spin_timeout_s * 1e9);
        check(drv.cuMemsetD8Async(status, 0, sizeof(AnvilStatus), on), "cuMemsetD8 (the status word)");
        for (size_t l = first; l < std::min(end, s.launches.size()); ++l) {
            int launch = static_cast<int>(l);
            unsigned run_epoch = epoch_of(l);
            void* args[] = {&arena, &counters, &run_epoch, &status, &timeout_ns, &trace, &launch};
            const unsigned blocks = static_cast<unsigned>(s.launches[l].queues.size());
            check(drv.cuLaunchKernel(functions[l], std::max(blocks, 1u), 1, 1, s.threads_per_block, 1, 1,
                                     static_cast<unsigned>(smem_bytes[l]), on, args, nullptr),
                  "cuLaunchKernel('" + s.launches[l].name + "', " + std::to_string(blocks) + " blocks)");
        }
    }

    // Waits for the run between the events, reports a failed task, and
    // returns the time between them.
    double finish() {
        wait("the run of " + std::to_string(s.launches.size()) + " launch(es)", opt.spin_timeout_s + opt.host_margin_s);
        AnvilStatus st{};
        check(drv.cuMemcpyDtoH(&st, status, sizeof st), "cuMemcpyDtoH (the status word)");
        // A failing task stops its launch, and every later launch sees the
        // status at its first wait: the launch that failed is the task's.
        if (st.code != ANVIL_OK) report_run_status(s, launch_of(s, st.task), st, opt.spin_timeout_s);
        float ms = 0;
        check(drv.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime");
        return ms * 1e-3;
    }

    double run(size_t first = 0, size_t count = SIZE_MAX) {
        check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
        if (graph_ran) {  // the graph left its own counts: start again from zero
            check(drv.cuMemsetD8Async(counters, 0, counter_bytes, stream), "cuMemsetD8 (the task counters)");
            std::fill(runs.begin(), runs.end(), 0u);
            graph_ran = false;
        }
        check(drv.cuEventRecord(start, stream), "cuEventRecord");
        // A counter complete in run n holds its count times n, mod 2^32.
        enqueue(stream, [&](size_t l) { return ++runs[l]; }, first, count == SIZE_MAX ? SIZE_MAX : first + count);
        check(drv.cuEventRecord(end, stream), "cuEventRecord");
        return finish();
    }

    // The graph zeroes the counters and publishes epoch 1: a graph run
    // waits for its own producers; a plain run after it zeroes them again.
    double run_graph() {
        check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
        if (!graph) capture();
        graph_ran = true;
        check(drv.cuEventRecord(start, stream), "cuEventRecord");
        check(drv.cuGraphLaunch(graph, stream), "cuGraphLaunch");
        check(drv.cuEventRecord(end, stream), "cuEventRecord");
        return finish();
    }

    void capture() {
        // Capture on a stream of its own: the main stream is a blocking
        // one, and capture refuses any tie to the legacy stream.
        CUstream cap = nullptr;
        check(drv.cuStreamCreate(&cap, CU_STREAM_NON_BLOCKING), "cuStreamCreate (for graph capture)");
        CUgraph g = nullptr;
        CUresult r = drv.cuStreamBeginCapture(cap, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        if (r == CUDA_SUCCESS) {
            try {
                // Nothing reads the counters of a schedule without waits.
                bool waits = false;
                for (const Launch& l : s.launches) waits = waits || has_waits(s, l);
                if (waits) check(drv.cuMemsetD8Async(counters, 0, counter_bytes, cap), "cuMemsetD8 (the task counters)");
                enqueue(cap, [](size_t) { return 1u; });
            } catch (...) {
                drv.cuStreamEndCapture(cap, &g);
                if (g) drv.cuGraphDestroy(g);
                drv.cuStreamDestroy(cap);
                throw;
            }
            r = drv.cuStreamEndCapture(cap, &g);
        }
        drv.cuStreamDestroy(cap);
        check(r, "capturing the launches into a CUDA graph");
        r = drv.cuGraphInstantiateWithFlags(&graph, g, 0);
        drv.cuGraphDestroy(g);
        check(r, "cuGraphInstantiate (" + std::to_string(s.launches.size()) + " launches)");
    }

    std::vector<AnvilTraceRecord> trace_records() {
        if (!trace) throw UserError("no trace was recorded: the program was not built with CudaRunOptions::trace");
        std::vector<AnvilTraceRecord> records(s.tasks.size());
        check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
        if (!records.empty())
            check(drv.cuMemcpyDtoH(records.data(), trace, records.size() * sizeof(AnvilTraceRecord)),
                  "cuMemcpyDtoH (the trace records)");
        return records;
    }

    void close() {
        if (!ctx) return;
        drv.cuCtxSetCurrent(ctx);
        if (broken) {
            // A stuck kernel or a broken context: freeing would wait on it
            // or fail. Resetting ends the kernel and frees everything.
            drv.cuDevicePrimaryCtxReset(dev);
        } else {
            // Errors here cannot be reported (destructor) and change nothing.
            if (start) drv.cuEventDestroy(start);
            if (end) drv.cuEventDestroy(end);
            if (stream) drv.cuStreamDestroy(stream);
            if (graph) drv.cuGraphExecDestroy(graph);
            for (CUdeviceptr p : {arena, counters, status, trace})
                if (p) drv.cuMemFree(p);
            if (module) drv.cuModuleUnload(module);
        }
        drv.cuDevicePrimaryCtxRelease(dev);
        ctx = nullptr;
    }
};

CudaProgram::CudaProgram(const Schedule& s, const CubinResult& cubin, const CudaRunOptions& opt)
    : impl_(std::make_unique<Impl>(s, cubin, opt)) {}
CudaProgram::~CudaProgram() = default;

void CudaProgram::upload(const TensorMap& values) {
    Impl& m = *impl_;
    std::vector<char> image = arena_image(m.s.tiles, values);
    m.check(m.drv.cuCtxSetCurrent(m.ctx), "cuCtxSetCurrent");
    write_tensor_maps(m.s.tiles, image.data(), m.arena, [&m](const TmaView& v) { return encode_tma_device(m.drv, v); });
    m.check(m.drv.cuMemcpyHtoD(m.arena, image.data(), image.size()), "cuMemcpyHtoD (the arena)");
}

double CudaProgram::run() { return impl_->run(); }
double CudaProgram::run_graph() { return impl_->run_graph(); }

double CudaProgram::run_launches(size_t first, size_t count) {
    ANVIL_CHECK(first + count <= impl_->s.launches.size(), "run_launches past the schedule's launches");
    return impl_->run(first, count);
}

std::vector<char> CudaProgram::read(int64_t offset, int64_t bytes) const {
    Impl& m = *impl_;
    ANVIL_CHECK(offset >= 0 && bytes >= 0 && static_cast<size_t>(offset + bytes) <= m.arena_bytes,
                "read outside the arena");
    std::vector<char> out(static_cast<size_t>(bytes));
    m.check(m.drv.cuCtxSetCurrent(m.ctx), "cuCtxSetCurrent");
    if (bytes > 0) m.check(m.drv.cuMemcpyDtoH(out.data(), m.arena + offset, out.size()), "cuMemcpyDtoH (arena bytes)");
    return out;
}

void CudaProgram::write(int64_t offset, const std::vector<char>& bytes) {
    Impl& m = *impl_;
    ANVIL_CHECK(offset >= 0 && static_cast<size_t>(offset) + bytes.size() <= m.arena_bytes, "write outside the arena");
    m.check(m.drv.cuCtxSetCurrent(m.ctx), "cuCtxSetCurrent");
    if (!bytes.empty()) m.check(m.drv.cuMemcpyHtoD(m.arena + offset, bytes.data(), bytes.size()), "cuMemcpyHtoD (arena bytes)");
}
std::vector<AnvilTraceRecord> CudaProgram::trace() const { return impl_->trace_records(); }

TensorMap CudaProgram::outputs() const {
    Impl& m = *impl_;
    m.check(m.drv.cuCtxSetCurrent(m.ctx), "cuCtxSetCurrent");
    // Only the outputs' bytes come back; read_outputs takes them from their offsets.
    std::vector<char> image(m.arena_bytes, 0);
    for (const std::string& name : m.s.tiles.outputs) {
        const TensorBuffer& buf = buffer_of(m.s.tiles, name);
        ANVIL_CHECK(buf.offset >= 0 && static_cast<size_t>(buf.offset + buf.bytes) <= m.arena_bytes,
                    "buffer of output '" + name + "' does not fit the arena");
        if (buf.bytes > 0)
            m.check(m.drv.cuMemcpyDtoH(image.data() + buf.offset, m.arena + buf.offset, buf.bytes),
                    "cuMemcpyDtoH (output '" + name + "')");
    }
    return read_outputs(m.s.tiles, image.data());
}

std::string CudaProgram::device_name() const { return impl_->name; }
std::string CudaProgram::arch() const { return impl_->arch; }
int CudaProgram::sm_count() const { return impl_->sms; }

TensorMap run_cuda(const Schedule& s, const CubinResult& cubin, const TensorMap& values, const CudaRunOptions& opt) {
    arena_image(s.tiles, values);  // refuse missing or mistyped values before touching the device
    CudaProgram program(s, cubin, opt);
    program.upload(values);
    program.run();
    return program.outputs();
}

}  // namespace anvil
