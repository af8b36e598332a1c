// Code generation: one self-contained CUDA source for a Schedule. The same
// text compiles with NVRTC (device) and with the host C++ compiler (host
// backend): rtasks/platform.cuh picks the implementation of each primitive.
#pragma once
#include <string>
#include <vector>

#include "schedule/schedule.h"
#include "tile/epilogue_plan.h"

namespace anvil {

struct EmitOptions {
    // Every task records its timeline (rtasks/params.cuh AnvilTraceRecord)
    // into the kernels' `trace` argument: the profiler's --trace. Off, the
    // instrumentation is not compiled at all.
    bool trace = false;
    // The simt backend's source: defines ANVIL_SIMT, so that the host
    // compiler builds the CUDA configuration on rtasks/simt.cuh.
    bool simt = false;
    // Distinct epilogue programs written as straight-line functions; the
    // others run on the interpreter (tests lower it to exercise that path).
    int max_straight_epilogues = kMaxStraightLineEpilogues;
    // The tiles read their params through the table's reference instead of
    // a local copy (ANVIL_COPY_PARAMS=0, rtasks/params.cuh): for comparisons.
    bool reload_params = false;
    // The pause between two polls of a counter (ANVIL_POLL_BACKOFF_NS,
    // rtasks/platform.cuh); negative: the header's default. For comparisons.
    int poll_backoff_ns = -1;
};

// `s.tiles` must have passed verify_tile_graph (tile/verify_tile_graph.h),
// as every schedule plan() makes has: emit does not check rOps again.
std::string emit_source(const Schedule& s, const EmitOptions& opt = {});

// Bytes of the block's shared scratch, ANVIL_SMEM_BYTES: the largest need
// of the schedule's tiles (tile_smem_bytes, a GEMV's with its staged x). On
// the GPU it is the kernels' dynamic shared memory (ANVIL_SMEM_DYNAMIC).
int megakernel_smem_bytes(const Schedule& s);
// The room for a GEMV's staged x, ANVIL_GEMV_X_BYTES: the largest x the
// schedule's GEMVs stage (gemv_staged_x_bytes), 0 when none does.
int gemv_x_room(const Schedule& s);
// The dynamic shared memory launch `launch`'s blocks get: the whole scratch
// where a task of it runs a matmul or conv2d tile (the only kinds that use
// it), 0 otherwise.
int launch_smem_bytes(const Schedule& s, size_t launch);

// The kernel each launch runs, by launch. Launches that dispatch the same
// rTask variants share one kernel (named after the first of them); every
// kernel takes (arena, counters, epoch, status, timeout_ns, trace, launch).
std::vector<std::string> launch_kernels(const Schedule& s);

// rOp's variant: its kind template with its storage types (and, for the
// GEMM kinds, their tile shape), e.g. "anvil_matmul_tile<float, float, float, 64, 64, 32>".
// The kernels' dispatchers switch on it.
std::string variant_of(const ROp& op);

// The embedded text of rtasks/<file> (generated at build time).
const std::string& rtask_source(const std::string& file);

}  // namespace anvil
