#include "tools/roofline.h"

#include "anvil/error.h"

namespace anvil {

namespace {

// The peak FLOP rate an rOp's work can reach on the measured device.
double peak_of(const ROp& op, const Ceilings& c) {
    const bool gemm = op.kind == TaskKind::matmul || op.kind == TaskKind::conv2d;
    const DType in = op.dtypes.empty() ? DType::f32 : op.dtypes.front();
    if (gemm && in == DType::f16) return c.tensor_f16_flops_per_s;
    if (gemm && in == DType::bf16) return c.tensor_bf16_flops_per_s;
    return c.fp32_flops_per_s;
}

}  // namespace

Roofline roofline(const TileGraph& tg, const Ceilings& c) {
    if (!c.measured())
        throw UserError("the roofline needs the device's measured ceilings: run `anvil calibrate` on it first");
    Roofline r;
    for (const auto* names : {&tg.inputs, &tg.params, &tg.outputs})
        for (const std::string& name : *names) r.min_bytes += static_cast<double>(buffer_of(tg, name).bytes);
    for (const ROp& op : tg.rops) {
        r.flops += static_cast<double>(op.flops);
        r.compute_s += static_cast<double>(op.flops) / peak_of(op, c);
    }
    r.memory_s = r.min_bytes / c.copy_bytes_per_s;
    return r;
}

}  // namespace anvil
