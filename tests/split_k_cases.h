// What the split-K tests share (test_split_k, test_split_norm,
// test_last_slice_reduce): graphs from a model body, a pre-LN residual
// stream, every matmul of a tile graph split by hand (the row ops in the
// reduces, or not), a persistent schedule on few blocks, and host runs that
// check races.
#pragma once
#include <fmt/format.h>

#include <string>

#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
#include "schedule/orders.h"
#include "schedule/race_check.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "target/occupancy.h"
#include "tile/decompose.h"
#include "tile/fusion.h"
#include "../rtasks/tiling.cuh"

namespace anvil::test {

inline Graph split_model(const std::string& body, DType dtype) {
    const std::string text = fmt::format("anvil: 1\nname: split_cases\ndtype: {}\nseed: 41\n{}", dtype_name(dtype), body);
    return infer_shapes(build_graph(load_model_from_string(text, "split_cases.yaml")));
}

// A pre-LN residual stream of `rows` rows: y1 = x @ w1 + r feeds ln1 and
// the second GEMM's residual add; h2 = ln1 @ w2 + y1 feeds an rmsnorm and
// is an output. Split, both reduces take their row op and store their
// result too, and h2's reduce also waits for y1's.
inline Graph pre_ln_model(int64_t rows, DType dtype) {
    return split_model(fmt::format(R"(inputs: [{{name: x, shape: [{0}, 512]}}, {{name: r, shape: [{0}, 160]}}]
params:
  - {{name: w1, shape: [512, 160]}}
  - {{name: w2, shape: [160, 160]}}
  - {{name: g1, shape: [160]}}
  - {{name: b1, shape: [160]}}
  - {{name: g2, shape: [160]}}
nodes:
  - {{name: m1, op: matmul, inputs: [x, w1]}}
  - {{name: y1, op: add, inputs: [m1, r]}}
  - {{name: ln1, op: layernorm, inputs: [y1, g1, b1], eps: 1.0e-5}}
  - {{name: m2, op: matmul, inputs: [ln1, w2]}}
  - {{name: h2, op: add, inputs: [m2, y1]}}
  - {{name: n2, op: rmsnorm, inputs: [h2, g2], eps: 1.0e-5}}
outputs: [h2, n2]
)",
                                   rows),
                       dtype);
}

// Register fusion only: a CUDA-core matmul tile holding whole rows would
// take the row op itself (and then stays whole).
inline TileGraph registers_only(const Graph& g) {
    return fuse(decompose(g), default_gpu(), FusionOptions{true, false});
}

// Every matmul of the fused tile graph split `ways` ways (2 where K does
// not take them), its tiles in the given algo where it applies.
inline TileGraph split_every_matmul(const TileGraph& fused, int ways, int algo) {
    TileGraph tg = fused;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (tg.rops[r].kind != TaskKind::matmul) continue;
        ROp& op = tg.rops[r];
        const auto& p = std::get<MatmulParams>(op.params);
        if (algo == ANVIL_MM_TENSOR && tensor_core_operands(op)) op = on_tensor_cores(op, 32, 32, 32);
        else if (algo == ANVIL_MM_WGMMA && tensor_core_operands(op) && !p.a_norm) op = on_wgmma(op, 64, 32, 3);
        else if (algo == ANVIL_MM_GEMV && p.M <= ANVIL_GEMV_MAX_M) op = as_gemv(op, 16);
        else if (algo != ANVIL_MM_GEMV) op = retile(op, 32, 32, deepest_bk(op, 32, 32, default_gpu()));
        const int K = std::get<MatmulParams>(op.params).K;
        const int w = K % ways == 0 && (K / ways) % kSplitKSliceStep == 0 ? ways : 2;
        tg = split_k_in(tg, static_cast<int>(r), w);
        ++r;  // past the reduce
    }
    return tg;
}

// split_every_matmul of registers_only(g), each reduce applying the row op
// that reads its result where it can (its rows per task for the
// megakernel's grid of CUDA-core tiles).
inline TileGraph split_and_norm(const Graph& g, int ways, int algo) {
    TileGraph tg = split_every_matmul(registers_only(g), ways, algo);
    const int grid = default_gpu().sm_count * kCudaCoreBlocksPerSm;
    for (int r = static_cast<int>(tg.rops.size()) - 1; r >= 0; --r)
        if (const auto* p = std::get_if<RowParams>(&tg.rops[r].params); p && p->op == ANVIL_ROW_SPLIT_SUM)
            apply_row_op_in_reduce(tg, r, default_gpu(), grid);
    return tg;
}

// Few blocks: many tasks share one, and its known-complete counters.
inline Schedule persistent(const TileGraph& tg, int blocks = 7) {
    return persistent_schedule("test", tg, default_gpu(), round_robin_order(tg, blocks), blocks);
}

// Whether the race checker names task `consumer` of `s` (a mutated schedule).
inline bool races_name(const Schedule& s, size_t consumer) {
    for (const Race& race : find_races(s))
        if (static_cast<size_t>(race.consumer) == consumer) return true;
    return false;
}

inline HostRunOptions checked(bool simt) {
    HostRunOptions opt;
    opt.workers = 3;
    opt.check_races = true;
    opt.simt = simt;
    return opt;
}

}  // namespace anvil::test
