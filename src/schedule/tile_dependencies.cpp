// Tile-level dependencies: a task waits for exactly the earlier tasks whose
// written bytes overlap the bytes it reads, not for whole operators.
#include "schedule/tile_dependencies.h"
#include "tile/footprint.h"

#include <algorithm>

namespace anvil {

namespace {

// Writes sorted by start, with the running maximum of their ends, so that
// "which writes overlap [b, e)" is a binary search plus a short walk back.
class WriteIndex {
public:
    void add(ByteRange r, int task) { writes_.push_back({r, task}); }

    void finish() {
        std::sort(writes_.begin(), writes_.end(),
                  [](const Entry& x, const Entry& y) { return x.range.begin < y.range.begin; });
        max_end_.resize(writes_.size());
        int64_t m = INT64_MIN;
        for (size_t i = 0; i < writes_.size(); ++i) max_end_[i] = m = std::max(m, writes_[i].range.end);
    }

    template <typename F>
    void overlapping(ByteRange r, F&& visit) const {
        auto it = std::lower_bound(writes_.begin(), writes_.end(), r.end,
                                   [](const Entry& x, int64_t end) { return x.range.begin < end; });
        for (size_t i = static_cast<size_t>(it - writes_.begin()); i-- > 0;) {
            if (max_end_[i] <= r.begin) break;
            if (writes_[i].range.end > r.begin) visit(writes_[i].task);
        }
    }

private:
    struct Entry {
        ByteRange range;
        int task;
    };
    std::vector<Entry> writes_;
    std::vector<int64_t> max_end_;
};

}  // namespace

std::vector<std::vector<int>> tile_dependencies(const TileGraph& tg, const std::vector<Task>& tasks) {
    WriteIndex index;
    for (size_t t = 0; t < tasks.size(); ++t)
        for (ByteRange w : tile_writes_all(tg.rops[tasks[t].rop], tasks[t].tile)) index.add(w, static_cast<int>(t));
    index.finish();

    std::vector<std::vector<int>> deps(tasks.size());
    for (size_t t = 0; t < tasks.size(); ++t) {
        std::vector<int>& d = deps[t];
        for (ByteRange r : tile_reads(tg.rops[tasks[t].rop], tasks[t].tile))
            index.overlapping(r, [&](int producer) {
                if (tasks[producer].rop == tasks[t].rop) return;  // tiles of one rOp are independent
                ANVIL_CHECK(producer < static_cast<int>(t),
                            "task " + std::to_string(t) + " reads bytes written by later task " +
                                std::to_string(producer));
                d.push_back(producer);
            });
        std::sort(d.begin(), d.end());
        d.erase(std::unique(d.begin(), d.end()), d.end());
    }
    return deps;
}

}  // namespace anvil
