// The ONNX importer through the command line: models built here, every
// refusal a clean exit 2 naming the file and the ONNX node (name and op
// type), patterns recognised by their numbers, import to YAML.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <tuple>

#include "anvil_cmd.h"
#include "frontend/npy.h"
#include "onnx_builder.h"
#include "temp_dir.h"

using namespace anvil::test;
using Catch::Matchers::Contains;
using anvil::Shape;
namespace fs = std::filesystem;

namespace {

// y = relu(x @ w + b): a model every case below varies.
OnnxBuilder small_mlp() {
    OnnxBuilder b;
    b.input("x", {2, 4});
    b.init("w", {4, 3}, {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f, -0.9f, 1.0f, 1.1f, 1.2f});
    b.init("bias", {3}, {0.01f, 0.02f, -0.03f});
    b.node("MatMul", {"x", "w"}, {"h"}, "fc");
    b.node("Add", {"h", "bias"}, {"hb"}, "fc_bias");
    b.node("Relu", {"hb"}, {"y"}, "act");
    b.output("y");
    return b;
}

void expect_refusal(const std::string& args, const std::string& path, const std::vector<std::string>& parts) {
    const CmdResult r = run_anvil(args);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(r.signal == 0);
    CHECK_THAT(r.output, Contains(path));
    for (const std::string& p : parts) CHECK_THAT(r.output, Contains(p));
}

}  // namespace

TEST_CASE("onnx: a model runs from the .onnx file and imports to a YAML that runs the same", "[onnx]") {
    TempDir dir;
    const std::string model = small_mlp().save(dir.file("mlp.onnx"));
    CmdResult r = run_anvil("run " + model + " --backend host --save-io " + dir.file("io"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.output, Contains("output y"));
    fs::create_directories(dir.file("out"));
    r = run_anvil("import " + model + " -o " + dir.file("out/mlp.yaml"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(fs::exists(dir.file("out/mlp/w.npy")));
    r = run_anvil("run " + dir.file("out/mlp.yaml") + " --backend host --inputs " + dir.file("io/inputs") +
                  " --save-io " + dir.file("io2"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    std::ifstream a(dir.file("io/outputs/y.npy"), std::ios::binary), b(dir.file("io2/outputs/y.npy"), std::ios::binary);
    CHECK(std::string(std::istreambuf_iterator<char>(a), {}) == std::string(std::istreambuf_iterator<char>(b), {}));
    // Every other command takes it too.
    for (const char* cmd : {"check", "schedule"}) {
        r = run_anvil(std::string(cmd) + " " + model);
        INFO(r.output);
        CHECK(r.status == 0);
    }
}

TEST_CASE("onnx: a binary file under a YAML name is named as such, an ONNX one is read", "[onnx][hostile]") {
    TempDir dir;
    expect_refusal("run " + dir.write("weights.yaml", std::string("\x93NUMPY\x01\x00garbage", 14)),
                   dir.file("weights.yaml"), {"binary data", "not YAML text"});
    // The case: an ONNX model whatever its name.
    const std::string renamed = small_mlp().save(dir.file("model.yaml"));
    const CmdResult r = run_anvil("check " + renamed);
    INFO(r.output);
    CHECK(r.status == 0);
}

TEST_CASE("onnx: malformed and truncated files are refused", "[onnx][hostile]") {
    TempDir dir;
    expect_refusal("check " + dir.write("junk.onnx", "this is not a protobuf \xff\xff\xff\xff"), dir.file("junk.onnx"),
                   {"not a valid ONNX model"});
    const std::string full = small_mlp().bytes();
    for (size_t cut : {full.size() / 3, full.size() / 2, full.size() - 5}) {
        const std::string path = dir.write("cut" + std::to_string(cut) + ".onnx", full.substr(0, cut));
        const CmdResult r = run_anvil("check " + path);
        INFO(r.output);
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Contains(path));
    }
    expect_refusal("check " + dir.write("empty.onnx", ""), dir.file("empty.onnx"), {"no graph"});
    {  // A node without outputs (libFuzzer: protobuf's CHECK, exit 3, once the importer read output 0).
        OnnxBuilder b = small_mlp();
        b.node("Relu", {"y"}, {}, "outless");
        expect_refusal("check " + b.save(dir.file("outless.onnx")), dir.file("outless.onnx"),
                       {"node 'outless' (Relu)", "has no outputs (a malformed model)"});
    }
    // Not a regular file: refused at once, never opened (a FIFO would block).
    const std::string fifo = dir.file("fifo.onnx");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    expect_refusal("check " + fifo, fifo, {"FIFO, not a regular file"});
}

// One refused model: its file stem, how it is built, and what the refusal
// must say besides the file's path.
struct Refusal {
    std::string name;
    std::function<OnnxBuilder()> model;
    std::vector<std::string> says;
};

// One model x -> `op` -> y with `inputs` (x first) and every output of
// `outputs` a graph output; attributes set by `attrs`.
OnnxBuilder one_node(const std::string& op, std::vector<int64_t> x, const std::vector<std::string>& outputs,
                     const std::function<void(OnnxBuilder&, onnx::NodeProto*)>& attrs = {},
                     std::vector<std::string> inputs = {"x"}) {
    OnnxBuilder b;
    b.input("x", std::move(x));
    auto* n = b.node(op, inputs, outputs, "the_" + op);
    if (attrs) attrs(b, n);
    for (const auto& o : outputs) b.output(o);
    return b;
}

std::vector<Refusal> refusals() {
    using B = OnnxBuilder;
    std::vector<Refusal> r = {
        {"op", [] {
             B b = small_mlp();
             b.node("NonMaxSuppression", {"y"}, {"z"}, "nms");
             b.output("z");
             return b;
         }, {"node 'nms' (NonMaxSuppression)", "not supported"}},
        {"unknown_attr", [] {
             return one_node("Conv", {1, 1, 8, 8}, {"y"}, [](B& b, auto* n) {
                 b.init("w", {1, 1, 1, 1}, {1.0f});
                 B::attr_ints(n, "mystery", {1});
             }, {"x", "w"});
         }, {"node 'the_Conv' (Conv)", "attribute 'mystery' is not supported"}},
        {"scalar_mm", [] {  // libFuzzer: its shape was indexed before its start
             return one_node("MatMul", {}, {"y"}, [](B& b, auto*) { b.init("w", {3}, {1.0f, 2.0f, 3.0f}); }, {"x", "w"});
         }, {"node 'the_MatMul' (MatMul)", "a is [] and b is [3]; a matrix product needs operands of rank 1"}},
        {"fold_big", [] {  // refused before it is allocated (libFuzzer: 2.4 G elements, OOM)
             B b = small_mlp();
             b.init_ints("big", {2415919105});
             b.node("ConstantOfShape", {"big"}, {"zeros"}, "fill");
             b.node("Add", {"y", "zeros"}, {"z"}, "add");
             b.output("z");
             return b;
         }, {"node 'fill' (ConstantOfShape)", "constant of shape [2415919105], more than the 16777216"}},
        {"reshape_at_run_time", [] {
             B b = one_node("Reshape", {2, 6}, {"y"}, {}, {"x", "s"});
             b.input("s", {2}, onnx::TensorProto::INT64);
             return b;
         }, {"node 'the_Reshape' (Reshape)", "must be known at import"}},
        {"pad", [] {
             return one_node("Pad", {1, 2, 4, 4}, {"y"}, [](B& b, auto* n) {
                 b.init_ints("p", {0, 0, 1, 1, 0, 0, 1, 1});
                 B::attr_string(n, "mode", "reflect");
             }, {"x", "p"});
         }, {"node 'the_Pad' (Pad)", "reflect"}},
        {"int", [] {
             B b = one_node("Add", {4}, {"y"}, {}, {"x", "i"});
             b.input("i", {4}, onnx::TensorProto::INT64);
             return b;
         }, {"node 'the_Add' (Add)", "'i' (int64) is computed at run time: integer arithmetic at run time is not supported"}},
        {"cast_to_int", [] {
             return one_node("Cast", {4}, {"y"}, [](B&, auto* n) { B::attr_int(n, "to", onnx::TensorProto::INT32); });
         }, {"node 'the_Cast' (Cast)", "to int32: integer arithmetic at run time is not supported"}},
        {"run_time_condition", [] {
             B b;
             b.input("x", {4});
             b.init("zero", {}, {0.0f});
             b.node("Greater", {"x", "zero"}, {"positive"}, "is_positive");
             b.node("Where", {"positive", "x", "zero"}, {"y"}, "select");
             b.output("y");
             return b;
         }, {"node 'is_positive' (Greater)", "known at import", "'x' is computed at run time"}},
        {"scatter_at_run_time", [] {
             return one_node("ScatterND", {3, 4}, {"y"}, [](B& b, auto*) {
                 b.init_ints("rows", {2});
                 b.init("updates", {4}, {1, 2, 3, 4});
             }, {"x", "rows", "updates"});
         }, {"node 'the_ScatterND' (ScatterND)", "known at import", "'x' is computed at run time"}},
        {"no_broadcast", [] {  // refused by anvil's own shape inference, naming the ONNX node
             return one_node("Add", {2, 3}, {"y"}, [](B& b, auto*) { b.init("four", {4}, {1, 2, 3, 4}); }, {"x", "four"});
         }, {"node 'the_Add' (Add)", "anvil's add refuses what it lowers to: add operands do not broadcast"}},
        {"domain", [] {
             return one_node("Relu", {4}, {"y"}, [](B&, auto* n) { n->set_domain("com.example"); });
         }, {"node 'the_Relu' (Relu)", "com.example"}},
        {"dangling", [] { return one_node("Relu", {4}, {"y"}, {}, {"x", "nowhere"}); },
         {"node 'the_Relu' (Relu)", "'nowhere' is produced by no node"}},
        {"conv3d", [] {
             return one_node("Conv", {1, 2, 5, 5, 5}, {"y"}, [](B& b, auto*) {
                 b.init("w", {1, 2, 1, 1, 1}, {1.0f, 2.0f});
             }, {"x", "w"});
         }, {"node 'the_Conv' (Conv)", "3-D convolutions and pools are not supported"}},
        {"maxpool3d", [] {
             return one_node("MaxPool", {1, 1, 4, 4, 4}, {"y"}, [](B&, auto* n) { B::attr_ints(n, "kernel_shape", {2, 2, 2}); });
         }, {"node 'the_MaxPool' (MaxPool)", "3-D convolutions and pools are not supported"}},
        {"conv_attr_rank", [] {
             return one_node("Conv", {1, 1, 9}, {"y"}, [](B& b, auto* n) {
                 b.init("w", {1, 1, 3}, {1.0f, 2.0f, 3.0f});
                 B::attr_ints(n, "strides", {1, 1});
             }, {"x", "w"});
         }, {"node 'the_Conv' (Conv)", "attribute 'strides' has 2 values for 1 spatial dims"}},
        // An extra output is computed only when nothing reads it.
        {"fold_gather", [] {  // a folded Gather past the limit and past its inputs' size
             B b = small_mlp();
             b.init("table", {4, 5000}, std::vector<float>(20000, 0.5f));
             b.init_ints("rows", std::vector<int64_t>(5000, 1));
             b.node("Gather", {"table", "rows"}, {"picked"}, "gather");
             b.node("Add", {"y", "picked"}, {"z"}, "add");
             b.output("z");
             return b;
         }, {"node 'gather' (Gather)", "constant of shape [5000, 5000], more than the 16777216"}},
        {"fold_sum", [] {
             B b = small_mlp();
             b.init("col", {5000, 1}, std::vector<float>(5000, 1.0f));
             b.init("row", {1, 5000}, std::vector<float>(5000, 2.0f));
             b.node("Sum", {"col", "row"}, {"grid"}, "sum");
             b.node("Add", {"y", "grid"}, {"z"}, "add");
             b.output("z");
             return b;
         }, {"node 'sum' (Sum)", "constant of shape [5000, 5000], more than the 16777216"}},
        {"dropout_training", [] {
             return one_node("Dropout", {2, 6}, {"y"}, [](B& b, auto*) {
                 b.init("ratio", {}, {0.5f});
                 b.init_bools("training", {}, {true});
             }, {"x", "ratio", "training"});
         }, {"node 'the_Dropout' (Dropout)", "training_mode must be false at inference"}},
        {"empty_operand", [] {
             B b;
             b.input("x", {2, 5});
             b.init_ints("five", {5});
             b.init_ints("one", {1});
             b.input("z", {2, 1});
             b.node("Slice", {"x", "five", "five", "one"}, {"nothing"}, "empty_slice");
             b.node("Add", {"nothing", "z"}, {"y"}, "add");
             b.output("y");
             return b;
         }, {"node 'add' (Add)", "its input 'nothing' is empty (shape [2, 0])"}},
        {"empty_output", [] {
             B b = one_node("Slice", {2, 5}, {"y"}, {}, {"x", "five", "five", "one"});
             b.init_ints("five", {5});
             b.init_ints("one", {1});
             return b;
         }, {"graph output 'y' is empty (shape [2, 0])"}},
        {"layernorm_mean", [] {
             return one_node("LayerNormalization", {2, 6}, {"y", "mean", "inv_std"}, [](B& b, auto*) {
                 b.init("g", {6}, {1, 2, 3, 4, 5, 6});
             }, {"x", "g"});
         }, {"node 'the_LayerNormalization' (LayerNormalization)", "output 1 ('mean', the Mean) is used"}},
        {"dropout_mask", [] { return one_node("Dropout", {2, 6}, {"y", "mask"}); },
         {"node 'the_Dropout' (Dropout)", "output 1 ('mask', the mask) is used"}},
        {"maxpool_indices", [] {
             return one_node("MaxPool", {1, 1, 4, 4}, {"y", "indices"}, [](B&, auto* n) {
                 B::attr_ints(n, "kernel_shape", {2, 2});
             });
         }, {"node 'the_MaxPool' (MaxPool)", "output 1 ('indices', the Indices) is used"}},
    };
    // Window attributes out of range, before any shape arithmetic (libFuzzer: strides 0 divided by zero).
    for (const auto& [name, values, shown] :
         std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>>{
             {"strides", {0, 1}, "holds 0; each must be from 1 to 2147483647"},
             {"dilations", {1, int64_t{1} << 40}, "holds 1099511627776; each must be from 1 to 2147483647"},
             {"pads", {0, -1, 0, 0}, "holds -1; each must be from 0 to 2147483647"}})
        r.push_back({name, [name = name, values = values] {
                         return one_node("Conv", {1, 1, 8, 8}, {"y"}, [&](B& b, auto* n) {
                             b.init("w", {1, 1, 1, 1}, {1.0f});
                             B::attr_ints(n, name, values);
                         }, {"x", "w"});
                     }, {"node 'the_Conv' (Conv)", "attribute '" + name + "' " + shown}});
    return r;
}

TEST_CASE("onnx: every refusal is an exit 2 naming the file, the node with its op type, and what is unsupported",
          "[onnx][hostile]") {
    TempDir dir;
    for (const Refusal& r : refusals()) {
        INFO("case " << r.name);
        const std::string path = r.model().save(dir.file(r.name + ".onnx"));
        expect_refusal("check " + path, path, r.says);
    }
}

TEST_CASE("onnx: the extra outputs of LayerNormalization, Dropout and MaxPool are accepted when unused, and a Dropout of ratio 0 in training mode", "[onnx]") {
    TempDir dir;
    const std::vector<std::pair<std::string, OnnxBuilder>> models = {
        {"ln", [] {
             OnnxBuilder b;
             b.input("x", {2, 6});
             b.init("g", {6}, {1, 2, 3, 4, 5, 6});
             b.node("LayerNormalization", {"x", "g"}, {"y", "mean", "inv_std"}, "ln");
             b.output("y");
             return b;
         }()},
        {"dropout", [] {
             OnnxBuilder b;
             b.input("x", {2, 6});
             b.node("Dropout", {"x"}, {"y", "mask"}, "drop");
             b.output("y");
             return b;
         }()},
        {"dropout_training_ratio_0", [] {  // the identity, as torchvision's swin exports its attention dropout
             OnnxBuilder b;
             b.input("x", {2, 6});
             b.init("ratio", {}, {0.0f});
             b.init_bools("training", {}, {true});
             b.node("Dropout", {"x", "ratio", "training"}, {"y"}, "drop");
             b.output("y");
             return b;
         }()},
        {"maxpool", [] {
             OnnxBuilder b;
             b.input("x", {1, 2, 5, 5});
             OnnxBuilder::attr_ints(b.node("MaxPool", {"x"}, {"y", "indices"}, "pool"), "kernel_shape", {2, 2});
             b.output("y");
             return b;
         }()},
    };
    for (const auto& [name, b] : models) {
        INFO(name);
        const CmdResult r = run_anvil("run " + b.save(dir.file(name + ".onnx")) + " --backend host");
        INFO(r.output);
        CHECK(r.status == 0);
    }
}

TEST_CASE("onnx: symbolic dims need --input-shape, and a bad one is named", "[onnx][hostile]") {
    TempDir dir;
    OnnxBuilder b;
    b.symbolic_input("x", "batch", {4});
    b.init("w", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
    b.node("MatMul", {"x", "w"}, {"y"}, "fc");
    b.output("y");
    const std::string model = b.save(dir.file("dyn.onnx"));
    expect_refusal("check " + model, model, {"input 'x'", "symbolic dims [batch, 4]", "--input-shape x="});
    CmdResult r = run_anvil("run " + model + " --backend host --input-shape x=3,4");
    INFO(r.output);
    CHECK(r.status == 0);
    expect_refusal("check " + model + " --input-shape y=3,4", model, {"'y'", "not an input", "x"});
    expect_refusal("check " + model + " --input-shape x=3,5", model, {"input 'x'", "fixed at 4"});
    expect_refusal("check " + model + " --input-shape x=3", model, {"input 'x'", "1 dims", "has 2"});
    r = run_anvil("check " + model + " --input-shape x=3,,4");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("--input-shape 'x=3,,4'"));
    r = run_anvil("check models/mlp_f32.yaml --input-shape x=1,2");
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Contains("ONNX"));
}

TEST_CASE("onnx: import writes nothing for a refused model", "[onnx]") {
    TempDir dir;
    OnnxBuilder b = small_mlp();
    b.node("NonMaxSuppression", {"y"}, {"z"}, "nms");
    b.output("z");
    expect_refusal("import " + b.save(dir.file("nms.onnx")) + " -o " + dir.file("nms.yaml"), dir.file("nms.onnx"),
                   {"node 'nms' (NonMaxSuppression)"});
    CHECK(!fs::exists(dir.file("nms.yaml")));
    CHECK(!fs::exists(dir.file("nms")));
}

TEST_CASE("onnx: external data is read beside the model, and a missing file is named", "[onnx][hostile]") {
    TempDir dir;
    OnnxBuilder b = small_mlp();
    onnx::TensorProto* w = b.m.mutable_graph()->mutable_initializer(0);
    std::string raw;
    for (float v : w->float_data()) raw.append(reinterpret_cast<const char*>(&v), 4);
    w->clear_float_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const char* k, const std::string& v) {
        auto* e = w->add_external_data();
        e->set_key(k);
        e->set_value(v);
    };
    add("location", "weights.bin");
    add("offset", "16");
    add("length", std::to_string(raw.size()));
    const std::string model = b.save(dir.file("ext.onnx"));
    expect_refusal("check " + model, model, {"initializer 'w'", "weights.bin", "does not exist"});
    dir.write("weights.bin", std::string(16, 'p') + raw);
    const CmdResult r = run_anvil("run " + model + " --backend host");
    INFO(r.output);
    CHECK(r.status == 0);
    dir.write("weights.bin", std::string(16, 'p') + raw.substr(0, 20));
    expect_refusal("check " + model, model, {"initializer 'w'", "outside"});
}

TEST_CASE("onnx: GELU and SiLU are recognised by their values, not their names", "[onnx]") {
    TempDir dir;
    auto gelu = [&](float divisor) {
        OnnxBuilder b;
        b.input("x", {2, 8});
        b.init("c", {}, {divisor});
        b.init("one", {}, {1.0f});
        b.init("half", {}, {0.5f});
        b.node("Div", {"x", "c"}, {"s"});
        b.node("Erf", {"s"}, {"e"}, "gelu_core");
        b.node("Add", {"e", "one"}, {"p"});
        b.node("Mul", {"x", "p"}, {"q"});
        b.node("Mul", {"q", "half"}, {"y"});
        b.output("y");
        return b;
    };
    CmdResult r = run_anvil("check " + gelu(1.4142135f).save(dir.file("gelu.onnx")));
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Contains("gelu x1"));
    r = run_anvil("run " + dir.file("gelu.onnx") + " --backend host");
    CHECK(r.status == 0);
    // The same graph with another constant is not a GELU: it stays the ops it is, anvil's erf among them.
    r = run_anvil("check " + gelu(1.5f).save(dir.file("not_gelu.onnx")));
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Contains("erf x1"));
    CHECK_THAT(r.output, !Contains("gelu x1"));

    auto silu = [&](float scale) {
        OnnxBuilder b;
        b.input("x", {2, 8});
        b.init("k", {}, {scale});
        b.node("Mul", {"x", "k"}, {"xs"});
        b.node("Sigmoid", {"xs"}, {"g"});
        b.node("Mul", {"x", "g"}, {"y"});
        b.output("y");
        return b;
    };
    r = run_anvil("check " + silu(1.0f).save(dir.file("silu.onnx")));
    CHECK_THAT(r.output, Contains("silu x1"));
    r = run_anvil("check " + silu(1.702f).save(dir.file("not_silu.onnx")));
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Contains("sigmoid x1"));
    CHECK_THAT(r.output, !Contains("silu x1"));
}

TEST_CASE("onnx: LayerNorm and RMSNorm written out become one op only when their values agree", "[onnx]") {
    TempDir dir;
    // mean over `mean_axis`, variance over the last axis: a LayerNorm only when both are the last.
    auto layernorm = [&](int64_t mean_axis) {
        OnnxBuilder b;
        b.input("x", {2, 3, 8});
        b.init("two", {}, {2.0f});
        b.init("eps", {}, {1e-5f});
        b.init("gamma", {8}, {1, 2, 3, 4, 5, 6, 7, 8});
        b.init("beta", {8}, {0, 1, 0, 1, 0, 1, 0, 1});
        OnnxBuilder::attr_ints(b.node("ReduceMean", {"x"}, {"m"}), "axes", {mean_axis});
        b.node("Sub", {"x", "m"}, {"d"});
        b.node("Pow", {"d", "two"}, {"p"});
        OnnxBuilder::attr_ints(b.node("ReduceMean", {"p"}, {"v"}), "axes", {-1});
        b.node("Add", {"v", "eps"}, {"ve"});
        b.node("Sqrt", {"ve"}, {"s"});
        b.node("Div", {"d", "s"}, {"n"});
        b.node("Mul", {"n", "gamma"}, {"g"});
        b.node("Add", {"g", "beta"}, {"y"});
        b.output("y");
        return b;
    };
    CmdResult r = run_anvil("check " + layernorm(-1).save(dir.file("ln.onnx")));
    INFO(r.output);
    CHECK_THAT(r.output, Contains("ops         layernorm x1"));
    r = run_anvil("run " + dir.file("ln.onnx") + " --backend host");
    CHECK(r.status == 0);
    r = run_anvil("check " + layernorm(1).save(dir.file("not_ln.onnx")));
    CHECK(r.status == 0);
    CHECK_THAT(r.output, !Contains("layernorm x1"));
    r = run_anvil("run " + dir.file("not_ln.onnx") + " --backend host");
    CHECK(r.status == 0);

    OnnxBuilder b;
    b.input("x", {4, 16});
    b.init("eps", {}, {1e-6f});
    b.node("Mul", {"x", "x"}, {"sq"});
    OnnxBuilder::attr_ints(b.node("ReduceMean", {"sq"}, {"ms"}), "axes", {1});
    b.node("Add", {"ms", "eps"}, {"mse"});
    b.node("Sqrt", {"mse"}, {"rms"});
    b.node("Reciprocal", {"rms"}, {"inv"});
    b.node("Mul", {"x", "inv"}, {"y"});
    b.output("y");
    r = run_anvil("check " + b.save(dir.file("rms.onnx")));
    CHECK_THAT(r.output, Contains("ops         rmsnorm x1"));
}

namespace {

const char* const kPolicies[] = {"anvil", "per_op", "rammer", "welder", "topo"};

struct Saved {
    std::vector<double> x, y;
    Shape y_shape;
};

// Runs `model` on the host backend under `policy`; its input x (random) and output y as it saved them.
Saved run_saved(const TempDir& dir, const std::string& model, const std::string& policy) {
    const std::string io = dir.file("io_" + fs::path(model).stem().string() + "_" + policy);
    const CmdResult r = run_anvil("run " + model + " --backend host --policy " + policy + " --save-io " + io);
    INFO(r.output);
    REQUIRE(r.status == 0);
    const anvil::HostTensor x = anvil::read_npy(io + "/inputs/x.npy", anvil::DType::f32);
    // The one output, under its anvil name (an output that aliases an input keeps the input's).
    REQUIRE(std::distance(fs::directory_iterator(io + "/outputs"), fs::directory_iterator()) == 1);
    const anvil::HostTensor y = anvil::read_npy(fs::directory_iterator(io + "/outputs")->path().string(), anvil::DType::f32);
    return {x.to_doubles(), y.to_doubles(), y.shape};
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
        if (!std::isfinite(want[i]) || want[i] == 0) REQUIRE(got[i] == want[i]);
        else REQUIRE(std::fabs(got[i] - want[i]) <= tol * (1 + std::fabs(want[i])));
    }
}

// The maximum of each window of x [N, C, H, W] (kernel, stride, dilation
// {h, w}, pads {top, left, bottom, right}), over its cells inside x.
std::vector<double> naive_maxpool(const std::vector<double>& x, const Shape& s, std::array<int64_t, 2> k,
                                  std::array<int64_t, 2> st, std::array<int64_t, 2> d, std::array<int64_t, 4> p,
                                  Shape& out) {
    const int64_t H = s[2], W = s[3];
    const int64_t OH = (H + p[0] + p[2] - (d[0] * (k[0] - 1) + 1)) / st[0] + 1;
    const int64_t OW = (W + p[1] + p[3] - (d[1] * (k[1] - 1) + 1)) / st[1] + 1;
    out = {s[0], s[1], OH, OW};
    std::vector<double> y;
    for (int64_t plane = 0; plane < s[0] * s[1]; ++plane)
        for (int64_t oh = 0; oh < OH; ++oh)
            for (int64_t ow = 0; ow < OW; ++ow) {
                double m = -INFINITY;
                for (int64_t i = 0; i < k[0]; ++i)
                    for (int64_t j = 0; j < k[1]; ++j) {
                        const int64_t h = oh * st[0] - p[0] + i * d[0], w = ow * st[1] - p[1] + j * d[1];
                        if (h >= 0 && h < H && w >= 0 && w < W) m = std::max(m, x[(plane * H + h) * W + w]);
                    }
                y.push_back(m);
            }
    return y;
}

}  // namespace

TEST_CASE("onnx: causal attention masked with -inf or finfo.min (Where, masked_fill, an additive mask) matches a "
          "softmax over the kept keys under every policy", "[onnx]") {
    TempDir dir;
    const int64_t B = 2, T = 5, D = 4;
    std::vector<float> w(D * T);
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.3f * std::sin(1.3f * i + 0.2f);
    std::vector<bool> keep, drop;
    std::vector<float> additive;
    for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j) {
            keep.push_back(j <= i);
            drop.push_back(j > i);
            additive.push_back(j <= i ? 0.0f : -INFINITY);
        }
    auto model = [&](const std::string& form) {
        OnnxBuilder b;
        b.input("x", {B, T, D});
        b.init("w", {D, T}, w);
        b.node("MatMul", {"x", "w"}, {"s"}, "scores");
        if (form == "masked_fill") {  // Where(mask, -inf, s), as torch's masked_fill exports
            b.init_bools("future", {T, T}, drop);
            b.init("fill", {}, {-INFINITY});
            b.node("Where", {"future", "fill", "s"}, {"m"}, "mask");
        } else if (form == "where_finfo") {  // torch.where(keep, s, finfo.min), as HF GPT-2 writes it
            b.init_bools("keep", {T, T}, keep);
            b.init("fill", {}, {-3.4028234663852886e38f});
            b.node("Where", {"keep", "s", "fill"}, {"m"}, "mask");
        } else {
            b.init("additive", {T, T}, additive);
            b.node("Add", {"s", "additive"}, {"m"}, "mask");
        }
        b.node("Softmax", {"m"}, {"y"}, "attention");
        b.output("y");
        return b.save(dir.file(form + ".onnx"));
    };
    for (const std::string form : {"masked_fill", "where_finfo", "additive"}) {
        const std::string path = model(form);
        for (const char* policy : kPolicies) {
            INFO(form << " under " << policy);
            const Saved r = run_saved(dir, path, policy);
            REQUIRE(r.y_shape == Shape{B, T, T});
            std::vector<double> want;
            for (int64_t b = 0; b < B; ++b)
                for (int64_t i = 0; i < T; ++i) {
                    std::vector<double> s(T);
                    double top = -INFINITY, sum = 0;
                    for (int64_t j = 0; j <= i; ++j) {
                        for (int64_t k = 0; k < D; ++k) s[j] += r.x[(b * T + i) * D + k] * w[k * T + j];
                        top = std::max(top, s[j]);
                    }
                    for (int64_t j = 0; j <= i; ++j) sum += std::exp(s[j] - top);
                    for (int64_t j = 0; j < T; ++j) want.push_back(j <= i ? std::exp(s[j] - top) / sum : 0.0);
                }
            check_close(r.y, want, 1e-5);  // masked keys exactly 0
        }
    }
    // The imported YAML holds the -inf mask in its .npy and runs the same.
    fs::create_directories(dir.file("yaml"));
    const CmdResult r = run_anvil("import " + model("masked_fill") + " -o " + dir.file("yaml/masked.yaml"));
    INFO(r.output);
    REQUIRE(r.status == 0);
    const Saved a = run_saved(dir, dir.file("masked_fill.onnx"), "anvil"), b = run_saved(dir, dir.file("yaml/masked.yaml"), "anvil");
    CHECK(a.y == b.y);
}

TEST_CASE("onnx: a lone Erf is anvil's erf", "[onnx]") {
    TempDir dir;
    OnnxBuilder b;
    b.input("x", {3, 7});
    b.node("Erf", {"x"}, {"y"}, "probit");
    b.output("y");
    const std::string path = b.save(dir.file("erf.onnx"));
    for (const char* policy : kPolicies) {
        INFO(policy);
        const Saved r = run_saved(dir, path, policy);
        std::vector<double> want;
        for (double v : r.x) want.push_back(std::erf(v));
        check_close(r.y, want, 1e-6);
    }
}

TEST_CASE("onnx: 1-D Conv, dilated MaxPool and AveragePool run as 2-D over a unit H", "[onnx]") {
    TempDir dir;
    const int64_t N = 2, C = 3, L = 11, O = 4, K = 3;
    std::vector<float> w(O * C * K), bias = {0.1f, -0.2f, 0.3f, 0.05f};
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.4f * std::cos(0.7f * i + 0.1f);
    OnnxBuilder b;
    b.input("x", {N, C, L});
    b.init("w", {O, C, K}, w);
    b.init("b", {O}, bias);
    auto* conv = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv1d");
    OnnxBuilder::attr_ints(conv, "strides", {2});
    OnnxBuilder::attr_ints(conv, "pads", {1, 1});
    auto* pool = b.node("MaxPool", {"c"}, {"m"}, "dilated_pool1d");
    OnnxBuilder::attr_ints(pool, "kernel_shape", {3});
    OnnxBuilder::attr_ints(pool, "dilations", {2});
    OnnxBuilder::attr_ints(pool, "pads", {2, 1});
    auto* avg = b.node("AveragePool", {"m"}, {"y"}, "avgpool1d");
    OnnxBuilder::attr_ints(avg, "kernel_shape", {2});
    OnnxBuilder::attr_ints(avg, "strides", {2});
    b.output("y");
    const std::string path = b.save(dir.file("conv1d.onnx"));
    for (const char* policy : kPolicies) {
        INFO(policy);
        const Saved r = run_saved(dir, path, policy);
        const int64_t LC = (L + 2 - K) / 2 + 1;  // 6
        std::vector<double> c;
        for (int64_t n = 0; n < N; ++n)
            for (int64_t o = 0; o < O; ++o)
                for (int64_t l = 0; l < LC; ++l) {
                    double acc = bias[o];
                    for (int64_t ci = 0; ci < C; ++ci)
                        for (int64_t k = 0; k < K; ++k) {
                            const int64_t at = l * 2 - 1 + k;
                            if (at >= 0 && at < L) acc += r.x[(n * C + ci) * L + at] * w[(o * C + ci) * K + k];
                        }
                    c.push_back(acc);
                }
        Shape ms;
        const std::vector<double> m = naive_maxpool(c, {N, O, 1, LC}, {1, 3}, {1, 1}, {1, 2}, {0, 2, 0, 1}, ms);
        const int64_t LM = ms[3], LY = LM / 2;
        std::vector<double> want;
        for (int64_t row = 0; row < N * O; ++row)
            for (int64_t l = 0; l < LY; ++l) want.push_back((m[row * LM + 2 * l] + m[row * LM + 2 * l + 1]) / 2);
        REQUIRE(r.y_shape == Shape{N, O, LY});
        check_close(r.y, want, 1e-5);
    }
}

TEST_CASE("onnx: a dilated 2-D MaxPool matches its windows under every policy", "[onnx]") {
    TempDir dir;
    OnnxBuilder b;
    b.input("x", {2, 3, 7, 9});
    auto* pool = b.node("MaxPool", {"x"}, {"y"}, "dilated");
    OnnxBuilder::attr_ints(pool, "kernel_shape", {2, 3});
    OnnxBuilder::attr_ints(pool, "dilations", {2, 2});
    OnnxBuilder::attr_ints(pool, "strides", {1, 2});
    OnnxBuilder::attr_ints(pool, "pads", {1, 1, 1, 2});
    b.output("y");
    const std::string path = b.save(dir.file("dilated.onnx"));
    for (const char* policy : kPolicies) {
        INFO(policy);
        const Saved r = run_saved(dir, path, policy);
        Shape shape;
        const std::vector<double> want = naive_maxpool(r.x, {2, 3, 7, 9}, {2, 3}, {1, 2}, {2, 2}, {1, 1, 1, 2}, shape);
        REQUIRE(r.y_shape == shape);
        check_close(r.y, want, 0);
    }
}

TEST_CASE("onnx: torch.roll as Slice and Concat: by 3 (ends INT64_MAX, 'to the end'), and by 0 (an empty part, as "
          "swin exports it at small sizes)", "[onnx]") {
    TempDir dir;
    for (const int64_t shift : {3, 0}) {
        INFO("shift " << shift);
        OnnxBuilder b;
        b.input("x", {2, 5});
        b.init_ints("shift", {shift});
        b.init_ints("zero", {0});
        b.init_ints("end", {std::numeric_limits<int64_t>::max()});
        b.init_ints("one", {1});
        b.node("Slice", {"x", "shift", "end", "one"}, {"tail"}, "tail");  // x[:, shift:]
        b.node("Slice", {"x", "zero", "shift", "one"}, {"head"}, "head");  // x[:, :shift]
        OnnxBuilder::attr_int(b.node("Concat", {"tail", "head"}, {"y"}, "roll"), "axis", 1);
        b.output("y");
        const Saved r = run_saved(dir, b.save(dir.file("roll" + std::to_string(shift) + ".onnx")), "anvil");
        REQUIRE(r.y_shape == Shape{2, 5});
        for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 5; ++j) CHECK(r.y[i * 5 + j] == r.x[i * 5 + (j + shift) % 5]);
    }
}

TEST_CASE("onnx: ScatterND on constants folds at import (swin's shifted-window mask)", "[onnx]") {
    TempDir dir;
    OnnxBuilder b;
    b.input("x", {3, 4});
    b.init("zeros", {3, 4}, std::vector<float>(12, 0.0f));
    auto* rows = b.m.mutable_graph()->add_initializer();  // indices [[2], [0]]: rows 2 and 0
    rows->set_name("rows");
    rows->set_data_type(onnx::TensorProto::INT64);
    rows->add_dims(2);
    rows->add_dims(1);
    rows->add_int64_data(2);
    rows->add_int64_data(-3);  // row 0, counted from the end
    b.init("updates", {2, 4}, {1, 2, 3, 4, -5, -6, -7, -8});
    b.node("ScatterND", {"zeros", "rows", "updates"}, {"mask"}, "scatter");
    b.node("Add", {"x", "mask"}, {"y"}, "masked");
    b.output("y");
    const std::string path = b.save(dir.file("scatter.onnx"));
    const Saved r = run_saved(dir, path, "anvil");
    const std::vector<double> mask = {-5, -6, -7, -8, 0, 0, 0, 0, 1, 2, 3, 4};
    for (size_t i = 0; i < mask.size(); ++i) CHECK(r.y[i] == static_cast<float>(r.x[i] + mask[i]));
}
