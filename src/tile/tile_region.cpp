// Tile regions and Welder's tile propagation. Every operator's read pattern
// is one case of map_operand's switch; the helpers above it are the shapes
// those patterns share (an affine per-dim map, a broadcast, a whole axis, a
// sliding window, a reshape).
#include "tile/tile_region.h"

#include <algorithm>
#include <set>
#include <string>

#include "anvil/error.h"
#include "frontend/op_table.h"

namespace anvil {

int64_t Region::elements() const {
    int64_t n = 1;
    for (size_t d = 0; d < lo.size(); ++d) n *= std::max<int64_t>(hi[d] - lo[d], 0);
    return n;
}

bool Region::empty() const { return elements() == 0; }

Region whole(const Shape& shape) { return Region{std::vector<int64_t>(shape.size(), 0), shape}; }

namespace {

// The empty region of a tensor of `rank` dims. A scalar has no empty box:
// reading nothing of it is approximated by reading it (one element).
Region empty_region(size_t rank) { return Region{std::vector<int64_t>(rank, 0), std::vector<int64_t>(rank, 0)}; }

// The covering box of two boxes; an empty one adds nothing.
Region hull(const Region& a, const Region& b) {
    if (a.empty()) return b;
    if (b.empty()) return a;
    Region r = a;
    for (size_t d = 0; d < r.lo.size(); ++d) {
        r.lo[d] = std::min(a.lo[d], b.lo[d]);
        r.hi[d] = std::max(a.hi[d], b.hi[d]);
    }
    return r;
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

std::string region_str(const Region& r) {
    std::string s = "[";
    for (size_t d = 0; d < r.lo.size(); ++d)
        s += (d ? ", " : "") + std::to_string(r.lo[d]) + ":" + std::to_string(d < r.hi.size() ? r.hi[d] : -1);
    return s + "]";
}

void check_region(const TileGraph& tg, VertexId v, const Region& r, const char* who) {
    const Shape& shape = tg.buffers[v].shape;
    bool ok = r.lo.size() == shape.size() && r.hi.size() == shape.size();
    for (size_t d = 0; ok && d < shape.size(); ++d) ok = 0 <= r.lo[d] && r.lo[d] <= r.hi[d] && r.hi[d] <= shape[d];
    ANVIL_CHECK(ok, std::string(who) + ": region " + region_str(r) + " is not a box of '" + tg.buffers[v].name +
                        "' " + shape_str(shape));
}

// An operand read at the output's positions under numpy broadcasting: its
// dims align with the output's trailing ones, and a size-1 dim reads index 0.
Region broadcast_map(const Region& out, const Shape& operand) {
    Region r = whole(operand);
    size_t lead = out.lo.size() - operand.size();
    for (size_t d = 0; d < operand.size(); ++d)
        if (operand[d] != 1) {
            r.lo[d] = out.lo[lead + d];
            r.hi[d] = out.hi[lead + d];
        }
    return r;
}

// Output and operand share their index space except along `axes`, where
// every output element reads the operand's whole axis.
Region whole_along(Region r, const Shape& operand, const std::vector<int>& axes) {
    for (int a : axes) {
        r.lo[a] = 0;
        r.hi[a] = operand[a];
    }
    return r;
}

int norm_axis(int64_t axis, size_t rank) {
    auto a = normalize_axis(axis, static_cast<int>(rank));
    ANVIL_CHECK(a.has_value(), "tile_region: axis out of range (was infer_shapes run?)");
    return *a;
}
int axis_of(const Attrs& attrs, const char* name, size_t rank) { return norm_axis(attrs.get_int(name), rank); }

// One spatial dim of a sliding window: outputs [lo, hi) read the input
// cells o * stride - pad + k * dilation (k < kernel) that lie in [0, size).
// Per tap, the outputs whose cell is inside form a contiguous range, so the
// exact extent is a min/max over taps; with no cell inside, lo >= hi.
std::pair<int64_t, int64_t> window_dim(int64_t lo, int64_t hi, int64_t size, int64_t stride, int64_t pad,
                                       int64_t kernel, int64_t dilation) {
    int64_t first = size, last = -1;
    for (int64_t k = 0; k < kernel; ++k) {
        int64_t shift = k * dilation - pad;
        int64_t o_min = std::max(lo, ceil_div(-shift, stride));
        int64_t o_max = std::min(hi - 1, floor_div(size - 1 - shift, stride));
        if (o_min > o_max) continue;
        first = std::min(first, o_min * stride + shift);
        last = std::max(last, o_max * stride + shift);
    }
    return {first, last + 1};
}

// An int-or-[h, w] attribute as {h, w}; padding as {top, left}.
std::pair<int64_t, int64_t> hw(const Attrs& a, const char* name) {
    const std::vector<int64_t>& v = a.get_ints(name);
    return {v.front(), v.back()};
}
std::pair<int64_t, int64_t> top_left(const Attrs& a) {
    const std::vector<int64_t>& v = a.get_ints("padding");
    return {v[0], v.size() == 1 ? v[0] : v[1]};
}

// The H and W of a window op's x; an empty box when the output box's
// windows all lie in padding.
Region window_map(Region r, const Shape& x, std::pair<int64_t, int64_t> kernel, std::pair<int64_t, int64_t> stride,
                  std::pair<int64_t, int64_t> pad, std::pair<int64_t, int64_t> dilation) {
    auto [h0, h1] = window_dim(r.lo[2], r.hi[2], x[2], stride.first, pad.first, kernel.first, dilation.first);
    auto [w0, w1] = window_dim(r.lo[3], r.hi[3], x[3], stride.second, pad.second, kernel.second, dilation.second);
    if (h0 >= h1 || w0 >= w1) return empty_region(4);
    r.lo[2] = h0, r.hi[2] = h1, r.lo[3] = w0, r.hi[3] = w1;
    return r;
}

// The covering box, in `shape`, of the row-major linear range [first, last].
void cover_linear(int64_t first, int64_t last, const Shape& shape, size_t d0, size_t d1, Region& r) {
    Strides st = contiguous_strides(Shape(shape.begin() + d0, shape.begin() + d1));
    bool split = false;  // the two ends differ in an earlier dim: this one is whole
    for (size_t d = d0; d < d1; ++d) {
        int64_t a = first / st[d - d0] % shape[d], b = last / st[d - d0] % shape[d];
        r.lo[d] = split ? 0 : a;
        r.hi[d] = split ? shape[d] : b + 1;
        split = split || a != b;
    }
}

// Reshape keeps the row-major order. Both shapes are cut into the shortest
// runs of dims with equal products (e.g. [B, S, H*D] and [B, S, H, D] into
// B | S | H*D); within a run the box's linear range maps to its covering
// box, and runs are independent. A conservative cover: inside a run the
// box may touch fewer cells than its linear range.
Region reshape_map(const Region& out, const Shape& out_shape, const Shape& in_shape) {
    Region r = whole(in_shape);
    size_t i = 0, j = 0;
    while (i < out_shape.size() || j < in_shape.size()) {
        size_t i0 = i, j0 = j;
        int64_t po = i < out_shape.size() ? out_shape[i++] : 1;
        int64_t pi = j < in_shape.size() ? in_shape[j++] : 1;
        while (po != pi) {
            ANVIL_CHECK(i < out_shape.size() || j < in_shape.size(), "tile_region: reshape sizes differ");
            if (po < pi) po *= out_shape[i++];
            else pi *= in_shape[j++];
        }
        int64_t first = 0, last = 0;
        for (size_t d = i0; d < i; ++d) {
            first = first * out_shape[d] + out.lo[d];
            last = last * out_shape[d] + out.hi[d] - 1;
        }
        cover_linear(first, last, in_shape, j0, j, r);
    }
    return r;
}

// The box of operand `k` of node v that the output box `out` reads, by the
// op's index map (frontend/op_table.h); `out` is not empty.
Region map_operand(const TileGraph& tg, VertexId v, int k, const Region& out) {
    const NodeInfo& node = tg.nodes[v];
    const Attrs& at = node.attrs;
    const Shape& y = tg.buffers[v].shape;
    const Shape& x = tg.buffers[node.operands[k]].shape;
    switch (op_def(node.op).map) {
        case IndexMap::broadcast: return broadcast_map(out, x);
        case IndexMap::rows:
            // gamma and beta of the norms are the trailing dims of x: read where the output is.
            if (k > 0) return broadcast_map(out, x);
            return whole_along(out, x, row_axes(node.op, at, static_cast<int>(x.size())));
        case IndexMap::reduce: {
            std::vector<bool> reduced(x.size(), false);
            for (int a : row_axes(node.op, at, static_cast<int>(x.size()))) reduced[a] = true;
            bool keep = at.get_bool("keepdims");
            Region r = whole(x);
            for (size_t d = 0, o = 0; d < x.size(); ++d) {
                if (!reduced[d]) r.lo[d] = out.lo[o], r.hi[d] = out.hi[o];
                if (!reduced[d] || keep) ++o;  // dims the output keeps
            }
            return r;
        }
        case IndexMap::matmul: {
            // Batch dims broadcast; of the matrix dims, the output's row (a)
            // or column (b) range and the whole K.
            size_t rank = out.lo.size();
            Region batch{{out.lo.begin(), out.lo.end() - 2}, {out.hi.begin(), out.hi.end() - 2}};
            Region r = broadcast_map(batch, Shape(x.begin(), x.end() - 2));
            bool t = at.get_bool(k == 0 ? "transpose_a" : "transpose_b");
            int mn = k == 0 ? static_cast<int>(rank) - 2 : static_cast<int>(rank) - 1;  // the output dim it follows
            int kept = (k == 0) == !t ? 0 : 1;  // which of the operand's last two dims follows it
            for (int d = 0; d < 2; ++d) {
                r.lo.push_back(d == kept ? out.lo[mn] : 0);
                r.hi.push_back(d == kept ? out.hi[mn] : x[x.size() - 2 + d]);
            }
            return r;
        }
        case IndexMap::transpose: {
            // Output dim d walks operand dim perm[d].
            Region r = whole(x);
            const std::vector<int64_t>& perm = at.get_ints("perm");
            for (size_t d = 0; d < perm.size(); ++d) {
                int p = norm_axis(perm[d], x.size());
                r.lo[p] = out.lo[d], r.hi[p] = out.hi[d];
            }
            return r;
        }
        case IndexMap::reshape: return reshape_map(out, y, x);
        case IndexMap::concat: {
            int axis = axis_of(at, "axis", y.size());
            int64_t begin = 0;  // where operand k starts along the axis
            for (int i = 0; i < k; ++i) begin += tg.buffers[node.operands[i]].shape[axis];
            Region r = out;
            r.lo[axis] = std::max(out.lo[axis] - begin, int64_t{0});
            r.hi[axis] = std::min(out.hi[axis] - begin, x[axis]);
            return r.lo[axis] < r.hi[axis] ? r : empty_region(x.size());
        }
        case IndexMap::slice: {
            int axis = axis_of(at, "axis", x.size());
            std::optional<int64_t> end;
            if (at.has("end")) end = at.get_int("end");
            SliceBounds b = slice_bounds(x[axis], at.get_int("start"), end, at.get_int("step"));
            Region r = out;
            r.lo[axis] = b.start + out.lo[axis] * b.step;
            r.hi[axis] = b.start + (out.hi[axis] - 1) * b.step + 1;
            return r;
        }
        case IndexMap::conv_window: {
            const Shape& w = tg.buffers[node.operands[1]].shape;
            if (k == 2) return Region{{out.lo[1]}, {out.hi[1]}};  // bias: one per output channel
            if (k == 1) return Region{{out.lo[1], 0, 0, 0}, {out.hi[1], w[1], w[2], w[3]}};
            // x: the input channels of the groups the output channels are in.
            int64_t per_group = w[0] / at.get_int("groups");
            Region r = out;
            r.lo[1] = out.lo[1] / per_group * w[1];
            r.hi[1] = ((out.hi[1] - 1) / per_group + 1) * w[1];
            return window_map(r, x, {w[2], w[3]}, hw(at, "stride"), top_left(at), hw(at, "dilation"));
        }
        case IndexMap::pool_window: {
            auto kernel = hw(at, "kernel");
            auto stride = at.has("stride") ? hw(at, "stride") : kernel;
            auto dilation = at.has("dilation") ? hw(at, "dilation") : std::pair<int64_t, int64_t>{1, 1};
            return window_map(out, x, kernel, stride, top_left(at), dilation);
        }
        case IndexMap::channel:
            if (k > 0) return Region{{out.lo[1]}, {out.hi[1]}};  // per-channel statistics
            return out;
        case IndexMap::gather:
            // The table: every row (ids are data), the output's columns. The
            // ids: the output's positions but its last dim.
            if (k == 0) return Region{{0, out.lo.back()}, {x[0], out.hi.back()}};
            return Region{{out.lo.begin(), out.lo.end() - 1}, {out.hi.begin(), out.hi.end() - 1}};
        case IndexMap::none: break;
    }
    ANVIL_CHECK(false, std::string("tile_region: no read pattern for op ") + op_name(node.op));
    return {};
}

}  // namespace

Region operand_region(const TileGraph& tg, VertexId v, int operand, const Region& out) {
    ANVIL_CHECK(v < tg.nodes.size() && v < tg.buffers.size() && tg.nodes[v].is_node,
                "operand_region: vertex " + std::to_string(v) + " is not a node of the tile graph");
    const NodeInfo& node = tg.nodes[v];
    ANVIL_CHECK(operand >= 0 && operand < static_cast<int>(node.operands.size()),
                "operand_region: '" + tg.buffers[v].name + "' (" + op_name(node.op) + ") has no operand " +
                    std::to_string(operand));
    check_region(tg, v, out, "operand_region");
    const Shape& x = tg.buffers[node.operands[operand]].shape;
    if (out.empty()) return empty_region(x.size());
    Region r = map_operand(tg, v, operand, out);
    if (!r.empty()) check_region(tg, node.operands[operand], r, "operand_region (result)");
    return r;
}

std::map<VertexId, Region> propagate(const TileGraph& tg, const std::vector<VertexId>& group, const Region& out) {
    ANVIL_CHECK(!group.empty(), "propagate: empty group");
    for (VertexId v : group)
        ANVIL_CHECK(v < tg.nodes.size() && tg.nodes[v].is_node,
                    "propagate: group member " + std::to_string(v) + " is not a node");
    check_region(tg, group.back(), out, "propagate");
    std::map<VertexId, Region> need{{group.back(), out}};
    // Backwards through the topological order, a member is done once all its
    // consumers in the group are; a later union into it means the order is wrong.
    std::set<VertexId> done;
    for (auto it = group.rbegin(); it != group.rend(); ++it) {
        VertexId v = *it;
        auto found = need.find(v);
        done.insert(v);
        if (found == need.end()) continue;  // the output does not read this member
        const Region here = found->second;
        const std::vector<VertexId>& operands = tg.nodes[v].operands;
        for (int k = 0; k < static_cast<int>(operands.size()); ++k) {
            VertexId u = operands[k];
            ANVIL_CHECK(!done.count(u), "propagate: group is not in topological order ('" + tg.buffers[u].name +
                                            "' comes after its consumer '" + tg.buffers[v].name + "')");
            Region r = operand_region(tg, v, k, here);
            auto [slot, fresh] = need.emplace(u, r);
            if (!fresh) slot->second = hull(slot->second, r);
        }
    }
    return need;
}

int64_t region_bytes(const TileGraph& tg, VertexId v, const Region& r) {
    ANVIL_CHECK(v < tg.buffers.size(), "region_bytes: no tensor " + std::to_string(v));
    check_region(tg, v, r, "region_bytes");
    return r.elements() * dtype_size(tg.buffers[v].dtype);
}

}  // namespace anvil
