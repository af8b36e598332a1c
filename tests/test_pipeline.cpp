// The one pipeline: its stages in order, the hook, and the text dumps of
// each stage's value (in process and through `anvil schedule --dump-after`).
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <regex>
#include <sstream>
#include <sys/wait.h>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/concat_siblings.h"
#include "frontend/transpose_views.h"
#include "frontend/values.h"
#include "pipeline/dump.h"
#include "run_checks.h"
#include "temp_dir.h"
#include "schedule/builders.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"

using namespace anvil;

namespace {

using Result = test::CmdResult;
Result anvil_cmd(const std::string& args) { return test::run_anvil(args); }

std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
    std::vector<std::string> r;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(prefix, 0) == 0) r.push_back(line);
    return r;
}

std::string model(const std::string& name) { return std::string(ANVIL_SOURCE_DIR) + "/models/" + name; }

}  // namespace

TEST_CASE("the pipeline runs every stage in order, calling the hook after each", "[pipeline]") {
    std::vector<Stage> seen;
    PipelineOptions opt;
    opt.gpu = find_gpu("h100_sxm");
    opt.hook = [&](Stage s, const Compilation& c) {
        seen.push_back(s);
        CHECK(c.done == s);
        return true;
    };
    Compilation c = from_model(model("mlp_f32.yaml"));
    run_to(c, Stage::compile, opt);
    CHECK(seen == all_stages());
    CHECK(c.model);
    CHECK(c.graph);
    CHECK(c.tiles);
    CHECK(c.candidates.size() == 2);  // anvil places two sets of tile shapes
    REQUIRE(c.schedule);
    CHECK(c.schedule->policy == "anvil");
    CHECK_THAT(c.source, Catch::Contains("anvil_host_worker"));
    CHECK(c.host_library);
    CHECK(!c.cubin);
    // The compiled library runs, and its outputs match the reference.
    const TensorMap values = make_values(*c.graph, std::nullopt);
    test::expect_reference(*c.graph, values, run_host(*c.schedule, *c.host_library, values));
}

TEST_CASE("a hook returning false stops the pipeline, and run_to goes on from there", "[pipeline]") {
    PipelineOptions opt;
    opt.gpu = find_gpu("h100_sxm");
    int calls = 0;
    opt.hook = [&](Stage s, const Compilation&) {
        ++calls;
        return s != Stage::decompose;
    };
    Compilation c = from_model(model("mlp_f32.yaml"));
    run_to(c, Stage::verify, opt);
    CHECK(c.stopped);
    CHECK(c.done == Stage::decompose);
    CHECK(calls == 5);  // load, graph, shapes, fold, decompose
    CHECK(c.tiles);
    CHECK(!c.schedule);
    run_to(c, Stage::verify, opt);
    CHECK(!c.stopped);
    CHECK(c.done == Stage::verify);
    CHECK(calls == 9);
    CHECK(c.schedule);
}

TEST_CASE("an unknown policy is refused before any stage runs", "[pipeline]") {
    PipelineOptions opt;
    opt.policy = "fastest";
    int calls = 0;
    opt.hook = [&](Stage, const Compilation&) { return ++calls > 0; };
    Compilation c = from_model(model("mlp_f32.yaml"));
    CHECK_THROWS_WITH(run_to(c, Stage::policy, opt), Catch::Contains("unknown policy 'fastest'"));
    CHECK(calls == 0);
    // Stages before the policy's need no policy.
    run_to(c, Stage::decompose, opt);
    CHECK(calls == 5);
}

TEST_CASE("the pipeline runs a policy's declared front stages: welder fused, tiles fastest alone, split-K",
          "[pipeline]") {
    const Gpu gpu = find_gpu("h100_sxm");
    const Graph g = load_graph(model("transformer_encoder_f32.yaml"));
    // A row op joins its matmul where the cost model finds that no slower.
    FusionOptions fusion;
    fusion.row_fusion_pays = [&](const ROp& fused, const ROp& matmul, const ROp& row) {
        return row_fusion_times(fused, matmul, row, gpu, true).pays();
    };
    TileGraph tg = fuse(decompose(transpose_views(concat_sibling_matmuls(g))), gpu, fusion);  // the fold stage's passes that apply here
    for (ROp& op : tg.rops) op = fastest_alone(op, gpu, gpu.sm_count);
    const Schedule by_hand = launch_per_rop("welder", apply_split_k(tg, gpu), gpu, "anvil_group_");
    const Schedule piped = plan(g, "welder", gpu);
    CHECK(piped.tiles.rops.size() < decompose(g).rops.size());
    CHECK(emit_source(piped) == emit_source(by_hand));
}

TEST_CASE("stage names round-trip, and an unknown one lists the valid names", "[pipeline]") {
    for (Stage s : all_stages()) CHECK(stage_named(stage_name(s)) == s);
    try {
        stage_named("lower");
        FAIL("no error");
    } catch (const UserError& e) {
        for (Stage s : all_stages()) CHECK_THAT(e.what(), Catch::Contains(stage_name(s)));
    }
}

TEST_CASE("an epilogue prints as the program its steps encode", "[pipeline][dump]") {
    AnvilEpilogue e{};
    e.nsteps = 3;
    e.ninputs = 1;
    e.steps[0] = {ANVIL_EW_ADD, ANVIL_EPI_VALUE(0), ANVIL_EPI_INPUT(0), 0.0f};
    e.steps[1] = {ANVIL_EW_GELU, ANVIL_EPI_VALUE(1), ANVIL_EPI_NONE, 0.0f};
    e.steps[2] = {ANVIL_EW_MUL, ANVIL_EPI_VALUE(2), ANVIL_EPI_SCALAR, 0.5f};
    CHECK(epilogue_program(e) == "v1 = v0 + in0; v2 = gelu(v1); v3 = v2 * 0.5");
    CHECK(epilogue_program(AnvilEpilogue{}).empty());
}

TEST_CASE("schedule --dump-after fuse shows the transformer's FFN matmul with gelu in its epilogue", "[cli][dump]") {
    const Result fused = anvil_cmd("schedule models/transformer_encoder_f32.yaml --dump-after fuse");
    INFO(fused.output);
    REQUIRE(fused.status == 0);
    CHECK_THAT(fused.output, Catch::StartsWith("tile graph transformer_encoder_f32:"));
    CHECK_THAT(fused.output, !Catch::Contains("time "));  // the dump only: the pipeline stopped there
    const std::regex ffn(R"(kind matmul, variant anvil_matmul_tile<[^>]*>, tiles \d+, fusion registers, )"
                         R"(fused \[[^\]]+\], epilogue \{v1 = v0 \+ in0; v2 = gelu\w*\(v1\)\} \(in0 = \w+\))");
    size_t with_gelu = 0;
    for (const std::string& line : lines_starting(fused.output, "  rop "))
        if (std::regex_search(line, ffn)) ++with_gelu;
    CHECK(with_gelu == 1);
    // Softmax joins its matmul in shared memory.
    CHECK_THAT(fused.output, Catch::Contains("fusion shared") && Catch::Contains("row op softmax"));

    // Before fusion no rOp has an epilogue, and there are more of them.
    const Result plain = anvil_cmd("schedule models/transformer_encoder_f32.yaml --dump-after decompose");
    REQUIRE(plain.status == 0);
    CHECK_THAT(plain.output, !Catch::Contains("epilogue") && !Catch::Contains("fused ["));
    CHECK(lines_starting(plain.output, "  rop ").size() > lines_starting(fused.output, "  rop ").size());

    // per_op does not fuse: its fuse stage leaves the tile graph as decompose made it.
    const Result per_op = anvil_cmd("schedule models/transformer_encoder_f32.yaml --policy per_op --dump-after fuse");
    REQUIRE(per_op.status == 0);
    CHECK(per_op.output == plain.output);
}

TEST_CASE("schedule --dump-after policy: per_op has one launch per rOp", "[cli][dump]") {
    const Result r = anvil_cmd("schedule models/mlp_f32.yaml --policy per_op --dump-after policy");
    INFO(r.output);
    REQUIRE(r.status == 0);
    const auto launches = lines_starting(r.output, "  launch ");
    const auto rops = lines_starting(r.output, "  rop ");
    REQUIRE(rops.size() == 5);
    CHECK(launches.size() == rops.size());
    CHECK_THAT(r.output, Catch::Contains("launches 5, ") && Catch::Contains("dependencies 0,"));
    for (size_t i = 0; i < rops.size(); ++i) CHECK_THAT(rops[i], Catch::Contains(fmt::format(", launch {}, ", i)));

    // anvil: one persistent launch holds every rOp.
    const Result mk = anvil_cmd("schedule models/mlp_f32.yaml --dump-after verify");
    REQUIRE(mk.status == 0);
    CHECK(lines_starting(mk.output, "  launch ").size() == 1);
    for (const std::string& line : lines_starting(mk.output, "  rop ")) CHECK_THAT(line, Catch::Contains(", launch 0, "));
}

TEST_CASE("schedule --dump-after graph and shapes list every tensor with its op, operands, dtype and shape", "[cli][dump]") {
    const Result g = anvil_cmd("schedule models/mlp_f32.yaml --dump-after graph");
    INFO(g.output);
    REQUIRE(g.status == 0);
    CHECK_THAT(g.output, Catch::Contains("graph mlp_f32: 10 tensors (1 inputs, 4 params, 5 nodes)"));
    CHECK_THAT(g.output, Catch::Contains("  input  x : f32 [4, 512]"));
    CHECK_THAT(g.output, Catch::Contains("  node   h = matmul(x, w1) {transpose_a: false, transpose_b: false} : ? ?"));
    CHECK_THAT(g.output, Catch::Contains("  node   hb = add(h, b1) : ? ?"));
    const Result s = anvil_cmd("schedule models/mlp_f32.yaml --dump-after shapes");
    REQUIRE(s.status == 0);
    CHECK_THAT(s.output, Catch::Contains("  node   h = matmul(x, w1) {transpose_a: false, transpose_b: false} : f32 "
                                         "[4, 1000]"));
    CHECK_THAT(s.output, Catch::Contains("  node   y = add(y0, b2) : f32 [4, 256]"));
    CHECK_THAT(s.output, Catch::EndsWith("  outputs y\n"));
}

TEST_CASE("schedule --dump-after an unknown stage is a usage error naming the stages", "[cli][dump]") {
    const Result r = anvil_cmd("schedule models/mlp_f32.yaml --dump-after lower");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Catch::Contains("unknown stage 'lower'"));
    for (Stage s : all_stages()) CHECK_THAT(r.output, Catch::Contains(stage_name(s)));
}

TEST_CASE("schedule times every stage of the pipeline, in order", "[cli]") {
    test::TempDir dir;
    const Result r = anvil_cmd("schedule models/mlp_f32.yaml --emit " + dir.file("mlp.cu"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.output, Catch::Contains("time        load ") &&
                             Catch::Contains("decompose ") && Catch::Contains(", fuse ") &&
                             Catch::Contains(", variants ") && Catch::Contains(", policy ") &&
                             Catch::Contains(", verify ") && Catch::Contains(", predict ") &&
                             Catch::Contains(", emit ") && Catch::Contains("(total "));
    CHECK(r.output.find(", verify ") < r.output.find(", predict "));
    CHECK(r.output.find(", predict ") < r.output.find(", emit "));
}
