// The table-driven op test (ggml's habit): every implemented operator, over
// shapes that are not multiples of any tile (1, 3, 37, 129), in every float
// dtype, through the host backend under every policy and the simt backend
// (the CUDA code, thread-level checks on) under anvil and per_op, against the
// float64 reference. All cases of one dtype form one model so that they
// compile once.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <regex>
#include <set>

#include "runtime/cuda_backend.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "run_checks.h"
#include "frontend/load_model.h"
#include "frontend/infer_shapes.h"
#include "frontend/op_table.h"

using namespace anvil;

namespace {

struct CaseInput {
    std::string name;  // referred to as $name in the node text
    Shape shape;
    std::string init = "init: normal, std: 1.0";
};

struct OpCase {
    Op op;                      // the operator this case covers
    std::vector<CaseInput> inputs;
    std::vector<std::string> nodes;  // "name: $y, op: ..., inputs: [$a]"; the last one is the case's output
};

std::string shape_yaml(const Shape& s) { return shape_str(s); }

const std::string kPositive = "init: uniform, low: 0.5, high: 2.0";

std::vector<OpCase> op_cases() {
    std::vector<OpCase> cases;
    auto one = [&](Op op, std::vector<CaseInput> ins, std::string node) {
        cases.push_back({op, std::move(ins), {std::move(node)}});
    };
    one(Op::constant, {}, "name: $y, op: constant, value: 1.5, shape: [3, 37]");
    one(Op::constant, {}, "name: $y, op: constant, value: -0.25");
    // Every pointwise op of the table gets its cases here, so a new one is
    // tested (and fails until its reference and device formula agree)
    // without an edit; only its domain, if it is not every real, is listed.
    const std::set<Op> positive_a = {Op::log, Op::sqrt, Op::rsqrt, Op::pow};
    const std::set<Op> positive_b = {Op::div, Op::pow};
    for (const OpDef& d : kOpTable) {
        if (d.cls != OpClass::Binary) continue;
        std::string a_init = positive_a.count(d.op) ? kPositive : "init: normal, std: 1.0";
        std::string b_init = positive_b.count(d.op) ? kPositive : "init: normal, std: 1.0";
        std::string node = fmt::format("name: $y, op: {}, inputs: [$a, $b]", d.name);
        one(d.op, {{"a", {37, 129}, a_init}, {"b", {129}, b_init}}, node);
        one(d.op, {{"a", {3, 1, 37}, a_init}, {"b", {129, 1}, b_init}}, node);
        one(d.op, {{"a", {1}, a_init}, {"b", {}, b_init}}, node);
    }
    for (const OpDef& d : kOpTable) {
        if (d.cls != OpClass::Unary) continue;
        std::string init = positive_a.count(d.op) ? kPositive : "init: normal, std: 1.5";
        std::string node = fmt::format("name: $y, op: {}, inputs: [$a]", d.name);
        one(d.op, {{"a", {129, 37}, init}}, node);
        one(d.op, {{"a", {3, 1, 3}, init}}, node);
    }
    // The other device code of an op (gelu's tanh form).
    for (const OpDef& d : kOpTable)
        if (d.alt_attr)
            one(d.op, {{"a", {37, 3}}},
                fmt::format("name: $y, op: {}, inputs: [$a], {}: {}", d.name, d.alt_attr, d.alt_value));
    one(Op::softmax, {{"a", {37, 129}}}, "name: $y, op: softmax, inputs: [$a]");
    one(Op::softmax, {{"a", {3, 37, 3}}}, "name: $y, op: softmax, inputs: [$a], axis: 1");
    one(Op::softmax, {{"a", {129}}}, "name: $y, op: softmax, inputs: [$a], axis: 0");
    // Rows past ANVIL_ROW_WARP_MAX (1024) take the block-wide walk, shorter ones a warp each.
    one(Op::softmax, {{"a", {3, 1500}}}, "name: $y, op: softmax, inputs: [$a]");
    one(Op::layernorm, {{"a", {37, 129}}, {"g", {129}, kPositive}, {"b", {129}}},
        "name: $y, op: layernorm, inputs: [$a, $g, $b]");
    one(Op::layernorm, {{"a", {3, 37, 3}}, {"g", {37, 3}, kPositive}, {"b", {37, 3}}},
        "name: $y, op: layernorm, inputs: [$a, $g, $b], axis: -2, eps: 0.001");
    one(Op::rmsnorm, {{"a", {3, 129}}, {"g", {129}, kPositive}}, "name: $y, op: rmsnorm, inputs: [$a, $g]");
    one(Op::layernorm, {{"a", {2, 1025}}, {"g", {1025}, kPositive}, {"b", {1025}}},
        "name: $y, op: layernorm, inputs: [$a, $g, $b]");
    one(Op::rmsnorm, {{"a", {9, 1024}}, {"g", {1024}, kPositive}}, "name: $y, op: rmsnorm, inputs: [$a, $g]");
    one(Op::rmsnorm, {{"a", {1, 37}}, {"g", {37}, kPositive}}, "name: $y, op: rmsnorm, inputs: [$a, $g], eps: 0.01");
    one(Op::reduce_sum, {{"a", {3, 37, 129}}}, "name: $y, op: reduce_sum, inputs: [$a], axes: [1]");
    one(Op::reduce_sum, {{"a", {3, 37}}}, "name: $y, op: reduce_sum, inputs: [$a], axes: [0, 1]");
    one(Op::reduce_mean, {{"a", {3, 37, 5}}}, "name: $y, op: reduce_mean, inputs: [$a], axes: [0, 2], keepdims: true");
    one(Op::reduce_max, {{"a", {37, 129}}}, "name: $y, op: reduce_max, inputs: [$a], axes: [-1]");
    one(Op::matmul, {{"a", {37, 129}}, {"b", {129, 3}}}, "name: $y, op: matmul, inputs: [$a, $b]");
    one(Op::matmul, {{"a", {1, 129}}, {"b", {129, 129}}}, "name: $y, op: matmul, inputs: [$a, $b]");
    one(Op::matmul, {{"a", {129, 37}}, {"b", {65, 129}}},
        "name: $y, op: matmul, inputs: [$a, $b], transpose_a: true, transpose_b: true");
    one(Op::matmul, {{"a", {2, 1, 37, 65}}, {"b", {3, 65, 33}}}, "name: $y, op: matmul, inputs: [$a, $b]");
    one(Op::matmul, {{"a", {3, 65, 37}}, {"b", {1, 70, 65}}},
        "name: $y, op: matmul, inputs: [$a, $b], transpose_a: true, transpose_b: true");
    one(Op::transpose, {{"a", {3, 37, 129}}}, "name: $y, op: transpose, inputs: [$a], perm: [2, 0, 1]");
    one(Op::transpose, {{"a", {37, 3}}}, "name: $y, op: transpose, inputs: [$a], perm: [-1, 0]");
    one(Op::reshape, {{"a", {3, 37, 4}}}, "name: $y, op: reshape, inputs: [$a], shape: [-1, 12]");
    one(Op::concat, {{"a", {3, 1, 5}}, {"b", {3, 37, 5}}, {"c", {3, 3, 5}}},
        "name: $y, op: concat, inputs: [$a, $b, $c], axis: 1");
    one(Op::concat, {{"a", {37, 1}}, {"b", {37, 129}}}, "name: $y, op: concat, inputs: [$a, $b], axis: -1");
    one(Op::slice, {{"a", {37, 129}}}, "name: $y, op: slice, inputs: [$a], axis: 1, start: -100, end: 120, step: 3");
    one(Op::slice, {{"a", {37, 3}}}, "name: $y, op: slice, inputs: [$a], axis: 0, start: 5");
    // conv2d: the implicit GEMM (>= 16 output channels per group, or a long
    // sum) and the direct window (thin groups, depthwise); every padding
    // form, strides, dilations, groups, with and without bias.
    one(Op::conv2d, {{"x", {1, 3, 13, 11}}, {"w", {37, 3, 3, 3}}, {"b", {37}}},
        "name: $y, op: conv2d, inputs: [$x, $w, $b], padding: 1");
    one(Op::conv2d, {{"x", {2, 6, 9, 17}}, {"w", {34, 3, 3, 2}}},
        "name: $y, op: conv2d, inputs: [$x, $w], groups: 2, stride: [2, 1], dilation: [1, 2], padding: [1, 0, 2, 3]");
    one(Op::conv2d, {{"x", {1, 37, 5, 5}}, {"w", {3, 37, 3, 3}}, {"b", {3}}},
        "name: $y, op: conv2d, inputs: [$x, $w, $b], padding: [2, 1]");
    one(Op::conv2d, {{"x", {1, 129, 3, 3}}, {"w", {129, 129, 1, 1}}}, "name: $y, op: conv2d, inputs: [$x, $w]");
    one(Op::conv2d, {{"x", {1, 37, 9, 9}}, {"w", {37, 1, 3, 3}}, {"b", {37}}},
        "name: $y, op: conv2d, inputs: [$x, $w, $b], groups: 37, padding: 1");
    one(Op::conv2d, {{"x", {2, 4, 7, 5}}, {"w", {8, 2, 3, 3}}},
        "name: $y, op: conv2d, inputs: [$x, $w], groups: 2, stride: 2, dilation: 2, padding: [0, 1, 2, 1]");
    one(Op::maxpool2d, {{"x", {2, 3, 37, 37}}}, "name: $y, op: maxpool2d, inputs: [$x], kernel: 3, stride: 2, padding: 1");
    one(Op::maxpool2d, {{"x", {1, 3, 9, 8}}},
        "name: $y, op: maxpool2d, inputs: [$x], kernel: [3, 2], stride: [2, 1], padding: [1, 0, 1, 1]");
    one(Op::maxpool2d, {{"x", {2, 3, 11, 13}}},
        "name: $y, op: maxpool2d, inputs: [$x], kernel: [3, 2], stride: [1, 2], dilation: [2, 3], padding: [2, 1, 1, 0]");
    one(Op::avgpool2d, {{"x", {1, 37, 7, 7}}}, "name: $y, op: avgpool2d, inputs: [$x], kernel: 3, stride: 2, padding: 1");
    one(Op::avgpool2d, {{"x", {1, 37, 7, 7}}},
        "name: $y, op: avgpool2d, inputs: [$x], kernel: [3, 2], stride: 2, padding: 1, count_include_pad: true");
    one(Op::avgpool2d, {{"x", {2, 3, 8, 9}}}, "name: $y, op: avgpool2d, inputs: [$x], kernel: 2");
    one(Op::global_avgpool, {{"x", {2, 37, 5, 3}}}, "name: $y, op: global_avgpool, inputs: [$x]");
    one(Op::global_avgpool, {{"x", {1, 129, 1, 1}}}, "name: $y, op: global_avgpool, inputs: [$x]");
    one(Op::batchnorm, {{"x", {3, 37}}, {"s", {37}}, {"b", {37}}, {"m", {37}}, {"v", {37}, kPositive}},
        "name: $y, op: batchnorm, inputs: [$x, $s, $b, $m, $v]");
    one(Op::batchnorm, {{"x", {2, 3, 5, 7}}, {"s", {3}}, {"b", {3}}, {"m", {3}}, {"v", {3}, kPositive}},
        "name: $y, op: batchnorm, inputs: [$x, $s, $b, $m, $v]");
    one(Op::batchnorm, {{"x", {1, 129, 3}}, {"s", {129}}, {"b", {129}}, {"m", {129}}, {"v", {129}, kPositive}},
        "name: $y, op: batchnorm, inputs: [$x, $s, $b, $m, $v], eps: 0.001");
    one(Op::embedding, {{"t", {37, 129}}, {"i", {3, 5}, "dtype: i32, init: uniform, low: 0, high: 37"}},
        "name: $y, op: embedding, inputs: [$t, $i]");
    one(Op::embedding, {{"t", {129, 3}}, {"i", {1}, "dtype: i32, init: uniform, low: 120, high: 129"}},
        "name: $y, op: embedding, inputs: [$t, $i]");
    // Chains: a reshape between two computing ops (its result aliases its
    // operand), and a transpose feeding a matmul tile by tile.
    cases.push_back({Op::reshape,
                     {{"a", {3, 37}}, {"b", {37, 3}}},
                     {"name: $t, op: mul, inputs: [$a, $a]", "name: $r, op: reshape, inputs: [$t], shape: [37, 3]",
                      "name: $y, op: add, inputs: [$r, $b]"}});
    cases.push_back({Op::transpose,
                     {{"a", {37, 129}}, {"b", {37, 5}}},
                     {"name: $t, op: transpose, inputs: [$a], perm: [1, 0]",
                      "name: $y, op: matmul, inputs: [$t, $b]"}});
    // A conv tile reads the conv tiles of its producer under its halo; an
    // embedding feeds a batchnorm (rank 3, channels = the ids' second dim).
    cases.push_back({Op::conv2d,
                     {{"x", {1, 5, 11, 9}}, {"w1", {17, 5, 3, 3}}, {"w2", {17, 1, 3, 3}}, {"w3", {16, 17, 3, 3}}},
                     {"name: $a, op: conv2d, inputs: [$x, $w1], padding: 1",
                      "name: $b, op: conv2d, inputs: [$a, $w2], groups: 17, padding: [0, 1, 2, 1]",
                      "name: $y, op: conv2d, inputs: [$b, $w3], stride: 2"}});
    cases.push_back({Op::embedding,
                     {{"t", {11, 37}}, {"i", {2, 3}, "dtype: i32, init: uniform, low: 0, high: 11"},
                      {"s", {3}}, {"b", {3}}, {"m", {3}}, {"v", {3}, kPositive}},
                     {"name: $e, op: embedding, inputs: [$t, $i]",
                      "name: $y, op: batchnorm, inputs: [$e, $s, $b, $m, $v]"}});
    return cases;
}

// One model holding every case; case i's tensors are prefixed "c<i>_".
std::string cases_model(const std::vector<OpCase>& cases, DType dtype) {
    std::string inputs, nodes, outputs;
    for (size_t i = 0; i < cases.size(); ++i) {
        std::string prefix = fmt::format("c{}_", i);
        auto rename = [&](std::string text) { return std::regex_replace(text, std::regex(R"(\$(\w+))"), prefix + "$1"); };
        for (const CaseInput& in : cases[i].inputs)
            inputs += fmt::format("  - {{name: {}{}, shape: {}, {}}}\n", prefix, in.name, shape_yaml(in.shape), in.init);
        for (const std::string& n : cases[i].nodes) nodes += "  - {" + rename(n) + "}\n";
        outputs += (outputs.empty() ? "" : ", ") + prefix + "y";
    }
    return fmt::format("anvil: 1\nname: op_cases\ndtype: {}\nseed: 11\ninputs:\n{}nodes:\n{}outputs: [{}]\n",
                       dtype_name(dtype), inputs, nodes, outputs);
}

}  // namespace

TEST_CASE("every implemented op has a case in the table", "[ops]") {
    std::set<Op> covered;
    for (const OpCase& c : op_cases()) covered.insert(c.op);
    for (const OpInfo& info : all_ops())
        if (info.implemented) CHECK(covered.count(info.op) == 1);
}

// Runs every case in one model of `dtype` under `policy` with `run` and
// checks each case's output against the reference.
template <class Run>
void check_cases(DType dtype, const std::string& policy, Run run) {
    const std::vector<OpCase> cases = op_cases();
    Model model = load_model_from_string(cases_model(cases, dtype), "op_cases.yaml");
    Graph graph = infer_shapes(build_graph(model));
    TensorMap values = make_values(graph, std::nullopt);
    Schedule s = plan(graph, policy, default_gpu());
    TensorMap outputs = run(s, values);
    auto reference = reference_execute(graph, values);
    for (const OutputCheck& c : check_outputs(graph, outputs, reference)) {
        int i = std::stoi(c.name.substr(1));
        INFO("case " << i << " (" << op_name(cases[i].op) << ": " << cases[i].nodes.back() << ")");
        // The reference must be non-trivial for the comparison to mean anything.
        double norm = 0;
        for (double v : reference.at(c.name).data) norm += v * v;
        CHECK(norm > 0);
        CHECK(c.rel_l2 <= c.tolerance);
    }
}

TEST_CASE("every op agrees with the reference on the host backend", "[ops][host]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    auto policy = GENERATE(as<std::string>{}, "anvil", "rammer", "welder", "topo", "per_op");
    DYNAMIC_SECTION(dtype_name(dtype) << " under " << policy) {
        check_cases(dtype, policy, [](const Schedule& s, const TensorMap& values) {
            HostRunOptions checked;
            checked.check_races = true;
            return run_host(s, values, checked);
        });
    }
}

TEST_CASE("every op agrees with the reference on the simt backend", "[ops][simt]") {
    // The CUDA branch of every tile (tensor-core matmuls in f16/bf16 where
    // the policy picks them) on emulated threads, checked thread by thread.
    // anvil fuses and co-schedules; per_op runs every rOp's tiles alone.
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    auto policy = GENERATE(as<std::string>{}, "anvil", "per_op");
    DYNAMIC_SECTION(dtype_name(dtype) << " under " << policy) {
        check_cases(dtype, policy, [](const Schedule& s, const TensorMap& values) { return run_simt(s, values); });
    }
}

TEST_CASE("every op agrees with the reference on the cuda backend", "[ops][gpu]") {
    REQUIRE_DEVICE();
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    auto policy = GENERATE(as<std::string>{}, "anvil", "per_op");
    DYNAMIC_SECTION(dtype_name(dtype) << " under " << policy) {
        check_cases(dtype, policy, [](const Schedule& s, const TensorMap& values) { return run_cuda(s, values); });
    }
}
