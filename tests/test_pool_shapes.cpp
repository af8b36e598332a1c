// Regression for issue 17's wrong answer: maxpool2d kernel 1, stride 8 over
// [1, 2, 1, 8] stored zeros on the host backend, because GCC 12 at -O2
// miscompiled the window tile once its params were constant-propagated
// (rtasks/platform.cuh says how). Each case is a model with ONE pool, as in
// the report, so that the params table has one entry and the compiler can
// fold it: kernel-1 pools, 1 x 1 outputs, strides past the input and the
// shapes around them, on random inputs, against the float64 reference.
#include <catch2/catch.hpp>

#include <sstream>

#include "anvil/pipeline.h"
#include "graph_builder.h"
#include "run_checks.h"
#include "runtime/host_backend.h"

using namespace anvil;
using namespace anvil::test;

namespace {

struct PoolCase {
    Op op;
    Shape x;
    std::vector<int64_t> kernel, stride, padding;
    bool include_pad = false;
};

std::string describe(const PoolCase& c) {
    std::ostringstream s;
    s << op_name(c.op) << " x " << shape_str(c.x) << " kernel " << shape_str(c.kernel) << " stride "
      << shape_str(c.stride) << " padding " << shape_str(c.padding) << (c.include_pad ? " count_include_pad" : "");
    return s.str();
}

// Runs one pool on the host backend under `policy` and checks it against
// the reference; returns the output so that callers can look at it.
HostTensor run_pool(const PoolCase& c, const std::string& policy) {
    GraphBuilder b;
    b.input("x", c.x);
    std::map<std::string, AttrValue> attrs{{"kernel", L(c.kernel)}, {"stride", L(c.stride)},
                                           {"padding", L(c.padding)}};
    if (c.op == Op::avgpool2d) attrs["count_include_pad"] = B(c.include_pad);
    b.node("y", c.op, {"x"}, attrs);
    b.output("y");
    const Graph g = infer_shapes(b.graph());
    const TensorMap values = make_values(g, std::nullopt);
    const TensorMap out = run_host(plan(g, policy, default_gpu()), values, {2, 5.0});
    expect_reference(g, values, out, 1);
    return out.at("y");
}

}  // namespace

TEST_CASE("maxpool kernel 1 stride 8 over [1, 2, 1, 8] computes x's first column under every policy",
          "[backend][pool][regression]") {
    const std::string policy = GENERATE(as<std::string>{}, "anvil", "rammer", "welder", "topo", "per_op");
    CAPTURE(policy);
    const PoolCase c{Op::maxpool2d, {1, 2, 1, 8}, {1}, {8}, {0}};
    const HostTensor y = run_pool(c, policy);
    REQUIRE(y.shape == Shape{1, 2, 1, 1});
    // Not zeros: the values are the random inputs' first columns.
    CHECK(y.get(0) != 0.0);
    CHECK(y.get(1) != 0.0);
}

TEST_CASE("kernel-1 pools, 1 x 1 outputs and strides past the input agree with the reference",
          "[backend][pool][regression]") {
    std::vector<PoolCase> cases;
    for (Op op : {Op::maxpool2d, Op::avgpool2d}) {
        // Kernel 1: a strided subsample, with strides below, at and past W.
        for (int64_t w : {1, 7, 8, 9})
            for (int64_t s : {1, 2, 8, 9}) cases.push_back({op, {1, 2, 1, w}, {1}, {s}, {0}});
        // A 1 x 1 output: the kernel covers x, or the stride jumps past it.
        cases.push_back({op, {2, 3, 4, 4}, {4}, {4}, {0}});
        cases.push_back({op, {1, 3, 3, 5}, {3, 5}, {1}, {0}});
        cases.push_back({op, {1, 2, 3, 3}, {2}, {16}, {0}});
        cases.push_back({op, {1, 2, 2, 8}, {1, 2}, {2, 8}, {0}});
        // Around them: padding at half the kernel, rectangular windows.
        cases.push_back({op, {1, 2, 1, 8}, {3}, {8}, {1}, op == Op::avgpool2d});
        cases.push_back({op, {1, 4, 5, 7}, {3, 1}, {2, 3}, {1, 0}});
        cases.push_back({op, {2, 1, 9, 9}, {2}, {3}, {1}, op == Op::avgpool2d});
    }
    for (const PoolCase& c : cases) {
        INFO(describe(c));
        run_pool(c, "anvil");
    }
}
