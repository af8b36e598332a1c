// Size limits of a model (issue 17): the most elements in one tensor and the
// largest arena, by default derived from the target GPU's memory
// (Gpu::memory_bytes, kernels_db/gpus/*.yaml) and changed with --max-memory.
// check, schedule and run refuse a model past them before any work that
// grows with its size, naming the tensor and its size.
#pragma once
#include <cstdint>
#include <string>

#include "frontend/graph.h"
#include "target/gpu.h"
#include "tile/tile_graph.h"

namespace anvil {

struct SizeLimits {
    int64_t max_memory_bytes = 0;  // the arena, every tensor in it
    int64_t max_elements = 0;      // one tensor: min(2^31 - 1, memory / 2 bytes)
};

SizeLimits size_limits(const Gpu& gpu);

// Every tensor of the graph within the limits; else a UserError at its
// declaration: "tensor 'x' [..] f32 has N elements (B bytes), ...".
void check_tensor_sizes(const Graph& graph, const Gpu& gpu);

// The arena decompose laid out within the memory limit.
void check_arena_size(const Graph& graph, const TileGraph& tiles, const Gpu& gpu);

// The most tasks one megakernel schedules: its task and dependency tables
// are emitted into the source, which NVRTC compiles in seconds up to about
// this size (the full-size zoo has at most a few tens of thousands).
constexpr int64_t kMaxTasks = int64_t{1} << 20;

// The rOps' tiles together within kMaxTasks; else a UserError at the node
// with the most tiles.
void check_task_count(const TileGraph& tiles);

// "268435456", "256M", "256MiB", "2G", "1.5GiB", "80GB" (K, M, G, T are
// powers of 1024) -> bytes; a UserError naming `option` when it is not a
// positive size.
int64_t parse_memory_size(const std::string& text, const std::string& option);

// "8.0 GiB"
std::string human_size(double bytes);

}  // namespace anvil
