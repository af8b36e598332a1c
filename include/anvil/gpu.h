// What a policy and the cost model know of the target GPU: its resources,
// its peak rates and latencies (kernels_db/gpus/<name>.yaml) and the measured
// time of tiles tuned on it (kernels_db/measured/<name>.yaml).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace anvil {

struct Gpu {
    std::string name;        // "h100_sxm"
    std::string arch;        // NVRTC target, "sm_90"
    int sm_count = 0;
    int max_threads_per_sm = 0;
    int max_blocks_per_sm = 0;
    int smem_per_sm = 0;     // bytes
    int smem_per_block = 0;  // bytes, opt-in maximum
    int regs_per_sm = 0;
    long long l2_bytes = 0;
    double dram_bytes_per_s = 0;
    double l2_bytes_per_s = 0;
    double fp32_flops_per_s = 0;        // CUDA cores
    double tensor_f16_flops_per_s = 0;  // tensor cores, f32 accumulate
    double launch_overhead_s = 0;       // per kernel launch
    double sync_latency_s = 0;          // a dependency crossing SMs
    double task_overhead_s = 0;         // per task of a persistent kernel
    // Measured seconds per tile, by cost key (cost_key() in cost_model.h).
    std::map<std::string, double> measured_tile_s;
};

// The GPU a schedule targets when none is named: the H100 SXM.
Gpu default_gpu();

// The description named `name` from the kernels_db embedded at build time,
// or from directory `kernels_db_dir` when it is not empty. Throws UserError
// naming the known GPUs when there is no such description, and naming the
// file, line and key when one is malformed.
Gpu find_gpu(const std::string& name, const std::string& kernels_db_dir = "");

// The names of the GPU descriptions of the embedded kernels_db.
std::vector<std::string> known_gpus();

// Parses one GPU description (and, if not empty, the measured times) from
// YAML text; `path` names them in errors.
Gpu parse_gpu(const std::string& path, const std::string& text, const std::string& measured_path = "",
              const std::string& measured_text = "");

}  // namespace anvil
