#pragma once
#include <vector>

#include "target/gpu.h"
#include "tile/tile_graph.h"

namespace anvil {

// Tile footprints: the bytes a tile writes, and the byte ranges (a
// conservative cover) that it reads, one per operand.
ByteRange tile_writes(const ROp& op, int tile);
// Every range a tile writes: tile_writes' (a matmul's one per row where its
// tile is narrower than C's rows) and, for a split-K reduce that
// also stores the GEMM's result beside its row op's (RowParams::pre_off),
// that result's rows.
std::vector<ByteRange> tile_writes_all(const ROp& op, int tile);
std::vector<ByteRange> tile_reads(const ROp& op, int tile);
// The ranges tile_reads gives first for a matmul tile: A's, then B's (one
// per row or column where the block is narrower than its matrix, else one).
void matmul_operand_reads(const ROp& op, int tile, std::vector<ByteRange>& reads);
// Bytes of shared memory one tile of `op` uses on `gpu`: the formulas of
// rtasks/tiling.cuh that the rtasks' static_asserts use (the other kinds
// only need a few words for block reductions); a GEMV's include its staged x.
int tile_smem_bytes(const ROp& op, const Gpu& gpu);

// Whether a GEMV rOp streams B through its shared-memory ring on the GPU:
// anvil_gemv_ring_ok (gemv.cuh) on every tile's slice, from the params (the
// arena is 256-byte aligned; a tile's first column is BN elements on).
bool gemv_takes_ring(const ROp& op);
// The bytes of x (its M rows of K, anvil_gemv_x_bytes) a GEMV rOp's ring
// walk stages in shared memory on `gpu`: all of them when its tile then
// fits tile_smem_budget, else 0 (x read from global memory); 0 for a rOp
// that is not a ring GEMV. The megakernel's x room (ANVIL_GEMV_X_BYTES) is
// the largest of its schedule's.
int gemv_staged_x_bytes(const ROp& op, const Gpu& gpu);
// The most bytes of x a GEMV may stage on `gpu`: what its tile's budget
// leaves beside the ring and the 1/RMS slots, in whole 16-byte rows.
int gemv_x_limit(const Gpu& gpu);
// The GEMV weight ring's depth on `gpu`: its gemv_ring_stages, else the
// header's ANVIL_GEMV_RING_STAGES.
int gemv_ring_stages(const Gpu& gpu);
// The deepest ring a program may ask for (ANVIL_GEMV_MAX_RING_STAGES).
int max_gemv_ring_stages();

}  // namespace anvil
