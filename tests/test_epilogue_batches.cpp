// A GEMM or conv tile applies its fused epilogue to a thread's values
// ANVIL_EPI_BATCH at a time (rtasks/epilogue.cuh, anvil_epilogue_each):
// every tile variant the policies can pick, at shapes that leave partial
// batches and values outside the output, computes what the reference does
// on the host and simt backends; and the checks see a batch gone wrong.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <set>
#include <string>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "frontend/infer_shapes.h"
#include "graph_builder.h"
#include "run_checks.h"
#include "schedule/builders.h"
#include "schedule/variants.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "tile/verify_tile_graph.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;

namespace {

// `copies` times: y_i = gelu(x @ w + bias + r) over [37, 45] x [45, 77],
// and z_i = relu(conv(img, k) + q) over 19 channels of 9 x 7 pixels: each
// epilogue loads a broadcast operand and a full one per value (a conv's
// bias is the tile's own).
Graph chains(DType dtype, int copies) {
    GraphBuilder b(dtype);
    b.input("x", {37, 45});
    b.param("w", {45, 77});
    b.param("bias", {77});
    b.input("r", {37, 77});
    b.input("img", {2, 5, 9, 7});
    b.param("k", {19, 5, 3, 3});
    b.input("q", {2, 19, 9, 7});
    for (int i = 0; i < copies; ++i) {
        const std::string n = std::to_string(i);
        b.node("mm_" + n, Op::matmul, {"x", "w"});
        b.node("mb_" + n, Op::add, {"mm_" + n, "bias"});
        b.node("mr_" + n, Op::add, {"mb_" + n, "r"});
        b.node("y_" + n, Op::gelu, {"mr_" + n});
        b.node("cv_" + n, Op::conv2d, {"img", "k"}, {{"padding", L({1})}});
        b.node("cq_" + n, Op::add, {"cv_" + n, "q"});
        b.node("z_" + n, Op::relu, {"cq_" + n});
        b.output("y_" + n).output("z_" + n);
    }
    Graph g = infer_shapes(b.graph());
    for (const char* n : {"x", "r", "img", "q"}) set_init(g, n, InitKind::normal, 1.0);
    for (const char* n : {"w", "k"}) set_init(g, n, InitKind::normal, 0.3);
    set_init(g, "bias", InitKind::uniform, -1.0, 1.0);
    return g;
}

// The GEMM tile variants of `op`: not GEMVs, nor a conv's direct window
// tile (their epilogues take a value per call).
std::vector<ROp> gemm_variants(const ROp& op) {
    std::vector<ROp> out;
    for (ROp& v : tile_variants(op, default_gpu())) {
        const auto* mm = std::get_if<MatmulParams>(&v.params);
        if (v.kind == TaskKind::conv2d || (mm && mm->algo != ANVIL_MM_GEMV)) out.push_back(std::move(v));
    }
    return out;
}

struct Cases {
    Graph graph;
    Schedule schedule;
    std::set<std::string> kinds;  // the variants' templates, without their arguments
    int grouped = 0;              // CUDA-core conv variants with k groups
};

// One copy of the chains per variant, copy i in variant i of its rOp (the
// last one wherever a kind has fewer), a launch per rOp.
Cases every_variant(DType dtype) {
    const TileGraph probe = fuse(decompose(chains(dtype, 1)), default_gpu());
    size_t copies = 0;
    for (const ROp& op : probe.rops) {
        REQUIRE(op.epilogue.nsteps > 0);
        copies = std::max(copies, gemm_variants(op).size());
    }
    Cases c{chains(dtype, static_cast<int>(copies)), {}, {}, 0};
    TileGraph tg = fuse(decompose(c.graph), default_gpu());
    for (ROp& op : tg.rops) {
        REQUIRE(op.epilogue.ninputs >= 1);
        const std::vector<ROp> variants = gemm_variants(op);
        const size_t i = std::stoul(op.name.substr(op.name.find('_') + 1, op.name.find('+') - op.name.find('_') - 1));
        op = variants.at(std::min(i, variants.size() - 1));
        const std::string v = variant_of(op);
        c.kinds.insert(v.substr(0, v.find('<')));
        if (const auto* w = std::get_if<WindowParams>(&op.params); w && w->algo == ANVIL_MM_TILED)
            c.grouped += anvil_conv_k_groups(w->bm, w->bn, w->bk) > 1;
    }
    verify_tile_graph(tg, default_gpu());
    c.schedule = launch_per_rop("per_op", tg, default_gpu(), "op_");
    return c;
}

}  // namespace

TEST_CASE("epilogue batches: every GEMM and conv tile variant, odd shapes, on host and simt", "[simt][epilogue]") {
    const DType dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    CAPTURE(dtype_name(dtype));
    const Cases c = every_variant(dtype);
    // What the variants cover: every tile template a GEMM or conv takes in this dtype.
    if (dtype == DType::f32) {
        CHECK(c.kinds == std::set<std::string>{"anvil_matmul_tile", "anvil_conv2d_tile"});
        CHECK(c.grouped > 0);  // conv2d.cuh's sums of the k groups' partial tiles
    } else {
        CHECK(c.kinds == std::set<std::string>{"anvil_matmul_tile", "anvil_matmul_tc_tile", "anvil_conv2d_tile",
                                               "anvil_conv2d_tc_tile"});
    }
    const TensorMap values = make_values(c.graph, std::nullopt);
    const size_t outputs = c.graph.outputs.size();
    expect_reference(c.graph, values, run_host(c.schedule, values), outputs);
    expect_reference(c.graph, values, run_simt(c.schedule, values), outputs);
}

TEST_CASE("epilogue batches: a value left out of its batch, or read at another's element, is caught",
          "[simt][epilogue][mutation]") {
    const Cases c = every_variant(DType::f16);
    const TensorMap values = make_values(c.graph, std::nullopt);
    const auto wrong = [&](const HostRunOptions& opt) {
        try {
            for (const OutputCheck& o : check_outputs(c.graph, run_simt(c.schedule, values, opt),
                                                      reference_execute(c.graph, values)))
                if (!o.ok()) return true;
            return false;
        } catch (const std::exception& e) {  // simt's checks (an element no thread wrote), not the compiler
            const std::string what = e.what();
            INFO(what);
            CHECK(what.find("could not compile") == std::string::npos);
            return true;
        }
    };
    CHECK_FALSE(wrong({}));
    // Only a batch's first value applied and stored.
    CHECK(wrong(with_mutation("take(f0 + l, b.v[l], b.at[l])) mask |= 1u << l;",
                              "take(f0 + l, b.v[l], b.at[l])) mask |= 1u;")));
    // Every value of a batch loads the first one's operands.
    CHECK(wrong(with_mutation("at = (unsigned)at_[l];", "at = (unsigned)at_[0];", false)));
}
