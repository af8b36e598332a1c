// Straight-line epilogues (src/codegen/epilogue_text.cpp): fused rOps run
// their epilogue programs as generated functions with static dtypes and
// constant index math, the interpreter only beyond the emitter's limit;
// every mix computes what the reference does on the host and simt
// backends, and index math is 32-bit exactly where every offset fits.
#include <catch2/catch.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "codegen/epilogue_text.h"
#include "graph_builder.h"
#include "run_checks.h"
#include "runtime/simt_backend.h"
#include "schedule/cost_model.h"
#include "tile/epilogue_plan.h"

using namespace anvil;
using namespace anvil::test;

namespace {

// Epilogues with broadcast, transposed and mixed-dtype inputs and
// transcendental steps: x @ w + bias (f16), gelu, * a column scale, + a
// transposed residual (bf16); a conv + per-channel mul + sigmoid + residual.
Graph epilogue_zoo() {
    GraphBuilder b;
    b.input("x", {19, 23});
    b.param("w", {23, 29});
    b.input("bias", {29}, DType::f16);
    b.param("col", {19, 1});
    b.input("rt", {29, 19}, DType::bf16);
    b.node("h", Op::matmul, {"x", "w"});
    b.node("a", Op::add, {"h", "bias"});
    b.node("g", Op::gelu, {"a"});
    b.node("m", Op::mul, {"g", "col"});
    b.node("t", Op::transpose, {"rt"}, {{"perm", L({1, 0})}});
    b.node("y", Op::add, {"m", "t"});
    b.input("img", {2, 3, 7, 6});
    b.param("cw", {5, 3, 3, 3});
    b.input("sc", {1, 5, 1, 6});
    b.node("c", Op::conv2d, {"img", "cw"}, {{"padding", L({1})}});
    b.node("cs", Op::mul, {"c", "sc"});
    b.node("sg", Op::sigmoid, {"cs"});
    b.node("z", Op::sub, {"sg", "c2"});
    b.param("cw2", {5, 3, 1, 1});
    b.node("c2", Op::conv2d, {"img", "cw2"});
    b.output("y").output("z");
    Graph g = infer_shapes(b.graph());
    for (const char* n : {"x", "rt", "img", "sc"}) set_init(g, n, InitKind::normal, 1.0);
    for (const char* n : {"w", "cw", "cw2"}) set_init(g, n, InitKind::normal, 0.3);
    set_init(g, "bias", InitKind::uniform, -1.0, 1.0);
    set_init(g, "col", InitKind::uniform, -2.0, 2.0);
    return g;
}

TensorMap run_with_limit(const Schedule& s, const TensorMap& values, int limit, bool simt, std::string* source) {
    Compilation c = from_schedule(s);
    PipelineOptions p;
    p.emit.simt = simt;
    p.emit.max_straight_epilogues = limit;
    run_to(c, Stage::compile, p);
    if (source) *source = c.source;
    HostRunOptions opt;
    opt.simt = simt;
    opt.simt_checks = simt;
    return run_host(s, *c.host_library, values, opt);
}

int count(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("straight-line epilogues: by default, with the interpreter as fallback, and mixed", "[epilogue]") {
    const Graph g = epilogue_zoo();
    const TensorMap values = make_values(g, std::nullopt);
    for (const char* policy : {"anvil", "welder"}) {
        const Schedule s = plan(g, policy, default_gpu());
        const size_t programs = distinct_epilogues(s.tiles);
        REQUIRE(programs >= 2);
        for (int limit : {kMaxStraightLineEpilogues, 1, 0}) {
            for (bool simt : {false, true}) {
                INFO("policy " << policy << ", limit " << limit << (simt ? ", simt" : ", host"));
                std::string src;
                expect_reference(g, values, run_with_limit(s, values, limit, simt, &src), 2);
                // One function per program up to the limit; the dispatcher names each once.
                const int written = std::min<int>(limit, static_cast<int>(programs));
                CHECK(count(src, "(float* v, const anvil_i64* at_, unsigned mask, char* arena)") == written);
                CHECK(count(src, "<N>(v, at, mask, arena); return;") == written);
                // The interpreter is in the call graph only when an entry needs it
                // (its registers would stack on a GEMM tile's accumulators).
                CHECK(count(src, "v[l] = anvil_epilogue_interpret(") == (written < static_cast<int>(programs) ? 1 : 0));
            }
        }
    }
}

TEST_CASE("straight-line epilogues: 32-bit index math exactly when every offset fits", "[epilogue]") {
    // One broadcast input over the output's rows: [rows, 3] with strides {1, 0}.
    auto epilogue = [](int64_t rows) {
        AnvilEpilogue e{};
        e.nsteps = 1;
        e.ninputs = 1;
        e.rank = 2;
        e.shape[0] = rows;
        e.shape[1] = 3;
        e.in_dtype[0] = ANVIL_DT_F16;
        e.in_off[0] = 4096;
        e.in_stride[0][0] = 1;
        e.in_stride[0][1] = 0;
        e.steps[0] = AnvilEpiStep{ANVIL_EW_MUL, ANVIL_EPI_VALUE(0), ANVIL_EPI_INPUT(0), 0.0f};
        return e;
    };
    const int64_t fits = INT32_MAX / 3;  // rows * 3 <= 2^31 - 1
    CHECK(epilogue_fits_32bit(epilogue(fits)));
    CHECK(!epilogue_fits_32bit(epilogue(fits + 1)));  // 2^31 + 1 elements
    // An input whose own offsets overflow although the output fits: stride 2^30 over 3 rows.
    AnvilEpilogue wide = epilogue(3);
    wide.in_stride[0][0] = int64_t{1} << 30;
    CHECK(!epilogue_fits_32bit(wide));

    const std::string small = straight_line_epilogues({AnvilEpilogue{}, epilogue(fits)}, 8);
    CHECK(small.find("const unsigned at = (unsigned)at_[l];") != std::string::npos);
    CHECK(small.find("const unsigned i0 = at / 3u;") != std::string::npos);
    CHECK(small.find("(const anvil_f16*)(arena + 4096) + (i0)") != std::string::npos);
    const std::string big = straight_line_epilogues({AnvilEpilogue{}, epilogue(fits + 1)}, 8);
    CHECK(big.find("const anvil_i64 at = (anvil_i64)at_[l];") != std::string::npos);
    CHECK(big.find("const anvil_i64 i0 = at / 3;") != std::string::npos);
    CHECK(big.find("unsigned at") == std::string::npos);
    CHECK(big.find("unsigned i0") == std::string::npos);
}

TEST_CASE("straight-line epilogues: the cost model charges interpreted epilogues more", "[epilogue]") {
    AnvilEpilogue e{};
    e.nsteps = 6;
    e.ninputs = 4;
    e.rank = 4;
    const double straight = epilogue_instructions_per_value(e, true);
    const double interpreted = epilogue_instructions_per_value(e, false);
    CHECK(straight > 0);
    CHECK(interpreted > 5 * straight);
    CHECK(epilogue_instructions_per_value(AnvilEpilogue{}, false) == 0);
}

TEST_CASE("straight-line epilogues: anvil run with and without --interpret-epilogues, timed by --repeat", "[epilogue][cli]") {
    for (const char* flags : {"", " --interpret-epilogues", " --no-fold --interpret-epilogues"}) {
        INFO("flags '" << flags << "'");
        const CmdResult r = run_anvil(std::string("run models/resnet18_small.yaml --backend host --repeat 2") + flags);
        INFO(r.output);
        CHECK(r.status == 0);
        CHECK(r.output.find("run time    median") != std::string::npos);
        CHECK(r.output.find("of 2 runs") != std::string::npos);
        CHECK(r.output.find(") ok") != std::string::npos);
        CHECK(r.output.find("FAILED") == std::string::npos);
    }
}

TEST_CASE("straight-line epilogues: the prediction charges each fused rOp its epilogue per stored value", "[epilogue]") {
    const Graph g = epilogue_zoo();
    const Schedule s = plan(g, "anvil", default_gpu());
    const Prediction p = predict(s);
    int with = 0;
    for (size_t r = 0; r < s.tiles.rops.size(); ++r) {
        const ROp& op = s.tiles.rops[r];
        INFO("rOp " << op.name);
        const double values = static_cast<double>(numel(s.tiles.buffers[op.node].shape));
        const double want = values * (epilogue_instructions_per_value(op.epilogue, true) +
                                      epilogue_instructions_per_value(op.row_epilogue, true));
        CHECK(p.rops[r].epilogue_instructions == Approx(want));
        with += want > 0;
    }
    CHECK(with >= 2);
}
