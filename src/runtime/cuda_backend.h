// The cuda backend: runs a Schedule's emitted source on a CUDA device,
// compiled by NVRTC for the device's architecture (the pipeline's emit and
// compile stages: anvil/pipeline.h's run_cuda and cuda_program), through the driver API
// loaded at run time (cuda_driver.h). Same contract as run_host: the same
// arena layout, the same counters and status word, the same errors.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "codegen/emit.h"
#include "runtime/compile_nvrtc.h"
#include "schedule/schedule.h"
#include "frontend/values.h"

namespace anvil {

struct CudaRunOptions {
    int device = 0;                // CUDA device ordinal
    double spin_timeout_s = 10.0;  // a dependency wait longer than this is a deadlock
    // A run not finished this long after its spin bound is stuck in a way the
    // spins cannot see (a task that never ends): the host gives up on it.
    double host_margin_s = 10.0;
    // How the source is emitted (the pipeline's EmitOptions): with
    // emit.trace the kernels carry ANVIL_TRACE and the program keeps every
    // task's timeline of the last run (CudaProgram::trace); emit.reload_params
    // and emit.poll_backoff_ns are the A/B switches of `anvil profile`.
    EmitOptions emit;
};

// Runs `cubin`, `s`'s emitted source compiled for the device's
// architecture, and returns the value of every output tensor. Throws
// UserError when there is no usable device, when the CUBIN is for another
// architecture, when a launch's blocks that wait on one another cannot
// all be resident at once, when the run reports an error (deadlock, bad
// index; naming the task as run_host does), when it does not finish in
// time, and for any failed driver call (naming the call and the driver's
// words).
TensorMap run_cuda(const Schedule& s, const CubinResult& cubin, const TensorMap& values,
                   const CudaRunOptions& opt = {});

// Why a kernel cannot get `dynamic_bytes` of dynamic shared memory beside
// its `static_bytes` on a device that lets a block opt in to `optin_bytes`
// (CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN): a sentence naming
// the kernel, the bytes and the device; "" when it can.
std::string dynamic_smem_refusal(const std::string& kernel, int dynamic_bytes, int static_bytes, int optin_bytes,
                                 const std::string& device);

// A schedule loaded on the device once and run many times (the profiler).
// Counters are zeroed once; run n publishes epoch n, so they never need
// resetting between runs. It keeps a reference to `s`, which must outlive it.
class CudaProgram {
public:
    CudaProgram(const Schedule& s, const CubinResult& cubin, const CudaRunOptions& opt = {});
    ~CudaProgram();
    CudaProgram(const CudaProgram&) = delete;
    CudaProgram& operator=(const CudaProgram&) = delete;

    // Copies every input and param into the arena (arena_io's layout).
    void upload(const TensorMap& values);
    // Runs every launch once, in order; returns the GPU time of the whole
    // run in seconds, from events recorded before the first launch and
    // after the last. Throws as run_cuda does.
    double run();
    // The same launches captured once into a CUDA graph and replayed: what
    // a framework's graph mode pays per run. The graph resets the counters
    // itself (when any task waits) and publishes one fixed epoch, so plain
    // and graph runs may alternate. Returns the GPU time like run().
    double run_graph();
    // Runs launches [first, first + count) only, timed like run(): the
    // tuner's way of measuring one launch among many.
    double run_launches(size_t first, size_t count);
    // Bytes of the arena, and writing them back.
    std::vector<char> read(int64_t offset, int64_t bytes) const;
    void write(int64_t offset, const std::vector<char>& bytes);
    TensorMap outputs() const;
    // The last run's per-task timeline (CudaRunOptions::trace), by task.
    std::vector<AnvilTraceRecord> trace() const;

    std::string device_name() const;
    std::string arch() const;  // "sm_90"
    int sm_count() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace anvil
