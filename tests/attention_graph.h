// One attention layer built by hand, as the zoo's BERT writes it: what the
// view folds (test_transpose_views, test_column_views) take apart.
#pragma once
#include <cmath>
#include <string>

#include "graph_builder.h"

namespace anvil::test {

// How attention() varies from the plain layer.
struct AttentionVariant {
    bool v_residual = false;   // v also feeds an add with x (an elementwise reader)
    bool k_output = false;     // k (after its bias) is a graph output
    bool wq_shared = false;    // wq also projects x a second time, summed into the output
    bool bias_f16 = false;     // v's bias stored in f16 (another dtype than the others)
};

// x [S, H * D]: q, k, v projections with biases (the adds named q, k, v),
// the heads split ([S, H, D] -> [H, S, D]), softmax(q k^T) v, the heads
// joined back ([H, S, D] -> [S, H, D] -> [S, H * D]) and projected (y0).
inline Graph attention(int64_t S, int64_t H, int64_t D, DType t, const AttentionVariant& var = {}) {
    const int64_t E = H * D;
    GraphBuilder b(t);
    b.input("x", {S, E});
    for (const char* w : {"wq", "wk", "wv", "wo"}) b.param(w, {E, E});
    b.param("bq", {E});
    b.param("bk", {E});
    b.param("bv", {E}, var.bias_f16 ? DType::f16 : t);
    for (const char* n : {"q", "k", "v"}) {
        const std::string s = n;
        b.node(s + "_mm", Op::matmul, {"x", "w" + s});
        b.node(s, Op::add, {s + "_mm", "b" + s});
        b.node(s + "_r", Op::reshape, {s}, {{"shape", L({S, H, D})}});
        b.node(s + "_h", Op::transpose, {s + "_r"}, {{"perm", L({1, 0, 2})}});
    }
    b.node("scores", Op::matmul, {"q_h", "k_h"}, {{"transpose_b", B(true)}});
    b.node("probs", Op::softmax, {"scores"}, {{"axis", I(-1)}});
    b.node("ctx", Op::matmul, {"probs", "v_h"});
    b.node("ctx_t", Op::transpose, {"ctx"}, {{"perm", L({1, 0, 2})}});
    b.node("ctx_r", Op::reshape, {"ctx_t"}, {{"shape", L({S, E})}});
    b.node("y0", Op::matmul, {"ctx_r", "wo"});
    std::string y = "y0";
    if (var.v_residual) {
        b.node("y1", Op::add, {y, "v"});
        y = "y1";
    }
    if (var.wq_shared) {
        b.node("q2", Op::matmul, {"ctx_r", "wq"});
        b.node("y2", Op::add, {y, "q2"});
        y = "y2";
    }
    b.output(y);
    if (var.k_output) b.output("k");
    Graph g = infer_shapes(b.graph());
    set_init(g, "x", InitKind::normal, 1.0);
    for (const char* w : {"wq", "wk", "wv", "wo"}) set_init(g, w, InitKind::normal, 1.0 / std::sqrt(double(E)));
    for (const char* w : {"bq", "bk", "bv"}) set_init(g, w, InitKind::normal, 0.5);
    return g;
}

}  // namespace anvil::test
