#include "anvil/gpu.h"

namespace anvil {

Gpu default_gpu() {
    Gpu g;
    g.name = "h100_sxm";
    g.arch = "sm_90";
    g.sm_count = 132;
    g.max_threads_per_sm = 2048;
    g.smem_per_sm = 228 * 1024;
    g.smem_per_block = 227 * 1024;
    g.regs_per_sm = 65536;
    g.l2_bytes = 50LL * 1024 * 1024;
    return g;
}

}  // namespace anvil
