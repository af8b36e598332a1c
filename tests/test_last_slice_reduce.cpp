// A split-K reduce run by the last of its K slices to arrive, in that
// slice's block (Task::joins, rtasks/megakernel.cuh's tickets): GEMMs of
// ragged shapes with and without the row op in the reduce (and its second
// output) against the float64 reference on the host and simt backends,
// race-free; the race checker orders a joined task after its joins and
// nothing else; a ticket count off by one, a skipped inline run and a
// dropped join are caught; the cost model's choice is reported.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <string>
#include <vector>

#include "anvil/pipeline.h"
#include "frontend/values.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "schedule/race_check.h"
#include "schedule/sync_counters.h"
#include "split_k_cases.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"

using namespace anvil;

namespace {

// Plain split sums: M = 33 x N = 7, a batch of 3 x 43 rows x N = 129, and
// M = 129 x N = 33 with a residual (tiles that do not divide M or N: a
// reduce task per row band); a batch of 2 x 64 x 96 with a bias (32 x 32
// tiles divide it: a reduce task per partial output tile). K = 192, 320,
// 256 and 256.
Graph sum_cases(DType dtype) {
    return test::split_model(R"(inputs:
  - {name: x0, shape: [33, 192]}
  - {name: x1, shape: [3, 43, 320]}
  - {name: x2, shape: [129, 256]}
  - {name: r2, shape: [129, 33]}
  - {name: x3, shape: [2, 64, 256]}
params:
  - {name: w0, shape: [192, 7]}
  - {name: b0, shape: [7]}
  - {name: w1, shape: [320, 129]}
  - {name: w2, shape: [256, 33]}
  - {name: w3, shape: [256, 96]}
  - {name: b3, shape: [96]}
nodes:
  - {name: m0, op: matmul, inputs: [x0, w0]}
  - {name: a0, op: add, inputs: [m0, b0]}
  - {name: m1, op: matmul, inputs: [x1, w1]}
  - {name: m2, op: matmul, inputs: [x2, w2]}
  - {name: a2, op: add, inputs: [m2, r2]}
  - {name: m3, op: matmul, inputs: [x3, w3]}
  - {name: a3, op: add, inputs: [m3, b3]}
outputs: [a0, m1, a2, a3]
)",
                             dtype);
}

// The row op in the reduce, its second output and a reduce that waits for
// another task than its slices (h2 adds y1).
Graph norm_cases(DType dtype) { return test::pre_ln_model(33, dtype); }

bool is_reduce(const ROp& op) {
    const auto* p = std::get_if<RowParams>(&op.params);
    return p && (p->op == ANVIL_ROW_SPLIT_SUM || p->op == ANVIL_ROW_SPLIT_NORM);
}

// Every matmul split `ways` ways (the row ops in the reduces where `norm`),
// every reduce run by its last K slice.
TileGraph by_last_slice(const Graph& g, int ways, int algo, bool norm) {
    TileGraph tg = norm ? test::split_and_norm(g, ways, algo)
                        : test::split_every_matmul(test::registers_only(g), ways, algo);
    for (size_t r = 0; r < tg.rops.size(); ++r)
        if (is_reduce(tg.rops[r])) set_by_last_slice(tg, static_cast<int>(r));
    verify_tile_graph(tg, default_gpu());
    return tg;
}

size_t joined_tasks(const Schedule& s) {
    size_t n = 0;
    for (const Task& t : s.tasks) n += !t.joins.empty();
    return n;
}

}  // namespace

TEST_CASE("last-slice reduce: split sums of ragged GEMMs against the reference, host and simt, race-free",
          "[last_slice][split_k][simt]") {
    const DType dtype = GENERATE(DType::f32, DType::f16);
    const int blocks = GENERATE(3, 64);
    CAPTURE(dtype_name(dtype), blocks);
    const Graph g = sum_cases(dtype);
    const TileGraph tg = by_last_slice(g, dtype == DType::f32 ? 3 : 2, dtype == DType::f32 ? ANVIL_MM_TILED : ANVIL_MM_TENSOR,
                                       false);
    const Schedule s = test::persistent(tg, blocks);
    const size_t joined = joined_tasks(s);
    CHECK(joined > 0);
    int per_tile = 0;
    for (const Task& t : s.tasks) {
        if (!is_reduce(s.tiles.rops[t.rop])) continue;
        CHECK(!t.joins.empty());  // every reduce: its inputs are params or inputs
        // a3's reduce: a task per partial output tile, which joins its slices only.
        if (std::get<RowParams>(s.tiles.rops[t.rop].params).kept_rank == 5) {
            CHECK(t.joins.size() == static_cast<size_t>(std::get<RowParams>(s.tiles.rops[t.rop].params).row_len));
            ++per_tile;
        }
    }
    CHECK(per_tile == 2 * 2 * 3);  // 2 batches x 2 x 3 tiles of 32 x 32
    REQUIRE(find_races(s).empty());
    const TensorMap values = make_values(g, std::nullopt);
    const TensorMap host = run_host(s, values, test::checked(false));
    test::expect_reference(g, values, host, 4);
    const TensorMap simt = run_host(s, values, test::checked(true));
    test::expect_reference(g, values, simt, 4);
    // The slices are summed in slice order whoever runs the reduce: the
    // same bits as the reduce as a wave of its own.
    const TileGraph wave = test::split_every_matmul(test::registers_only(g), dtype == DType::f32 ? 3 : 2,
                                                    dtype == DType::f32 ? ANVIL_MM_TILED : ANVIL_MM_TENSOR);
    const TensorMap apart = run_host(test::persistent(wave, blocks), values, test::checked(false));
    const TensorMap apart_simt = run_host(test::persistent(wave, blocks), values, test::checked(true));
    for (const char* name : {"a0", "m1", "a2", "a3"}) {
        CAPTURE(name);
        CHECK(apart.at(name).bytes == host.at(name).bytes);
        CHECK(apart_simt.at(name).bytes == simt.at(name).bytes);
    }
}

TEST_CASE("last-slice reduce: with the row op and its second output, a reduce that also waits, host and simt",
          "[last_slice][split_norm][simt]") {
    const DType dtype = GENERATE(DType::f32, DType::f16);
    CAPTURE(dtype_name(dtype));
    const Graph g = norm_cases(dtype);
    const TileGraph tg = by_last_slice(g, 2, ANVIL_MM_TILED, true);
    int norms = 0;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<RowParams>(&op.params); p && p->op == ANVIL_ROW_SPLIT_NORM) {
            ++norms;
            CHECK(p->pre_off >= 0);
            CHECK(op.by_last_slice);
        }
    REQUIRE(norms == 2);
    const Schedule s = test::persistent(tg);
    REQUIRE(joined_tasks(s) > 0);
    // h2's reduce adds y1, which ln1's reduce wrote before the second GEMM's
    // slices: it reads a task other than its joins, ordered before it by
    // what its joins knew (they waited for ln1, stored by the same tasks).
    const std::vector<std::vector<int>> producers = task_producers(s);
    bool reads_other = false;
    for (size_t t = 0; t < s.tasks.size(); ++t)
        for (int p : producers[t])
            reads_other = reads_other || (!s.tasks[t].joins.empty() &&
                                          std::find(s.tasks[t].joins.begin(), s.tasks[t].joins.end(), p) ==
                                              s.tasks[t].joins.end());
    CHECK(reads_other);
    REQUIRE(find_races(s).empty());
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(s, values, test::checked(false)), 2);
    test::expect_reference(g, values, run_host(s, values, test::checked(true)), 2);
}

TEST_CASE("last-slice reduce: the policies' schedules run it where the cost model chose it", "[last_slice][split_k]") {
    // Forced on the tile graph: every policy that builds a persistent
    // launch joins; per_op's launch per rOp keeps it queued.
    const Graph g = sum_cases(DType::f32);
    const TileGraph tg = by_last_slice(g, 3, ANVIL_MM_TILED, false);
    const TensorMap values = make_values(g, std::nullopt);
    for (const PolicyEntry& entry : all_policies()) {
        CAPTURE(entry.name);
        const Schedule s = entry.fn(tg, default_gpu());
        CHECK(find_races(s).empty());
        test::expect_reference(g, values, run_host(s, values, test::checked(false)), 4);
    }
}

TEST_CASE("last-slice reduce: a ticket off by one, a skipped inline run and a dropped join are caught",
          "[last_slice][race]") {
    const Graph g = sum_cases(DType::f32);
    const TileGraph tg = by_last_slice(g, 3, ANVIL_MM_TILED, false);
    const Schedule s = test::persistent(tg, 64);
    REQUIRE(joined_tasks(s) > 0);
    const TensorMap values = make_values(g, std::nullopt);
    SECTION("the second-to-last taker runs the reduce: it starts before its last slice had published") {
        HostRunOptions opt = test::with_mutation("sync.expected[k] * sync.epoch - 1u", "sync.expected[k] * sync.epoch - 2u");
        opt.workers = 3;
        opt.check_races = true;
        CHECK_THROWS_WITH(run_host(s, values, opt), Catch::Contains("had published"));
    }
    SECTION("the last taker does not run it: no reduce writes the outputs") {
        HostRunOptions opt = test::with_mutation("anvil_block_broadcast(last) && !run(",
                                                 "anvil_block_broadcast(last) && false && !run(");
        opt.workers = 3;
        const auto checks = check_outputs(g, run_host(s, values, opt), reference_execute(g, values));
        int failed = 0;
        for (const OutputCheck& c : checks) failed += !c.ok();
        CHECK(failed == 4);
    }
    SECTION("a dropped join, or a reader of a joined task without its wait: the race checker names the task") {
        // A reduce's join dropped (the sums), a wait deleted from a reader of
        // a joined task whichever block ran it (the row ops' reduces).
        const Schedule norms = test::persistent(by_last_slice(norm_cases(DType::f32), 2, ANVIL_MM_TILED, true));
        REQUIRE(find_races(norms).empty());
        const SyncCounters c = sync_counters(norms);
        auto reads_joined = [&](size_t t) {
            bool reads = false;
            for (int k : c.waits[t])
                for (int m : c.members[k]) reads = reads || !norms.tasks[m].joins.empty();
            return reads;
        };
        for (const bool drop_join : {true, false}) {
            CAPTURE(drop_join);
            const Schedule& base = drop_join ? s : norms;
            int mutated = 0;
            for (size_t t = 0; t < base.tasks.size() && mutated < 4; ++t) {
                if (drop_join ? base.tasks[t].joins.size() < 2 : !reads_joined(t)) continue;
                Schedule m = base;
                if (drop_join) m.tasks[t].joins.pop_back();
                else m.tasks[t].waits.clear();
                CAPTURE(t);
                CHECK(test::races_name(m, t));
                ++mutated;
            }
            CHECK(mutated > 0);
        }
    }
    SECTION("a joined task that is also queued, or joins a later task, is refused") {
        Schedule m = s;
        for (size_t t = 0; t < m.tasks.size(); ++t)
            if (!m.tasks[t].joins.empty()) {
                m.launches[0].queues[0].push_back(static_cast<int>(t));
                std::sort(m.launches[0].queues[0].begin(), m.launches[0].queues[0].end());
                break;
            }
        CHECK_THROWS_WITH(verify_schedule(m), Catch::Contains("queued too"));
        Schedule later = s;
        for (size_t t = 0; t < later.tasks.size(); ++t)
            if (!later.tasks[t].joins.empty()) {
                later.tasks[t].joins.push_back(static_cast<int>(later.tasks.size()) - 1);
                break;
            }
        CHECK_THROWS_WITH(verify_schedule(later), Catch::Contains("not an earlier one"));
    }
}

TEST_CASE("last-slice reduce: the cost model's choice is reported, and the flag turns it off", "[last_slice][split_k]") {
    Gpu gpu = default_gpu();
    const Graph g = sum_cases(DType::f32);
    const TileGraph tg = test::registers_only(g);
    for (bool on : {true, false}) {
        gpu.last_slice_reduce = on;
        const TileGraph out = apply_split_k(tg, gpu);
        int reduces = 0;
        for (const ROp& op : out.rops) {
            if (!is_reduce(op)) continue;
            ++reduces;
            CAPTURE(op.name, op.reduce_mode);
            if (!on) {
                CHECK(op.reduce_mode == "wave: --no-last-slice-reduce");
                CHECK(!op.by_last_slice);
            } else {
                CHECK((op.reduce_mode.rfind("last slice: ", 0) == 0) == op.by_last_slice);
                CHECK_THAT(op.reduce_mode, Catch::Contains("us"));
            }
        }
        CHECK(reduces > 0);  // the model splits these GEMMs: their tiles leave the grid idle
    }
}

TEST_CASE("last-slice reduce: the tickets on the device, split sums and the row op", "[last_slice][gpu]") {
    REQUIRE_DEVICE();
    for (DType dtype : {DType::f32, DType::f16}) {
        CAPTURE(dtype_name(dtype));
        const Graph sums = sum_cases(dtype);
        const Schedule s = test::persistent(by_last_slice(sums, 3, ANVIL_MM_TILED, false), 64);
        REQUIRE(joined_tasks(s) > 0);
        const TensorMap values = make_values(sums, std::nullopt);
        test::expect_reference(sums, values, run_cuda(s, values), 4);
        const Graph norms = norm_cases(dtype);
        const Schedule n = test::persistent(by_last_slice(norms, 2, ANVIL_MM_TILED, true));
        const TensorMap nvalues = make_values(norms, std::nullopt);
        test::expect_reference(norms, nvalues, run_cuda(n, nvalues), 2);
    }
}
