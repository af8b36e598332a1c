// The phase marks a GEMM's K loop leaves in its trace record
// (rtasks/trace_marks.cuh): on the host backend (the CUDA-core loops) and on
// simt (the tensor-core loops, matmul and conv2d, and the wgmma tile's),
// every GEMM task (and, on simt, every GEMV, whose ring walk the host does
// not take) has all three, in order, inside its body; every other task has
// none; the measured trace carries them as microseconds into the body.
// A traced megakernel's static shared memory is the untraced one's plus the
// marks' 16 bytes, within kMegakernelSmemExtra, for sm_90 and for the wgmma
// tile's sm_90a.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <string>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/verify_tile_graph.h"
#include "tools/report.h"

using namespace anvil;

namespace {

// A conv2d, a matmul with a ragged K (several slices), a batch-1 matmul (a
// GEMV: its B's rows 16-byte aligned, so it takes the ring off the host), a
// softmax and a relu: GEMM tasks of both kinds beside row and elementwise
// ones.
const char* kModel = R"(anvil: 1
name: trace_marks
dtype: {}
seed: 5
inputs:
  - {{name: x, shape: [1, 8, 9, 11]}}
  - {{name: a, shape: [33, 150]}}
  - {{name: v, shape: [1, 150]}}
params:
  - {{name: w, shape: [16, 8, 3, 3]}}
  - {{name: b, shape: [150, 40]}}
nodes:
  - {{name: c, op: conv2d, inputs: [x, w], padding: 1}}
  - {{name: y, op: relu, inputs: [c]}}
  - {{name: m, op: matmul, inputs: [a, b]}}
  - {{name: p, op: softmax, inputs: [m], axis: -1}}
  - {{name: g, op: matmul, inputs: [v, b]}}
outputs: [y, p, g]
)";

Graph model(DType dtype) {
    return infer_shapes(build_graph(load_model_from_string(fmt::format(kModel, dtype_name(dtype)), "trace_marks.yaml")));
}

bool is_gemv(const ROp& op) {
    const auto* p = std::get_if<MatmulParams>(&op.params);
    return p && p->algo == ANVIL_MM_GEMV;
}
// Whether `op`'s tasks mark their phases: a GEMM's K loop; a GEMV's ring
// walk, which simt and the GPU take (the host walks B directly).
bool marks_phases(const ROp& op, bool simt) {
    if (op.kind == TaskKind::conv2d) return true;
    return op.kind == TaskKind::matmul && (!is_gemv(op) || simt);
}

// Every marking task marked, in order, within its body; no other task
// marked. Returns how many marked tasks there were.
size_t check_marks(const Schedule& s, const std::vector<AnvilTraceRecord>& trace, bool simt) {
    REQUIRE(trace.size() == s.tasks.size());
    size_t gemms = 0;
    for (size_t t = 0; t < trace.size(); ++t) {
        const AnvilTraceRecord& r = trace[t];
        const ROp& op = s.tiles.rops[s.tasks[t].rop];
        CAPTURE(t, op.name);
        if (!marks_phases(op, simt)) {
            for (unsigned m : r.mark_ns) CHECK(m == ANVIL_NO_MARK);
            continue;
        }
        ++gemms;
        for (unsigned m : r.mark_ns) REQUIRE(m != ANVIL_NO_MARK);
        CHECK(r.mark_ns[ANVIL_MARK_STAGING] <= r.mark_ns[ANVIL_MARK_FIRST_SLICE]);
        CHECK(r.mark_ns[ANVIL_MARK_FIRST_SLICE] <= r.mark_ns[ANVIL_MARK_LOOP_END]);
        CHECK(r.start_ns + r.mark_ns[ANVIL_MARK_LOOP_END] <= r.body_end_ns);
    }
    return gemms;
}

std::vector<AnvilTraceRecord> traced_run(const Graph& g, const Schedule& s, bool simt) {
    const TensorMap values = make_values(g, std::nullopt);
    std::vector<AnvilTraceRecord> trace;
    HostRunOptions opt;
    opt.trace = &trace;
    test::expect_reference(g, values, simt ? run_simt(s, values, opt) : run_host(s, values, opt));
    return trace;
}

}  // namespace

TEST_CASE("trace marks: the CUDA-core GEMMs mark their phases on the host", "[trace][host]") {
    const Graph g = model(DType::f32);
    const Schedule s = plan(g, "anvil", default_gpu());
    const std::vector<AnvilTraceRecord> trace = traced_run(g, s, false);
    CHECK(check_marks(s, trace, false) >= 2);

    // The measured trace: a GEMM's phases as microseconds into its body, in order.
    const nlohmann::json j = nlohmann::json::parse(measured_trace_json(s, trace));
    size_t marked = 0;
    for (const auto& e : j["traceEvents"]) {
        if (e["ph"] != "X" || e["cat"] == "wait") continue;
        const auto& a = e["args"];
        const ROp& op = s.tiles.rops[s.tasks[a["task"].get<int>()].rop];
        CHECK(a.contains("loop_end_us") == marks_phases(op, false));
        if (!a.contains("loop_end_us")) continue;
        ++marked;
        CHECK(a["staging_us"].get<double>() <= a["first_slice_us"].get<double>());
        CHECK(a["first_slice_us"].get<double>() <= a["loop_end_us"].get<double>());
        CHECK(a["loop_end_us"].get<double>() <= e["dur"].get<double>() - a["publish_us"].get<double>() + 1e-9);
    }
    CHECK(marked >= 2);

    // A mark past the body's end is refused, not drawn.
    std::vector<AnvilTraceRecord> bad = trace;
    for (size_t t = 0; t < bad.size(); ++t)
        if (marks_phases(s.tiles.rops[s.tasks[t].rop], false)) {
            bad[t].mark_ns[ANVIL_MARK_LOOP_END] = static_cast<unsigned>(bad[t].body_end_ns - bad[t].start_ns + 1);
            break;
        }
    CHECK_THROWS_WITH(measured_trace_json(s, bad), Catch::Contains("body mark past its body's end"));
}

// Every matmul of `g` as a 128 x 64 x 64 wgmma tile in 3 stages, one launch per rOp.
Schedule on_wgmma_per_op(const Graph& g) {
    TileGraph tg = decompose(g);
    for (ROp& op : tg.rops)
        if (op.kind == TaskKind::matmul) op = on_wgmma(op, 64, 64, 3);
    REQUIRE(module_arch(tg, "sm_90") == "sm_90a");
    return launch_per_rop("per_op", tg, default_gpu(), "op_");
}

TEST_CASE("trace marks: the tensor-core GEMMs mark their phases on simt", "[trace][simt]") {
    const DType dtype = GENERATE(DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Graph g = model(dtype);
    const Schedule s = plan(g, "anvil", default_gpu());
    size_t on_tc = 0, gemvs = 0;
    for (const ROp& op : s.tiles.rops) {
        on_tc += computes_on_tensor_cores(op);
        gemvs += is_gemv(op);
    }
    REQUIRE(on_tc >= 2);  // the conv2d and the matmul
    REQUIRE(gemvs == 1);
    CHECK(check_marks(s, traced_run(g, s, true), true) >= 3);
    // The wgmma tile's K loop, inlined into the kernel.
    const Schedule w = on_wgmma_per_op(g);
    CHECK(check_marks(w, traced_run(g, w, true), true) >= 3);
}

TEST_CASE("trace marks: a traced megakernel's static shared memory stays within its allowance", "[trace][compile]") {
    // Each kernel traced and untraced: the marks' slot is the difference.
    auto check = [](const Schedule& s, const std::string& arch) {
        EmitOptions opt;
        opt.trace = true;
        const std::string traced = emit_source(s, opt);
        CHECK(traced.find("anvil_trace_mark(ANVIL_MARK_FIRST_SLICE)") != std::string::npos);
        const std::vector<KernelResources> plain = compile_nvrtc(emit_source(s), arch).kernels;
        const std::vector<KernelResources> marked = compile_nvrtc(traced, arch).kernels;
        REQUIRE(plain.size() == marked.size());
        REQUIRE(!plain.empty());
        for (size_t i = 0; i < plain.size(); ++i) {
            CAPTURE(arch, marked[i].name);
            CHECK(marked[i].smem_bytes == plain[i].smem_bytes + 4 * (1 + ANVIL_TRACE_MARKS));
            CHECK(marked[i].smem_bytes <= kMegakernelSmemExtra);
            CHECK(marked[i].spill_stores == 0);
        }
    };
    check(plan(model(DType::f16), "anvil", default_gpu()), "sm_90");
    // The wgmma tile inlines its K loop, marks included, into the kernel.
    check(on_wgmma_per_op(model(DType::f16)), "sm_90a");
}
