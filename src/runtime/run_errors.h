// What every backend says when a run fails: the status word a task claimed
// (deadlock, bad index, bad variant) turned into an error that names the task, its
// rOp and, for a bad embedding id, the node and its place in the model file.
// Shared so that the host and cuda backends report the same fault in the
// same words.
#pragma once
#include <string>

#include "schedule/schedule.h"

namespace anvil {

// "task 7 (rop 'fc1' tile 3)", or "task 7" when it is not in the schedule.
std::string task_str(const Schedule& s, int task);

// Throws the error for status `st` (not ANVIL_OK) of launch `launch`, whose
// spins were bounded by `timeout_s` seconds: a UserError for a deadlock or
// a bad index, an InternalError for a variant no dispatcher knows.
[[noreturn]] void report_run_status(const Schedule& s, size_t launch, const AnvilStatus& st, double timeout_s);

}  // namespace anvil
