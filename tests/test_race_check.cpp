// The race checker: every policy's schedules are race-free; deleting a
// dependency edge is reported exactly when nothing else orders the pair
// (decided here by a plain search over the schedule, independently of the
// checker's vector clocks); moved and reordered tasks are caught; and a run
// with --check-races refuses a racy schedule, or catches the race on the run.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <sys/wait.h>

#include "anvil/error.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "schedule/tile_dependencies.h"
#include "policies/registry.h"
#include "schedule/race_check.h"
#include "schedule/sync_counters.h"
#include "tile/footprint.h"

using namespace anvil;

namespace {

const std::vector<std::string> kModels = {"models/mlp_f32.yaml", "models/transformer_encoder_f32.yaml",
                                          "models/lstm_tc_small.yaml", "models/resnet18_small.yaml",
                                          "tests/models/gpt_block_f16.yaml"};

std::string source_path(const std::string& rel) { return std::string(ANVIL_SOURCE_DIR) + "/" + rel; }

Schedule plan_model(const std::string& rel, const std::string& policy) {
    return plan(load_graph(source_path(rel)), policy, default_gpu());
}

// Where each task sits: launch, block, and the task before it in its queue.
struct Placement {
    std::vector<int> launch, block, prev;
    std::vector<std::vector<int>> task_of;  // per rOp, per tile: its task
    explicit Placement(const Schedule& s) : launch(s.tasks.size()), block(s.tasks.size()), prev(s.tasks.size(), -1) {
        task_of.resize(s.tiles.rops.size());
        for (size_t r = 0; r < s.tiles.rops.size(); ++r) task_of[r].assign(s.tiles.rops[r].tiles, -1);
        for (size_t t = 0; t < s.tasks.size(); ++t) task_of[s.tasks[t].rop][s.tasks[t].tile] = static_cast<int>(t);
        for (size_t l = 0; l < s.launches.size(); ++l)
            for (size_t b = 0; b < s.launches[l].queues.size(); ++b) {
                const std::vector<int>& q = s.launches[l].queues[b];
                for (size_t i = 0; i < q.size(); ++i) {
                    launch[q[i]] = static_cast<int>(l);
                    block[q[i]] = static_cast<int>(b);
                    prev[q[i]] = i ? q[i - 1] : -1;
                }
            }
    }
};

// The tasks `t` waits for: its dependency edges and every task of the
// counter groups it waits on (groups as written, not through sync_counters).
std::vector<int> waited(const Schedule& s, const Placement& at, int t) {
    std::vector<int> out = s.tasks[t].deps;
    for (int g : s.tasks[t].waits) {
        const CounterGroup& grp = s.groups[g];
        for (int tile = grp.begin; tile < grp.end; ++tile) out.push_back(at.task_of[grp.rop][tile]);
    }
    return out;
}

// The same order with every counter wait written as dependency edges to
// the tasks it counts (for mutations that move tiles between tasks).
Schedule as_task_edges(Schedule s) {
    const Placement at(s);
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        std::vector<int> d = waited(s, at, static_cast<int>(t));
        std::sort(d.begin(), d.end());
        d.erase(std::unique(d.begin(), d.end()), d.end());
        s.tasks[t].deps = d;
    }
    for (Task& t : s.tasks) t.waits.clear();
    s.groups.clear();
    return s;
}

// Whether the schedule orders `p` before `c`: a search back from c over
// dependency edges, counter waits and queue predecessors (every edge points
// to a smaller id, so ids below p lead nowhere), or a launch boundary.
bool ordered(const Schedule& s, const Placement& at, int p, int c) {
    if (at.launch[p] != at.launch[c]) return at.launch[p] < at.launch[c];
    std::vector<char> seen(s.tasks.size(), 0);
    std::deque<int> todo{c};
    seen[c] = 1;
    while (!todo.empty()) {
        const int t = todo.front();
        todo.pop_front();
        if (t == p) return true;
        std::vector<int> before = waited(s, at, t);
        if (at.prev[t] >= 0) before.push_back(at.prev[t]);
        for (int u : before)
            if (u >= p && !seen[u]) {
                seen[u] = 1;
                todo.push_back(u);
            }
    }
    return false;
}

// The true producers of every task by brute force over every pair of tasks
// (an independent check of task_producers' sweep). An empty range touches nothing.
std::vector<std::vector<int>> brute_producers(const Schedule& s) {
    const size_t n = s.tasks.size();
    std::vector<std::vector<ByteRange>> writes(n), reads(n);
    for (size_t t = 0; t < n; ++t) {
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        writes[t] = tile_writes_all(op, s.tasks[t].tile);  // every range: a last-slice reduce's partials go by rows
        reads[t] = tile_reads(op, s.tasks[t].tile);
    }
    auto meet = [](ByteRange a, ByteRange b) {
        return a.begin < a.end && b.begin < b.end && a.begin < b.end && b.begin < a.end;
    };
    std::vector<std::vector<int>> producers(n);
    for (size_t t = 0; t < n; ++t)
        for (size_t q = 0; q < n; ++q)
            if (s.tasks[q].rop != s.tasks[t].rop &&
                std::any_of(reads[t].begin(), reads[t].end(), [&](ByteRange r) {
                    return std::any_of(writes[q].begin(), writes[q].end(), [&](ByteRange w) { return meet(w, r); });
                }))
                producers[t].push_back(static_cast<int>(q));
    return producers;
}

// The schedule with an edge from every true producer (of its launch) and
// none from its own block when `same_block` is false: the two extremes a
// policy may emit, both race-free.
Schedule with_producer_edges(Schedule s, bool same_block) {
    const Placement at(s);
    const std::vector<std::vector<int>> producers = brute_producers(s);
    s.groups.clear();
    for (size_t t = 0; t < s.tasks.size(); ++t) {
        s.tasks[t].deps.clear();
        s.tasks[t].waits.clear();
        for (int p : producers[t])
            if (at.launch[p] == at.launch[t] && (same_block || at.block[p] != at.block[t])) s.tasks[t].deps.push_back(p);
    }
    return s;
}

bool has_race(const std::vector<Race>& races, int producer, int consumer) {
    return std::any_of(races.begin(), races.end(),
                       [&](const Race& r) { return r.producer == producer && r.consumer == consumer; });
}

std::string task_str(const Schedule& s, int t) {
    return fmt::format("task {} (rop '{}' tile {})", t, s.tiles.rops[s.tasks[t].rop].name, s.tasks[t].tile);
}

// The first edge (consumer, producer) whose deletion leaves the pair unordered.
std::pair<int, int> lone_edge(Schedule& s) {
    const Placement at(s);
    for (int c = 0; c < static_cast<int>(s.tasks.size()); ++c) {
        std::vector<int>& deps = s.tasks[c].deps;
        for (size_t i = 0; i < deps.size(); ++i) {
            const int p = deps[i];
            deps.erase(deps.begin() + static_cast<long>(i));
            const bool other_path = ordered(s, at, p, c);
            deps.insert(deps.begin() + static_cast<long>(i), p);
            if (!other_path) return {c, p};
        }
    }
    FAIL("no dependency edge is the only order of its pair");
    return {-1, -1};
}

// Exchanges the tiles of tasks a and b: each takes the other's place in the
// global order (the queues and edges stay where they were).
void swap_places(Schedule& s, int a, int b) {
    std::swap(s.tasks[a].rop, s.tasks[b].rop);
    std::swap(s.tasks[a].tile, s.tasks[b].tile);
}

struct Run {
    Graph graph;
    TensorMap values;
    explicit Run(const std::string& rel) : graph(load_graph(source_path(rel))), values(make_values(graph, std::nullopt)) {}
};

std::string run_error(const Schedule& s, const TensorMap& values, const HostRunOptions& opt) {
    try {
        run_host(s, values, opt);
    } catch (const UserError& e) {
        return e.what();
    }
    return "";
}

HostRunOptions checked(int workers, bool static_check = true) {
    HostRunOptions opt;
    opt.workers = workers;
    opt.check_races = true;
    opt.static_race_check = static_check;
    return opt;
}

}  // namespace

TEST_CASE("every policy's schedules of the small models are race-free", "[race]") {
    for (const std::string& model : kModels)
        for (const PolicyEntry& policy : all_policies()) {
            CAPTURE(model, policy.name);
            const std::vector<Race> races = find_races(plan_model(model, policy.name));
            INFO((races.empty() ? "" : races.front().what));
            CHECK(races.empty());
        }
}

TEST_CASE("task_producers agrees with a brute-force search and with tile_dependencies", "[race]") {
    for (const std::string& model : kModels)
        for (const PolicyEntry& policy : all_policies()) {
            CAPTURE(model, policy.name);
            const Schedule s = plan_model(model, policy.name);
            const std::vector<std::vector<int>> producers = task_producers(s);
            CHECK(producers == brute_producers(s));
            // Within one launch, the policies' own dependency search finds the same producers.
            if (s.launches.size() == 1) CHECK(producers == tile_dependencies(s.tiles, s.tasks));
        }
}

TEST_CASE("edges from every producer, or from none on the consumer's block, are race-free", "[race]") {
    for (const std::string& model : kModels) {
        CAPTURE(model);
        const Schedule s = plan_model(model, "topo");
        CHECK(find_races(with_producer_edges(s, true)).empty());
        CHECK(find_races(with_producer_edges(s, false)).empty());
    }
    Run run("models/mlp_f32.yaml");
    const Schedule s = with_producer_edges(plan(run.graph, "topo", default_gpu()), false);
    for (const OutputCheck& c : check_outputs(run.graph, run_host(s, run.values, checked(3)),
                                              reference_execute(run.graph, run.values))) {
        INFO(c.name << ": " << c.rel_l2);
        CHECK(c.ok());
    }
}

// Deleting the edge p -> c can only unorder pairs (x, y) with x before p
// and y after c. With an edge from every producer, exactly (p, c). Deleting
// a counter wait of c (the policies' own synchronisation) unorders c's
// producers that only it ordered, and the pairs of later tasks that relied
// on it (plan_waits spares a wait that an earlier one implies): the checker
// must report every pair of c the search finds unordered and only pairs
// the search finds unordered.
TEST_CASE("deleting a dependency edge or a counter wait is a race exactly when nothing else orders the pair", "[race]") {
    struct Case {
        std::string model, policy;
        int edges;  // 0: the policy's own; 1: from every producer; 2: from every producer on another block
    };
    const std::vector<Case> cases = {{"models/mlp_f32.yaml", "topo", 0},
                                     {"models/transformer_encoder_f32.yaml", "topo", 0},
                                     {"models/lstm_tc_small.yaml", "topo", 0},
                                     {"models/resnet18_small.yaml", "topo", 0},
                                     {"tests/models/gpt_block_f16.yaml", "topo", 0},
                                     {"models/transformer_encoder_f32.yaml", "anvil", 0},
                                     {"models/resnet18_small.yaml", "anvil", 0},
                                     {"tests/models/gpt_block_f16.yaml", "rammer", 0},
                                     {"models/transformer_encoder_f32.yaml", "topo", 1},
                                     {"models/lstm_tc_small.yaml", "anvil", 2}};
    const size_t kAllUpTo = 800, kSample = 400;  // every edge of a small schedule, else an even sample
    for (const Case& k : cases) {
        CAPTURE(k.model, k.policy, k.edges);
        Schedule s = plan_model(k.model, k.policy);
        if (k.edges) s = with_producer_edges(s, k.edges == 1);
        const Placement at(s);
        const std::vector<std::vector<int>> producers = brute_producers(s);
        struct Edge {
            int consumer;
            bool counter;  // a counter wait (Task::waits), else a dependency edge (Task::deps)
            int index;
        };
        std::vector<Edge> edges;
        for (size_t t = 0; t < s.tasks.size(); ++t) {
            for (size_t i = 0; i < s.tasks[t].deps.size(); ++i) edges.push_back({static_cast<int>(t), false, static_cast<int>(i)});
            for (size_t i = 0; i < s.tasks[t].waits.size(); ++i) edges.push_back({static_cast<int>(t), true, static_cast<int>(i)});
        }
        const size_t step = edges.size() <= kAllUpTo ? 1 : edges.size() / kSample;
        size_t tried = 0, caught = 0, exactly = 0, covered = 0, wrong = 0, counters = 0;
        std::string first_wrong;
        for (size_t e = 0; e < edges.size(); e += step) {
            const Edge edge = edges[e];
            const int consumer = edge.consumer;
            std::vector<int>& list = edge.counter ? s.tasks[consumer].waits : s.tasks[consumer].deps;
            const int removed = list[edge.index];
            list.erase(list.begin() + edge.index);
            std::vector<std::pair<int, int>> want, got;
            for (int q : producers[consumer])
                if (!ordered(s, at, q, consumer)) want.push_back({q, consumer});
            // A deleted edge's pair is covered when another path orders it; a
            // deleted counter's when every task it counts is still ordered.
            bool other_path = true;
            if (edge.counter) {
                const CounterGroup& g = s.groups[removed];
                for (int tile = g.begin; tile < g.end; ++tile) other_path = other_path && ordered(s, at, at.task_of[g.rop][tile], consumer);
            } else {
                other_path = ordered(s, at, removed, consumer);
            }
            for (const Race& r : find_races(s)) got.push_back({r.producer, r.consumer});
            std::sort(got.begin(), got.end());
            // Every pair of the consumer that lost its order is reported, and
            // every reported pair is unordered (a later task whose waits
            // relied on what this one waited for loses its order too).
            bool right = std::includes(got.begin(), got.end(), want.begin(), want.end());
            for (const auto& [q, t] : got) right = right && !ordered(s, at, q, t);
            if (!edge.counter)  // with task edges nothing relies on another task's waits
                right = right && got == want &&
                        (other_path || std::count(want.begin(), want.end(), std::make_pair(removed, consumer)) == 1);
            ++tried;
            counters += edge.counter;
            covered += other_path;
            caught += !want.empty() && right;
            exactly += !edge.counter && !other_path && right && want.size() == 1;
            if (!right && wrong++ == 0)
                first_wrong = fmt::format("deleting {} {} of task {} (another path: {}) gave {} races, want {}",
                                          edge.counter ? "counter" : "edge from", removed, consumer, other_path,
                                          got.size(), want.size());
            list.insert(list.begin() + edge.index, removed);
        }
        std::printf("race mutations %s under %s%s: %zu of %zu waits deleted (%zu counters): %zu caught (%zu as exactly "
                    "the deleted pair), %zu ordered by another path\n",
                    k.model.c_str(), k.policy.c_str(),
                    k.edges == 1 ? " (an edge from every producer)" : k.edges == 2 ? " (no same-block edges)" : "",
                    tried, edges.size(), counters, caught, exactly, covered);
        INFO(first_wrong);
        CHECK(wrong == 0);
        CHECK(caught > 0);
        CHECK(tried >= std::min<size_t>(edges.size(), 300));
        if (k.edges == 0) CHECK(counters == tried);  // the policies synchronise with counters only
        if (k.edges == 1) CHECK(exactly == caught);
    }
}

TEST_CASE("a race names both tasks and the tensor", "[race]") {
    Schedule s = as_task_edges(plan_model("models/mlp_f32.yaml", "topo"));
    const auto [c, p] = lone_edge(s);
    auto& deps = s.tasks[c].deps;
    deps.erase(std::find(deps.begin(), deps.end(), p));
    const std::vector<Race> races = find_races(s);
    REQUIRE(races.size() == 1);
    INFO(races[0].what);
    CHECK_THAT(races[0].what, Catch::Contains(task_str(s, c) + " reads bytes of tensor '") &&
                                  Catch::Contains("' that " + task_str(s, p) + " writes") &&
                                  Catch::Contains("no dependency, queue order or launch boundary"));
    SECTION("bytes no tensor holds are named by their place") {
        s.tiles.buffers.clear();
        const std::vector<Race> bare = find_races(s);
        REQUIRE(bare.size() == 1);
        CHECK_THAT(bare[0].what, Catch::Contains("reads bytes of the arena at byte "));
    }
}

TEST_CASE("a task moved to another block's queue loses the order its old queue gave", "[race]") {
    Gpu few = default_gpu();
    few.sm_count = 8;  // blocks that run several tasks each
    Schedule s = with_producer_edges(
        plan(load_graph(source_path("models/transformer_encoder_f32.yaml")), "topo", few), false);
    REQUIRE(find_races(s).empty());
    const Placement at(s);
    const std::vector<std::vector<int>> producers = task_producers(s);
    // A consumer with a producer earlier in its own queue: only the queue orders them.
    int c = -1, p = -1;
    for (int t = 0; t < static_cast<int>(s.tasks.size()) && c < 0; ++t)
        for (int q : producers[t])
            if (at.block[q] == at.block[t] && at.launch[q] == at.launch[t]) {
                c = t;
                p = q;
                break;
            }
    REQUIRE(c >= 0);
    auto& queues = s.launches[at.launch[c]].queues;
    auto& from = queues[at.block[c]];
    auto& to = queues[(at.block[c] + 1) % queues.size()];
    from.erase(std::find(from.begin(), from.end(), c));
    to.insert(std::upper_bound(to.begin(), to.end(), c), c);
    verify_schedule(s);
    const Placement moved(s);
    const std::vector<Race> races = find_races(s);
    // The pairs the move can break are those of the moved task: its
    // producers and its readers that its old queue ordered.
    size_t unordered = 0;
    for (int t = 0; t < static_cast<int>(s.tasks.size()); ++t)
        for (int q : producers[t])
            if (t == c || q == c) {
                const bool lost = !ordered(s, moved, q, t);
                CAPTURE(q, t);
                CHECK(has_race(races, q, t) == lost);
                unordered += lost;
            }
    CHECK(has_race(races, p, c));
    CHECK(races.size() == unordered);
}

TEST_CASE("a consumer placed before its producer in the global order is a race", "[race]") {
    for (const char* policy : {"topo", "per_op"}) {
        CAPTURE(policy);
        // Task edges stay with the ids when tiles move (a counter follows its tiles).
        Schedule s = as_task_edges(plan_model("models/mlp_f32.yaml", policy));
        const std::vector<std::vector<int>> producers = task_producers(s);
        int c = static_cast<int>(s.tasks.size()) - 1;
        while (producers[c].empty()) --c;
        const int p = producers[c].front();
        swap_places(s, p, c);  // now the consumer's tile is task p, its producer's task c
        const std::vector<Race> races = find_races(s);
        REQUIRE(has_race(races, c, p));
        const std::string why = policy == std::string("topo") ? "comes later in the global order" : "runs in a later launch";
        for (const Race& r : races)
            if (r.producer == c && r.consumer == p) CHECK_THAT(r.what, Catch::Contains(why));
    }
}

TEST_CASE("find_races refuses a schedule that breaks its invariants", "[race]") {
    Schedule s = plan_model("models/mlp_f32.yaml", "topo");
    s.tasks[0].deps.push_back(1);  // a dependency on a later task
    CHECK_THROWS_AS(find_races(s), InternalError);
}

TEST_CASE("run_host --check-races: a race-free schedule runs and matches the reference", "[race][host]") {
    Run run("models/transformer_encoder_f32.yaml");
    for (const char* policy : {"topo", "per_op"}) {
        CAPTURE(policy);
        const Schedule s = plan(run.graph, policy, default_gpu());
        const auto checks =
            check_outputs(run.graph, run_host(s, run.values, checked(3)), reference_execute(run.graph, run.values));
        REQUIRE(!checks.empty());
        for (const OutputCheck& c : checks) {
            INFO(c.name << ": " << c.rel_l2);
            CHECK(c.ok());
        }
    }
}

TEST_CASE("run_host --check-races refuses a racy schedule before running, naming both tasks", "[race][host]") {
    Run run("models/mlp_f32.yaml");
    Schedule s = as_task_edges(plan(run.graph, "topo", default_gpu()));
    SECTION("one deleted edge") {
        const auto [c, p] = lone_edge(s);
        auto& deps = s.tasks[c].deps;
        deps.erase(std::find(deps.begin(), deps.end(), p));
        const std::string msg = run_error(s, run.values, checked(2));
        INFO(msg);
        CHECK_THAT(msg, Catch::Contains("policy 'topo': the schedule has 1 race (--check-races)") &&
                            Catch::Contains(task_str(s, c)) && Catch::Contains(task_str(s, p)));
        CHECK(run_error(s, run.values, {2, 10.0}).empty());  // unchecked, nothing stops the run
    }
    SECTION("every edge deleted: the first few and how many more") {
        for (Task& t : s.tasks) t.deps.clear();
        const size_t n = find_races(s).size();
        REQUIRE(n > 5);
        const std::string msg = run_error(s, run.values, checked(2));
        INFO(msg);
        CHECK_THAT(msg, Catch::Contains(std::to_string(n) + " races") &&
                            Catch::Contains("... and " + std::to_string(n - 5) + " more"));
    }
}

TEST_CASE("run_host --check-races catches a race on the run itself", "[race][host]") {
    // One worker runs the tasks in id order, so a consumer moved before its
    // producer always starts before the producer has published.
    Run run("models/mlp_f32.yaml");
    for (const char* policy : {"topo", "per_op"}) {
        CAPTURE(policy);
        Schedule s = as_task_edges(plan(run.graph, policy, default_gpu()));
        const std::vector<std::vector<int>> producers = task_producers(s);
        int c = static_cast<int>(s.tasks.size()) - 1;
        while (producers[c].empty()) --c;
        const int p = producers[c].back();  // its other producers come before p: published by then
        swap_places(s, p, c);
        const std::string msg = run_error(s, run.values, checked(1, false));
        INFO(msg);
        CHECK_THAT(msg, Catch::Contains("the run had") &&
                            Catch::Contains(task_str(s, p) + " started before " + task_str(s, c) +
                                            ", which writes bytes it reads, had published"));
        // With the schedule check on, the same schedule is refused before it runs.
        CHECK_THAT(run_error(s, run.values, checked(1)), Catch::Contains("the schedule has"));
    }
}

TEST_CASE("find_races is fast enough for the full-size LSTM", "[race][.perf]") {
    const Schedule s = plan_model("models/lstm_tc.yaml", "topo");
    size_t edges = 0;
    for (const Task& t : s.tasks) edges += t.deps.size() + t.waits.size();
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<Race> races = find_races(s);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("find_races on lstm_tc (topo): %zu tasks, %zu waits, %.3f s\n", s.tasks.size(), edges, secs);
    CHECK(races.empty());
    CHECK(secs < 5.0);
}

TEST_CASE("anvil run --check-races", "[race][cli]") {
    const std::string cmd = fmt::format("cd '{}' && '{}' run models/mlp_f32.yaml --backend host --check-races 2>&1",
                                        ANVIL_SOURCE_DIR, ANVIL_BINARY);
    FILE* pipe = popen(cmd.c_str(), "r");
    REQUIRE(pipe);
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
    const int raw = pclose(pipe);
    INFO(out);
    CHECK((WIFEXITED(raw) && WEXITSTATUS(raw) == 0));
    CHECK_THAT(out, Catch::Contains("races       none"));
}
