// Checks where values are made: the tile-graph verifier (broken rOps are
// refused, named, before emit), the dispatcher's default (a task whose rOp
// names an unknown variant stops the run), the host arena's poison (a tile
// no task wrote is NaN) and guards (a store outside every tensor is an
// error naming the tensor beside it), and one tolerance table shared by the
// C++ check and the Python float64 reference.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "frontend/graph.h"
#include "runtime/arena_guard.h"
#include "runtime/arena_io.h"
#include "runtime/compile_host.h"
#include "runtime/host_backend.h"
#include "tile/decompose.h"
#include "target/occupancy.h"
#include "tile/verify_tile_graph.h"

using namespace anvil;

namespace {

Graph model(const std::string& name) { return load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/" + name + ".yaml"); }

// The first rOp of `tg` that `pred` accepts (REQUIREd to exist).
template <class Pred>
ROp& find_rop(TileGraph& tg, Pred pred) {
    for (ROp& op : tg.rops)
        if (pred(op)) return op;
    FAIL("no rOp of the kind the test needs in '" << tg.model_name << "'");
    throw std::logic_error("unreachable");
}

bool tiled_matmul(const ROp& op) {
    return op.kind == TaskKind::matmul && std::get<MatmulParams>(op.params).algo == ANVIL_MM_TILED;
}

bool has_nan(const HostTensor& t) {
    for (double v : t.to_doubles())
        if (std::isnan(v)) return true;
    return false;
}

}  // namespace

TEST_CASE("the tile-graph verifier passes every policy's graph", "[checks]") {
    const Graph g = model("transformer_encoder_f32");
    const TileGraph tg = decompose(g);
    CHECK_NOTHROW(verify_tile_graph(tg, default_gpu()));
    for (const char* policy : {"anvil", "welder", "rammer", "per_op"})
        CHECK_NOTHROW(verify_tile_graph(plan(g, policy, default_gpu()).tiles, default_gpu()));
}

TEST_CASE("the tile-graph verifier names the rOp of a bad tile shape", "[checks]") {
    TileGraph tg = decompose(model("transformer_encoder_f32"));
    ROp& op = find_rop(tg, tiled_matmul);
    std::get<MatmulParams>(op.params).bm = 24;
    CHECK_THROWS_AS(verify_tile_graph(tg, default_gpu()), InternalError);
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()),
                      Catch::Contains("rOp '" + op.name + "'") && Catch::Contains("multiples of 16"));
}

TEST_CASE("the tile-graph verifier refuses a row op past 32-bit row indices", "[checks]") {
    TileGraph tg = decompose(model("transformer_encoder_f32"));
    ROp& op = find_rop(tg, [](const ROp& r) { return r.kind == TaskKind::rowwise; });
    auto& p = std::get<RowParams>(op.params);
    const RowParams good = p;
    REQUIRE_NOTHROW(verify_tile_graph(tg, default_gpu()));
    p.row_len = int64_t{1} << 31;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()),
                      Catch::Contains("rOp '" + op.name + "'") && Catch::Contains("rows of 2147483648"));
    p = good;
    p.rows = int64_t{1} << 32;
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("not 4294967296 rows"));
    p = good;
    CHECK_NOTHROW(verify_tile_graph(tg, default_gpu()));
}

TEST_CASE("the tile-graph verifier refuses a tile over the shared-memory limit", "[checks]") {
    TileGraph tg = decompose(model("transformer_encoder_f32"));
    ROp& op = find_rop(tg, tiled_matmul);
    auto& p = std::get<MatmulParams>(op.params);
    p.bm = p.bn = 128, p.bk = 64;  // four stages of 64 x (132 + 132) x 4 bytes: 264 KB of slices
    CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()),
                      Catch::Contains("rOp '" + op.name + "'") && Catch::Contains("bytes of shared memory") &&
                          Catch::Contains("over the budget of " + std::to_string(tile_smem_budget(default_gpu()))));
    // The limit is the target's: a GPU with 16 KiB per block refuses the
    // default tiles as soon as decompose made them, before any policy or emit.
    Gpu small = default_gpu();
    small.smem_per_block = 16 * 1024;
    CHECK_THROWS_AS(plan(model("transformer_encoder_f32"), "per_op", small), InternalError);
    CHECK_THROWS_WITH(plan(model("transformer_encoder_f32"), "per_op", small),
                      Catch::Contains("invalid tile graph") &&
                          Catch::Contains("over the budget of " + std::to_string(tile_smem_budget(small))));
}

TEST_CASE("the tile-graph verifier refuses malformed epilogues", "[checks]") {
    const Schedule s = plan(model("mlp_f32"), "welder", default_gpu());
    TileGraph tg = s.tiles;
    REQUIRE_NOTHROW(verify_tile_graph(tg, default_gpu()));
    ROp& op = find_rop(tg, [](const ROp& r) { return r.epilogue.nsteps > 0; });
    const AnvilEpilogue good = op.epilogue;
    SECTION("too many steps") {
        op.epilogue.nsteps = ANVIL_EPI_MAX_STEPS + 1;
        CHECK_THROWS_AS(verify_tile_graph(tg, default_gpu()), InternalError);
        CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()),
                          Catch::Contains("rOp '" + op.name + "'") && Catch::Contains("9 steps (at most 8)"));
    }
    SECTION("an operand index past its inputs") {
        op.epilogue.steps[0].a = ANVIL_EPI_INPUT(good.ninputs);
        CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()),
                          Catch::Contains("rOp '" + op.name + "'") && Catch::Contains("bad operand reference"));
    }
    SECTION("a value not yet computed") {
        op.epilogue.steps[0].b = ANVIL_EPI_VALUE(1);
        CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("step 0 has a bad operand"));
    }
    SECTION("an unknown op") {
        op.epilogue.steps[0].op = ANVIL_EW_COUNT;
        CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("unknown op"));
    }
    SECTION("params of another kind") {
        op.kind = TaskKind::channel;
        CHECK_THROWS_WITH(verify_tile_graph(tg, default_gpu()), Catch::Contains("params do not match its kind"));
    }
}

TEST_CASE("a task whose rOp names a variant its kernel lacks stops the run, named", "[checks][host]") {
    const Graph g = model("mlp_f32");
    const Schedule s = plan(g, "topo", default_gpu());
    std::string source = emit_source(s);
    // The rOp table's first entry {variant, index}: rOp 0 now names variant 77.
    const std::string table = "AnvilROpRef anvil_rops[] = {\n    {";
    const size_t at = source.find(table);
    REQUIRE(at != std::string::npos);
    const size_t first = at + table.size();
    source.replace(first, source.find(',', first) - first, "77");
    const HostLibrary lib = compile_host(source);
    const TensorMap values = make_values(g, std::nullopt);
    CHECK_NOTHROW(run_host(s, compile_host(emit_source(s)), values));
    CHECK_THROWS_AS(run_host(s, lib, values), InternalError);
    CHECK_THROWS_WITH(run_host(s, lib, values),
                      Catch::Contains("rop '" + s.tiles.rops[0].name + "'") && Catch::Contains("task ") &&
                          Catch::Contains("variant 77") && Catch::Contains("does not dispatch"));
}

TEST_CASE("a tile no task writes reaches the outputs as NaN", "[checks][host]") {
    const Graph g = model("transformer_encoder_f32");
    Schedule s = plan(g, "per_op", default_gpu());  // no dependencies to keep consistent
    // A task of an rOp that writes a graph output computes its rOp's tile 0
    // again instead of its own: that tile of the output is never written.
    const std::set<std::string> outputs(s.tiles.outputs.begin(), s.tiles.outputs.end());
    int victim = -1;
    for (size_t t = 0; t < s.tasks.size() && victim < 0; ++t) {
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        if (s.tasks[t].tile == 1 && outputs.count(s.tiles.buffers[op.node].name)) victim = static_cast<int>(t);
    }
    REQUIRE(victim >= 0);
    const std::string output = s.tiles.buffers[s.tiles.rops[s.tasks[victim].rop].node].name;
    const TensorMap values = make_values(g, std::nullopt);
    HostRunOptions one;
    one.workers = 1;
    const TensorMap good = run_host(s, values, one);
    CHECK_FALSE(has_nan(good.at(output)));
    s.tasks[victim].tile = 0;
    const TensorMap bad = run_host(s, values, one);
    CHECK(has_nan(bad.at(output)));
    bool failed = false;
    for (const OutputCheck& c : check_outputs(g, bad, reference_execute(g, values)))
        if (c.name == output) failed = !c.ok();
    CHECK(failed);
}

TEST_CASE("a store past a tensor's end damages a guard and is named", "[checks][host]") {
    const Graph g = model("mlp_f32");
    Schedule s = plan(g, "per_op", default_gpu());
    const TensorMap values = make_values(g, std::nullopt);
    CHECK_NOTHROW(run_host(s, values));
    SECTION("into the gap after its own output") {
        // An elementwise rOp whose contiguous output ends short of the next
        // 256 bytes, shifted by one element: its last store lands in the gap.
        ROp& op = find_rop(s.tiles, [&](const ROp& r) {
            const TensorBuffer& b = s.tiles.buffers[r.node];
            return r.kind == TaskKind::elementwise && !b.alias && b.bytes % 256 != 0 &&
                   std::get<EwParams>(r.params).out_off == b.offset;
        });
        const TensorBuffer& out = s.tiles.buffers[op.node];
        std::get<EwParams>(op.params).out_off += dtype_size(out.dtype);
        CHECK_THROWS_AS(run_host(s, values), InternalError);
        CHECK_THROWS_WITH(run_host(s, values), Catch::Contains("were overwritten") &&
                                                   Catch::Contains("next to tensor '" + out.name + "'"));
    }
    SECTION("past the arena's end") {
        const TensorBuffer* last = nullptr;
        for (const TensorBuffer& b : s.tiles.buffers)
            if (!b.alias && (!last || b.offset > last->offset)) last = &b;
        const int64_t end = static_cast<int64_t>(arena_size(s.tiles));
        ROp& op = find_rop(s.tiles, [&](const ROp& r) {
            const TensorBuffer& b = s.tiles.buffers[r.node];
            return r.kind == TaskKind::elementwise && !b.alias && b.bytes <= 8192 && end - b.bytes / 2 >= last->offset;
        });
        const TensorBuffer& out = s.tiles.buffers[op.node];
        // Half of its stores land in the guard zone after the arena (4 KiB).
        std::get<EwParams>(op.params).out_off = static_cast<int64_t>(arena_size(s.tiles)) - out.bytes / 2 / 4 * 4;
        CHECK_THROWS_WITH(run_host(s, values), Catch::Contains("were overwritten") &&
                                                   Catch::Contains("tensor '" + last->name + "'") &&
                                                   Catch::Contains("the arena's end"));
    }
}

TEST_CASE("the host arena poisons intermediates and guards unowned bytes", "[checks]") {
    const TileGraph tg = decompose(model("mlp_f32"));
    const TensorMap values = make_values(load_graph(std::string(ANVIL_SOURCE_DIR) + "/models/mlp_f32.yaml"),
                                         std::nullopt);
    const std::vector<char> image = arena_image(tg, values);
    GuardedArena arena(tg, image);
    CHECK_NOTHROW(arena.check("fresh"));
    for (const TensorBuffer& b : tg.buffers) {
        if (b.alias || b.bytes == 0) continue;
        const bool given = std::count(tg.inputs.begin(), tg.inputs.end(), b.name) ||
                           std::count(tg.params.begin(), tg.params.end(), b.name);
        INFO(b.name);
        if (given)
            CHECK(std::memcmp(arena.data() + b.offset, image.data() + b.offset, b.bytes) == 0);
        else
            CHECK(static_cast<unsigned char>(arena.data()[b.offset + b.bytes - 1]) == kPoisonByte);
    }
    arena.data()[-1] = 0;
    CHECK_THROWS_WITH(arena.check("here"), Catch::Contains("here: arena bytes -1..0") &&
                                               Catch::Contains("the arena's start"));
}

TEST_CASE("the C++ check and the Python reference share one tolerance table", "[checks]") {
    std::ifstream in(std::string(ANVIL_SOURCE_DIR) + "/scripts/baselines/model.py");
    REQUIRE(in);
    std::stringstream text;
    text << in.rdbuf();
    std::smatch table;
    const std::string src = text.str();
    REQUIRE(std::regex_search(src, table, std::regex(R"(SPEC_TOLERANCE = \{([^}]*)\})")));
    const std::string body = table[1];
    std::map<std::string, double> python;
    const std::regex entry(R"#("(\w+)":\s*([0-9.eE+-]+))#");
    for (auto it = std::sregex_iterator(body.begin(), body.end(), entry); it != std::sregex_iterator(); ++it)
        python[(*it)[1]] = std::stod((*it)[2]);
    for (DType t : {DType::f32, DType::f16, DType::bf16, DType::i32}) {
        INFO(dtype_name(t));
        REQUIRE(python.count(dtype_name(t)));
        // Integers are exact: the C++ check skips them, Python's entry is 0.
        CHECK(python[dtype_name(t)] == (is_float(t) ? dtype_tolerance(t) : 0.0));
    }
    CHECK(python.size() == 4);
}
