#include "schedule/schedule.h"
#include "schedule/sync_counters.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>

namespace anvil {

void verify_schedule(const Schedule& s) {
    auto fail = [](const std::string& what) { throw InternalError("invalid schedule: " + what); };
    int n = static_cast<int>(s.tasks.size());
    std::vector<int> launch_of(s.tasks.size(), -1);
    std::set<std::string> names;
    for (const Launch& l : s.launches) {
        // The name becomes the kernel's name in the emitted source.
        bool identifier = !l.name.empty() && !std::isdigit(static_cast<unsigned char>(l.name[0]));
        for (char c : l.name) identifier = identifier && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
        if (!identifier) fail("launch name '" + l.name + "' is not a C identifier");
        if (!names.insert(l.name).second) fail("two launches are named '" + l.name + "'");
    }
    for (size_t l = 0; l < s.launches.size(); ++l)
        for (const auto& queue : s.launches[l].queues)
            for (size_t i = 0; i < queue.size(); ++i) {
                int t = queue[i];
                if (t < 0 || t >= n) fail("queue holds unknown task " + std::to_string(t));
                if (launch_of[t] != -1) fail("task " + std::to_string(t) + " is queued twice");
                if (i > 0 && queue[i - 1] >= t) fail("a queue is not in ascending order at task " + std::to_string(t));
                launch_of[t] = static_cast<int>(l);
            }
    for (int t = 0; t < n; ++t) {
        const Task& task = s.tasks[t];
        if (!task.joins.empty()) {
            // Run by the last of its joins: in no queue, in their launch.
            if (launch_of[t] != -1) fail("task " + std::to_string(t) + " joins earlier tasks but is queued too");
            for (int j : task.joins) {
                if (j < 0 || j >= t) fail("task " + std::to_string(t) + " joins task " + std::to_string(j) + ", not an earlier one");
                if (!s.tasks[j].joins.empty()) fail("task " + std::to_string(t) + " joins task " + std::to_string(j) + ", which is in no queue");
                if (launch_of[j] != launch_of[task.joins.front()])
                    fail("task " + std::to_string(t) + " joins tasks of two launches");
            }
            launch_of[t] = launch_of[task.joins.front()];
        }
        if (launch_of[t] == -1) fail("task " + std::to_string(t) + " is in no queue");
        if (task.rop < 0 || task.rop >= static_cast<int>(s.tiles.rops.size()) || task.tile < 0 ||
            task.tile >= s.tiles.rops[task.rop].tiles)
            fail("task " + std::to_string(t) + " names no tile");
        for (int d : task.deps) {
            if (d < 0 || d >= t) fail("task " + std::to_string(t) + " depends on a later task " + std::to_string(d));
            if (launch_of[d] != launch_of[t])
                fail("task " + std::to_string(t) + " depends on task " + std::to_string(d) + " of another launch");
        }
        for (int g : task.waits)
            if (g < 0 || g >= static_cast<int>(s.groups.size()))
                fail("task " + std::to_string(t) + " waits for unknown counter group " + std::to_string(g));
    }
    // A waited group's tasks all come before the waiter, in its launch: the
    // order argument holds for counters as for single dependencies.
    const SyncCounters c = sync_counters(s);
    for (int t = 0; t < n; ++t)
        for (int g : s.tasks[t].waits)
            for (int m : c.members[g]) {
                // A joined task runs on its last join's block, as soon as
                // that one publishes: what it waits for must come before its
                // first join, or that block could wait for its own future.
                if (!s.tasks[t].joins.empty() && m >= *std::min_element(s.tasks[t].joins.begin(), s.tasks[t].joins.end()))
                    fail("task " + std::to_string(t) + ", run by the last of its joins, waits for " +
                         counter_str(s, c, g) + ", which holds task " + std::to_string(m) +
                         ", not earlier than its first join");
                if (m >= t)
                    fail("task " + std::to_string(t) + " waits for " + counter_str(s, c, g) + ", which holds task " +
                         std::to_string(m) + ", not earlier in the global order");
                if (launch_of[m] != launch_of[t])
                    fail("task " + std::to_string(t) + " waits for " + counter_str(s, c, g) + ", which holds task " +
                         std::to_string(m) + " of another launch");
            }
}

}  // namespace anvil
