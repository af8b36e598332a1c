// Footprints of tiles that are runs of linear indices (src/tile/footprint.cpp):
// through row-major strides a run covers exactly the offsets between its
// ends, also when it crosses an outer dim; other strides take its box.
#include <catch2/catch.hpp>

#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "tile/decompose.h"
#include "tile/footprint.h"

using namespace anvil;

TEST_CASE("a row tile crossing an outer dim claims only its own rows", "[schedule][footprint]") {
    // softmax over [3, 5, 7]: 15 rows of 7, 4 rows a tile; tile 1 holds rows 4..7 (of two [5, 7] blocks).
    const Graph g = infer_shapes(build_graph(load_model_from_string(R"(anvil: 1
name: runs
dtype: f32
inputs: [{name: x, shape: [3, 5, 7]}]
nodes:
  - {name: y, op: softmax, inputs: [x], axis: -1}
  - {name: t, op: transpose, inputs: [x], perm: [1, 0, 2]}
outputs: [y, t]
)",
                                                                    "runs.yaml")));
    TileSizes sizes;
    sizes.row_target_tiles = 4;  // ceil(15 / 4) = 4 rows a tile
    sizes.ew_tile_elems = 9;
    const TileGraph tg = decompose(g, sizes);
    const ROp& soft = tg.rops.at(0);
    REQUIRE(soft.kind == TaskKind::rowwise);
    REQUIRE(std::get<RowParams>(soft.params).rows_per_tile == 4);
    const int64_t y0 = buffer_of(tg, "y").offset, x0 = buffer_of(tg, "x").offset, row = 7 * 4;
    const ByteRange w = tile_writes(soft, 1);
    CHECK(w.begin == y0 + 4 * row);
    CHECK(w.end == y0 + 8 * row);
    const ByteRange r = tile_reads(soft, 1).front();
    CHECK(r.begin == x0 + 4 * row);
    CHECK(r.end == x0 + 8 * row);
    // The transpose reads x through permuted strides: elements 9..17 of t
    // [5, 3, 7] are t[0, 1, 2] .. t[0, 2, 3], x[1, 0, 2] .. x[2, 0, 3], 35
    // elements apart across the blocks of x: not row-major, the box.
    const ROp& tr = tg.rops.at(1);
    REQUIRE(tr.kind == TaskKind::elementwise);
    const ByteRange tw = tile_writes(tr, 1);
    CHECK(tw.end - tw.begin == 9 * 4);  // t is contiguous: exactly its 9 elements
    const ByteRange tread = tile_reads(tr, 1).front();
    CHECK(tread.end - tread.begin > 9 * 4);  // x's strides are not row-major over t's shape: the box
}
