// The simt checks catch what a GPU would only show as wrong numbers, now and
// then: each test breaks one tile of the emitted source (string replacement
// before the host compiler sees it) and expects the simt run to refuse it,
// naming the task, its rOp, the threads and the shared-memory offset. The
// unbroken source passes, so every failure is the mutation's.
#include <catch2/catch.hpp>

#include <string>

#include "anvil/error.h"
#include "anvil/pipeline.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "run_checks.h"
#include "runtime/simt_backend.h"
#include "schedule/builders.h"
#include "schedule/orders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;

namespace {

// K = 40: A's rows are 80 bytes, so A takes cp.async; a row op (softmax)
// over a tiled f32 matmul; a GEMV whose B has k contiguous (warp shuffles).
const char* kModel = R"(anvil: 1
name: mutants
dtype: {}
seed: 23
inputs:
  - {{name: x, shape: [33, 40]}}
  - {{name: v, shape: [1, 96]}}
params:
  - {{name: w, shape: [40, 45]}}
  - {{name: u, shape: [20, 96]}}
nodes:
  - {{name: y, op: matmul, inputs: [x, w]}}
  - {{name: z, op: matmul, inputs: [v, u], transpose_b: true}}
outputs: [y, z]
)";

Graph model(DType dtype) {
    std::string text = kModel;
    text.replace(text.find("{}"), 2, dtype_name(dtype));
    for (size_t at; (at = text.find("{{")) != std::string::npos;) text.replace(at, 2, "{");
    for (size_t at; (at = text.find("}}")) != std::string::npos;) text.replace(at, 2, "}");
    return infer_shapes(build_graph(load_model_from_string(text, "mutants.yaml")));
}

// The schedule: y tiled (f32) or on tensor cores (f16), z a GEMV.
Schedule schedule(const Graph& g, bool tensor) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops)
        if (op.name == "y") op = tensor ? on_tensor_cores(op, 32, 32, 32) : retile(op, 32, 32, 16);
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

// Runs `s` with the first `from` replaced by `to` in the emitted source (which must hold it).
TensorMap run_mutant(const Graph& g, const Schedule& s, const std::string& from, const std::string& to) {
    return run_simt(s, make_values(g, std::nullopt), test::with_mutation(from, to, false));
}

bool matches_reference(const Graph& g, const TensorMap& outputs) {
    for (const OutputCheck& c : check_outputs(g, outputs, reference_execute(g, make_values(g, std::nullopt))))
        if (!c.ok()) return false;
    return true;
}

}  // namespace

TEST_CASE("simt mutations: the unbroken tiles pass", "[simt][mutation]") {
    for (bool tensor : {false, true}) {
        const Graph g = model(tensor ? DType::f16 : DType::f32);
        CHECK(matches_reference(g, run_simt(schedule(g, tensor), make_values(g, std::nullopt))));
    }
}

TEST_CASE("simt mutations: a removed barrier in a tile is a shared-memory race", "[simt][mutation]") {
    const Graph g = model(DType::f32);
    CHECK_THROWS_WITH(run_mutant(g, schedule(g, false), "anvil_barrier();  // the slices are complete", ""),
                      Catch::Contains("simt check failed in task") && Catch::Contains("rop 'y'") &&
                          Catch::Contains("a matmul tile") && Catch::Contains("shared-memory race") &&
                          Catch::Contains("of shared region 'smem'") && Catch::Contains("thread"));
}

TEST_CASE("simt mutations: a missing cp.async wait reads data that has not landed", "[simt][mutation]") {
    const Graph g = model(DType::f16);
    CHECK_THROWS_WITH(run_mutant(g, schedule(g, true), "anvil_cp_async_wait<S - 2>();", ""),
                      Catch::Contains("on tensor cores") && Catch::Contains("before the cp.async.wait_group"));
}

TEST_CASE("simt mutations: two lanes' fragment rows swapped give wrong numbers", "[simt][mutation]") {
    const Graph g = model(DType::f16);
    // The lanes that address A's k 0-7 and k 8-15 trade places: the fragment's halves swap.
    const TensorMap out = run_mutant(g, schedule(g, true), "kk + (lane / 16) * 8);", "kk + (1 - lane / 16) * 8);");
    CHECK_FALSE(matches_reference(g, out));
}

TEST_CASE("simt mutations: an out-of-bounds shared store is refused", "[simt][mutation]") {
    const Graph g = model(DType::f32);
    CHECK_THROWS_WITH(run_mutant(g, schedule(g, false), "anvil_stage_elem(Xs + k * LDX + x,",
                                 "anvil_stage_elem(Xs + k * LDX + x + ANVIL_SMEM_BYTES / 4,"),
                      Catch::Contains("out of bounds") && Catch::Contains("shared region 'smem'"));
}

TEST_CASE("simt mutations: a read of shared memory no thread wrote is refused", "[simt][mutation]") {
    const Graph g = model(DType::f32);
    CHECK_THROWS_WITH(run_mutant(g, schedule(g, false), "anvil_stage_elem(Xs + k * LDX + x,",
                                 "if (x != 5) anvil_stage_elem(Xs + k * LDX + x,"),
                      Catch::Contains("which no thread wrote since the task began"));
}

TEST_CASE("simt mutations: a shuffle whose lanes did not all arrive is refused", "[simt][mutation]") {
    const Graph g = model(DType::f32);
    CHECK_THROWS_WITH(run_mutant(g, schedule(g, false), "const float sum = anvil_warp_sum(acc[m]);",
                                 "const float sum = lane < 16 ? anvil_warp_sum(acc[m]) : acc[m];"),
                      Catch::Contains("a gemv tile") && Catch::Contains("did not all arrive"));
}

TEST_CASE("simt mutations: with the checks off the removed barrier goes unnoticed", "[simt][mutation]") {
    const Graph g = model(DType::f32);
    HostRunOptions opt;
    opt.simt_checks = false;
    opt.edit_source = [](std::string& src) {
        const std::string from = "anvil_barrier();  // the slices are complete";
        src.replace(src.find(from), from.size(), "");
    };
    CHECK_NOTHROW(run_simt(schedule(g, false), make_values(g, std::nullopt), opt));
}

namespace {

// A decode projection: B's columns contiguous and 16-byte aligned, so the
// GEMV streams it through its weight ring (gemv.cuh), with K over four stages.
Graph ring_model() {
    return infer_shapes(build_graph(load_model_from_string(R"(anvil: 1
name: ring
dtype: f32
seed: 5
inputs:
  - {name: x, shape: [1, 200]}
params:
  - {name: w, shape: [200, 64]}
nodes:
  - {name: y, op: matmul, inputs: [x, w]}
outputs: [y]
)",
                                                           "ring.yaml")));
}

Schedule ring_schedule(const Graph& g) { return launch_per_rop("per_op", decompose(g), default_gpu(), "op_"); }

}  // namespace

TEST_CASE("simt mutations: the GEMV weight ring needs its prefetch and its waits", "[simt][mutation][gemv]") {
    const Graph g = ring_model();
    CHECK(matches_reference(g, run_simt(ring_schedule(g), make_values(g, std::nullopt))));
    // The stages issued before the task's waits, not issued: the body reads a ring no copy wrote.
    CHECK_THROWS_WITH(run_mutant(g, ring_schedule(g),
                                 "if (s < w.stages) anvil_ring_issue(w, s, (slot + s) % ANVIL_GEMV_RING_STAGES);", ""),
                      Catch::Contains("a gemv tile") && Catch::Contains("which no thread wrote since the task began"));
    // The wait before a stage is multiplied, removed: its copies have not landed.
    CHECK_THROWS_WITH(run_mutant(g, ring_schedule(g), "anvil_stage_wait<ANVIL_GEMV_RING_STAGES - 2>();", ""),
                      Catch::Contains("a gemv tile") && Catch::Contains("cp.async"));
}

TEST_CASE("simt mutations: the ring walk's staged x needs its copies and its wait", "[simt][mutation][gemv]") {
    const Graph g = ring_model();
    // x's copies not issued: the walk reads shared memory no copy wrote.
    CHECK_THROWS_WITH(run_mutant(g, ring_schedule(g), "anvil_gemv_stage_x(p, A, (TA*)xs);", ""),
                      Catch::Contains("a gemv tile") && Catch::Contains("which no thread wrote since the task began"));
    // The first stage's wait for every group (x's is the newest), only for
    // the ring's: x's copies have not landed.
    CHECK_THROWS_WITH(run_mutant(g, ring_schedule(g), "if (XS && s == 0 && fixed) anvil_stage_wait<0>();",
                                 "if (false) anvil_stage_wait<0>();"),
                      Catch::Contains("a gemv tile") && Catch::Contains("cp.async"));
}

namespace {

// A block's queue of ring GEMVs (one persistent block, so one simt worker
// plays it as the GPU would): y's 6 tiles of a bf16 [600, 88] weight (rows
// 16-byte aligned, the last tile half full) stream 3 stages each (256 k
// rows of a 16-column slice per stage), each walk handing its freed slots to
// the next tile's first stages, the last to z's first tile (another
// variant: 32 columns, K = 88, one stage), whose walks are too short to
// hand on.
Graph handoff_model() {
    return infer_shapes(build_graph(load_model_from_string(R"(anvil: 1
name: handoff
dtype: bf16
seed: 9
inputs:
  - {name: x, shape: [1, 600], dtype: f32}
params:
  - {name: w1, shape: [600, 88]}
  - {name: w2, shape: [88, 56]}
nodes:
  - {name: y, op: matmul, inputs: [x, w1]}
  - {name: z, op: matmul, inputs: [y, w2]}
outputs: [z]
)",
                                                           "handoff.yaml")));
}

Schedule handoff_schedule(const Graph& g) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops) op = as_gemv(op, op.name == "y" ? 16 : 32);
    return persistent_schedule("one_block", tg, default_gpu(), round_robin_order(tg, 1), 1);
}

}  // namespace

TEST_CASE("simt mutations: a GEMV walk hands its ring to the block's next task", "[simt][mutation][gemv]") {
    const Graph g = handoff_model();
    CHECK(matches_reference(g, run_simt(handoff_schedule(g), make_values(g, std::nullopt))));
    // The next task's first stages not issued by the walk before it: the
    // next task reads slots no copy of its own wrote.
    CHECK_THROWS_WITH(run_mutant(g, handoff_schedule(g),
                                 "else if (hand_on && j - stages < next_stages) anvil_ring_issue(ring->next, j - stages, (slot0 + j) % S);",
                                 ""),
                      Catch::Contains("a gemv tile") && Catch::Contains("which no thread wrote since the task began"));
    // The next task starting its stream at slot 0, not where the walk left
    // it (slot 3): its first two stages read slots 0 and 1, which hold its
    // second and third (landed: the wait for its staged x waits for every
    // group), its third slot 2, which no copy wrote.
    CHECK_THROWS_WITH(run_mutant(g, handoff_schedule(g), "ring->slot = (slot0 + stages) % S;", "ring->slot = 0;"),
                      Catch::Contains("(rop 'y' tile 1), a gemv tile") &&
                          Catch::Contains("read byte " + std::to_string(2 * ANVIL_GEMV_STAGE_BYTES) +
                                          " of shared region 'smem', which no thread wrote since the task began"));
    // The copies in flight at the task's end not handed on.
    CHECK_THROWS_WITH(run_mutant(g, handoff_schedule(g), "if (ring.handed) anvil_cp_async_carry();", ""),
                      Catch::Contains("cp.async copies not waited for"));
}

TEST_CASE("the GEMV ring streams only an input's or param's B before the waits, a computed one after", "[simt][gemv]") {
    const Graph g = infer_shapes(build_graph(load_model_from_string(R"(anvil: 1
name: ring_b
dtype: bf16
seed: 6
inputs:
  - {name: x, shape: [1, 129]}
  - {name: v, shape: [129, 40]}
params:
  - {name: w, shape: [129, 40]}
nodes:
  - {name: e, op: exp, inputs: [v]}
  - {name: y, op: matmul, inputs: [x, w]}
  - {name: z, op: matmul, inputs: [x, v]}
  - {name: u, op: matmul, inputs: [x, e]}
outputs: [y, z, u]
)",
                                                                     "ring_b.yaml")));
    const Schedule s = plan(g, "anvil", default_gpu());
    for (const ROp& op : s.tiles.rops)
        if (const auto* p = std::get_if<MatmulParams>(&op.params)) {
            INFO(op.name);
            CHECK(p->b_fixed == (op.name != "u"));
        }
    HostRunOptions opt;
    opt.check_races = true;
    const TensorMap values = make_values(g, std::nullopt);
    for (const OutputCheck& c : check_outputs(g, run_simt(s, values, opt), reference_execute(g, values))) {
        INFO(c.name << ": " << c.rel_l2);
        CHECK(c.ok());
    }
}
