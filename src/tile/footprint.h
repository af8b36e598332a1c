#pragma once
#include <vector>

#include "tile/tile_graph.h"

namespace anvil {

// Tile footprints: the bytes a tile writes, and the byte ranges (a
// conservative cover) that it reads, one per operand.
ByteRange tile_writes(const ROp& op, int tile);
// Every range a tile writes: tile_writes' and, for a split-K reduce that
// also stores the GEMM's result beside its row op's (RowParams::pre_off),
// that result's rows.
std::vector<ByteRange> tile_writes_all(const ROp& op, int tile);
std::vector<ByteRange> tile_reads(const ROp& op, int tile);
// Bytes of static shared memory one tile of `op` uses on the GPU: the
// formulas of rtasks/tiling.cuh that the rtasks' static_asserts use (the
// other kinds only need a few words for block reductions).
int tile_smem_bytes(const ROp& op);

}  // namespace anvil
