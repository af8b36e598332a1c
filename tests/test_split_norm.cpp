// A split-K reduce that also applies the softmax, layernorm or rmsnorm
// reading its result (ANVIL_ROW_SPLIT_NORM, src/schedule/split_k.cpp):
// matmul -> (+ bias, + residual) -> row op (-> its own epilogue) against
// the float64 reference on the host and simt backends under every policy,
// race-free; the same bits as the separate reduce and row op; mutations
// the reference and the race checker catch; what stays apart, and why.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/values.h"
#include "policies/registry.h"
#include "run_checks.h"
#include "schedule/race_check.h"
#include "split_k_cases.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"

using namespace anvil;

namespace {

const char* const kRowOps[] = {"layernorm", "rmsnorm", "softmax"};

// Three chains x_i @ w_i + b_i + r_i -> row op, over rows of N = 33, 129
// and 768 (M odd: 33, a batch of 3 x 7, 5); chain i's row op is
// kRowOps[(i + rotation) % 3]. Chain 0's row op result goes on through an
// add (the row op's own epilogue).
Graph norm_cases(DType dtype, int rotation, int n_last = 768) {
    struct Chain {
        std::string x_shape;
        int n;
    };
    const Chain chains[] = {{"[33, 512]", 33}, {"[3, 7, 512]", 129}, {"[5, 512]", n_last}};
    std::string inputs, params, nodes, outputs;
    for (int i = 0; i < 3; ++i) {
        const Chain& c = chains[i];
        const std::string out_shape = i == 0 ? "[33, 33]" : i == 1 ? "[3, 7, 129]" : fmt::format("[5, {}]", c.n);
        const std::string op = kRowOps[(i + rotation) % 3];
        inputs += fmt::format("  - {{name: x{}, shape: {}}}\n  - {{name: r{}, shape: {}}}\n", i, c.x_shape, i, out_shape);
        params += fmt::format("  - {{name: w{}, shape: [512, {}]}}\n  - {{name: b{}, shape: [{}]}}\n", i, c.n, i, c.n);
        nodes += fmt::format("  - {{name: m{0}, op: matmul, inputs: [x{0}, w{0}]}}\n"
                             "  - {{name: a{0}, op: add, inputs: [m{0}, b{0}]}}\n"
                             "  - {{name: s{0}, op: add, inputs: [a{0}, r{0}]}}\n",
                             i);
        if (op == "softmax") {
            nodes += fmt::format("  - {{name: n{0}, op: softmax, inputs: [s{0}], axis: -1}}\n", i);
        } else {
            params += fmt::format("  - {{name: g{}, shape: [{}]}}\n", i, c.n);
            if (op == "layernorm") params += fmt::format("  - {{name: be{}, shape: [{}]}}\n", i, c.n);
            nodes += fmt::format("  - {{name: n{0}, op: {1}, inputs: [s{0}, g{0}{2}], eps: 1.0e-5}}\n", i, op,
                                 op == "layernorm" ? fmt::format(", be{}", i) : "");
        }
        if (i == 0) {
            inputs += fmt::format("  - {{name: q0, shape: {}}}\n", out_shape);
            nodes += "  - {name: o0, op: add, inputs: [n0, q0]}\n";
            outputs += "o0";
        } else {
            outputs += fmt::format(", n{}", i);
        }
    }
    return test::split_model(fmt::format("inputs:\n{}params:\n{}nodes:\n{}outputs: [{}]\n", inputs, params, nodes, outputs),
                             dtype);
}

int count_op(const TileGraph& tg, int row_op) {
    int n = 0;
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<RowParams>(&op.params); p && p->op == row_op) ++n;
    return n;
}

int first_split_norm(const TileGraph& tg) {
    for (size_t r = 0; r < tg.rops.size(); ++r)
        if (const auto* p = std::get_if<RowParams>(&tg.rops[r].params); p && p->op == ANVIL_ROW_SPLIT_NORM)
            return static_cast<int>(r);
    return -1;
}

}  // namespace

TEST_CASE("split-K reduces apply the row op after them: every dtype, row op and policy against the reference",
          "[split_norm][simt]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    const int rotation = GENERATE(0, 1, 2);
    CAPTURE(dtype_name(dtype), rotation);
    const Graph g = norm_cases(dtype, rotation);
    const TileGraph tg = test::split_and_norm(g, dtype == DType::f32 ? 4 : 2, dtype == DType::f32 ? ANVIL_MM_TILED : ANVIL_MM_TENSOR);
    REQUIRE(count_op(tg, ANVIL_ROW_SPLIT_NORM) == 3);
    CHECK(count_op(tg, ANVIL_ROW_SPLIT_SUM) == 0);
    // The row ops' rOps are gone: every rowwise rOp is a reduce.
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<RowParams>(&op.params)) CHECK(p->op == ANVIL_ROW_SPLIT_NORM);
    verify_tile_graph(tg, default_gpu());
    const TensorMap values = make_values(g, std::nullopt);
    for (const PolicyEntry& entry : all_policies()) {
        CAPTURE(entry.name);
        const Schedule s = entry.fn(tg, default_gpu());
        CHECK(find_races(s).empty());
        test::expect_reference(g, values, run_host(s, values, test::checked(false)), 3);
    }
    // simt: 256 threads on a row, block sums through shared memory; few blocks, so tasks share one.
    const Schedule s = test::persistent(tg);
    test::expect_reference(g, values, run_host(s, values, test::checked(true)), 3);
}

TEST_CASE("split-K: the reduce with its row op gives the bits of the reduce and row op apart", "[split_norm][simt]") {
    // Chain 0's row op (kRowOps[rotation]) goes on through an add: apart, its
    // epilogue sends it down the block-wide walk, whose sums and order the
    // reduce keeps. Without one (chains 1 and 2) the row op apart takes a
    // warp per row on simt (other sums), the block's one thread on the host.
    const auto [dtype, rotation] = GENERATE(std::make_pair(DType::f32, 2), std::make_pair(DType::bf16, 0),
                                            std::make_pair(DType::bf16, 1));
    const bool simt = GENERATE(false, true);
    CAPTURE(dtype_name(dtype), rotation, simt);
    const Graph g = norm_cases(dtype, rotation);
    const TileGraph apart = test::split_every_matmul(test::registers_only(g), 2, ANVIL_MM_TILED);
    const TileGraph merged = test::split_and_norm(g, 2, ANVIL_MM_TILED);
    REQUIRE(count_op(merged, ANVIL_ROW_SPLIT_NORM) == 3);
    const TensorMap values = make_values(g, std::nullopt);
    const TensorMap a = run_host(test::persistent(apart), values, test::checked(simt));
    const TensorMap b = run_host(test::persistent(merged), values, test::checked(simt));
    for (const char* name : {"o0", "n1", "n2"}) {
        if (simt && name != std::string("o0")) continue;
        CAPTURE(name);
        CHECK(a.at(name).bytes == b.at(name).bytes);
    }
    test::expect_reference(g, values, b, 3);
}

TEST_CASE("split-K with a row op: a reduce skipping a slice fails the reference, a deleted wait is a race",
          "[split_norm][race]") {
    const Graph g = norm_cases(DType::f32, 0);
    const TileGraph tg = test::split_and_norm(g, 4, ANVIL_MM_TILED);
    const int r = first_split_norm(tg);
    REQUIRE(r >= 0);
    const TensorMap values = make_values(g, std::nullopt);
    SECTION("the reduce skips its last slice of partials") {
        TileGraph m = tg;
        std::get<RowParams>(m.rops[r].params).k_split -= 1;
        const auto checks = check_outputs(g, run_host(test::persistent(m), values, test::checked(false)),
                                          reference_execute(g, values));
        int failed = 0;
        for (const OutputCheck& c : checks) failed += !c.ok();
        CHECK(failed == 1);  // chain 0's
    }
    SECTION("a reduce task's wait for its partials deleted") {
        const Schedule s = test::persistent(tg, 256);  // a block per task: only the waits order them
        REQUIRE(find_races(s).empty());
        int deleted = 0;
        for (size_t t = 0; t < s.tasks.size(); ++t) {
            if (s.tasks[t].rop != r || s.tasks[t].waits.empty()) continue;
            Schedule m = s;
            m.tasks[t].waits.clear();
            CAPTURE(t);
            CHECK(test::races_name(m, t));
            ++deleted;
        }
        CHECK(deleted > 0);
    }
    SECTION("the row op's rOp removed while its output is still read: not written, the reference catches it") {
        TileGraph apart = test::split_every_matmul(test::registers_only(g), 4, ANVIL_MM_TILED);
        int removed = -1;
        for (size_t i = 0; i < apart.rops.size() && removed < 0; ++i)
            if (const auto* p = std::get_if<RowParams>(&apart.rops[i].params); p && p->op == ANVIL_ROW_LAYERNORM)
                removed = static_cast<int>(i);
        REQUIRE(removed >= 0);
        apart.rops.erase(apart.rops.begin() + removed);
        const auto checks = check_outputs(g, run_host(test::persistent(apart), values, test::checked(false)),
                                          reference_execute(g, values));
        int failed = 0;
        for (const OutputCheck& c : checks) failed += !c.ok();
        CHECK(failed == 1);
    }
}

TEST_CASE("split-K: a row op over rows longer than a block holds (1024) stays apart, and says why",
          "[split_norm]") {
    SECTION("rows of 1030") {
        const Graph g = norm_cases(DType::f32, 0, 1030);  // chain 2: a softmax over rows of 1030
        const TileGraph tg = test::split_and_norm(g, 2, ANVIL_MM_TILED);
        CHECK(count_op(tg, ANVIL_ROW_SPLIT_NORM) == 2);
        CHECK(count_op(tg, ANVIL_ROW_SPLIT_SUM) == 1);
        CHECK(count_op(tg, ANVIL_ROW_SOFTMAX) == 1);
        for (const ROp& op : tg.rops)
            if (const auto* p = std::get_if<RowParams>(&op.params); p && p->op == ANVIL_ROW_SPLIT_SUM)
                CHECK_THAT(op.why_not_row_op, Catch::Contains("N = 1030") && Catch::Contains("1024"));
        const TensorMap values = make_values(g, std::nullopt);
        test::expect_reference(g, values, run_host(test::persistent(tg), values, test::checked(false)), 3);
    }
}

TEST_CASE("split-K: where others read the GEMM's result too, the reduce with its row op stores it as well",
          "[split_norm][simt]") {
    // A pre-LN residual stream: y1 feeds ln1 and the second GEMM's residual
    // add (its reduce's epilogue); h2 feeds an rmsnorm and is an output.
    const DType dtype = GENERATE(DType::f32, DType::f16);
    CAPTURE(dtype_name(dtype));
    const Graph g = test::pre_ln_model(9, dtype);
    const TileGraph tg = test::split_and_norm(g, 2, ANVIL_MM_TILED);
    REQUIRE(count_op(tg, ANVIL_ROW_SPLIT_NORM) == 2);
    CHECK(count_op(tg, ANVIL_ROW_SPLIT_SUM) == 0);
    for (const ROp& op : tg.rops)
        if (const auto* p = std::get_if<RowParams>(&op.params)) {
            CAPTURE(op.name);
            CHECK(p->pre_off >= 0);  // y1 and h2 are stored too
        }
    verify_tile_graph(tg, default_gpu());
    const TensorMap values = make_values(g, std::nullopt);
    const Schedule s = test::persistent(tg);
    REQUIRE(find_races(s).empty());
    test::expect_reference(g, values, run_host(s, values, test::checked(false)), 2);
    test::expect_reference(g, values, run_host(s, values, test::checked(true)), 2);
    SECTION("without the second output, what reads it reads what no task wrote") {
        TileGraph m = tg;
        std::get<RowParams>(m.rops[first_split_norm(m)].params).pre_off = -1;
        const auto checks = check_outputs(g, run_host(test::persistent(m), values, test::checked(false)),
                                          reference_execute(g, values));
        int failed = 0;
        for (const OutputCheck& c : checks) failed += !c.ok();
        CHECK(failed == 2);  // h2 reads y1, n2 reads h2
    }
    SECTION("a reader of the second output without its wait is a race") {
        const Schedule wide = test::persistent(tg, 256);
        REQUIRE(find_races(wide).empty());
        const int first = first_split_norm(tg), second = static_cast<int>(tg.rops.size()) - 1;
        REQUIRE(second != first);  // h2's reduce: it reads y1 in its epilogue, which the first one writes
        const std::vector<std::vector<int>> producers = task_producers(wide);
        for (size_t t = 0; t < wide.tasks.size(); ++t) {
            if (wide.tasks[t].rop != second) continue;
            bool reads_first = false;
            for (int p : producers[t]) reads_first = reads_first || wide.tasks[p].rop == first;
            CAPTURE(t);
            CHECK(reads_first);
        }
        int deleted = 0;
        for (size_t t = 0; t < wide.tasks.size(); ++t) {
            if (wide.tasks[t].rop != second || wide.tasks[t].waits.empty()) continue;
            Schedule m = wide;
            m.tasks[t].waits.clear();
            CHECK(test::races_name(m, t));
            ++deleted;
        }
        CHECK(deleted > 0);
    }
}

TEST_CASE("split-K with a row op: rows per task from the cost model", "[split_norm]") {
    // 128 rows of 768: a grid with a block for each row gives each task one
    // row; on 8 blocks, tasks of one row would queue 16 deep, each paying
    // the task overhead: they take more rows.
    const Graph g = test::split_model(R"(inputs: [{name: x, shape: [128, 512]}]
params: [{name: w, shape: [512, 768]}, {name: g, shape: [768]}]
nodes:
  - {name: y, op: matmul, inputs: [x, w]}
  - {name: n, op: rmsnorm, inputs: [y, g], eps: 1.0e-5}
outputs: [n]
)",
                                      DType::f16);
    const TileGraph split = test::split_every_matmul(test::registers_only(g), 2, ANVIL_MM_TILED);
    auto rows_per_tile = [&](int grid) {
        TileGraph tg = split;
        int reduce = -1;
        for (size_t r = 0; r < tg.rops.size(); ++r)
            if (const auto* p = std::get_if<RowParams>(&tg.rops[r].params); p && p->op == ANVIL_ROW_SPLIT_SUM)
                reduce = static_cast<int>(r);
        const int m = apply_row_op_in_reduce(tg, reduce, default_gpu(), grid);
        REQUIRE(m >= 0);
        const auto& p = std::get<RowParams>(tg.rops[m].params);
        CHECK(tg.rops[m].tiles == (128 + p.rows_per_tile - 1) / p.rows_per_tile);
        return p.rows_per_tile;
    };
    const int wide = rows_per_tile(2 * default_gpu().sm_count), narrow = rows_per_tile(8);
    CAPTURE(wide, narrow);
    CHECK(wide <= 2);
    CHECK(narrow > wide);
    CHECK(narrow <= 128);
}

TEST_CASE("split-K with a row op in schedule --json and --report", "[split_norm][cli]") {
    // transformer_encoder_f32 splits its MLP-down GEMM, read by a layernorm
    // alone (the f16 one stopped splitting when its epilogue's round trips
    // went: docs/perf/epilogue-batches-2026-11-29.md).
    const test::CmdResult json = test::run_anvil("schedule models/transformer_encoder_f32.yaml --json");
    REQUIRE(json.status == 0);
    const nlohmann::json j = nlohmann::json::parse(json.output);
    int merged = 0;
    for (const auto& grp : j["group_list"]) {
        CHECK(!grp.contains("why_not_row_op"));
        if (!grp.contains("split_reduce_row_op")) continue;
        ++merged;
        CHECK(grp["split_reduce_row_op"] == "layernorm");
        CHECK(grp["kind"] == "rowwise");
        CHECK_THAT(grp["name"].get<std::string>(), Catch::Contains("ln") || Catch::Contains("+y"));
    }
    CHECK(merged >= 1);
    const test::CmdResult report = test::run_anvil("schedule models/transformer_encoder_f32.yaml --report");
    REQUIRE(report.status == 0);
    CHECK_THAT(report.output, Catch::Contains(std::to_string(merged) + " reduces apply the softmax or norm after them"));
}
