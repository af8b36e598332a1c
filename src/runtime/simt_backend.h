// The simt backend: the emitted source's CUDA configuration (256 threads a
// block, warps, shared memory, tensor-core and cp.async instructions),
// compiled by the host compiler on rtasks/simt.cuh's fibers and run by the
// host backend's workers, with thread-level checks (shared-memory races,
// bounds, unwritten reads, cp.async data before its wait, warp collectives
// whose lanes did not all arrive).
#pragma once
#include <cstddef>
#include <string>

#include "runtime/host_backend.h"

namespace anvil {

// Whether the thread-level checks are on by default: yes, unless the
// environment has ANVIL_SIMT_CHECKS=0 (for speed). run_host takes a library
// emitted with EmitOptions::simt, linked with simt_link_flags(), and
// HostRunOptions::simt set (anvil/pipeline.h's run_simt does all three).
bool simt_checks_default();

// What the simt library is linked with (Boost.Context's fcontext).
std::string simt_link_flags();

// The emitted library's side (rtasks/simt.cuh): the checks on or off and a
// fresh report; the run's first failure, its task (-1: none) and message.
using SimtConfigureFn = void (*)(int checks);
using SimtReportFn = int (*)(char* buf, int cap);

// Throws the UserError for the thread-level check that failed in `launch`,
// naming the task, its rOp, its tile kind and what the library reported.
[[noreturn]] void report_simt_failure(const Schedule& s, size_t launch, SimtReportFn report);

}  // namespace anvil
