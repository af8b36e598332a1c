// What a policy and the cost model know of the target GPU: its resources,
// its peak rates and latencies (kernels_db/gpus/<name>.yaml) and the measured
// time of tiles tuned on it (kernels_db/measured/<name>.yaml).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace anvil {

// Ceilings measured on the device by `anvil calibrate` (src/calibrate.cpp):
// the roofline's denominators. Zero where not measured.
struct Ceilings {
    double copy_bytes_per_s = 0;         // device-to-device copy, bytes read + written
    double fp32_flops_per_s = 0;         // FMA on CUDA cores
    double tensor_f16_flops_per_s = 0;   // mma.sync f16 x f16 + f32
    double tensor_bf16_flops_per_s = 0;  // mma.sync bf16 x bf16 + f32
    std::string device;                  // the CUDA device name they were measured on
    std::string date;                    // YYYY-MM-DD
    bool measured() const { return copy_bytes_per_s > 0; }
};

// The precision of f32 matmuls: f32 (CUDA cores, exact f32 arithmetic),
// tf32 (tensor cores on operands rounded to 10-bit mantissas: the run's
// check allows f16's tolerance) or 3xtf32 ("tf32x3": each operand a sum of
// two tf32, three products: f32's tolerance).
enum class F32Precision { f32, tf32, tf32x3 };
const char* precision_name(F32Precision p);  // "f32", "tf32", "3xtf32"
// The precision named `name`; a UserError naming the three otherwise.
F32Precision parse_precision(const std::string& name);

struct Gpu {
    std::string name;        // "h100_sxm"
    std::string arch;        // NVRTC target, "sm_90"
    std::string match;       // a part of the CUDA device name of this GPU ("H100")
    // Architecture-specific features a module may be compiled for (optional
    // key, e.g. [sm_90a]: Hopper's wgmma, which only an sm_90a module has).
    std::vector<std::string> arch_features;
    int sm_count = 0;
    int max_threads_per_sm = 0;
    int max_blocks_per_sm = 0;
    int smem_per_sm = 0;     // bytes
    int smem_per_block = 0;  // bytes, opt-in maximum
    int regs_per_sm = 0;
    // The occupancy rules (src/target/occupancy.h); optional keys, with
    // the values of sm_80 and sm_90 as defaults.
    int reg_alloc_unit = 256;          // registers are given to a warp in units of this many
    int max_regs_per_thread = 255;
    int smem_reserved_per_block = 1024;  // bytes the system keeps per resident block
    int smem_alloc_unit = 128;           // bytes
    long long l2_bytes = 0;
    // Device memory: the default largest arena a model may need (--max-memory
    // changes it; tile/size_limits.h). A description without it gets 80 GiB.
    long long memory_bytes = 80LL << 30;
    double dram_bytes_per_s = 0;
    double l2_bytes_per_s = 0;
    double fp32_flops_per_s = 0;        // CUDA cores
    double tensor_f16_flops_per_s = 0;  // tensor cores, f32 accumulate
    double launch_overhead_s = 0;       // per kernel launch
    double sync_latency_s = 0;          // a dependency crossing SMs
    // One round of counter polls (an acquire load that reaches L2): a task's
    // warp polls up to 32 counters in one. Optional key; default 3e-7.
    double poll_latency_s = 3.0e-7;
    // One dependent round trip of a tile's loads to L2 or DRAM and back, as
    // a block that nothing else hides sees it (the K loop's and the serial
    // terms of src/schedule/cost_terms.h). Optional key; default 6.5e-7, the
    // H100 fit of docs/perf/cost-model.md.
    double memory_latency_s = 6.5e-7;
    double task_overhead_s = 0;         // per task of a persistent kernel
    // Measured seconds per tile, by cost key (cost_key() in cost_model.h).
    std::map<std::string, double> measured_tile_s;
    Ceilings ceilings;  // measured/<name>.yaml's, when calibrated
    // Whether policies may pick tensor-core matmul tiles (rtasks/matmul_tc.cuh)
    // for f16/bf16 matmuls: on unless `--no-tensor-cores` turns it off. Their
    // CUDA code runs, checked thread by thread, on the simt backend.
    bool tensor_core_tiles = true;
    // How f32 matmuls may compute (`--precision`): exactly on CUDA cores
    // (the default), or, with tensor_core_tiles, on tensor cores as TF32 or
    // 3xTF32 (rtasks/tc_stages.cuh).
    F32Precision f32_precision = F32Precision::f32;
    // Whether the cost model may have a split-K reduce run by the last of
    // its K slices to arrive (split_k.cpp): on unless
    // `--no-last-slice-reduce` turns it off (for comparisons).
    bool last_slice_reduce = true;
    // Whether policies may pick the Hopper wgmma tile (rtasks/matmul_wgmma.cuh)
    // where the GPU has sm_90a: off unless `--wgmma` asks. Its cross-check
    // (tests/test_simt_crosscheck.cpp, xc_wgmma_*) passed on an H200
    // (docs/perf/gpu-notes-2026-11-28b.md); its time against the mma.sync
    // tiles is not measured yet.
    bool wgmma_tiles = false;
    // The GEMV weight ring's depth in 8 KB stages (`--gemv-ring-stages`,
    // rtasks/tiling.cuh); 0: the header's default. For comparisons on a
    // device: whether the decode step is short of bytes in flight.
    int gemv_ring_stages = 0;
    // Bytes of a GEMV task's fixed weights, past the ring's first stages,
    // that its block prefetches into L2 before the task's waits
    // (`--gemv-l2-prefetch`, rtasks/weight_ring.cuh); 0: none. Off until a
    // device measures it: the cost model does not weigh it.
    int gemv_l2_prefetch_bytes = 0;
    // Whether a tensor-core matmul tile prefetches its fixed B into L2 ahead
    // of its stages (`--gemm-l2-prefetch`, rtasks/matmul_tc.cuh). Off until a
    // device measures it: the cost model does not weigh it.
    bool gemm_l2_prefetch = false;
    // How many of a thread's values a GEMM or conv tile's epilogue takes per
    // call, their loads in flight together (`--epilogue-batch`,
    // rtasks/tiling.cuh's ANVIL_EPI_BATCH); 0: the header's default. For
    // comparisons on a device: 1 is a round trip per value.
    int epilogue_batch = 0;
};

// Whether `g` runs sm_90a code (arch_features holds "sm_90a").
bool has_sm90a(const Gpu& g);
// Whether policies may pick wgmma tiles for `g`: sm_90a, tensor-core tiles
// allowed, and `--wgmma`.
bool wgmma_allowed(const Gpu& g);

// The GPU a schedule targets when none is named: the H100 SXM.
Gpu default_gpu();

// The description named `name` from the kernels_db embedded at build time,
// or from directory `kernels_db_dir` when it is not empty. Throws UserError
// naming the known GPUs when there is no such description, and naming the
// file, line and key when one is malformed.
Gpu find_gpu(const std::string& name, const std::string& kernels_db_dir = "");

// The names of the GPU descriptions of the embedded kernels_db.
std::vector<std::string> known_gpus();

// The known GPU whose `match` is part of the CUDA device name `device`
// ("NVIDIA H100 80GB HBM3" -> "h100_sxm"), or "" when none is.
std::string gpu_for_device(const std::string& device, const std::string& kernels_db_dir = "");

// measured/<name>.yaml's text for `g`: its ceilings and measured tiles.
std::string measured_yaml(const Gpu& g);

// Parses one GPU description (and, if not empty, the measured times) from
// YAML text; `path` names them in errors.
Gpu parse_gpu(const std::string& path, const std::string& text, const std::string& measured_path = "",
              const std::string& measured_text = "");

}  // namespace anvil
