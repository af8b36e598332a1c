#include "schedule/sync_counters.h"

#include <algorithm>
#include <unordered_map>

#include "anvil/error.h"

namespace anvil {

size_t SyncCounters::wait_checks() const {
    size_t n = 0;
    for (const auto& w : waits) n += w.size();
    return n;
}

size_t SyncCounters::wait_checks_per_block_max(const Schedule& s) const {
    size_t most = 0;
    for (const Launch& l : s.launches)
        for (const auto& q : l.queues) {
            size_t polls = 0;
            for (int task : q) {
                polls += waits[task].size();
                // A task it may complete polls here too (counted on its last
                // join's block: which one is dynamic).
                for (int k : tickets[task])
                    if (members[k].back() == task) polls += waits[ticket_task[k]].size();
            }
            most = std::max(most, polls);
        }
    return most;
}

SyncCounters sync_counters(const Schedule& s) {
    const int n = static_cast<int>(s.tasks.size());
    SyncCounters c;
    c.waits.resize(n);
    c.signals.resize(n);
    // The task of each (rOp, tile), for the rOps some group names.
    std::vector<std::vector<int>> task_of(s.tiles.rops.size());
    for (const CounterGroup& g : s.groups) {
        ANVIL_CHECK(g.rop >= 0 && g.rop < static_cast<int>(s.tiles.rops.size()),
                    "a counter group names rOp " + std::to_string(g.rop));
        task_of[g.rop].assign(s.tiles.rops[g.rop].tiles, -1);
    }
    for (int t = 0; t < n; ++t) {
        std::vector<int>& of = task_of[s.tasks[t].rop];
        if (of.empty()) continue;
        int& slot = of[s.tasks[t].tile];
        ANVIL_CHECK(slot < 0, "tile " + std::to_string(s.tasks[t].tile) + " of rOp '" +
                                  s.tiles.rops[s.tasks[t].rop].name + "' is tasks " + std::to_string(slot) +
                                  " and " + std::to_string(t) + ": a counter group cannot name it");
        slot = t;
    }
    for (size_t g = 0; g < s.groups.size(); ++g) {
        const CounterGroup& grp = s.groups[g];
        ANVIL_CHECK(grp.begin >= 0 && grp.begin < grp.end && grp.end <= s.tiles.rops[grp.rop].tiles,
                    "counter group " + std::to_string(g) + " names tiles [" + std::to_string(grp.begin) + ", " +
                        std::to_string(grp.end) + ") of rOp '" + s.tiles.rops[grp.rop].name + "'");
        std::vector<int> m;
        for (int tile = grp.begin; tile < grp.end; ++tile) {
            const int t = task_of[grp.rop][tile];
            ANVIL_CHECK(t >= 0, "counter group " + std::to_string(g) + " names tile " + std::to_string(tile) +
                                    " of rOp '" + s.tiles.rops[grp.rop].name + "', which no task runs");
            m.push_back(t);
        }
        std::sort(m.begin(), m.end());
        c.members.push_back(std::move(m));
    }
    std::unordered_map<int, int> single;  // task -> its own counter, for Task::deps
    for (int t = 0; t < n; ++t) {
        for (int g : s.tasks[t].waits) {
            ANVIL_CHECK(g >= 0 && g < static_cast<int>(s.groups.size()),
                        "task " + std::to_string(t) + " waits for counter group " + std::to_string(g));
            c.waits[t].push_back(g);
        }
        for (int d : s.tasks[t].deps) {
            ANVIL_CHECK(d >= 0 && d < n, "task " + std::to_string(t) + " depends on task " + std::to_string(d));
            auto [it, fresh] = single.emplace(d, static_cast<int>(c.members.size()));
            if (fresh) c.members.push_back({d});
            c.waits[t].push_back(it->second);
        }
    }
    for (size_t k = 0; k < c.members.size(); ++k)
        for (int t : c.members[k]) c.signals[t].push_back(static_cast<int>(k));
    c.ticket_task.assign(c.members.size(), -1);
    c.tickets.resize(n);
    for (int t = 0; t < n; ++t) {
        if (s.tasks[t].joins.empty()) continue;
        const int k = static_cast<int>(c.members.size());
        std::vector<int> m = s.tasks[t].joins;
        std::sort(m.begin(), m.end());
        for (int j : m) {
            ANVIL_CHECK(j >= 0 && j < t, "task " + std::to_string(t) + " joins task " + std::to_string(j) +
                                             ", not an earlier one");
            c.tickets[j].push_back(k);
        }
        c.members.push_back(std::move(m));
        c.ticket_task.push_back(t);
    }
    return c;
}

std::vector<int> waited_tasks(const Schedule& s, const SyncCounters& c, int task) {
    (void)s;
    std::vector<int> out;
    for (int k : c.waits[task]) out.insert(out.end(), c.members[k].begin(), c.members[k].end());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

std::string counter_str(const Schedule& s, const SyncCounters& c, int counter) {
    if (counter < 0 || counter >= static_cast<int>(c.count())) return "counter " + std::to_string(counter);
    if (counter < static_cast<int>(s.groups.size())) {
        const CounterGroup& g = s.groups[counter];
        return "counter " + std::to_string(counter) + " (rop '" + s.tiles.rops[g.rop].name + "' tiles [" +
               std::to_string(g.begin) + ", " + std::to_string(g.end) + "), " +
               std::to_string(c.members[counter].size()) + " arrivals)";
    }
    if (counter < static_cast<int>(c.ticket_task.size()) && c.ticket_task[counter] >= 0) {
        const int t = c.ticket_task[counter];
        return "ticket " + std::to_string(counter) + " of task " + std::to_string(t) + " (rop '" +
               s.tiles.rops[s.tasks[t].rop].name + "' tile " + std::to_string(s.tasks[t].tile) + ", " +
               std::to_string(c.members[counter].size()) + " joins)";
    }
    const int t = c.members[counter].front();
    return "task " + std::to_string(t) + " (rop '" + s.tiles.rops[s.tasks[t].rop].name + "' tile " +
           std::to_string(s.tasks[t].tile) + ")";
}

}  // namespace anvil
