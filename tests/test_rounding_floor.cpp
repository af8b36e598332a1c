// `run` judges an output beyond its dtype's tolerance against the model's
// own rounding floor (its intermediates rounded to their storage type), so
// an ill-conditioned model computed correctly passes, and a wrong result
// still fails.
#include <catch2/catch.hpp>

#include "anvil/pipeline.h"
#include "anvil_cmd.h"
#include "frontend/graph.h"
#include "frontend/load_model.h"
#include "frontend/infer_shapes.h"
#include "temp_dir.h"

using namespace anvil;
using namespace anvil::test;
using Catch::Matchers::Contains;

namespace {

// (x + 1e4) - 1e4 in f32: storing x + 1e4 keeps about 3 of x's decimal digits.
const char* kCancelling = R"(anvil: 1
name: cancel
inputs: [{name: x, shape: [256]}]
nodes:
  - {name: big, op: constant, value: 10000.0}
  - {name: up, op: add, inputs: [x, big]}
  - {name: y, op: sub, inputs: [up, big]}
outputs: [y]
)";

}  // namespace

TEST_CASE("run accepts an error within a small multiple of the model's rounding floor, printing both", "[checks]") {
    TempDir dir;
    const CmdResult r = run_anvil("run " + dir.write("cancel.yaml", kCancelling) + " --backend host");
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Contains("rounding floor"));
    CHECK_THAT(r.output, Contains("tolerance 1e-04"));
}

TEST_CASE("the rounding floor does not excuse a wrong result", "[checks]") {
    const Graph g = infer_shapes(build_graph(load_model_from_string(kCancelling, "cancel.yaml")));
    const TensorMap values = make_values(g, std::nullopt);
    const auto reference = reference_execute(g, values);
    // The right answer rounded as the device stores it passes; the same
    // off by 1% fails although the floor is large.
    const auto rounded = reference_execute_rounded(g, values);
    TensorMap good, bad;
    good.emplace("y", HostTensor(DType::f32, {256}));
    bad.emplace("y", HostTensor(DType::f32, {256}));
    for (int64_t i = 0; i < 256; ++i) {
        good.at("y").set(i, rounded.at("y").data[i]);
        bad.at("y").set(i, reference.at("y").data[i] * 1.01);
    }
    const OutputCheck ok = check_outputs(g, good, reference, &values).at(0);
    INFO("floor " << ok.floor << ", error " << ok.rel_l2);
    CHECK(!ok.within_tolerance());
    CHECK(ok.floor > 1e-4);
    CHECK(ok.ok());
    const OutputCheck wrong = check_outputs(g, bad, reference, &values).at(0);
    CHECK(!wrong.ok());
    // Without the run's values no floor is estimated: the dtype's tolerance alone.
    CHECK(!check_outputs(g, good, reference).at(0).ok());
}
