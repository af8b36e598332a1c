// The race checker. The ground truth of who produces what a task reads is
// searched here from the footprints, independently of tile_dependencies and
// plan_waits (the things being checked). The order a schedule guarantees is
// happens-before over counter waits (a wait orders every task that adds to
// the counter before the waiter), each block's queue order and launch
// boundaries, computed with one vector clock per task over the blocks of its
// launch, and one per waited counter (the join of its members').
#include "schedule/race_check.h"

#include <algorithm>
#include <memory>
#include <set>
#include <utility>

#include "anvil/error.h"
#include "schedule/sync_counters.h"
#include "schedule/vector_clock.h"
#include "tile/footprint.h"

namespace anvil {

namespace {

struct Span {
    ByteRange range;
    int task;
};

bool overlaps(ByteRange a, ByteRange b) { return a.begin < b.end && b.begin < a.end; }

std::string task_str(const Schedule& s, int task) {
    const Task& t = s.tasks[task];
    return "task " + std::to_string(task) + " (rop '" + s.tiles.rops[t.rop].name + "' tile " + std::to_string(t.tile) +
           ")";
}

// The tensor that stores a byte of the arena; built only once a race needs a name.
class BufferIndex {
public:
    explicit BufferIndex(const TileGraph& tg) {
        for (const TensorBuffer& b : tg.buffers)
            if (!b.alias && b.bytes > 0) stored_.push_back(&b);
        std::sort(stored_.begin(), stored_.end(),
                  [](const TensorBuffer* x, const TensorBuffer* y) { return x->offset < y->offset; });
    }
    std::string name_at(int64_t byte) const {
        auto it = std::upper_bound(stored_.begin(), stored_.end(), byte,
                                   [](int64_t b, const TensorBuffer* x) { return b < x->offset; });
        if (it == stored_.begin() || byte >= (*(it - 1))->offset + (*(it - 1))->bytes)
            return "the arena at byte " + std::to_string(byte);
        return "tensor '" + (*(it - 1))->name + "'";
    }

private:
    std::vector<const TensorBuffer*> stored_;
};

// The first byte that `producer` writes and `consumer` reads.
int64_t first_shared_byte(const Schedule& s, int producer, int consumer) {
    const Task &p = s.tasks[producer], &c = s.tasks[consumer];
    for (ByteRange w : tile_writes_all(s.tiles.rops[p.rop], p.tile))
        for (ByteRange r : tile_reads(s.tiles.rops[c.rop], c.tile))
            if (overlaps(w, r)) return std::max(w.begin, r.begin);
    throw InternalError("race_check: " + task_str(s, producer) + " is no producer of " + task_str(s, consumer));
}

}  // namespace

std::vector<std::vector<int>> task_producers(const Schedule& s) {
    const int n = static_cast<int>(s.tasks.size());
    std::vector<Span> writes, reads;
    for (int t = 0; t < n; ++t) {
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        for (ByteRange w : tile_writes_all(op, s.tasks[t].tile))
            if (w.end > w.begin) writes.push_back({w, t});
        for (ByteRange r : tile_reads(op, s.tasks[t].tile))
            if (r.end > r.begin) reads.push_back({r, t});
    }
    auto by_begin = [](const Span& a, const Span& b) { return a.range.begin < b.range.begin; };
    std::sort(writes.begin(), writes.end(), by_begin);
    std::sort(reads.begin(), reads.end(), by_begin);

    // One sweep over the reads by start. A write overlapping a read either
    // starts at or before the read's first byte and ends after it (it is in
    // `open`, the started writes by end, once the ended ones are dropped) or
    // starts inside the read (the writes right after the started ones).
    std::vector<std::vector<int>> producers(s.tasks.size());
    std::set<std::pair<int64_t, size_t>> open;
    size_t started = 0;
    for (const Span& r : reads) {
        while (started < writes.size() && writes[started].range.begin <= r.range.begin) {
            open.insert({writes[started].range.end, started});
            ++started;
        }
        while (!open.empty() && open.begin()->first <= r.range.begin) open.erase(open.begin());
        std::vector<int>& mine = producers[r.task];
        auto add = [&](size_t w) {
            // Tiles of one rOp are independent: they never feed each other.
            if (s.tasks[writes[w].task].rop != s.tasks[r.task].rop) mine.push_back(writes[w].task);
        };
        for (const auto& entry : open) add(entry.second);
        for (size_t w = started; w < writes.size() && writes[w].range.begin < r.range.end; ++w) add(w);
    }
    for (auto& p : producers) {
        std::sort(p.begin(), p.end());
        p.erase(std::unique(p.begin(), p.end()), p.end());
    }
    return producers;
}

std::vector<Race> find_races(const Schedule& s) {
    verify_schedule(s);  // every dependency points backwards within its launch: one pass in id order suffices
    const int n = static_cast<int>(s.tasks.size());
    const std::vector<std::vector<int>> producers = task_producers(s);

    std::vector<int> launch_of(n), block_of(n), position_of(n), queue_prev(n, -1);
    for (size_t l = 0; l < s.launches.size(); ++l)
        for (size_t b = 0; b < s.launches[l].queues.size(); ++b) {
            const std::vector<int>& q = s.launches[l].queues[b];
            for (size_t i = 0; i < q.size(); ++i) {
                launch_of[q[i]] = static_cast<int>(l);
                block_of[q[i]] = static_cast<int>(b);
                position_of[q[i]] = static_cast<int>(i) + 1;
                if (i > 0) queue_prev[q[i]] = q[i - 1];
            }
        }
    // A task run by the last of its joins to publish (Task::joins) is on no
    // block that another task knows by queue order: a block of its own.
    constexpr int kOwnBlock0 = 1 << 30;  // above every real block
    for (int t = 0; t < n; ++t)
        if (!s.tasks[t].joins.empty()) {
            launch_of[t] = launch_of[s.tasks[t].joins.front()];
            block_of[t] = kOwnBlock0 + t;
            position_of[t] = 1;
        }

    std::vector<Race> races;
    std::unique_ptr<BufferIndex> buffers;  // built on the first race
    auto report = [&](int p, int c, const std::string& why) {
        if (!buffers) buffers = std::make_unique<BufferIndex>(s.tiles);
        races.push_back({p, c,
                         task_str(s, c) + " reads bytes of " + buffers->name_at(first_shared_byte(s, p, c)) +
                             " that " + task_str(s, p) + " writes, " + why});
    };

    // Every predecessor of a task has a smaller id, so ascending ids visit
    // each clock after all the clocks it joins.
    const SyncCounters counters = sync_counters(s);
    std::vector<Clock> clock(s.tasks.size());
    std::vector<Clock> counter_clock(counters.count());
    std::vector<char> counter_done(counters.count(), 0);
    for (int t = 0; t < n; ++t) {
        Clock c = queue_prev[t] >= 0 ? clock[queue_prev[t]] : Clock{};
        // Ticket-joined: the last taker acquired every join's release, so
        // the task comes after all of them (and what they knew), nothing else.
        for (int j : s.tasks[t].joins) join_into(c, clock[j]);
        for (int k : counters.waits[t]) {
            if (!counter_done[k]) {  // its members all precede t (verify_schedule): their clocks are final
                for (int m : counters.members[k]) join_into(counter_clock[k], clock[m]);
                counter_done[k] = 1;
            }
            join_into(c, counter_clock[k]);
        }
        advance(c, block_of[t], position_of[t]);
        for (int p : producers[t]) {
            if (launch_of[p] < launch_of[t]) continue;  // a launch boundary orders it
            if (launch_of[p] > launch_of[t]) report(p, t, "but that runs in a later launch");
            else if (p > t) report(p, t, "but that comes later in the global order");
            else if (position_seen(c, block_of[p]) < position_of[p])
                report(p, t, "but no dependency, queue order or launch boundary orders the writer first");
        }
        clock[t] = std::move(c);
    }
    return races;
}

}  // namespace anvil
