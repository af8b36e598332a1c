// What a policy needs to know of the target GPU.
#pragma once
#include <string>

namespace anvil {

struct Gpu {
    std::string name;        // "h100_sxm"
    std::string arch;        // NVRTC target, "sm_90"
    int sm_count = 0;
    int max_threads_per_sm = 0;
    int smem_per_sm = 0;     // bytes
    int smem_per_block = 0;  // bytes, opt-in maximum
    int regs_per_sm = 0;
    long long l2_bytes = 0;
};

// The GPU a schedule targets when none is named: the H100 SXM.
Gpu default_gpu();

}  // namespace anvil
