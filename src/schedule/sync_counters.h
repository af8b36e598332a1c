// The counters a schedule synchronises with, as the megakernel sees them:
// one per counter group (Schedule::groups, same index) and then one per task
// that some task names in Task::deps (a group of that one task). Emit, the
// backends, the race checker, the cost model and the reports all read the
// schedule's synchronisation through this one table.
#pragma once
#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

struct SyncCounters {
    std::vector<std::vector<int>> members;  // per counter: the tasks that add 1 to it, ascending
    std::vector<std::vector<int>> waits;    // per task: the counters it waits for
    std::vector<std::vector<int>> signals;  // per task: the counters it adds to, ascending
    // Tickets (Task::joins): after the groups and the single tasks, one
    // counter per joined task, its members the joins, which take a ticket
    // of it (not an arrival: they are in no `signals`); its last taker runs
    // ticket_task[counter] (-1 for the other counters).
    std::vector<std::vector<int>> tickets;  // per task: the ticket counters it takes, ascending
    std::vector<int> ticket_task;

    size_t count() const { return members.size(); }
    // Counter polls of one run: every wait of every task polled at least once.
    size_t wait_checks() const;
    // ... by the block (queue) of `s` that polls most.
    size_t wait_checks_per_block_max(const Schedule& s) const;
};

// Throws InternalError when a group names no tile, or a tile that is no
// task's or more than one task's.
SyncCounters sync_counters(const Schedule& s);

// The tasks `task` waits for, through its deps and its groups, ascending.
std::vector<int> waited_tasks(const Schedule& s, const SyncCounters& c, int task);

// "rOp 'name' tiles [b, e)" or "task t (rop 'name' tile i)": a counter in words.
std::string counter_str(const Schedule& s, const SyncCounters& c, int counter);

}  // namespace anvil
