#include "schedule/wait_groups.h"

#include <algorithm>
#include <array>
#include <map>
#include <unordered_map>

#include "anvil/error.h"
#include "schedule/vector_clock.h"

namespace anvil {

namespace {

// One waiter's cover of what it still needs from one producer rOp: runs
// of consecutive tiles from a needed tile to a needed tile, every tile
// between them needed or already complete, that hold a tile not yet
// complete. A run spans all the needed tiles it joins, so that the waiters
// of one region share its counter. `needed` ascending; wait(begin, end).
template <typename Complete, typename Wait>
void cover(const std::vector<int>& needed, const Complete& complete, const Wait& wait) {
    int lo = -1, hi = -1;  // the open run's first and last needed tile
    bool open_needs = false;  // whether it holds a tile not yet complete
    auto close = [&]() {
        if (lo >= 0 && open_needs) wait(lo, hi + 1);
        lo = hi = -1;
        open_needs = false;
    };
    for (int x : needed) {
        bool joined = lo >= 0;  // every tile between the run's end and x complete
        for (int tile = hi + 1; joined && tile < x; ++tile) joined = complete(tile);
        if (!joined) close();
        if (lo < 0) lo = x;
        hi = x;
        open_needs = open_needs || !complete(x);
    }
    close();
}

// More runs of one producer than this and a task waits for their span.
constexpr int kMaxRunsPerProducer = 4;

}  // namespace

WaitPlan plan_waits(const TileGraph& tg, const std::vector<Task>& tasks, const std::vector<int>& block_of,
                    const std::vector<std::vector<int>>& needed) {
    const int n = static_cast<int>(tasks.size());
    ANVIL_CHECK(block_of.size() == tasks.size() && needed.size() == tasks.size(),
                "plan_waits: one block and one producer list per task");
    WaitPlan plan;
    plan.waits.resize(n);
    std::vector<std::vector<int>> task_of(tg.rops.size());
    for (size_t r = 0; r < tg.rops.size(); ++r) task_of[r].assign(static_cast<size_t>(tg.rops[r].tiles), -1);
    std::vector<int> position(n), prev(n, -1);  // queue position from 1, the task before on its block
    std::unordered_map<int, int> last_on;      // block -> its latest task so far
    for (int t = 0; t < n; ++t) {
        int& slot = task_of[tasks[t].rop][tasks[t].tile];
        ANVIL_CHECK(slot < 0, "plan_waits: tile " + std::to_string(tasks[t].tile) + " of rOp " +
                                  std::to_string(tasks[t].rop) + " is two tasks");
        slot = t;
        auto [it, fresh] = last_on.emplace(block_of[t], t);
        if (!fresh) {
            prev[t] = it->second;
            position[t] = position[it->second] + 1;
            it->second = t;
        } else {
            position[t] = 1;
        }
    }

    // What each task's block knows complete when the task starts (its
    // queue predecessors and everything its waits imply, transitively),
    // and what each group's completion implies.
    std::vector<Clock> clock(n);
    std::vector<Clock> group_clock;
    std::map<std::array<int, 3>, int> group_of;  // (rOp, begin, end) -> group id
    std::vector<std::pair<int, std::vector<int>>> by_rop;  // producer rOp -> needed tiles
    for (int t = 0; t < n; ++t) {
        Clock known = prev[t] >= 0 ? clock[prev[t]] : Clock{};
        // A task run by the last of its joins (its own block, which no
        // other task shares) knows what every join knew when it published;
        // it waits only for tasks before its first join (the deadlock
        // argument, megakernel.cuh), never for the joins (its tickets).
        const std::vector<int>& joins = tasks[t].joins;
        const int bound = joins.empty() ? t : *std::min_element(joins.begin(), joins.end());
        for (int j : joins) {
            ANVIL_CHECK(j >= 0 && j < t, "task " + std::to_string(t) + " joins task " + std::to_string(j));
            join_into(known, clock[j]);
        }
        auto complete = [&](int task) {
            return task >= 0 && task < bound && position_seen(known, block_of[task]) >= position[task];
        };
        // Producer rOps latest first: waiting for a late one often implies the earlier ones.
        by_rop.clear();
        std::unordered_map<int, size_t> slot_of;
        std::vector<int> latest;
        for (int p : needed[t]) {
            ANVIL_CHECK(p >= 0 && p < t, "task " + std::to_string(t) + " needs task " + std::to_string(p) +
                                             ", not an earlier one");
            if (!joins.empty() && std::find(joins.begin(), joins.end(), p) != joins.end()) continue;
            ANVIL_CHECK(p < bound, "task " + std::to_string(t) + ", run by the last of its joins, needs task " +
                                       std::to_string(p) + ", not before its first join");
            auto [it, fresh] = slot_of.emplace(tasks[p].rop, by_rop.size());
            if (fresh) {
                by_rop.push_back({tasks[p].rop, {}});
                latest.push_back(p);
            }
            by_rop[it->second].second.push_back(tasks[p].tile);
            latest[it->second] = std::max(latest[it->second], p);
        }
        std::vector<size_t> rank(by_rop.size());
        for (size_t i = 0; i < rank.size(); ++i) rank[i] = i;
        std::sort(rank.begin(), rank.end(), [&](size_t a, size_t b) { return latest[a] > latest[b]; });
        for (size_t i : rank) {
            const int rop = by_rop[i].first;
            std::vector<int>& tiles = by_rop[i].second;
            std::sort(tiles.begin(), tiles.end());
            const std::vector<int>& of = task_of[rop];
            tiles.erase(std::unique(tiles.begin(), tiles.end()), tiles.end());
            auto tile_complete = [&](int tile) { return complete(of[tile]); };
            std::vector<std::pair<int, int>> runs;
            cover(tiles, tile_complete, [&](int begin, int end) { runs.push_back({begin, end}); });
            // A strided read (a depthwise tile's channels of a pixel-banded
            // producer) makes many short runs: wait once for the span
            // instead, when every tile in it comes earlier (the order
            // argument holds; the extra tiles run in the same wave).
            // So does a split-K reduce whose output tiles' K slices are not
            // consecutive partial tiles (ragged bands: split_k.cpp): one
            // wave of like tiles, whose span ends with its last slice.
            const bool slices = tg.rops[rop].split_k > 1 && runs.size() > 1;
            if (runs.size() > static_cast<size_t>(kMaxRunsPerProducer) || slices) {
                const int begin = runs.front().first, end = runs.back().second;
                bool earlier = true;
                for (int tile = begin; tile < end && earlier; ++tile) earlier = of[tile] >= 0 && of[tile] < bound;
                if (earlier) runs.assign(1, {begin, end});
            }
            for (const auto& [begin, end] : runs) {
                auto [it, fresh] = group_of.emplace(std::array<int, 3>{rop, begin, end}, static_cast<int>(plan.groups.size()));
                if (fresh) {
                    plan.groups.push_back(CounterGroup{rop, begin, end});
                    Clock c;
                    for (int tile = begin; tile < end; ++tile) {
                        Clock m = clock[of[tile]];  // every member precedes t: its clock is final
                        advance(m, block_of[of[tile]], position[of[tile]]);
                        join_into(c, m);
                    }
                    group_clock.push_back(std::move(c));
                }
                plan.waits[t].push_back(it->second);
                join_into(known, group_clock[it->second]);
            }
        }
        std::sort(plan.waits[t].begin(), plan.waits[t].end());
        advance(known, block_of[t], position[t]);
        clock[t] = std::move(known);
    }
    return plan;
}

}  // namespace anvil
