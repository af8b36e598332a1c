// Issue 17's hostile models: sizes and attributes past what the kernels can
// hold are refused with exit status 2 and a message at the place in the
// file (never a signal, a hang, an internal error or a wrapped value), and
// the size limits (--max-memory) name the tensor and its size.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <cmath>

#include "anvil_cmd.h"
#include "base/tensor.h"
#include "temp_dir.h"

using namespace anvil::test;

namespace {

struct Hostile {
    const char* what;
    const char* body;      // after "anvil: 1\nname: r\n"
    const char* place;     // "h.yaml:LINE:COL: node 'y'"
    const char* message;   // a part of what is wrong
};

// Line 3 declares the inputs, 4 the params or nodes, 5 the nodes after params.
const std::vector<Hostile> kHostile = {
    {"reshape whose product overflows to 0 (was SIGFPE)",
     "inputs: [{name: x, shape: [2, 3, 4]}]\n"
     "nodes: [{name: y, op: reshape, inputs: [x], shape: [4294967296, 4294967296, -1]}]\noutputs: [y]\n",
     "h.yaml:4:45: node 'y'", "reshape element count differs"},
    {"an input whose bytes wrap (was SIGSEGV in run)",
     "inputs: [{name: x, shape: [4611686018427387904]}]\n"
     "nodes: [{name: y, op: relu, inputs: [x]}]\noutputs: [y]\n",
     "h.yaml:3:27: input 'x'", "shape [4611686018427387904] has too many elements: dimension 0 is 4611686018427387904, more than 2147483647"},
    {"conv2d stride and padding past 32 bits (emitted stride 0)",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\nparams: [{name: w, shape: [2, 2, 3, 3]}]\n"
     "nodes: [{name: y, op: conv2d, inputs: [x, w], stride: 4611686018427387904, padding: 2305843009213693952}]\n"
     "outputs: [y]\n",
     "h.yaml:5:47: node 'y'", "conv2d stride must be at most 2147483647"},
    {"conv2d padding past 32 bits",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\nparams: [{name: w, shape: [2, 2, 3, 3]}]\n"
     "nodes: [{name: y, op: conv2d, inputs: [x, w], padding: 2305843009213693952}]\noutputs: [y]\n",
     "h.yaml:5:47: node 'y'", "conv2d padding must be at most 2147483647"},
    {"conv2d dilation wrapping dilation * (k - 1) to 0",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\nparams: [{name: w, shape: [2, 2, 3, 3]}]\n"
     "nodes: [{name: y, op: conv2d, inputs: [x, w], dilation: 4611686018427387904}]\noutputs: [y]\n",
     "h.yaml:5:47: node 'y'", "conv2d dilation must be at most 2147483647"},
    {"conv2d dilated kernel past 32 bits",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\nparams: [{name: w, shape: [2, 2, 3, 3]}]\n"
     "nodes: [{name: y, op: conv2d, inputs: [x, w], dilation: 2147483647, padding: 2147483647}]\noutputs: [y]\n",
     "h.yaml:5:69: node 'y'", "conv2d padding 2147483647 makes x [1, 2, 8, 8] 4294967302 long along H"},
    {"conv2d dilated kernel spanning past 32 bits",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\nparams: [{name: w, shape: [2, 2, 3, 3]}]\n"
     "nodes: [{name: y, op: conv2d, inputs: [x, w], dilation: 1073741824, padding: 1}]\noutputs: [y]\n",
     "h.yaml:5:47: node 'y'", "conv2d window spans 2147483649 along H"},
    {"maxpool stride 0",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\nnodes: [{name: y, op: maxpool2d, inputs: [x], kernel: 2, stride: 0}]\n"
     "outputs: [y]\n",
     "h.yaml:4:58: node 'y'", "maxpool2d stride must be positive"},
    {"avgpool kernel past 32 bits",
     "inputs: [{name: x, shape: [1, 2, 8, 8]}]\n"
     "nodes: [{name: y, op: avgpool2d, inputs: [x], kernel: 4294967297}]\noutputs: [y]\n",
     "h.yaml:4:47: node 'y'", "avgpool2d kernel must be at most 2147483647"},
    {"an input of 2^40 elements (was minutes of schedule, then bad_alloc)",
     "inputs: [{name: x, shape: [2147483647, 512]}]\nnodes: [{name: y, op: relu, inputs: [x]}]\noutputs: [y]\n",
     "h.yaml:3:27: input 'x'", "shape [2147483647, 512] has too many elements: 1099511627264 elements, more than 2147483647"},
    {"a constant of 2^31 elements (hung schedule and run)",
     "inputs: [{name: x, shape: [4]}]\n"
     "nodes: [{name: c, op: constant, shape: [2147483648], value: 1.0}, {name: y, op: relu, inputs: [x]}]\n"
     "outputs: [y, c]\n",
     "h.yaml:4:33: node 'c'", "constant shape [2147483648] is too large: dimension 0 is 2147483648"},
    {"a constant whose element count overflows (was exit 3)",
     "inputs: [{name: x, shape: [4]}]\n"
     "nodes: [{name: c, op: constant, shape: [3037000500, 3037000500], value: 1.0}]\noutputs: [c]\n",
     "h.yaml:4:33: node 'c'", "more than 2147483647"},
    {"a constant value f16 cannot hold",
     "dtype: f16\ninputs: [{name: x, shape: [4]}]\n"
     "nodes: [{name: c, op: constant, shape: [4], value: 70000.0}, {name: y, op: add, inputs: [x, c]}]\n"
     "outputs: [y]\n",
     "h.yaml:5:45: node 'c'", "constant value 70000 is not a finite f16 number"},
    {"a matmul whose broadcast result is past 2^31 elements",
     "inputs: [{name: a, shape: [65536, 1, 64, 8]}, {name: b, shape: [1, 65536, 8, 64]}]\n"
     "nodes: [{name: y, op: matmul, inputs: [a, b]}]\noutputs: [y]\n",
     "h.yaml:4:9: node 'y'", "matmul result [65536, 65536, 64, 64] is too large: 17592186044416 elements"},
    {"layernorm eps nan", "inputs: [{name: x, shape: [4, 8]}]\nparams: [{name: g, shape: [8]}, {name: b, shape: [8]}]\n"
     "nodes: [{name: y, op: layernorm, inputs: [x, g, b], eps: .nan}]\noutputs: [y]\n",
     "h.yaml:5:53: node 'y'", "layernorm eps must be a finite positive number"},
    {"layernorm eps inf", "inputs: [{name: x, shape: [4, 8]}]\nparams: [{name: g, shape: [8]}, {name: b, shape: [8]}]\n"
     "nodes: [{name: y, op: layernorm, inputs: [x, g, b], eps: .inf}]\noutputs: [y]\n",
     "h.yaml:5:53: node 'y'", "got inf"},
    {"rmsnorm eps negative", "inputs: [{name: x, shape: [4, 8]}]\nparams: [{name: g, shape: [8]}]\n"
     "nodes: [{name: y, op: rmsnorm, inputs: [x, g], eps: -1.0}]\noutputs: [y]\n",
     "h.yaml:5:48: node 'y'", "rmsnorm eps must be a finite positive number"},
    {"rmsnorm eps that f32 rounds to 0", "inputs: [{name: x, shape: [4, 8]}]\nparams: [{name: g, shape: [8]}]\n"
     "nodes: [{name: y, op: rmsnorm, inputs: [x, g], eps: 1.0e-50}]\noutputs: [y]\n",
     "h.yaml:5:48: node 'y'", "that f32 holds"},
    {"batchnorm eps past f32",
     "inputs: [{name: x, shape: [2, 3, 4]}]\n"
     "params: [{name: s, shape: [3]}, {name: b, shape: [3]}, {name: m, shape: [3]}, {name: v, shape: [3]}]\n"
     "nodes: [{name: y, op: batchnorm, inputs: [x, s, b, m, v], eps: 1.0e+300}]\noutputs: [y]\n",
     "h.yaml:5:59: node 'y'", "batchnorm eps must be a finite number that f32 holds, got 1e+300"},
};

}  // namespace

TEST_CASE("issue 17's hostile models exit 2 with a located message in check, schedule and run", "[cli][hostile]") {
    TempDir dir;
    for (const Hostile& h : kHostile) {
        const std::string model = dir.write("h.yaml", std::string("anvil: 1\nname: r\n") + h.body);
        for (const std::string cmd : {"check", "schedule", "run --backend host"}) {
            const CmdResult r = run_anvil(cmd + " " + model);
            INFO(h.what << " (" << cmd << ")\n" << r.output);
            CHECK(r.signal == 0);
            CHECK(r.status == 2);
            CHECK_THAT(r.output, Catch::Contains(h.place) && Catch::Contains(h.message));
        }
    }
}

TEST_CASE("a slice step past the dimension takes one element and computes right", "[cli][hostile]") {
    TempDir dir;
    const std::string model = dir.write(
        "s.yaml", "anvil: 1\nname: r\ninputs: [{name: x, shape: [4, 8]}]\n"
                  "nodes: [{name: y, op: slice, inputs: [x], axis: 1, start: 2, step: 9223372036854775807}]\n"
                  "outputs: [y]\n");
    const CmdResult r = run_anvil("run " + model + " --backend host");
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK_THAT(r.output, Catch::Contains("output y") && Catch::Contains(" ok"));
}

TEST_CASE("check and run --max-memory limit every tensor and the arena, naming the tensor and its size", "[cli][limits]") {
    TempDir dir;
    const std::string model =
        dir.write("m.yaml", "anvil: 1\nname: r\ninputs: [{name: x, shape: [1024, 1024]}]\n"
                            "nodes: [{name: y, op: relu, inputs: [x]}]\noutputs: [y]\n");
    SECTION("a tensor past half the limit in elements, or past it in bytes") {
        for (const std::string cmd : {"check", "schedule", "run --backend host"}) {
            const CmdResult r = run_anvil(cmd + " " + model + " --max-memory 1M");
            INFO(cmd << "\n" << r.output);
            CHECK(r.status == 2);
            CHECK_THAT(r.output, Catch::Contains("m.yaml:3:10: input 'x': [1024, 1024] f32 has 1048576 elements "
                                                 "(4.0 MiB), more than the 524288 elements one tensor may have"));
        }
        const CmdResult r = run_anvil("check " + model + " --max-memory 3MiB");
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("input 'x': [1024, 1024] f32 has 1048576 elements (4.0 MiB), more "
                                             "than the memory limit 3.0 MiB (3145728 bytes"));
    }
    SECTION("an arena past the limit, with every tensor within it") {
        for (const std::string cmd : {"check", "schedule", "run --backend host"}) {
            const CmdResult r = run_anvil(cmd + " " + model + " --max-memory 6M");
            INFO(cmd << "\n" << r.output);
            CHECK(r.status == 2);
            CHECK_THAT(r.output, Catch::Contains("m.yaml:3:10: model 'r': its arena") &&
                                     Catch::Contains("needs 8.0 MiB (8388608 bytes), more than the memory limit "
                                                     "6.0 MiB (6291456 bytes") &&
                                     Catch::Contains("the largest tensor is 'x' [1024, 1024] f32 (4.0 MiB)"));
        }
    }
    SECTION("within the limit") {
        const CmdResult r = run_anvil("run " + model + " --backend host --max-memory 8M");
        INFO(r.output);
        CHECK(r.status == 0);
    }
    SECTION("by default, the target GPU's memory") {
        const std::string big = dir.write(
            "b.yaml", "anvil: 1\nname: r\ninputs: [{name: x, shape: [1073741823, 2]}]\n"
                      "nodes: [{name: y, op: relu, inputs: [x]}]\noutputs: [y]\n");
        CmdResult r = run_anvil("check " + big);  // 2^31 f32: 8 GiB each, 16 GiB in all, within 80 GiB
        INFO(r.output);
        CHECK(r.status == 0);
        r = run_anvil("check " + big + " --gpu a100_sxm --max-memory 12G");
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains("its arena") && Catch::Contains("12.0 GiB"));
    }
    SECTION("a size that is not one") {
        for (const char* bad : {"''", "12x", "0", "G", "1.5Q"}) {
            const CmdResult r = run_anvil("check " + model + " --max-memory " + bad);
            INFO(bad << "\n" << r.output);
            CHECK(r.status == 2);
            CHECK_THAT(r.output, Catch::Contains("is not a memory size"));
        }
    }
}

TEST_CASE("a model of more tiles than one megakernel schedules is refused at its largest node, after fusion",
          "[cli][limits]") {
    TempDir dir;
    // [2047, 2^20] f16: 524032 tiles of 4096 per elementwise node; three
    // unfused nodes pass the 2^20-task limit, fused into one they do not.
    const std::string model = dir.write(
        "t.yaml", "anvil: 1\nname: r\ndtype: f16\ninputs: [{name: x, shape: [2047, 1048576]}]\n"
                  "nodes:\n  - {name: y, op: relu, inputs: [x]}\n  - {name: z, op: sigmoid, inputs: [y]}\n"
                  "  - {name: w, op: tanh, inputs: [z]}\noutputs: [w]\n");
    CmdResult r = run_anvil("schedule " + model + " --policy per_op");
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK_THAT(r.output, Catch::Contains("t.yaml:6:5: node 'y': the model decomposes into 1572096 tiles, more than "
                                         "the 1048576 one megakernel schedules; this node alone has 524032"));
    r = run_anvil("check " + model);  // check schedules nothing: the limit is the megakernel's
    CHECK(r.status == 0);
}

TEST_CASE("text yaml-cpp cannot place outside a mapping is refused at once, not parsed until memory runs out",
          "[cli][hostile]") {
    TempDir dir;
    // A stray ',' made YAML::LoadAll yield empty documents forever (libFuzzer: 21 GB, then the OOM killer).
    for (const auto& [text, place] : std::vector<std::pair<std::string, std::string>>{
             {",", "y.yaml:1:1: "}, {"# a comment\n, fewer", "y.yaml:2:1: "}, {"anvil: 1\n---\nname: r\n", "y.yaml:2:1: "}}) {
        const std::string model = dir.write("y.yaml", text);
        const CmdResult r = run_anvil("check " + model, "timeout 20");  // a regression must not eat the machine
        INFO(text << "\n" << r.output);
        CHECK(r.status == 2);
        CHECK_THAT(r.output, Catch::Contains(place + "the file holds more than one YAML document"));
    }
}

TEST_CASE("outputs that are NaN or infinite where the exact result is agree; anywhere else they do not",
          "[hostile]") {
    const double nan = std::nan(""), inf = INFINITY;
    CHECK(anvil::relative_l2_error({1.0, nan, -inf, 2.0}, {1.0, nan, -inf, 2.0}) == 0.0);
    CHECK(anvil::relative_l2_error({1.0, nan, 2.001}, {1.0, nan, 2.0}) == Approx(0.001 / std::sqrt(5.0)));
    CHECK(std::isinf(anvil::relative_l2_error({1.0, 3.0}, {1.0, nan})));   // a number for a NaN
    CHECK(std::isinf(anvil::relative_l2_error({1.0, nan}, {1.0, 3.0})));   // a NaN for a number
    CHECK(std::isinf(anvil::relative_l2_error({inf}, {-inf})));            // the other infinity
    CHECK(std::isinf(anvil::relative_l2_error({inf, 1.0}, {5.0, 1.0})));   // an infinity for a number
}
