// How many blocks of one kernel an SM holds at once: the calculation the
// CUDA driver does (cuOccupancyMaxActiveBlocksPerMultiprocessor), from the
// kernel's threads, registers and shared memory and the GPU's description.
#pragma once
#include <string>

#include "target/gpu.h"

namespace anvil {

struct KernelUsage {
    int threads = 256;
    int registers = 0;   // per thread; 0: not known (no limit from registers)
    int smem_bytes = 0;  // static + dynamic shared memory per block
};

struct Occupancy {
    int blocks_per_sm = 0;
    int by_threads = 0, by_registers = 0, by_smem = 0, by_blocks = 0;  // each limit alone
    std::string limited_by;  // "threads", "registers", "shared memory" or "blocks"
};

// Registers are given per warp in units of gpu.reg_alloc_unit; shared
// memory per block with gpu.smem_reserved_per_block added, in units of
// gpu.smem_alloc_unit. A kernel over max_regs_per_thread or smem_per_block
// fits nowhere (0 blocks).
Occupancy occupancy(const Gpu& gpu, const KernelUsage& k);

// The most registers per thread ptxas may use for `threads`-thread blocks
// of which `min_blocks` must fit on one SM (__launch_bounds__(threads,
// min_blocks)): what a kernel is assumed to use before it is compiled.
int register_cap(const Gpu& gpu, int threads, int min_blocks);

// The persistent megakernel's blocks per SM: two 256-thread blocks on the
// CUDA-core paths (ptxas held to 128 registers by __launch_bounds__(256,
// 2)), or fewer where shared memory does not allow them.
constexpr int kCudaCoreBlocksPerSm = 2;
// Static shared memory beside the tiles': the block reductions' scratch (32 B), the broadcast flag (4 B) and,
// in traced builds, the trace marks' slot (16 B, rtasks/trace_marks.cuh).
constexpr int kMegakernelSmemExtra = 64;

// The most shared memory (static + dynamic) one block may use for
// `blocks_per_sm` of them to fit on an SM (each with the per-block reserve,
// in allocation units: the inverse of occupancy's limit), and at most the
// GPU's opt-in per-block limit.
int smem_per_block_for(const Gpu& gpu, int blocks_per_sm);

// The shared memory one tile of the megakernel may use on `gpu`: what keeps
// kCudaCoreBlocksPerSm blocks on an SM, less the scratch beside the tiles.
// Tile shapes (variants, fusion), the GEMV's staged x and the tile graph's
// check (verify_tile_graph) all stay within it.
int tile_smem_budget(const Gpu& gpu);

}  // namespace anvil
