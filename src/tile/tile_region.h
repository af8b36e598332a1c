// Tile regions in index space and Welder's tile propagation: the exact box
// of each operand that a box of a node's output reads (affine index maps,
// halos of windows, whole reduced axes), and the propagation of an output
// tile backwards through a group of nodes.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

#include "tile/tile_graph.h"

namespace anvil {

// A box of a tensor's index space: lo[d] <= i[d] < hi[d] for every dim.
struct Region {
    std::vector<int64_t> lo, hi;
    int64_t elements() const;
    bool empty() const;
};

// The whole index space of `shape`.
Region whole(const Shape& shape);

// The box of operand `operand` of node `v` that computing the box `out` of
// v's output reads: the smallest box covering every element read. Windows
// (conv2d, pools) include their halo and only the cells inside the operand
// (stride and dilation included, so it may be tighter than the halo clipped
// to the operand); an empty box when nothing is read (an empty `out`, a
// concat operand beside the box, windows that lie in padding). Exceptions,
// conservative: conv2d weights are read for every tap of the output
// channels; reshape reads the covering box of the linear range of each run
// of dims whose products match; a scalar operand is always read. Throws
// InternalError for a vertex that is no node, an operand out of range, or
// `out` not a box of v's output (rank, bounds).
Region operand_region(const TileGraph& tg, VertexId v, int operand, const Region& out);

// Welder's tile propagation. `group` is a set of nodes in topological
// order whose last node is the group's output; `out` a box of that output.
// Returns, for every tensor the group reads or computes (members and
// external operands), the box of it needed: the union (covering box) over
// all paths from the output. Throws InternalError when a member is no node
// or comes after one of its consumers in `group`.
std::map<VertexId, Region> propagate(const TileGraph& tg, const std::vector<VertexId>& group, const Region& out);

// Bytes of `r` in tensor `v` (elements times the element size).
int64_t region_bytes(const TileGraph& tg, VertexId v, const Region& r);

}  // namespace anvil
