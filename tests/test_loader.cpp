// The model loader: a valid file with every field, and one case per error of
// spec/model-format.md, each checking the exact line:col and the message.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "frontend/model.h"
#include "frontend/npy.h"
#include "temp_dir.h"
#include "frontend/load_model.h"

using namespace anvil;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;
using anvil::test::TempDir;

namespace {

std::string error_of(const std::string& yaml, const std::string& path = "m.yaml") {
    try {
        load_model_from_string(yaml, path);
    } catch (const UserError& e) {
        return e.what();
    }
    return "<no error>";
}

// "path:L:C: " of the nth occurrence of needle in text, counted by hand so
// the expected place does not come from yaml-cpp.
std::string at(const std::string& text, const std::string& needle, int nth = 0,
               const std::string& path = "m.yaml") {
    size_t pos = text.find(needle);
    for (int i = 0; i < nth && pos != std::string::npos; ++i) pos = text.find(needle, pos + 1);
    REQUIRE(pos != std::string::npos);
    int line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < pos; ++i)
        if (text[i] == '\n') ++line, line_start = i + 1;
    return path + ":" + std::to_string(line) + ":" + std::to_string(pos - line_start + 1) + ": ";
}

// The same place without the trailing ": ".
std::string place(const std::string& text, const std::string& needle) {
    std::string a = at(text, needle);
    return a.substr(0, a.size() - 2);
}

std::string loc_str(const SourceLoc& l) { return l.str() + ": "; }

const std::string kHead =
    "anvil: 1\n"
    "name: t\n"
    "inputs:\n"
    "  - {name: x, shape: [2, 3]}\n"
    "params:\n"
    "  - {name: w, shape: [3, 4]}\n";

// A model whose nodes section is `nodes` and whose output is y.
std::string with_nodes(const std::string& nodes, const std::string& outputs = "outputs: [y]\n") {
    return kHead + "nodes:\n" + nodes + outputs;
}

void write_f32(const fs::path& p, Shape shape, DType t = DType::f32) {
    HostTensor h(t, shape);
    for (int64_t i = 0; i < h.numel(); ++i) h.set(i, 0.25 * static_cast<double>(i) - 1);
    write_npy(p.string(), h);
}

}  // namespace

TEST_CASE("a valid model with every field loads with defaults filled in", "[loader]") {
    TempDir dir;
    write_f32(dir.path / "w.npy", {2, 3}, DType::f16);
    const std::string y =
        "anvil: 1\n"
        "name: full.model-1_x\n"
        "dtype: f16\n"
        "seed: 42\n"
        "inputs:\n"
        "  - {name: x, shape: [2, 8]}\n"
        "  - {name: ids, shape: [4], dtype: i32, init: uniform, low: 3, high: 10}\n"
        "  - name: u\n"
        "    shape: []\n"
        "    dtype: f32\n"
        "    init: uniform\n"
        "    low: -2\n"
        "    high: 3.5\n"
        "  - {name: k, shape: [5], dtype: i32, high: 7}\n"
        "params:\n"
        "  - {name: w, shape: [8, 8]}\n"
        "  - {name: wn, shape: [8, 8], init: normal, std: 0.5}\n"
        "  - {name: g, shape: [8], init: ones}\n"
        "  - {name: b, shape: [8], init: zeros, dtype: bf16}\n"
        "  - {name: f, shape: [2, 3], init: file, file: w.npy}\n"
        "  - {name: un, shape: [8], init: uniform}\n"
        "nodes:\n"
        "  - {name: yy, op: matmul, inputs: [x, w], transpose_b: true}\n"
        "  - {name: n, op: layernorm, inputs: [yy, g, b], eps: 1}\n"
        "  - {name: s, op: softmax, inputs: [n], dtype: f32}\n"
        "  - {name: a, op: gelu, inputs: [s], approximate: tanh}\n"
        "  - {name: r, op: reduce_sum, inputs: [a], axes: [0, -1]}\n"
        "  - {name: c, op: constant, value: -.inf, shape: [2]}\n"
        "  - name: sl\n"
        "    op: slice\n"
        "    inputs: [x]\n"
        "    axis: 1\n"
        "outputs: [r, c, x]\n";
    const std::string path = (dir.path / "m.yaml").string();
    Model m = load_model_from_string(y, path);

    CHECK(m.path == path);
    CHECK(m.name == "full.model-1_x");
    CHECK(m.dtype == DType::f16);
    CHECK(m.seed == 42);

    REQUIRE(m.inputs.size() == 4);
    const TensorDecl& x = m.inputs[0];
    CHECK(x.name == "x");
    CHECK(x.shape == Shape{2, 8});
    CHECK(x.dtype == DType::f16);  // the file default
    CHECK(x.init.kind == InitKind::normal);
    CHECK(x.init.std == 1.0);  // an input without init
    CHECK(loc_str(x.loc) == at(y, "{name: x", 0, path));
    const TensorDecl& ids = m.inputs[1];
    CHECK(ids.dtype == DType::i32);
    CHECK(ids.init.kind == InitKind::uniform);
    CHECK(ids.init.low == 3);
    CHECK(ids.init.high == 10);
    const TensorDecl& u = m.inputs[2];
    CHECK(u.shape.empty());
    CHECK(u.dtype == DType::f32);
    CHECK(u.init.low == -2);
    CHECK(u.init.high == 3.5);
    CHECK(loc_str(u.loc) == at(y, "name: u", 0, path));
    const TensorDecl& k = m.inputs[3];  // i32 without init: integers from [0, high)
    CHECK(k.init.kind == InitKind::uniform);
    CHECK(k.init.low == 0);
    CHECK(k.init.high == 7);

    REQUIRE(m.params.size() == 6);
    CHECK(m.params[0].init.kind == InitKind::normal);
    CHECK(m.params[0].init.std == 0.02);  // a param without init
    CHECK(m.params[1].init.std == 0.5);
    CHECK(m.params[2].init.kind == InitKind::ones);
    CHECK(m.params[3].init.kind == InitKind::zeros);
    CHECK(m.params[3].dtype == DType::bf16);
    const TensorDecl& f = m.params[4];
    CHECK(f.init.kind == InitKind::file);
    CHECK(f.init.file == "w.npy");
    REQUIRE(f.init.values.has_value());
    CHECK(f.init.values->dtype == DType::f16);
    CHECK(f.init.values->shape == Shape{2, 3});
    CHECK(f.init.values->get(5) == 0.25);
    CHECK(m.params[5].init.kind == InitKind::uniform);
    CHECK(m.params[5].init.low == -1);
    CHECK(m.params[5].init.high == 1);

    REQUIRE(m.nodes.size() == 7);
    const NodeDecl& mm = m.nodes[0];
    CHECK(mm.name == "yy");
    CHECK(mm.op == Op::matmul);
    CHECK(mm.inputs == std::vector<std::string>{"x", "w"});
    CHECK(!mm.dtype.has_value());
    CHECK(mm.attrs.get_bool("transpose_b") == true);
    CHECK(mm.attrs.get_bool("transpose_a") == false);  // default
    CHECK(loc_str(mm.loc) == at(y, "{name: yy", 0, path));
    REQUIRE(mm.input_locs.size() == 2);
    CHECK(loc_str(mm.input_locs[0]) == at(y, "x, w]", 0, path));
    CHECK(loc_str(mm.input_locs[1]) == at(y, "w]", 0, path));
    CHECK(loc_str(mm.attr_locs.at("transpose_b")) == at(y, "transpose_b", 0, path));
    CHECK(mm.attr_locs.count("transpose_a") == 0);  // a default has no place of its own

    const NodeDecl& ln = m.nodes[1];
    CHECK(ln.attrs.get_float("eps") == 1.0);  // an int is a Float
    CHECK(std::holds_alternative<double>(ln.attrs.values.at("eps")));
    CHECK(ln.attrs.get_int("axis") == -1);
    CHECK(m.nodes[2].dtype == DType::f32);
    CHECK(m.nodes[2].attrs.get_int("axis") == -1);
    CHECK(m.nodes[3].attrs.get_string("approximate") == "tanh");
    CHECK(m.nodes[4].attrs.get_ints("axes") == std::vector<int64_t>{0, -1});
    CHECK(m.nodes[4].attrs.get_bool("keepdims") == false);
    CHECK(m.nodes[5].inputs.empty());
    CHECK(std::isinf(m.nodes[5].attrs.get_float("value")));
    CHECK(m.nodes[5].attrs.get_float("value") < 0);
    CHECK(m.nodes[5].attrs.get_ints("shape") == std::vector<int64_t>{2});
    const NodeDecl& sl = m.nodes[6];
    CHECK(loc_str(sl.loc) == at(y, "name: sl", 0, path));
    CHECK(sl.attrs.get_int("axis") == 1);
    CHECK(sl.attrs.get_int("start") == 0);
    CHECK(sl.attrs.get_int("step") == 1);
    CHECK(!sl.attrs.has("end"));  // no default: the dim size

    CHECK(m.outputs == std::vector<std::string>{"r", "c", "x"});
    REQUIRE(m.output_locs.size() == 3);
    CHECK(loc_str(m.output_locs[1]) == at(y, "c, x]", 0, path));
}

TEST_CASE("defaults: dtype f32, seed 0, no inputs or params needed", "[loader]") {
    Model m = load_model_from_string(
        "anvil: 1\nname: c\nnodes:\n  - {name: c, op: constant, value: 2}\noutputs: [c]\n", "m.yaml");
    CHECK(m.dtype == DType::f32);
    CHECK(m.seed == 0);
    CHECK(m.inputs.empty());
    CHECK(m.nodes[0].attrs.get_ints("shape").empty());
    CHECK(m.nodes[0].attrs.get_float("value") == 2.0);
}

TEST_CASE("load_model reads a file and resolves init files next to it", "[loader]") {
    TempDir dir;
    fs::create_directories(dir.path / "sub" / "weights");
    write_f32(dir.path / "sub" / "weights" / "e.npy", {3});
    const std::string path = (dir.path / "sub" / "m.yaml").string();
    std::ofstream(path) << "anvil: 1\nname: m\nparams:\n  - {name: e, shape: [3], init: file, file: weights/e.npy}\n"
                           "outputs: [e]\n";
    Model m = load_model(path);
    REQUIRE(m.params[0].init.values.has_value());
    CHECK(m.params[0].init.values->to_doubles() == std::vector<double>{-1, -0.75, -0.5});
}

TEST_CASE("a missing model file names the path", "[loader]") {
    const std::string path = "/nonexistent/dir/m.yaml";
    CHECK_THROWS_WITH(load_model(path), StartsWith(path + ": ") && Contains("cannot open"));
}

TEST_CASE("error: not YAML, at the parser's place", "[loader]") {
    const std::string y = "anvil: 1\nname: t: u\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, ": u")) && Contains("not valid YAML"));
}

TEST_CASE("error: not YAML, read from disk names the path as given", "[loader]") {
    TempDir dir;
    const std::string path = (dir.path / "bad.yaml").string();
    std::ofstream(path) << "anvil: 1\nname: [a, b\n";
    try {
        load_model(path);
        FAIL("no error");
    } catch (const UserError& e) {
        CHECK_THAT(e.what(), StartsWith(path + ":") && Contains("not valid YAML"));
    }
}

TEST_CASE("error: an empty file", "[loader]") {
    CHECK(error_of("# nothing\n") == "m.yaml: the file is empty; a model file starts with 'anvil: 1'");
}

TEST_CASE("error: more than one YAML document", "[loader]") {
    // Placed at the second document's start: its "---".
    const std::string y = "anvil: 1\nname: t\noutputs: [x]\n---\nb: 2\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "---")) && Contains("more than one YAML document"));
}

TEST_CASE("error: the file is not a mapping", "[loader]") {
    CHECK_THAT(error_of("- a\n- b\n"), StartsWith("m.yaml:1:1: ") && Contains("must be a mapping"));
}

TEST_CASE("error: anvil missing", "[loader]") {
    CHECK(error_of("name: t\noutputs: [x]\n") == "m.yaml:1:1: 'anvil: 1' (the format version) is missing");
}

TEST_CASE("error: anvil is not 1", "[loader]") {
    const std::string y = "anvil: 2\nname: t\n";
    CHECK(error_of(y) == at(y, "2") + "format version 2 is not supported (this anvil reads 'anvil: 1')");
    const std::string q = "anvil: \"1\"\nname: t\n";
    CHECK(error_of(q) == at(q, "\"1\"") + "'anvil' must be the format version 1, got '1'");
}

TEST_CASE("error: unknown top-level key", "[loader]") {
    const std::string y = "anvil: 1\nname: t\noutput: [x]\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "output")) && Contains("unknown key 'output'") &&
                                Contains("did you mean 'outputs'?"));
}

TEST_CASE("error: a key given twice", "[loader]") {
    const std::string y = "anvil: 1\nname: t\nname: u\n";
    CHECK(error_of(y) == at(y, "name", 1) + "key 'name' appears twice (first at m.yaml:2:1)");
}

TEST_CASE("error: model name missing or invalid", "[loader]") {
    CHECK_THAT(error_of("anvil: 1\noutputs: [x]\n"), StartsWith("m.yaml:1:1: ") && Contains("'name'"));
    const std::string y = "anvil: 1\nname: my model\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "my model")) && Contains("[A-Za-z0-9_.-]+") &&
                                Contains("'my model'"));
}

TEST_CASE("error: bad file dtype", "[loader]") {
    const std::string y = "anvil: 1\nname: t\ndtype: f64\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "f64")) && Contains("unknown dtype 'f64'"));
    const std::string i = "anvil: 1\nname: t\ndtype: i32\n";
    CHECK_THAT(error_of(i), StartsWith(at(i, "i32")) && Contains("i32 is not allowed"));
}

TEST_CASE("error: bad seed", "[loader]") {
    const std::string y = "anvil: 1\nname: t\nseed: -3\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "-3")) && Contains("'seed' must be a non-negative integer"));
    const std::string big = "anvil: 1\nname: t\nseed: 18446744073709551616\n";
    CHECK_THAT(error_of(big), StartsWith(at(big, "1844")) && Contains("non-negative integer"));
    Model m = load_model_from_string("anvil: 1\nname: t\nseed: 18446744073709551615\ninputs:\n"
                                     "  - {name: x, shape: [1]}\nparams:\noutputs: [x]\n",
                                     "m.yaml");
    CHECK(m.seed == 18446744073709551615ull);
    CHECK(m.params.empty());  // an empty section is allowed
}

TEST_CASE("error: unknown op", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: matmull, inputs: [x, w]}\n");
    CHECK(error_of(y) == at(y, "matmull") + "node 'y': unknown op 'matmull' (did you mean 'matmul'?)");
}

TEST_CASE("error: an op this version does not implement", "[loader]") {
    // Table-driven: whichever ops the table marks unimplemented today.
    for (const OpInfo& info : all_ops()) {
        if (info.implemented) continue;
        const std::string y = with_nodes("  - {name: y, op: " + info.name + ", inputs: [x, w]}\n");
        CHECK(error_of(y) == at(y, info.name + ",") + "node 'y': op '" + info.name +
                                 "' is not supported by this version of anvil yet");
    }
}

TEST_CASE("IntOrList attributes take an int or a list and store a list", "[loader]") {
    const std::string y = with_nodes(
        "  - {name: y, op: conv2d, inputs: [x, w], stride: 2, padding: [1, 2, 3, 4]}\n"
        "  - {name: p, op: maxpool2d, inputs: [x], kernel: [3, 2]}\n");
    Model m = load_model_from_string(y, "m.yaml");
    CHECK(m.nodes[0].attrs.get_ints("stride") == std::vector<int64_t>{2});
    CHECK(m.nodes[0].attrs.get_ints("padding") == std::vector<int64_t>{1, 2, 3, 4});
    CHECK(m.nodes[0].attrs.get_ints("dilation") == std::vector<int64_t>{1});  // default
    CHECK(m.nodes[0].attrs.get_int("groups") == 1);
    CHECK(m.nodes[1].attrs.get_ints("kernel") == std::vector<int64_t>{3, 2});
    CHECK(!m.nodes[1].attrs.has("stride"));  // no default: the kernel

    const std::string bad = with_nodes("  - {name: y, op: conv2d, inputs: [x, w], stride: 1.5}\n");
    CHECK(error_of(bad) ==
          at(bad, "1.5") + "node 'y': attribute 'stride' must be an integer or a list of integers, got '1.5'");
    const std::string elem = with_nodes("  - {name: y, op: conv2d, inputs: [x, w], stride: [1, x]}\n");
    CHECK_THAT(error_of(elem), StartsWith(at(elem, "x]}")) && Contains("each element of attribute 'stride'"));
}

TEST_CASE("error: unknown attribute", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: softmax, inputs: [x], axes: [1]}\n");
    CHECK(error_of(y) ==
          at(y, "axes") + "node 'y': softmax has no attribute 'axes' (did you mean 'axis'?) (it takes: axis)");
    const std::string n = with_nodes("  - {name: y, op: relu, inputs: [x], alpha: 0.1}\n");
    CHECK_THAT(error_of(n), StartsWith(at(n, "alpha")) && Contains("(it takes none)"));
}

TEST_CASE("error: ill-typed attributes", "[loader]") {
    SECTION("an Int given a float") {
        const std::string y = with_nodes("  - {name: y, op: softmax, inputs: [x], axis: 1.5}\n");
        CHECK(error_of(y) == at(y, "1.5") + "node 'y': attribute 'axis' must be an integer, got '1.5'");
    }
    SECTION("an Int given a quoted number") {
        const std::string y = with_nodes("  - {name: y, op: softmax, inputs: [x], axis: '1'}\n");
        CHECK_THAT(error_of(y), StartsWith(at(y, "'1'")) && Contains("must be an integer"));
    }
    SECTION("a Bool given yes") {
        const std::string y = with_nodes("  - {name: y, op: matmul, inputs: [x, w], transpose_a: yes}\n");
        CHECK_THAT(error_of(y), StartsWith(at(y, "yes")) && Contains("'transpose_a' must be true or false"));
    }
    SECTION("a Float given a word") {
        const std::string y = with_nodes("  - {name: y, op: rmsnorm, inputs: [x, w], eps: small}\n");
        CHECK_THAT(error_of(y), StartsWith(at(y, "small")) && Contains("'eps' must be a number, got 'small'"));
    }
    SECTION("an IntList given a scalar") {
        const std::string y = with_nodes("  - {name: y, op: transpose, inputs: [x], perm: 1}\n");
        CHECK_THAT(error_of(y), StartsWith(at(y, "1}")) && Contains("'perm' must be a list of integers"));
    }
    SECTION("an IntList element that is not an integer") {
        const std::string y = with_nodes("  - {name: y, op: transpose, inputs: [x], perm: [1, a]}\n");
        CHECK_THAT(error_of(y), StartsWith(at(y, "a]")) && Contains("each element of attribute 'perm'"));
    }
    SECTION("a Choice value that is not allowed") {
        const std::string y = with_nodes("  - {name: y, op: gelu, inputs: [x], approximate: exact}\n");
        CHECK(error_of(y) ==
              at(y, "exact") + "node 'y': attribute 'approximate' must be one of none, tanh, got 'exact'");
    }
    SECTION("an attribute with no value") {
        const std::string y = with_nodes("  - name: y\n    op: softmax\n    inputs: [x]\n    axis:\n");
        CHECK_THAT(error_of(y), StartsWith(at(y, "axis")) && Contains("got nothing"));
    }
}

TEST_CASE("error: required attribute missing", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: reduce_sum, inputs: [x]}\n");
    CHECK(error_of(y) == at(y, "{name: y") + "node 'y': reduce_sum needs the attribute 'axes'");
}

TEST_CASE("error: wrong number of inputs", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: add, inputs: [x]}\n");
    CHECK(error_of(y) == at(y, "[x]") + "node 'y': add takes 2 inputs, got 1");
    const std::string c = with_nodes("  - {name: y, op: concat, axis: 0}\n");
    CHECK(error_of(c) == at(c, "{name: y") + "node 'y': concat takes at least 1 input, got 0");
    const std::string r = with_nodes("  - {name: y, op: conv2d, inputs: [x]}\n");
    CHECK(error_of(r) == at(r, "[x]") + "node 'y': conv2d takes 2 to 3 inputs, got 1");
    const std::string k = with_nodes("  - {name: y, op: constant, value: 1, inputs: [x]}\n");
    CHECK(error_of(k) == at(k, "[x]") + "node 'y': constant takes 0 inputs, got 1");
}

TEST_CASE("error: a node input declared nowhere", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: matmul, inputs: [x, w2]}\n");
    CHECK(error_of(y) == at(y, "w2") +
                             "node 'y': input 'w2' is declared nowhere (no input, param or node has that name) "
                             "(did you mean 'w'?)");
}

TEST_CASE("error: an output declared nowhere", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: matmul, inputs: [x, w]}\n", "outputs: [y, zz]\n");
    CHECK_THAT(error_of(y), StartsWith(at(y, "zz")) && Contains("output 'zz' is declared nowhere"));
}

TEST_CASE("error: an output listed twice", "[loader]") {
    const std::string y = with_nodes("  - {name: y, op: matmul, inputs: [x, w]}\n", "outputs: [y, y]\n");
    CHECK_THAT(error_of(y), StartsWith(at(y, "y]")) && Contains("listed twice"));
}

TEST_CASE("error: a duplicate name names both places", "[loader]") {
    const std::string y = with_nodes("  - {name: w, op: relu, inputs: [x]}\n", "outputs: [w]\n");
    CHECK(error_of(y) == at(y, "{name: w, op") + "node 'w': the name is already used by the param declared at " +
                             place(y, "{name: w, shape"));
    const std::string t = "anvil: 1\nname: t\ninputs:\n  - {name: a, shape: [1]}\n  - {name: a, shape: [2]}\n"
                          "outputs: [a]\n";
    CHECK_THAT(error_of(t), StartsWith(at(t, "{name: a", 1)) && Contains("input 'a'") &&
                                Contains("already used by the input declared at m.yaml:4:5"));
}

TEST_CASE("error: no outputs", "[loader]") {
    const std::string e = with_nodes("  - {name: y, op: relu, inputs: [x]}\n", "outputs: []\n");
    CHECK_THAT(error_of(e), StartsWith(at(e, "[]")) && Contains("'outputs' is empty"));
    const std::string m = with_nodes("  - {name: y, op: relu, inputs: [x]}\n", "");
    CHECK_THAT(error_of(m), StartsWith("m.yaml:1:1: ") && Contains("'outputs' is missing"));
}

TEST_CASE("error: bad shapes", "[loader]") {
    auto tensor = [](const std::string& entry) {
        return "anvil: 1\nname: t\ninputs:\n  - " + entry + "\noutputs: [x]\n";
    };
    SECTION("a zero dimension") {
        const std::string y = tensor("{name: x, shape: [2, 0]}");
        CHECK(error_of(y) == at(y, "0]") + "input 'x': shape dimensions must be positive, got 0");
    }
    SECTION("a negative dimension") {
        const std::string y = tensor("{name: x, shape: [-2]}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "-2")) && Contains("positive"));
    }
    SECTION("a non-integer dimension") {
        const std::string y = tensor("{name: x, shape: [2, 1.5]}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "1.5")) && Contains("must be an integer"));
    }
    SECTION("rank above 6") {
        const std::string y = tensor("{name: x, shape: [1, 1, 1, 1, 1, 1, 1]}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "[1, 1")) && Contains("rank 7; the most is 6"));
    }
    SECTION("not a list") {
        const std::string y = tensor("{name: x, shape: 3}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "3}")) && Contains("'shape' must be a list"));
    }
    SECTION("missing") {
        const std::string y = tensor("{name: x}");
        CHECK(error_of(y) == at(y, "{name: x") + "input 'x': 'shape' is missing (write [] for a scalar)");
    }
    SECTION("too many elements") {
        const std::string y = tensor("{name: x, shape: [100000000000, 100000000000]}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "[1000")) && Contains("too many elements"));
    }
}

TEST_CASE("error: bad tensor and node dtypes", "[loader]") {
    const std::string y = "anvil: 1\nname: t\nparams:\n  - {name: x, shape: [2], dtype: float}\noutputs: [x]\n";
    CHECK(error_of(y) == at(y, "float") + "param 'x': unknown dtype 'float' (expected f32, f16, bf16 or i32)");
    const std::string n = with_nodes("  - {name: y, op: relu, inputs: [x], dtype: i32}\n");
    CHECK_THAT(error_of(n), StartsWith(at(n, "i32")) && Contains("node 'y': dtype i32 is not allowed here"));
}

TEST_CASE("error: unknown key in a tensor entry", "[loader]") {
    const std::string y = "anvil: 1\nname: t\nparams:\n  - {name: x, shape: [2], sdt: 1}\noutputs: [x]\n";
    CHECK_THAT(error_of(y), StartsWith(at(y, "sdt")) && Contains("param 'x': unknown key 'sdt'") &&
                                Contains("did you mean 'std'?"));
}

TEST_CASE("error: bad entries and nodes", "[loader]") {
    const std::string a = "anvil: 1\nname: t\ninputs:\n  - x\noutputs: [x]\n";
    CHECK_THAT(error_of(a), StartsWith(at(a, "x\n")) && Contains("each input must be a mapping"));
    const std::string b = "anvil: 1\nname: t\nparams:\n  - {shape: [2]}\noutputs: [x]\n";
    CHECK(error_of(b) == at(b, "{shape") + "this param has no 'name'");
    const std::string c = with_nodes("  - {name: y, inputs: [x]}\n");
    CHECK(error_of(c) == at(c, "{name: y") + "node 'y': 'op' is missing");
    const std::string d = with_nodes("  - {name: y, op: relu, inputs: x}\n");
    CHECK_THAT(error_of(d), StartsWith(at(d, "x}")) && Contains("'inputs' must be a list"));
    const std::string e = "anvil: 1\nname: t\nnodes: {a: 1}\noutputs: [x]\n";
    CHECK_THAT(error_of(e), StartsWith(at(e, "{a")) && Contains("'nodes' must be a list"));
}

TEST_CASE("error: bad init specifications", "[loader]") {
    auto param = [](const std::string& entry) {
        return "anvil: 1\nname: t\nparams:\n  - " + entry + "\noutputs: [p]\n";
    };
    SECTION("unknown init kind") {
        const std::string y = param("{name: p, shape: [2], init: xavier}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "xavier")) && Contains("unknown init 'xavier'"));
    }
    SECTION("a key of another init kind") {
        const std::string y = param("{name: p, shape: [2], init: uniform, std: 1}");
        CHECK(error_of(y) ==
              at(y, "std") + "param 'p': 'std' applies only to init: normal (this param's init is uniform)");
    }
    SECTION("negative std") {
        const std::string y = param("{name: p, shape: [2], std: -1}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "-1")) && Contains("'std' must not be negative"));
    }
    SECTION("low above high") {
        const std::string y = param("{name: p, shape: [2], init: uniform, low: 2, high: 1}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "1}")) && Contains("'low' must not exceed 'high'"));
    }
    SECTION("an i32 tensor without high") {
        const std::string y = param("{name: p, shape: [2], dtype: i32, low: 0}");
        CHECK(error_of(y) == at(y, "{name: p") +
                                 "param 'p': an i32 tensor must name 'high' (its values are integers drawn from "
                                 "[low, high))");
    }
    SECTION("an i32 tensor with a normal init") {
        const std::string y = param("{name: p, shape: [2], dtype: i32, init: normal}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "normal")) && Contains("an i32 tensor holds integers"));
    }
    SECTION("an i32 tensor with fractional bounds") {
        const std::string y = param("{name: p, shape: [2], dtype: i32, high: 2.5}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "2.5")) && Contains("must be an integer"));
    }
    SECTION("an i32 tensor with an empty range") {
        const std::string y = param("{name: p, shape: [2], dtype: i32, low: 4, high: 4}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "4}")) && Contains("[low, high) is empty"));
    }
    SECTION("init: file without a file") {
        const std::string y = param("{name: p, shape: [2], init: file}");
        CHECK_THAT(error_of(y), StartsWith(at(y, "file}")) && Contains("needs a 'file' key"));
    }
}

TEST_CASE("error: init file missing, with the wrong shape or the wrong type", "[loader]") {
    TempDir dir;
    const std::string path = (dir.path / "m.yaml").string();
    write_f32(dir.path / "a.npy", {2, 3});
    write_f32(dir.path / "h.npy", {6}, DType::f16);
    std::ofstream(dir.path / "bad.npy") << "not a numpy file";
    auto param = [](const std::string& entry) {
        return "anvil: 1\nname: t\nparams:\n  - " + entry + "\noutputs: [p]\n";
    };
    SECTION("missing") {
        const std::string y = param("{name: p, shape: [6], init: file, file: nope.npy}");
        CHECK_THAT(error_of(y, path), StartsWith(at(y, "file: nope", 0, path)) &&
                                          Contains("param 'p': init file 'nope.npy' does not exist"));
    }
    SECTION("wrong shape") {
        const std::string y = param("{name: p, shape: [3, 2], init: file, file: a.npy}");
        CHECK(error_of(y, path) == at(y, "file: a", 0, path) +
                                       "param 'p': init file 'a.npy' has shape [2, 3] but the param is [3, 2]");
    }
    SECTION("wrong type") {
        const std::string y = param("{name: p, shape: [6], init: file, file: h.npy}");
        CHECK_THAT(error_of(y, path), StartsWith(at(y, "file: h", 0, path)) && Contains("<f2") &&
                                          Contains("f32 tensor needs <f4"));
    }
    SECTION("not a .npy file") {
        const std::string y = param("{name: p, shape: [6], init: file, file: bad.npy}");
        CHECK_THAT(error_of(y, path), StartsWith(at(y, "file: bad", 0, path)) && Contains("not a .npy file"));
    }
}
