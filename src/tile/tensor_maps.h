// The TMA tensor maps a schedule's tiles read from the arena: which operand
// of which rOp the engine copies, the view it copies it through, and where
// the map's 128 bytes lie (a table after every tensor). A pure function of
// the tile graph, so the emitter (the offsets in the params), the arena's
// size and every backend (which writes the maps once the arena's address is
// known: runtime/tensor_map.h) agree without a pass to keep in step.
#pragma once
#include <cstdint>
#include <vector>

#include "tile/tile_graph.h"
#include "../../rtasks/tensor_map.cuh"

namespace anvil {

// A `rows` x `cols` tensor of `elem_bytes`-byte elements at `base`, rows
// `row_bytes` apart, copied in boxes of `box_rows` x `box_cols` (the
// engine's 2-D tiled copy, rtasks/tensor_map.cuh). `base` is an address
// for the backends' encoders and an arena offset in ArenaTensorMap.
struct TmaView {
    std::uint64_t base = 0;
    unsigned elem_bytes = 2;
    std::uint64_t cols = 0, rows = 0, row_bytes = 0;
    unsigned box_cols = 0, box_rows = 0;
    bool swizzle_128b = false;
};

// Throws UserError naming the first rule the view breaks: base 16-byte
// aligned; rows 16-byte multiples apart, holding their cols; dims from 1
// to 2^32; a box of 1 to 256 per dimension whose rows are 16-byte
// multiples, exactly 128 bytes with the swizzle (the layout
// anvil_wgmma_desc_sw128 names).
void check_tma_view(const TmaView& v);

inline constexpr int64_t kTensorMapBytes = sizeof(AnvilTensorMap);

enum class MapOperand { a, b };

struct ArenaTensorMap {
    int rop = 0;      // the rOp whose tiles copy through it
    MapOperand operand = MapOperand::a;
    int64_t at = 0;   // the map's arena offset (128-byte aligned)
    TmaView view;     // view.base: the arena offset of element (0, 0)
};

// Every map, in rOp order, A before B: the operands of each wgmma tile at
// BK 64 that are the same for every batch with 16-byte aligned rows along
// a contiguous axis, each box 128-byte swizzled (matmul_wgmma.cuh):
//   A k contiguous: a 128 x 64 box (rows m, 64 k);
//   B, only where A has a map: n contiguous ([K, N], the layout
//   anvil_wgmma_mn_ok picks first), 64 x 64 boxes (rows k, 64 n), or k
//   contiguous ([N, K]), a BN x 64 box (rows n, 64 k).
// The table starts at the arena's 256-byte-rounded end.
std::vector<ArenaTensorMap> arena_tensor_maps(const TileGraph& tg);

// The arena offset of rOp `rop`'s map of `operand`, 0 where it has none
// (MatmulParams::a_map, b_map).
int64_t tensor_map_at(const std::vector<ArenaTensorMap>& maps, int rop, MapOperand operand);

// Bytes of the arena with its map table: the tensors' bytes rounded to
// 256, then 128 per map, rounded to 256 again.
int64_t arena_bytes_with_maps(const TileGraph& tg);

}  // namespace anvil
