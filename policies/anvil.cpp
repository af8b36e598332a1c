// anvil (the default): Welder's fusion and Rammer's co-scheduling in one
// persistent megakernel, placed with the critical path in mind.
//
// After fusion and a choice of tile shapes (both run by the pipeline, as
// the registry entry asks), tasks are list scheduled: of the tasks whose
// producers are placed, the one with the longest path to the end of the
// graph (its bottom level) goes first, onto the SM where it can start
// earliest: the SM that frees first, or an SM of
// one of its producers, where it needs no counter and pays no sync latency
// (or, poll-balanced, of the SMs where it starts as early, the one that has
// polled least). The order of these decisions is the global task order, so
// every queue is ascending and every dependency points backwards. The tile
// shapes are Rammer's per-wave choice or Welder's fastest-alone one, and the
// placement this list schedule (plain or poll-balanced), Rammer's wavefront
// (plain, or producer-affine: fewer counter polls) or the topological order
// dealt round-robin: the cost model keeps the fastest of the ten, or among
// those it cannot tell apart the one whose busiest block polls least.
#include <cmath>
#include <queue>
#include <set>

#include "schedule/cost_model.h"
#include "schedule/task_graph.h"
#include "schedule/orders.h"
#include "schedule/builders.h"
#include "schedule/sync_counters.h"

namespace anvil {

namespace {

// Placements predicted this close to the fastest are told apart by their polls.
constexpr double kPollTieShare = 0.01;

// balance_polls: of the blocks where the task starts as early, the one
// that has polled fewest counters so far (a wave narrower than the grid
// would otherwise fall on the same blocks every time, and their polls add
// up while other blocks idle).
std::vector<Placed> critical_path_order(const TileGraph& tg, const Gpu& gpu, int blocks, bool balance_polls) {
    const std::vector<Task> tasks = task_graph(tg);
    const std::vector<double> tile_s = tile_seconds_in_order(tg, gpu);
    const size_t n = tasks.size();
    std::vector<double> cost(n);
    std::vector<std::vector<int>> consumers(n);
    std::vector<int> waiting(n);
    for (size_t t = 0; t < n; ++t) {
        cost[t] = tile_s[tasks[t].rop] * block_share(gpu, blocks) + gpu.task_overhead_s;
        waiting[t] = static_cast<int>(tasks[t].deps.size());
        for (int d : tasks[t].deps) consumers[d].push_back(static_cast<int>(t));
    }
    std::vector<double> bottom(n);
    for (size_t t = n; t-- > 0;) {
        double tail = 0;
        for (int c : consumers[t]) tail = std::max(tail, bottom[c] + gpu.sync_latency_s);
        bottom[t] = cost[t] + tail;
    }

    auto later = [&](int a, int b) { return bottom[a] != bottom[b] ? bottom[a] < bottom[b] : a > b; };
    std::priority_queue<int, std::vector<int>, decltype(later)> ready(later);
    for (size_t t = 0; t < n; ++t)
        if (waiting[t] == 0) ready.push(static_cast<int>(t));
    std::vector<double> free_at(blocks, 0), end(n, 0);
    std::set<std::pair<double, int>> by_free;  // (free time, block)
    for (int b = 0; b < blocks; ++b) by_free.insert({0.0, b});
    std::vector<int> block_of(n, -1);
    std::vector<int> polls(blocks, 0);  // counters a block's tasks poll so far (one per producer rOp elsewhere)
    std::vector<Placed> order;
    order.reserve(n);
    while (!ready.empty()) {
        const int t = ready.top();
        ready.pop();
        auto start_on = [&](int b) {
            double s = free_at[b];
            for (int d : tasks[t].deps) s = std::max(s, end[d] + (block_of[d] == b ? 0 : gpu.sync_latency_s));
            return s;
        };
        int best = by_free.begin()->second;
        double best_start = start_on(best);
        for (int d : tasks[t].deps) {
            const double s = start_on(block_of[d]);
            if (s <= best_start) best = block_of[d], best_start = s;
        }
        auto polls_on = [&](int b) {
            std::set<int> rops;
            for (int d : tasks[t].deps)
                if (block_of[d] != b) rops.insert(tasks[d].rop);
            return static_cast<int>(rops.size());
        };
        if (balance_polls) {
            int best_polls = polls[best] + polls_on(best);
            for (int b = 0; b < blocks; ++b) {
                if (free_at[b] > best_start) continue;  // starts later there
                const int p = polls[b] + polls_on(b);
                if (p < best_polls && start_on(b) == best_start) best = b, best_polls = p;
            }
        }
        polls[best] += polls_on(best);
        by_free.erase({free_at[best], best});
        end[t] = free_at[best] = best_start + cost[t];
        by_free.insert({free_at[best], best});
        block_of[t] = best;
        order.push_back(Placed{tasks[t].rop, tasks[t].tile, best});
        for (int c : consumers[t])
            if (--waiting[c] == 0) ready.push(c);
    }
    ANVIL_CHECK(order.size() == n, "anvil: the task graph has a cycle");
    return order;
}

}  // namespace

// Its registry entry has the pipeline fuse and offer two sets of tile
// shapes (Rammer's per-wave choice, Welder's fastest alone); for each, the
// candidate placements below, of which the cost model keeps the fastest --
// or, of those predicted within kPollTieShare of it, the one whose busiest
// block polls fewest counters: the model cannot tell them apart (its error
// is far larger), and on the H100 the waits cost more than it charged.
Schedule anvil_policy(const TileGraph& tg, const Gpu& gpu) {
    struct Candidate {
        Schedule s;
        double t = 0;
        size_t polls = 0;
    };
    std::vector<Candidate> candidates;
    const int blocks = wavefront_blocks(tg, gpu);
    for (const std::vector<Placed>& order :
         {critical_path_order(tg, gpu, blocks, true), critical_path_order(tg, gpu, blocks, false),
          wavefront_order(tg, gpu), round_robin_order(tg, blocks), wavefront_order(tg, gpu, true)}) {
        Candidate c;
        c.s = persistent_schedule("anvil", tg, gpu, order, blocks);
        c.t = predict(c.s).total_s;
        c.polls = sync_counters(c.s).wait_checks_per_block_max(c.s);
        candidates.push_back(std::move(c));
    }
    double fastest = INFINITY;
    for (const Candidate& c : candidates) fastest = std::min(fastest, c.t);
    Candidate* best = nullptr;
    for (Candidate& c : candidates)
        if (c.t <= fastest * (1 + kPollTieShare) && (!best || c.polls < best->polls || (c.polls == best->polls && c.t < best->t)))
            best = &c;
    return std::move(best->s);
}

}  // namespace anvil
