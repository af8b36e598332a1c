// Register-level fusion: which chains fold into one rOp (and which must
// not: graph outputs, intermediates with several readers, broadcast reads),
// that a too long chain is split instead of refused, and that fused
// schedules compute what the float64 reference does on the host backend,
// in every float dtype, over shapes that are not multiples of the tiles.
// A fused schedule's source must also compile with NVRTC.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>

#include "codegen/emit.h"
#include "tile/fusion.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "policies/registry.h"
#include "graph_builder.h"
#include "runtime/compile_nvrtc.h"
#include "tile/decompose.h"
#include "frontend/infer_shapes.h"
#include "../rtasks/tiling.cuh"

using namespace anvil;
using namespace anvil::test;
namespace fs = std::filesystem;

namespace {

TileGraph fused_tiles(const Graph& g) { return fuse(decompose(g), default_gpu()); }

Schedule fused_schedule(const Graph& g) {
    Schedule s = find_policy("topo").fn(fused_tiles(g), default_gpu());
    verify_schedule(s);
    return s;
}

// Runs the fused schedule on the host and checks every output against the
// reference.
void check_fused_run(const Graph& g) {
    const TensorMap values = make_values(g, std::nullopt);
    const TensorMap outputs = run_host(fused_schedule(g), values);
    const auto reference = reference_execute(g, values);
    for (const OutputCheck& c : check_outputs(g, outputs, reference)) {
        INFO("output " << c.name << ": rel_l2 " << c.rel_l2 << ", tolerance " << c.tolerance);
        CHECK(c.ok());
    }
}

const ROp* rop_named(const TileGraph& tg, const std::string& name) {
    for (const ROp& op : tg.rops)
        if (op.name == name) return &op;
    return nullptr;
}

std::vector<std::string> fused_names(const TileGraph& tg, const ROp& op) {
    std::vector<std::string> names;
    for (VertexId v : op.fused) names.push_back(tg.buffers[v].name);
    return names;
}

// The rOp named `name` must exist and have absorbed exactly `absorbed`.
void check_group(const TileGraph& tg, const std::string& name, const std::vector<std::string>& absorbed,
                 FusionLevel level = FusionLevel::registers) {
    INFO("rOp " << name);
    const ROp* op = rop_named(tg, name);
    REQUIRE(op != nullptr);
    CHECK(fused_names(tg, *op) == absorbed);
    CHECK(op->fusion == level);
    CHECK(tg.buffers[op->node].name == absorbed.back());
}

// Whether some rOp stores tensor `name` (or the tensor it is a reshape of).
bool stored(const TileGraph& tg, const std::string& name) {
    const VertexId storage = buffer_of(tg, name).storage;
    for (const ROp& op : tg.rops)
        if (op.node == storage) return true;
    return false;
}

Graph zoo_graph(const std::string& name) {
    const bool test_model = name.rfind("tests/", 0) == 0;
    const fs::path path = test_model ? fs::path(ANVIL_SOURCE_DIR) / "tests" / "models" / name.substr(6)
                                     : fs::path(ANVIL_SOURCE_DIR) / "models" / name;
    return load_graph(path.string());
}

// x [37, 65] @ w [65, 70] + bias [70], then gelu: one matmul rOp.
Graph mlp_layer(DType t) {
    GraphBuilder b(t);
    b.input("x", {37, 65});
    b.param("w", {65, 70});
    b.param("bias", {70});
    b.node("h", Op::matmul, {"x", "w"});
    b.node("a", Op::add, {"h", "bias"});
    b.node("y", Op::gelu, {"a"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.2);
    set_init(g, "bias", InitKind::uniform, -1.0, 1.0);
    return g;
}

// conv -> batchnorm -> relu twice, the second with a residual add: the
// classic CNN block. r1 feeds both c2 and the add, so it is stored.
Graph conv_block(DType t) {
    GraphBuilder b(t);
    b.input("x", {2, 5, 11, 9});
    b.param("w1", {17, 5, 3, 3});
    b.param("w2", {17, 17, 3, 3});
    for (const char* p : {"1", "2"})
        for (const char* s : {"s", "b", "m", "v"}) b.param(std::string(s) + p, {17});
    b.node("c1", Op::conv2d, {"x", "w1"}, {{"padding", L({1})}});
    b.node("n1", Op::batchnorm, {"c1", "s1", "b1", "m1", "v1"});
    b.node("r1", Op::relu, {"n1"});
    b.node("c2", Op::conv2d, {"r1", "w2"}, {{"padding", L({1})}});
    b.node("n2", Op::batchnorm, {"c2", "s2", "b2", "m2", "v2"});
    b.node("a2", Op::add, {"n2", "r1"});
    b.node("y", Op::relu, {"a2"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w1", InitKind::normal, 0.3);
    set_init(g, "w2", InitKind::normal, 0.15);
    for (const char* p : {"1", "2"}) {
        set_init(g, std::string("s") + p, InitKind::uniform, 0.5, 1.5);
        set_init(g, std::string("b") + p, InitKind::uniform, -0.5, 0.5);
        set_init(g, std::string("m") + p, InitKind::uniform, -0.5, 0.5);
        set_init(g, std::string("v") + p, InitKind::uniform, 0.5, 2.0);
    }
    return g;
}

}  // namespace

TEST_CASE("matmul + bias add + gelu become one matmul rOp", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    DYNAMIC_SECTION(dtype_name(dtype)) {
        const Graph g = mlp_layer(dtype);
        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 1);
        check_group(tg, "h+a+y", {"a", "y"});
        const ROp& op = tg.rops[0];
        CHECK(op.kind == TaskKind::matmul);
        CHECK(op.reads == std::vector<VertexId>{*g.find("x"), *g.find("w"), *g.find("bias")});
        CHECK(op.epilogue.nsteps == 2);
        CHECK(op.flops == 2 * 37 * 70 * 65 + 2 * 37 * 70);
        CHECK(!stored(tg, "h"));
        CHECK(!stored(tg, "a"));
        check_fused_run(g);
    }
}

TEST_CASE("an elementwise chain over mixed dtypes becomes one rOp", "[fusion]") {
    // bf16 and f16 operands, an f32 residual, broadcasts along both ends.
    GraphBuilder b(DType::bf16);
    b.input("x", {3, 37, 129}, DType::f32);
    b.param("s", {129});
    b.param("r", {37, 1}, DType::f16);
    b.input("res", {3, 37, 129}, DType::f32);
    b.node("t1", Op::mul, {"x", "s"});
    b.node("t2", Op::add, {"t1", "r"});
    b.node("t3", Op::tanh, {"t2"});
    b.node("t4", Op::add, {"res", "t3"}, {}, DType::f32);
    b.node("y", Op::relu, {"t4"}, {}, DType::f16);
    b.output("y");
    Graph g = infer_shapes(b.graph());
    for (const char* n : {"x", "s", "r", "res"}) set_init(g, n, InitKind::normal, 1.0);

    const TileGraph tg = fused_tiles(g);
    REQUIRE(tg.rops.size() == 1);
    check_group(tg, "t1+t2+t3+t4+y", {"t2", "t3", "t4", "y"});
    CHECK(tg.rops[0].kind == TaskKind::elementwise);
    CHECK(tg.rops[0].dtypes[0] == DType::f16);  // the last node's storage
    CHECK(tg.rops[0].epilogue.ninputs == 2);    // r and res; x and s are the head's own
    check_fused_run(g);
}

TEST_CASE("graph outputs, shared and broadcast intermediates are not fused away", "[fusion]") {
    GraphBuilder b;
    b.input("x", {37, 65});
    b.param("w", {65, 70});
    b.param("p", {1, 70});
    b.node("h", Op::matmul, {"x", "w"});  // two readers: a and s
    b.node("a", Op::relu, {"h"});         // a graph output, read by c too
    b.node("s", Op::sigmoid, {"h"});
    b.node("c", Op::add, {"a", "s"});
    b.node("d", Op::neg, {"c"});
    b.node("q", Op::exp, {"p"});          // read broadcast by e: stays
    b.node("e", Op::mul, {"d", "q"});
    b.output("a").output("e");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.2);

    const TileGraph tg = fused_tiles(g);
    CHECK(rop_named(tg, "h") != nullptr);
    CHECK(rop_named(tg, "a") != nullptr);
    CHECK(rop_named(tg, "q") != nullptr);
    check_group(tg, "s+c+d+e", {"c", "d", "e"});
    CHECK(tg.rops.size() == 4);
    for (const char* n : {"h", "a", "q", "e"}) CHECK(stored(tg, n));
    check_fused_run(g);
}

TEST_CASE("conv2d absorbs batchnorm, relu and a residual add", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    DYNAMIC_SECTION(dtype_name(dtype)) {
        const Graph g = conv_block(dtype);
        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 2);
        check_group(tg, "c1+n1+r1", {"n1", "r1"});
        check_group(tg, "c2+n2+a2+y", {"n2", "a2", "y"});
        CHECK(tg.rops[0].kind == TaskKind::conv2d);
        CHECK(tg.rops[1].kind == TaskKind::conv2d);
        CHECK(stored(tg, "r1"));
        check_fused_run(g);
    }
}

TEST_CASE("softmax and layernorm take elementwise epilogues", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    DYNAMIC_SECTION(dtype_name(dtype)) {
        GraphBuilder b(dtype);
        b.input("x", {5, 37, 13});
        b.param("g", {13});
        b.input("z", {3, 129});
        b.param("lg", {129});
        b.param("lb", {129});
        b.input("res", {3, 129});
        b.node("s", Op::softmax, {"x"}, {{"axis", I(1)}});  // the reduced axis is not the last
        b.node("sm", Op::mul, {"s", "g"});
        b.node("l", Op::layernorm, {"z", "lg", "lb"});
        b.node("la", Op::add, {"l", "res"});
        b.node("ly", Op::silu, {"la"});
        b.output("sm").output("ly");
        Graph g = infer_shapes(b.graph());
        for (const char* n : {"x", "g", "z", "lb", "res"}) set_init(g, n, InitKind::normal, 1.0);
        set_init(g, "lg", InitKind::uniform, 0.5, 2.0);

        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 2);
        check_group(tg, "s+sm", {"sm"});
        check_group(tg, "l+la+ly", {"la", "ly"});
        check_fused_run(g);
    }
}

TEST_CASE("reductions and global_avgpool take elementwise epilogues", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    DYNAMIC_SECTION(dtype_name(dtype)) {
        GraphBuilder b(dtype);
        b.input("x", {3, 37, 13});
        b.param("sc", {3, 13});
        b.input("img", {2, 19, 7, 5});
        b.param("bias", {19, 1, 1});
        b.node("m", Op::reduce_mean, {"x"}, {{"axes", L({1})}});  // a middle axis: strided rows
        b.node("ms", Op::mul, {"m", "sc"});
        b.node("mt", Op::tanh, {"ms"});
        b.node("mx", Op::reduce_max, {"x"}, {{"axes", L({-1})}, {"keepdims", B(true)}});
        b.node("me", Op::exp, {"mx"});
        b.node("su", Op::reduce_sum, {"x"}, {{"axes", L({0, 2})}});
        b.node("sn", Op::neg, {"su"});
        b.node("gp", Op::global_avgpool, {"img"});
        b.node("ga", Op::add, {"gp", "bias"});  // gp is [2, 19, 1, 1]
        b.node("gy", Op::relu, {"ga"});
        b.output("mt").output("me").output("sn").output("gy");
        Graph g = infer_shapes(b.graph());
        for (const char* n : {"x", "sc", "img", "bias"}) set_init(g, n, InitKind::normal, 1.0);

        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 4);
        check_group(tg, "m+ms+mt", {"ms", "mt"});
        check_group(tg, "mx+me", {"me"});
        check_group(tg, "su+sn", {"sn"});
        check_group(tg, "gp+ga+gy", {"ga", "gy"});
        check_fused_run(g);
    }
}

// Attention-like: batched scores [2, 3, 37, n] plus a mask, softmax over the
// keys. With n = 37 a row fits decompose's 64-wide tile; with n = 129 the
// tile is widened to hold it; past ANVIL_MM_ROW_MAX_BN no tile does.
Graph scores_softmax(DType t, int64_t n) {
    GraphBuilder b(t);
    b.input("q", {2, 3, 37, 65});
    b.input("k", {65, n});
    b.param("mask", {37, n});
    b.node("s", Op::matmul, {"q", "k"});
    b.node("sm", Op::add, {"s", "mask"});
    b.node("p", Op::softmax, {"sm"});
    b.node("y", Op::mul, {"p", "p"});  // the softmax's epilogue, unless the softmax joins the matmul
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "q", InitKind::normal, 1.0);
    set_init(g, "k", InitKind::normal, 0.3);
    set_init(g, "mask", InitKind::uniform, -2.0, 0.0);
    return g;
}

TEST_CASE("matmul + softmax fuse in shared memory when a row fits one tile", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    DYNAMIC_SECTION(dtype_name(dtype)) {
        const Graph g = scores_softmax(dtype, 37);
        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 1);
        check_group(tg, "s+sm+p+y", {"sm", "p", "y"}, FusionLevel::shared);
        CHECK(tg.rops[0].kind == TaskKind::matmul);
        CHECK(std::get<MatmulParams>(tg.rops[0].params).row_op == ANVIL_MM_ROW_SOFTMAX);
        CHECK(tg.rops[0].row_epilogue.nsteps == 1);  // y, after the softmax
        check_fused_run(g);

        // Without the shared level only the register chain fuses.
        FusionOptions registers_only;
        registers_only.shared = false;
        const TileGraph r = fuse(decompose(g), default_gpu(), registers_only);
        check_group(r, "s+sm", {"sm"});
        check_group(r, "p+y", {"y"});
    }
}

// A projection then a norm over its output features, as in a transformer:
// x [3, 37, 65] @ w [65, n] + bias, the norm, then a residual add and silu
// after it. With n = 45 a row fits decompose's 64-wide tile; n = 129 needs a
// wider one; past ANVIL_MM_ROW_MAX_BN none holds it.
Graph proj_norm(DType t, Op norm, int64_t n) {
    GraphBuilder b(t);
    b.input("x", {3, 37, 65});
    b.param("w", {65, n});
    b.param("bias", {n});
    b.param("g", {n});
    b.param("be", {n});
    b.input("res", {3, 37, n});
    b.node("h", Op::matmul, {"x", "w"});
    b.node("hb", Op::add, {"h", "bias"});
    if (norm == Op::layernorm)
        b.node("nrm", Op::layernorm, {"hb", "g", "be"});
    else
        b.node("nrm", Op::rmsnorm, {"hb", "g"});
    b.node("ra", Op::add, {"nrm", "res"});
    b.node("y", Op::silu, {"ra"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    for (const char* v : {"x", "bias", "be", "res"}) set_init(g, v, InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.2);
    set_init(g, "g", InitKind::uniform, 0.5, 2.0);
    return g;
}

TEST_CASE("matmul + layernorm or rmsnorm fuse in shared memory, with a chain after", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    auto norm = GENERATE(Op::layernorm, Op::rmsnorm);
    DYNAMIC_SECTION(dtype_name(dtype) << (norm == Op::layernorm ? " layernorm" : " rmsnorm")) {
        const Graph g = proj_norm(dtype, norm, 45);
        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 1);
        check_group(tg, "h+hb+nrm+ra+y", {"hb", "nrm", "ra", "y"}, FusionLevel::shared);
        const auto& p = std::get<MatmulParams>(tg.rops[0].params);
        CHECK(p.row_op == (norm == Op::layernorm ? ANVIL_MM_ROW_LAYERNORM : ANVIL_MM_ROW_RMSNORM));
        CHECK(tg.rops[0].epilogue.nsteps == 1);      // the bias add
        CHECK(tg.rops[0].row_epilogue.nsteps == 2);  // the residual add and silu
        for (const char* v : {"h", "hb", "nrm", "ra"}) CHECK(!stored(tg, v));
        check_fused_run(g);
    }
}

TEST_CASE("a norm that does not fit the matmul's tile or shared memory stays separate", "[fusion]") {
    // A row wider than decompose's tile: the tile is widened to hold it.
    const TileGraph widened = fused_tiles(proj_norm(DType::bf16, Op::layernorm, 129));
    REQUIRE(widened.rops.size() == 1);
    CHECK(std::get<MatmulParams>(widened.rops[0].params).bn == 144);
    check_fused_run(proj_norm(DType::bf16, Op::layernorm, 129));

    // Too long a row for any tile: the norm heads its own chain.
    const Graph g = proj_norm(DType::bf16, Op::layernorm, ANVIL_MM_ROW_MAX_BN + 1);
    const TileGraph tg = fused_tiles(g);
    REQUIRE(tg.rops.size() == 2);
    check_group(tg, "h+hb", {"hb"});
    check_group(tg, "nrm+ra+y", {"ra", "y"});
    check_fused_run(g);

    // Too little shared memory for the finished tile.
    Gpu small = default_gpu();
    small.smem_per_block = 1024;
    CHECK(rop_named(fuse(decompose(proj_norm(DType::f32, Op::rmsnorm, 45)), small), "h+hb") != nullptr);

    // The matmul's chain read twice: nothing after it fuses.
    GraphBuilder b;
    b.input("x", {37, 65});
    b.param("w", {65, 45});
    b.param("g", {45});
    b.node("h", Op::matmul, {"x", "w"});
    b.node("n", Op::rmsnorm, {"h", "g"});
    b.node("y", Op::add, {"n", "h"});
    b.output("y");
    Graph m = infer_shapes(b.graph());
    set_init(m, "x", InitKind::normal, 1.0);
    set_init(m, "w", InitKind::normal, 0.2);
    const TileGraph mt = fused_tiles(m);
    CHECK(rop_named(mt, "h") != nullptr);
    check_group(mt, "n+y", {"y"});
    check_fused_run(m);
}

TEST_CASE("a softmax whose row no tile holds stays an rOp of its own", "[fusion]") {
    const Graph g = scores_softmax(DType::bf16, ANVIL_MM_ROW_MAX_BN + 1);
    const TileGraph tg = fused_tiles(g);
    REQUIRE(tg.rops.size() == 2);
    check_group(tg, "s+sm", {"sm"});
    check_group(tg, "p+y", {"y"});
    check_fused_run(g);

    // Nor when the finished tile does not fit the GPU's shared memory.
    Gpu small = default_gpu();
    small.smem_per_block = 1024;
    CHECK(rop_named(fuse(decompose(scores_softmax(DType::f32, 37)), small), "s+sm") != nullptr);
}

TEST_CASE("a chain longer than an epilogue holds is split, never refused", "[fusion]") {
    REQUIRE(ANVIL_EPI_MAX_STEPS == 8);
    REQUIRE(ANVIL_EPI_MAX_INPUTS == 6);
    GraphBuilder b(DType::f16);
    // Twelve unary nodes: the head and ANVIL_EPI_MAX_STEPS more, then the rest.
    b.input("x", {37, 129});
    const Op ops[] = {Op::tanh, Op::abs, Op::sqrt, Op::neg, Op::sigmoid, Op::exp,
                      Op::log,  Op::silu, Op::relu, Op::tanh, Op::gelu, Op::abs};
    std::string prev = "x";
    for (int i = 1; i <= 12; ++i) {
        b.node("n" + std::to_string(i), ops[i - 1], {prev});
        prev = "n" + std::to_string(i);
    }
    // Eight adds of distinct params: the head reads p1 itself, the epilogue
    // p2..p7, and p8 would be a seventh input.
    b.input("z", {3, 129});
    prev = "z";
    for (int i = 1; i <= 8; ++i) {
        b.param("p" + std::to_string(i), {129});
        b.node("s" + std::to_string(i), Op::add, {prev, "p" + std::to_string(i)});
        prev = "s" + std::to_string(i);
    }
    b.output("n12").output("s8");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);

    const TileGraph tg = fused_tiles(g);
    check_group(tg, "n1+n2+n3+n4+n5+n6+n7+n8+n9", {"n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9"});
    check_group(tg, "n10+n11+n12", {"n11", "n12"});
    check_group(tg, "s1+s2+s3+s4+s5+s6+s7", {"s2", "s3", "s4", "s5", "s6", "s7"});
    CHECK(rop_named(tg, "s8") != nullptr);
    CHECK(tg.rops.size() == 4);
    check_fused_run(g);
}

// MobileNet-V2's depthwise step: a 3x3 depthwise conv (stride 2) -> batchnorm
// -> relu6 (as min(relu, 6) with a broadcast 6), then an avgpool whose
// output is scaled and squashed. Both windows absorb their chains.
Graph depthwise_block(DType t) {
    GraphBuilder b(t);
    b.input("x", {2, 37, 13, 11});
    b.param("w", {37, 1, 3, 3});
    for (const char* s : {"s", "b", "m", "v"}) b.param(s, {37});
    b.param("six", {1});
    b.param("ps", {37, 1, 1});
    b.node("c", Op::conv2d, {"x", "w"}, {{"groups", I(37)}, {"padding", L({1})}, {"stride", L({2})}});
    b.node("n", Op::batchnorm, {"c", "s", "b", "m", "v"});
    b.node("r", Op::relu, {"n"});
    b.node("r6", Op::min, {"r", "six"});
    b.node("p", Op::avgpool2d, {"r6"}, {{"kernel", L({3})}, {"stride", L({2})}, {"padding", L({1})}});
    b.node("pm", Op::mul, {"p", "ps"});
    b.node("y", Op::sigmoid, {"pm"});
    b.output("y");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    set_init(g, "w", InitKind::normal, 0.3);
    set_init(g, "s", InitKind::uniform, 0.5, 1.5);
    set_init(g, "b", InitKind::uniform, -0.5, 0.5);
    set_init(g, "m", InitKind::uniform, -0.5, 0.5);
    set_init(g, "v", InitKind::uniform, 0.5, 2.0);
    set_init(g, "six", InitKind::uniform, 6.0, 6.0);
    set_init(g, "ps", InitKind::normal, 1.0);
    return g;
}

TEST_CASE("direct windows (depthwise conv, pools) absorb their chains", "[fusion]") {
    auto dtype = GENERATE(DType::f32, DType::f16, DType::bf16);
    DYNAMIC_SECTION(dtype_name(dtype)) {
        const Graph g = depthwise_block(dtype);
        const TileGraph tg = fused_tiles(g);
        REQUIRE(tg.rops.size() == 2);
        check_group(tg, "c+n+r+r6", {"n", "r", "r6"});
        check_group(tg, "p+pm+y", {"pm", "y"});
        CHECK(tg.rops[0].kind == TaskKind::window);
        CHECK(tg.rops[1].kind == TaskKind::window);
        for (const char* n : {"c", "n", "r", "p", "pm"}) CHECK(!stored(tg, n));
        check_fused_run(g);
    }
}

TEST_CASE("a window result with several readers or a graph output stays stored", "[fusion]") {
    GraphBuilder b(DType::bf16);
    b.input("x", {2, 5, 9, 7});
    b.node("mp", Op::maxpool2d, {"x"}, {{"kernel", L({2})}});  // read by r and a
    b.node("r", Op::relu, {"mp"});
    b.node("a", Op::add, {"mp", "r"});
    b.node("ap", Op::avgpool2d, {"a"}, {{"kernel", L({3})}, {"stride", L({1})}, {"padding", L({1})}});
    b.node("t", Op::tanh, {"ap"});
    b.output("ap").output("t");  // ap is an output: t cannot join it
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);

    const TileGraph tg = fused_tiles(g);
    CHECK(tg.rops.size() == 4);
    CHECK(rop_named(tg, "mp") != nullptr);
    check_group(tg, "r+a", {"a"});
    CHECK(rop_named(tg, "ap") != nullptr);
    CHECK(rop_named(tg, "t") != nullptr);
    check_fused_run(g);
}

TEST_CASE("fusion can be switched off", "[fusion]") {
    const Graph g = mlp_layer(DType::f32);
    FusionOptions off;
    off.registers = false;
    off.shared = false;
    CHECK(fuse(decompose(g), default_gpu(), off).rops.size() == decompose(g).rops.size());
}

TEST_CASE("zoo models fuse their chains and still match the reference", "[fusion]") {
    struct Expect {
        std::string model;
        std::vector<std::pair<std::string, std::vector<std::string>>> groups;
    };
    const std::vector<Expect> cases = {
        {"mlp_f32.yaml", {{"h+hb+a", {"hb", "a"}}, {"y0+y", {"y"}}}},
        {"llama_mlp_bf16.yaml", {{"gate+act+h", {"act", "h"}}, {"down+y", {"y"}}}},
        {"transformer_encoder_f32.yaml",
         {{"f0+f1+f2", {"f1", "f2"}}}},
        {"resnet18_small.yaml",
         {{"stem+stem_bn+stem_relu", {"stem_bn", "stem_relu"}},  // the stem (8 channels) is a direct window
          {"s1b1_c2+s1b1_bn2+s1b1_add+s1b1_out", {"s1b1_bn2", "s1b1_add", "s1b1_out"}},  // so are stage 1's convs
          {"s2b1_c2+s2b1_bn2+s2b1_add+s2b1_out", {"s2b1_bn2", "s2b1_add", "s2b1_out"}},
          {"s2b1_down+s2b1_down_bn", {"s2b1_down_bn"}}}},
        {"tests/assorted_bf16.yaml",
         {{"e+q+r+t+sg+mix", {"q", "r", "t", "sg", "mix"}}, {"bm+bmr+bms", {"bmr", "bms"}}}},
        {"tests/cnn_mixed_f16.yaml", {{"c1+bn1+r1", {"bn1", "r1"}}, {"dw+r2", {"r2"}}, {"pw+bn2", {"bn2"}}, {"ap1+skip", {"skip"}}}},
        {"tests/embed_mlp_bf16.yaml", {}},
        {"tests/gpt_block_f16.yaml", {}},
        {"tests/rank6_embedding_f16.yaml", {}},
    };
    for (const Expect& e : cases) {
        DYNAMIC_SECTION(e.model) {
            const Graph g = zoo_graph(e.model);
            const TileGraph plain = decompose(g), tg = fused_tiles(g);
            INFO(plain.rops.size() << " rOps unfused, " << tg.rops.size() << " fused");
            CHECK(tg.rops.size() <= plain.rops.size());
            if (!e.groups.empty()) CHECK(tg.rops.size() < plain.rops.size());
            for (const auto& [name, absorbed] : e.groups) check_group(tg, name, absorbed);
            // Attention scores: 64 keys fit one matmul tile, so the softmax is done in shared memory.
            // And the 256-wide rows of the output projection: its tile widened to hold them, the layernorm inside.
            if (e.model == "transformer_encoder_f32.yaml") {
                check_group(tg, "scores+scaled+probs", {"scaled", "probs"}, FusionLevel::shared);
                check_group(tg, "attn0+attn+res1+ln1", {"attn", "res1", "ln1"}, FusionLevel::shared);
                check_group(tg, "f3+f4+res2+y", {"f4", "res2", "y"}, FusionLevel::shared);
            }
            // Every graph output is still written by some rOp.
            for (const std::string& out : tg.outputs)
                if (tg.nodes[buffer_of(tg, out).storage].is_node) CHECK(stored(tg, out));

            check_fused_run(g);
        }
    }
}

TEST_CASE("fused schedules compile with NVRTC for sm_90", "[fusion][compile]") {
    for (const Graph& g : {mlp_layer(DType::bf16), conv_block(DType::f16), scores_softmax(DType::f16, 37),
                           depthwise_block(DType::bf16), proj_norm(DType::bf16, Op::layernorm, 45),
                           zoo_graph("transformer_encoder_f32.yaml")}) {
        CAPTURE(g.model_name);
        const Schedule s = fused_schedule(g);
        const CubinResult r = compile_nvrtc(emit_source(s), "sm_90");
        CHECK(!r.cubin.empty());
        for (const KernelResources& k : r.kernels) {
            CHECK(k.registers > 0);
            CHECK(k.registers <= 255);
            std::printf("[fusion] %-28s %3d registers, %5d B smem, %4d B stack, spills %d/%d B\n",
                        g.model_name.c_str(), k.registers, k.smem_bytes, k.stack_bytes, k.spill_stores, k.spill_loads);
        }
    }
}
