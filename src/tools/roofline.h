// The roofline bound of a model on a device: the least time any schedule
// could take, given the device's measured copy bandwidth and FLOP rates
// (Ceilings, from `anvil calibrate`). Each input, param and output must
// cross DRAM once; every rOp's FLOPs run at the peak of the unit its
// dtype can use (tensor cores for f16/bf16 matmul and convolution, CUDA
// cores otherwise). Intermediates are assumed to stay on chip.
#pragma once
#include "target/gpu.h"
#include "tile/tile_graph.h"

namespace anvil {

struct Roofline {
    double min_bytes = 0;  // inputs + params + outputs
    double flops = 0;      // every rOp's useful FLOPs
    double memory_s = 0;   // min_bytes at the copy bandwidth
    double compute_s = 0;  // the FLOPs at their unit's peak
    double bound_s() const { return memory_s > compute_s ? memory_s : compute_s; }
    const char* limit() const { return memory_s >= compute_s ? "memory" : "compute"; }
};

// Throws UserError when `c` holds no measurement.
Roofline roofline(const TileGraph& tg, const Ceilings& c);

}  // namespace anvil
