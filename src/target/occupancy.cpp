#include "target/occupancy.h"

#include <algorithm>
#include <climits>

namespace anvil {

namespace {

int round_up(int v, int unit) { return unit > 0 ? (v + unit - 1) / unit * unit : v; }

}  // namespace

Occupancy occupancy(const Gpu& gpu, const KernelUsage& k) {
    Occupancy o;
    const int warps = std::max(1, (k.threads + 31) / 32);
    o.by_threads = gpu.max_threads_per_sm / 32 / warps;
    o.by_blocks = gpu.max_blocks_per_sm;
    o.by_registers = INT_MAX;
    if (k.registers > gpu.max_regs_per_thread) o.by_registers = 0;
    else if (k.registers > 0) {
        const int per_warp = round_up(k.registers * 32, gpu.reg_alloc_unit);
        o.by_registers = gpu.regs_per_sm / per_warp / warps;  // whole warps, then whole blocks
    }
    o.by_smem = INT_MAX;
    if (k.smem_bytes > gpu.smem_per_block) o.by_smem = 0;
    else {
        const int per_block = round_up(k.smem_bytes + gpu.smem_reserved_per_block, gpu.smem_alloc_unit);
        if (per_block > 0) o.by_smem = gpu.smem_per_sm / per_block;
    }
    o.blocks_per_sm = std::min({o.by_threads, o.by_blocks, o.by_registers, o.by_smem});
    o.limited_by = o.blocks_per_sm == o.by_registers ? "registers"
                   : o.blocks_per_sm == o.by_smem    ? "shared memory"
                   : o.blocks_per_sm == o.by_threads ? "threads"
                                                     : "blocks";
    o.blocks_per_sm = std::max(0, o.blocks_per_sm);
    return o;
}

int smem_per_block_for(const Gpu& gpu, int blocks_per_sm) {
    const int unit = std::max(1, gpu.smem_alloc_unit);
    const int share = gpu.smem_per_sm / std::max(1, blocks_per_sm) / unit * unit;
    return std::max(0, std::min(gpu.smem_per_block, share - gpu.smem_reserved_per_block));
}

int tile_smem_budget(const Gpu& gpu) {
    return std::max(0, smem_per_block_for(gpu, kCudaCoreBlocksPerSm) - kMegakernelSmemExtra);
}

int register_cap(const Gpu& gpu, int threads, int min_blocks) {
    const int warps = std::max(1, (threads + 31) / 32) * std::max(1, min_blocks);
    const int per_warp = gpu.regs_per_sm / warps / std::max(1, gpu.reg_alloc_unit) * gpu.reg_alloc_unit;
    const int unit = std::max(1, gpu.reg_alloc_unit / 32);  // per thread
    return std::min(gpu.max_regs_per_thread, per_warp / 32 / unit * unit);
}

}  // namespace anvil
