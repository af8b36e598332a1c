// What the split-K tests share (test_split_k, test_split_norm): graphs from
// a model body, every matmul of a tile graph split by hand, a persistent
// schedule on few blocks, and host runs that check races.
#pragma once
#include <fmt/format.h>

#include <string>

#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "runtime/host_backend.h"
#include "schedule/builders.h"
#include "schedule/cost_model.h"
#include "schedule/orders.h"
#include "schedule/split_k.h"
#include "schedule/variants.h"
#include "../rtasks/tiling.cuh"

namespace anvil::test {

inline Graph split_model(const std::string& body, DType dtype) {
    const std::string text = fmt::format("anvil: 1\nname: split_cases\ndtype: {}\nseed: 41\n{}", dtype_name(dtype), body);
    return infer_shapes(build_graph(load_model_from_string(text, "split_cases.yaml")));
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
        else if (algo == ANVIL_MM_GEMV && p.M <= ANVIL_GEMV_MAX_M) op = as_gemv(op, 16);
        else if (algo != ANVIL_MM_GEMV) op = retile(op, 32, 32, deepest_bk(op, 32, 32, default_gpu()));
        const int K = std::get<MatmulParams>(op.params).K;
        const int w = K % ways == 0 && (K / ways) % kSplitKSliceStep == 0 ? ways : 2;
        tg = split_k_in(tg, static_cast<int>(r), w);
        ++r;  // past the reduce
    }
    return tg;
}

// Few blocks: many tasks share one, and its known-complete counters.
inline Schedule persistent(const TileGraph& tg, int blocks = 7) {
    return persistent_schedule("test", tg, default_gpu(), round_robin_order(tg, blocks), blocks);
}

inline HostRunOptions checked(bool simt) {
    HostRunOptions opt;
    opt.workers = 3;
    opt.check_races = true;
    opt.simt = simt;
    return opt;
}

}  // namespace anvil::test
