// The ONNX backend node tests shipped by Debian's libonnx-testdata, for every
// op the importer lowers: each test's model is imported, run on its inputs
// by the float64 reference and by the host backend, and compared with the
// outputs the ONNX project recorded. A test the importer cannot take must
// be refused cleanly (a UserError, exit 2 on the command line), never
// computed wrong.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "anvil/pipeline.h"
#include "onnx_import/onnx_file.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace anvil;

namespace {

const char* kNodeTests = "/usr/share/libonnx-testdata/data/node";

// The ops the importer computes on run-time tensors (lower.cpp), plus the
// shape ops that fold around them.
const std::set<std::string> kLowered = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Relu", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Neg",
    "Abs", "Reciprocal", "Identity", "Dropout", "Cast", "Clip", "HardSigmoid", "HardSwish", "Softmax",
    "LayerNormalization", "BatchNormalization", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool",
    "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "MatMul", "Gemm", "Flatten", "Reshape",
    "Squeeze", "Unsqueeze", "Transpose", "Concat", "Split", "Slice", "Gather", "Pad", "Expand", "Where", "Erf",
    "Shape", "Size", "Constant", "ConstantOfShape", "Range"};

onnx::TensorProto read_pb(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    onnx::TensorProto t;
    REQUIRE(t.ParseFromIstream(&in));
    return t;
}

struct Outcome {
    std::string name;
    enum { passed, refused, wrong, skipped } kind;
    std::string detail;
};

// The operands anvil takes only as constants (shapes, axes, indices, pads,
// bounds), which the node tests feed as graph inputs: bound to the test's
// values as initializers, as an exporter writes them.
bool constant_operand(const std::string& op, int k) {
    if (op == "ConstantOfShape" || op == "Range") return true;  // folded whole: a constant output
    if (k == 0) return op == "Where";
    static const std::set<std::string> ops = {"Reshape", "Expand", "Slice", "Pad", "Split", "Squeeze", "Unsqueeze",
                                              "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "Gather", "Clip",
                                              "Where", "Gemm"};
    return ops.count(op) != 0;
}

// The model with those operands turned into initializers, written to `out`;
// the positions (among the graph's inputs) that stay inputs.
std::vector<int> bind_constant_operands(const fs::path& dir, const std::string& out) {
    onnx::ModelProto m = read_onnx_model((dir / "model.onnx").string());
    std::set<std::string> bind;
    for (const auto& n : m.graph().node())
        for (int k = 0; k < n.input_size(); ++k)
            if (constant_operand(n.op_type(), k) && !(n.op_type() == "Gemm" && k != 2)) bind.insert(n.input(k));
    std::vector<int> kept;
    onnx::GraphProto* g = m.mutable_graph();
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> inputs;
    for (int k = 0; k < g->input_size(); ++k) {
        if (bind.count(g->input(k).name())) {
            onnx::TensorProto t = read_pb(dir / "test_data_set_0" / fmt::format("input_{}.pb", k));
            t.set_name(g->input(k).name());
            *g->add_initializer() = t;
        } else {
            *inputs.Add() = g->input(k);
            kept.push_back(k);
        }
    }
    g->mutable_input()->Swap(&inputs);
    std::ofstream(out, std::ios::binary) << m.SerializeAsString();
    return kept;
}

Outcome run_node_test(const fs::path& dir, const std::string& scratch) {
    const std::string name = dir.filename().string();
    const std::string model = scratch + "/" + name + ".onnx";
    const std::vector<int> kept = bind_constant_operands(dir, model);
    Compilation c = from_model(model);
    try {
        run_to(c, Stage::shapes, PipelineOptions{});
    } catch (const UserError& e) {
        return {name, Outcome::refused, e.what()};
    }
    const Graph& g = *c.graph;
    TensorMap values = make_values(g, std::nullopt);
    const fs::path data = dir / "test_data_set_0";
    REQUIRE(kept.size() == c.model->inputs.size());
    const onnx::ModelProto declared = read_onnx_model((dir / "model.onnx").string());
    for (size_t k = 0; k < c.model->inputs.size(); ++k) {
        const onnx::TensorProto pb = read_pb(data / fmt::format("input_{}.pb", kept[k]));
        if (pb.data_type() != declared.graph().input(kept[k]).type().tensor_type().elem_type())
            return {name, Outcome::skipped, fmt::format("input {}'s data is not of its declared type", k)};
        const ConstTensor t = tensor_values(pb, model, "input");
        HostTensor& h = values.at(c.model->inputs[k].name);
        if (h.numel() != t.numel())  // a few tests' data disagree with their declared shapes
            return {name, Outcome::skipped, fmt::format("input {} holds {} values for shape {}", k, t.numel(), shape_str(h.shape))};
        for (int64_t i = 0; i < t.numel(); ++i) h.set(i, t.v[i]);
    }
    const auto ref = reference_execute(g, values);
    const TensorMap host = run_host(plan(g, "anvil", default_gpu()), values);
    for (size_t k = 0; k < c.model->outputs.size(); ++k) {
        const ConstTensor want = tensor_values(read_pb(data / fmt::format("output_{}.pb", k)), model, "output");
        const std::string& out = c.model->outputs[k];
        const RefTensor& got = ref.at(out);
        if (got.shape != want.shape)
            return {name, Outcome::wrong, fmt::format("output {} is {}, want {}", k, shape_str(got.shape), shape_str(want.shape))};
        // Non-finite expected values (casts of inf, NaN) must be matched exactly; the rest by L2.
        std::vector<double> g_ref, g_host, w;
        const std::vector<double> h = host.at(out).to_doubles();
        for (size_t i = 0; i < want.v.size(); ++i) {
            if (std::isfinite(want.v[i])) {
                g_ref.push_back(got.data[i]), g_host.push_back(h[i]), w.push_back(want.v[i]);
                continue;
            }
            auto same = [&](double x) { return std::isnan(want.v[i]) ? std::isnan(x) : x == want.v[i]; };
            if (!same(got.data[i]) || !same(h[i]))
                return {name, Outcome::wrong, fmt::format("output {}[{}] is {} (host {}), want {}", k, i, got.data[i], h[i], want.v[i])};
        }
        const double err = relative_l2_error(g_ref, w);
        const double host_err = relative_l2_error(g_host, w);
        if (!(err <= 1e-5) || !(host_err <= 1e-4))
            return {name, Outcome::wrong, fmt::format("output {}: reference off by {:.3e}, host by {:.3e}", k, err, host_err)};
    }
    return {name, Outcome::passed, ""};
}

}  // namespace

TEST_CASE("onnx node tests: every supported op matches the recorded outputs or is refused cleanly", "[onnx][slow]") {
    if (!fs::is_directory(kNodeTests)) {
        WARN("skipped: " << kNodeTests << " is missing (apt-get install libonnx-testdata)");
        return;
    }
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(kNodeTests)) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    std::vector<Outcome> outcomes;
    const test::TempDir scratch;
    for (const fs::path& dir : dirs) {
        const onnx::ModelProto m = read_onnx_model((dir / "model.onnx").string());
        bool ours = m.graph().node_size() > 0;
        for (const auto& n : m.graph().node()) ours = ours && kLowered.count(n.op_type()) && n.domain().empty();
        if (!ours) continue;
        outcomes.push_back(run_node_test(dir, scratch.path.string()));
    }
    int passed = 0, refused = 0;
    for (const Outcome& o : outcomes) {
        if (o.kind == Outcome::passed) ++passed;
        if (o.kind == Outcome::refused) {
            ++refused;
            UNSCOPED_INFO("refused " << o.name << ": " << o.detail);
        }
        INFO(o.name << ": " << o.detail);
        CHECK(o.kind != Outcome::wrong);
    }
    WARN(fmt::format("onnx node tests of supported ops: {} passed, {} refused cleanly, of {}", passed, refused,
                     outcomes.size()));
    CHECK(passed >= 250);  // 260 when written: a drop is a regression
}
