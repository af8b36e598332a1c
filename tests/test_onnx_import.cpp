// The ONNX importer through the command line: models built here, every
// refusal a clean exit 2 naming the file and the ONNX node (name and op
// type), patterns recognised by their numbers, import to YAML.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>
#include <tuple>

#include "anvil_cmd.h"
#include "onnx_builder.h"
#include "temp_dir.h"

using namespace anvil::test;
using Catch::Matchers::Contains;
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

TEST_CASE("onnx: unsupported ops, attributes and run-time shapes name the node and its op type", "[onnx][hostile]") {
    TempDir dir;
    {
        OnnxBuilder b = small_mlp();
        b.node("NonMaxSuppression", {"y"}, {"z"}, "nms");
        b.output("z");
        expect_refusal("run " + b.save(dir.file("op.onnx")), dir.file("op.onnx"),
                       {"node 'nms' (NonMaxSuppression)", "not supported"});
    }
    {
        OnnxBuilder b;
        b.input("x", {1, 1, 8, 8});
        auto* n = b.node("MaxPool", {"x"}, {"y"}, "pool");
        OnnxBuilder::attr_ints(n, "kernel_shape", {2, 2});
        OnnxBuilder::attr_ints(n, "dilations", {2, 2});
        b.output("y");
        expect_refusal("check " + b.save(dir.file("attr.onnx")), dir.file("attr.onnx"),
                       {"node 'pool' (MaxPool)", "dilations"});
    }
    {
        OnnxBuilder b;
        b.input("x", {1, 1, 8, 8});
        auto* n = b.node("Conv", {"x", "w"}, {"y"}, "conv");
        b.init("w", {1, 1, 1, 1}, {1.0f});
        OnnxBuilder::attr_ints(n, "mystery", {1});
        b.output("y");
        expect_refusal("check " + b.save(dir.file("unknown_attr.onnx")), dir.file("unknown_attr.onnx"),
                       {"node 'conv' (Conv)", "attribute 'mystery' is not supported"});
    }
    {  // A scalar operand of MatMul (libFuzzer: its shape was indexed before its start).
        OnnxBuilder b;
        b.input("x", {});
        b.init("w", {3}, {1.0f, 2.0f, 3.0f});
        b.node("MatMul", {"x", "w"}, {"y"}, "mm");
        b.output("y");
        expect_refusal("check " + b.save(dir.file("scalar_mm.onnx")), dir.file("scalar_mm.onnx"),
                       {"node 'mm' (MatMul)", "a is [] and b is [3]; a matrix product needs operands of rank 1"});
    }
    {  // A folded constant past the limit is refused before it is allocated (libFuzzer: 2.4 G elements, OOM).
        OnnxBuilder b = small_mlp();
        b.init_ints("big", {2415919105});
        b.node("ConstantOfShape", {"big"}, {"zeros"}, "fill");
        b.node("Add", {"y", "zeros"}, {"z"}, "add");
        b.output("z");
        expect_refusal("check " + b.save(dir.file("fold_big.onnx")), dir.file("fold_big.onnx"),
                       {"node 'fill' (ConstantOfShape)", "constant of shape [2415919105], more than the 16777216"});
    }
    // Window attributes out of range, before any shape arithmetic (libFuzzer: strides 0 divided by zero).
    for (const auto& [name, values, shown] :
         std::vector<std::tuple<std::string, std::vector<int64_t>, std::string>>{
             {"strides", {0, 1}, "holds 0; each must be from 1 to 2147483647"},
             {"dilations", {1, int64_t{1} << 40}, "holds 1099511627776; each must be from 1 to 2147483647"},
             {"pads", {0, -1, 0, 0}, "holds -1; each must be from 0 to 2147483647"}}) {
        OnnxBuilder b;
        b.input("x", {1, 1, 8, 8});
        auto* n = b.node("Conv", {"x", "w"}, {"y"}, "conv");
        b.init("w", {1, 1, 1, 1}, {1.0f});
        OnnxBuilder::attr_ints(n, name, values);
        b.output("y");
        expect_refusal("check " + b.save(dir.file(name + ".onnx")), dir.file(name + ".onnx"),
                       {"node 'conv' (Conv)", "attribute '" + name + "' " + shown});
    }
    {
        OnnxBuilder b;
        b.input("x", {2, 6});
        b.input("s", {2}, onnx::TensorProto::INT64);
        b.node("Reshape", {"x", "s"}, {"y"}, "reshape_at_run_time");
        b.output("y");
        expect_refusal("check " + b.save(dir.file("dyn.onnx")), dir.file("dyn.onnx"),
                       {"node 'reshape_at_run_time' (Reshape)", "must be known at import"});
    }
    {
        OnnxBuilder b;
        b.input("x", {1, 2, 4, 4});
        auto* n = b.node("Pad", {"x", "p"}, {"y"}, "pad");
        b.init_ints("p", {0, 0, 1, 1, 0, 0, 1, 1});
        OnnxBuilder::attr_string(n, "mode", "reflect");
        b.output("y");
        expect_refusal("check " + b.save(dir.file("pad.onnx")), dir.file("pad.onnx"), {"node 'pad' (Pad)", "reflect"});
    }
    {
        OnnxBuilder b;
        b.input("x", {4});
        b.input("i", {4}, onnx::TensorProto::INT64);
        b.node("Add", {"x", "i"}, {"y"}, "mixed");
        b.output("y");
        expect_refusal("check " + b.save(dir.file("int.onnx")), dir.file("int.onnx"),
                       {"node 'mixed' (Add)", "run-time int64 tensor"});
    }
    {
        OnnxBuilder b;
        b.input("x", {4});
        auto* n = b.node("Relu", {"x"}, {"y"}, "custom");
        n->set_domain("com.example");
        b.output("y");
        expect_refusal("check " + b.save(dir.file("domain.onnx")), dir.file("domain.onnx"),
                       {"node 'custom' (Relu)", "com.example"});
    }
    {
        OnnxBuilder b;
        b.input("x", {4});
        b.node("Relu", {"x", "nowhere"}, {"y"}, "dangling");
        b.output("y");
        expect_refusal("check " + b.save(dir.file("dangling.onnx")), dir.file("dangling.onnx"),
                       {"node 'dangling' (Relu)", "'nowhere' is produced by no node"});
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
    b.node("Erf", {"y"}, {"z"}, "lonely_erf");
    b.output("z");
    expect_refusal("import " + b.save(dir.file("erf.onnx")) + " -o " + dir.file("erf.yaml"), dir.file("erf.onnx"),
                   {"node 'lonely_erf' (Erf)", "GELU"});
    CHECK(!fs::exists(dir.file("erf.yaml")));
    CHECK(!fs::exists(dir.file("erf")));
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
    // The same graph with another constant is not a GELU: its Erf is refused.
    expect_refusal("check " + gelu(1.5f).save(dir.file("not_gelu.onnx")), dir.file("not_gelu.onnx"),
                   {"node 'gelu_core' (Erf)"});

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
