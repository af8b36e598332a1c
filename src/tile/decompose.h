// decompose: Graph -> TileGraph, a pure function of a verified Graph.
#pragma once
#include "tile/tile_graph.h"

namespace anvil {

struct TileSizes {
    int ew_tile_elems = 4096;  // elementwise elements per tile
    int mm_bm = 64, mm_bn = 64, mm_bk = 16;  // 64 x 64 x 16 in four stages: 34 KiB of shared memory
    int gemv_max_m = 4;   // matmuls of at most this many rows stream as GEMV tiles (0: never)
    int gemv_bn = 64;     // columns per GEMV tile
    int row_target_tiles = 264;  // row-wise ops aim for about this many tiles
    int window_tile_elems = 1024;  // outputs per tile of a direct window (pools, depthwise conv)
    int gather_tile_elems = 4096;  // elements per embedding tile (whole rows, at least one)
};

TileGraph decompose(const Graph& graph, const TileSizes& sizes = {});

}  // namespace anvil
