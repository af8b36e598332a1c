// The race checker. A task reads tile regions that other tasks write; the
// schedule must order every such producer before the task, by a dependency
// edge, by the order of one block's queue, or by a launch boundary (or a
// chain of these). find_races finds every producer/consumer pair of a
// schedule that nothing orders; the host backend's --check-races run also
// records, for every task as it starts, whether each producer had published.
#pragma once
#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

struct Race {
    int producer = 0;  // task whose written bytes the consumer reads
    int consumer = 0;
    std::string what;  // both tasks and the tensor, in words
};

// For every task, the tasks of other rOps whose written bytes overlap the
// bytes it reads, ascending (from the footprints, not from the schedule).
std::vector<std::vector<int>> task_producers(const Schedule& s);

// Every unordered producer/consumer pair (empty: the schedule is race-free).
// The schedule must pass verify_schedule (InternalError otherwise).
std::vector<Race> find_races(const Schedule& s);

}  // namespace anvil
