// The host backend: runs a Schedule's emitted source, compiled by the host
// C++ compiler (the pipeline's emit and compile stages), with worker threads
// playing the persistent blocks over the very same task table and
// dependency counters the GPU uses.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "runtime/compile_host.h"
#include "schedule/schedule.h"
#include "frontend/values.h"

namespace anvil {

struct HostRunOptions {
    int workers = 0;                // 0: max(2, hardware threads)
    double spin_timeout_s = 10.0;   // a dependency wait longer than this is a deadlock
    // Refuse a schedule find_races faults, then record, for every task as it
    // starts, which of its producers (task_producers) had not yet published.
    bool check_races = false;
    // With check_races: false skips find_races, so that tests can show the
    // run-time record catching a race on its own.
    bool static_race_check = true;
    // When set, the source must have been emitted with ANVIL_TRACE (the
    // pipeline's run_host does), and every task's timeline lands here, indexed by task (workers play the SMs). Tasks
    // run under check_races are not traced.
    std::vector<AnvilTraceRecord>* trace = nullptr;
    // The simt backend (runtime/simt_backend.h): the CUDA configuration on
    // fibers, with its thread-level checks unless simt_checks is false.
    bool simt = false;
    bool simt_checks = true;
    // Tests: changes the emitted source before it is compiled (mutations
    // the simt checks must catch).
    std::function<void(std::string&)> edit_source;
};

// Runs `compiled`, the library of `s`'s emitted source, and returns the
// value of every output tensor. Throws UserError when the run reports an
// error (deadlock, bad index), naming the task, and with check_races when
// the schedule or the run has a race, naming both tasks. (anvil/pipeline.h's
// run_host emits and compiles first.) Every tensor that is not an input or
// a param starts as NaN (0xFF bytes), and a task that writes bytes no
// tensor owns is an InternalError naming the tensor beside them.
TensorMap run_host(const Schedule& s, const HostLibrary& compiled, const TensorMap& values,
                   const HostRunOptions& opt = {});

}  // namespace anvil
