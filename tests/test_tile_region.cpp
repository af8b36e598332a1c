// Tile regions against brute force: for random boxes of a node's output,
// every output element of the box is walked and every operand element it
// depends on (by a naive, element-by-element definition of the op, written
// here independently of src/tile_region.cpp) goes into a bounding box, which
// operand_region must equal. Shapes are odd on purpose.
#include <catch2/catch.hpp>

#include <functional>
#include <random>
#include <set>

#include "tile/tile_region.h"
#include "graph_builder.h"
#include "tile/decompose.h"
#include "frontend/infer_shapes.h"

using namespace anvil;
using namespace anvil::test;

namespace {

using Idx = std::vector<int64_t>;
using Emit = std::function<void(int operand, const Idx&)>;

// Every index of box r, row-major.
void for_each_index(const Region& r, const std::function<void(const Idx&)>& f) {
    if (r.empty()) return;
    Idx i = r.lo;
    while (true) {
        f(i);
        size_t d = i.size();
        while (d > 0) {
            --d;
            if (++i[d] < r.hi[d]) break;
            i[d] = r.lo[d];
            if (d == 0) return;
        }
        if (i.empty()) return;  // a scalar has one index
    }
}

int64_t linear(const Idx& i, const Shape& s) {
    int64_t l = 0;
    for (size_t d = 0; d < s.size(); ++d) l = l * s[d] + i[d];
    return l;
}
Idx unravel(int64_t l, const Shape& s) {
    Idx i(s.size());
    for (size_t d = s.size(); d-- > 0; l /= s[d]) i[d] = l % s[d];
    return i;
}

int64_t norm(int64_t axis, size_t rank) { return axis < 0 ? axis + static_cast<int64_t>(rank) : axis; }

// Python's range(dim)[start:end:step], written out.
std::vector<int64_t> python_slice(int64_t dim, int64_t start, std::optional<int64_t> end, int64_t step) {
    auto fix = [&](int64_t i) { return std::min(std::max<int64_t>(i < 0 ? i + dim : i, 0), dim); };
    std::vector<int64_t> picked;
    for (int64_t i = fix(start); i < (end ? fix(*end) : dim); i += step) picked.push_back(i);
    return picked;
}

// The naive definition of what output element `o` of node v reads: each
// (operand, index) it depends on. Weights of conv2d are read for every tap
// (as the kernel loads them); x only where the tap is inside x.
void naive_deps(const TileGraph& tg, VertexId v, const Idx& o, const Emit& emit) {
    const NodeInfo& n = tg.nodes[v];
    const Attrs& a = n.attrs;
    auto shape = [&](int k) { return tg.buffers[n.operands[k]].shape; };
    const Shape& y = tg.buffers[v].shape;
    // Operand k read at o under right-aligned broadcasting.
    auto broadcast = [&](int k) {
        Shape s = shape(k);
        Idx i(s.size());
        for (size_t d = 0; d < s.size(); ++d) i[d] = s[d] == 1 ? 0 : o[o.size() - s.size() + d];
        emit(k, i);
    };
    // Every index of operand k that agrees with `fixed` where fixed >= 0.
    auto all_matching = [&](int k, const Idx& fixed) {
        for_each_index(whole(shape(k)), [&](const Idx& i) {
            for (size_t d = 0; d < i.size(); ++d)
                if (fixed[d] >= 0 && fixed[d] != i[d]) return;
            emit(k, i);
        });
    };
    const OpClass cls = op_info(n.op).cls;
    if (cls == OpClass::Unary || cls == OpClass::Binary) {
        for (int k = 0; k < static_cast<int>(n.operands.size()); ++k) broadcast(k);
        return;
    }
    switch (n.op) {
        case Op::softmax: {
            Idx f = o;
            f[norm(a.get_int("axis"), y.size())] = -1;
            return all_matching(0, f);
        }
        case Op::layernorm:
        case Op::rmsnorm: {
            int64_t from = n.op == Op::layernorm ? norm(a.get_int("axis"), y.size()) : int64_t(y.size()) - 1;
            Idx f = o;
            for (size_t d = from; d < f.size(); ++d) f[d] = -1;
            all_matching(0, f);
            for (int k = 1; k < static_cast<int>(n.operands.size()); ++k) broadcast(k);
            return;
        }
        case Op::reduce_sum:
        case Op::reduce_mean:
        case Op::reduce_max: {
            // Every x element whose output index is o.
            Shape x = shape(0);
            std::set<int64_t> axes;
            for (int64_t ax : a.get_ints("axes")) axes.insert(norm(ax, x.size()));
            for_each_index(whole(x), [&](const Idx& i) {
                Idx to;
                for (size_t d = 0; d < x.size(); ++d) {
                    if (!axes.count(d)) to.push_back(i[d]);
                    else if (a.get_bool("keepdims")) to.push_back(0);
                }
                if (to == o) emit(0, i);
            });
            return;
        }
        case Op::matmul: {
            size_t r = o.size();
            int64_t m = o[r - 2], col = o[r - 1];
            for (int k = 0; k < 2; ++k) {
                Shape s = shape(k);
                bool t = a.get_bool(k == 0 ? "transpose_a" : "transpose_b");
                int64_t inner = k == 0 ? (t ? s[s.size() - 2] : s.back()) : (t ? s.back() : s[s.size() - 2]);
                for (int64_t kk = 0; kk < inner; ++kk) {
                    Idx i(s.size());
                    for (size_t d = 0; d + 2 < s.size(); ++d) i[d] = s[d] == 1 ? 0 : o[r - s.size() + d];
                    int64_t row = k == 0 ? m : kk, c = k == 0 ? kk : col;  // of the logical A or B
                    i[s.size() - 2] = t ? c : row;
                    i[s.size() - 1] = t ? row : c;
                    emit(k, i);
                }
            }
            return;
        }
        case Op::transpose: {
            const std::vector<int64_t>& perm = a.get_ints("perm");
            Idx i(o.size());
            for (size_t d = 0; d < o.size(); ++d) i[norm(perm[d], o.size())] = o[d];
            return emit(0, i);
        }
        case Op::reshape: return emit(0, unravel(linear(o, y), shape(0)));
        case Op::concat: {
            int64_t axis = norm(a.get_int("axis"), y.size()), at = o[axis];
            for (int k = 0; k < static_cast<int>(n.operands.size()); ++k) {
                int64_t len = shape(k)[axis];
                if (at < len) {
                    Idx i = o;
                    i[axis] = at;
                    return emit(k, i);
                }
                at -= len;
            }
            return;
        }
        case Op::slice: {
            int64_t axis = norm(a.get_int("axis"), y.size());
            std::optional<int64_t> end;
            if (a.has("end")) end = a.get_int("end");
            Idx i = o;
            i[axis] = python_slice(shape(0)[axis], a.get_int("start"), end, a.get_int("step")).at(o[axis]);
            return emit(0, i);
        }
        case Op::conv2d: {
            Shape x = shape(0), w = shape(1);
            const std::vector<int64_t> &st = a.get_ints("stride"), &dil = a.get_ints("dilation"),
                                       &pad = a.get_ints("padding");
            int64_t top = pad[0], left = pad.size() == 1 ? pad[0] : pad[1];
            int64_t groups = a.get_int("groups");
            int64_t group = o[1] / (w[0] / groups);
            for (int64_t c = 0; c < w[1]; ++c)
                for (int64_t i = 0; i < w[2]; ++i)
                    for (int64_t j = 0; j < w[3]; ++j) {
                        emit(1, {o[1], c, i, j});
                        int64_t ih = o[2] * st.front() - top + i * dil.front();
                        int64_t iw = o[3] * st.back() - left + j * dil.back();
                        if (ih >= 0 && ih < x[2] && iw >= 0 && iw < x[3]) emit(0, {o[0], group * w[1] + c, ih, iw});
                    }
            if (n.operands.size() == 3) emit(2, {o[1]});
            return;
        }
        case Op::maxpool2d:
        case Op::avgpool2d: {
            Shape x = shape(0);
            const std::vector<int64_t>& kern = a.get_ints("kernel");
            const std::vector<int64_t>& st = a.has("stride") ? a.get_ints("stride") : kern;
            const std::vector<int64_t>& pad = a.get_ints("padding");
            int64_t top = pad[0], left = pad.size() == 1 ? pad[0] : pad[1];
            for (int64_t i = 0; i < kern.front(); ++i)
                for (int64_t j = 0; j < kern.back(); ++j) {
                    int64_t ih = o[2] * st.front() - top + i, iw = o[3] * st.back() - left + j;
                    if (ih >= 0 && ih < x[2] && iw >= 0 && iw < x[3]) emit(0, {o[0], o[1], ih, iw});
                }
            return;
        }
        case Op::global_avgpool: return all_matching(0, {o[0], o[1], -1, -1});
        case Op::batchnorm:
            emit(0, o);
            for (int k = 1; k < 5; ++k) emit(k, {o[1]});
            return;
        case Op::embedding: {
            Shape table = shape(0);
            for (int64_t row = 0; row < table[0]; ++row) emit(0, {row, o.back()});
            return emit(1, Idx(o.begin(), o.end() - 1));
        }
        default: break;
    }
    FAIL("naive_deps: no definition for " << op_name(n.op));
}

// The bounding box of a set of indices (of one tensor); an empty region
// when the set is empty.
struct Box {
    Idx lo, hi;
    bool any = false;
    explicit Box(size_t rank) : lo(rank, 0), hi(rank, 0) {}
    void add(const Idx& i) {
        for (size_t d = 0; d < i.size(); ++d) {
            lo[d] = any ? std::min(lo[d], i[d]) : i[d];
            hi[d] = any ? std::max(hi[d], i[d] + 1) : i[d] + 1;
        }
        any = true;
    }
    Region region() const { return any ? Region{lo, hi} : Region{Idx(lo.size(), 0), Idx(lo.size(), 0)}; }
};

// Brute force: operand k's box that the box `out` of v reads.
Region brute_region(const TileGraph& tg, VertexId v, int k, const Region& out) {
    Box box(tg.buffers[tg.nodes[v].operands[k]].shape.size());
    for_each_index(out, [&](const Idx& o) {
        naive_deps(tg, v, o, [&](int kk, const Idx& i) {
            if (kk == k) box.add(i);
        });
    });
    return box.region();
}

// Region equality that treats every empty box alike.
bool same(const Region& a, const Region& b) {
    if (a.empty() || b.empty()) return a.empty() && b.empty() && a.lo.size() == b.lo.size();
    return a.lo == b.lo && a.hi == b.hi;
}
bool inside(const Region& inner, const Region& outer) {
    if (inner.empty()) return true;
    for (size_t d = 0; d < inner.lo.size(); ++d)
        if (inner.lo[d] < outer.lo[d] || inner.hi[d] > outer.hi[d]) return false;
    return true;
}
bool contains(const Region& r, const Idx& i) {
    for (size_t d = 0; d < i.size(); ++d)
        if (i[d] < r.lo[d] || i[d] >= r.hi[d]) return false;
    return true;
}

std::string str(const Region& r) {
    std::string s = "[";
    for (size_t d = 0; d < r.lo.size(); ++d) s += (d ? ", " : "") + std::to_string(r.lo[d]) + ":" + std::to_string(r.hi[d]);
    return s + "]";
}

// The whole box, single cells at both corners, and random boxes.
std::vector<Region> boxes_of(const Shape& s, std::mt19937& rng, int random = 40) {
    std::vector<Region> boxes{whole(s)};
    Region first = whole(s), last = whole(s);
    for (size_t d = 0; d < s.size(); ++d) {
        first.hi[d] = 1;
        last.lo[d] = s[d] - 1;
    }
    boxes.push_back(first);
    boxes.push_back(last);
    for (int b = 0; b < random; ++b) {
        Region r = whole(s);
        for (size_t d = 0; d < s.size(); ++d) {
            r.lo[d] = std::uniform_int_distribution<int64_t>(0, s[d] - 1)(rng);
            r.hi[d] = std::uniform_int_distribution<int64_t>(r.lo[d] + 1, s[d])(rng);
        }
        boxes.push_back(r);
    }
    return boxes;
}

TileGraph tile_graph(GraphBuilder& b, const std::string& out) {
    b.output(out);
    return decompose(infer_shapes(b.graph()));
}

VertexId vertex(const TileGraph& tg, const std::string& name) {
    for (VertexId v = 0; v < tg.buffers.size(); ++v)
        if (tg.buffers[v].name == name) return v;
    FAIL("no tensor " << name);
    return 0;
}

// For reshape, operand_region is a conservative cover: it must hold the
// exact box and lie within the covering box of the linear range read.
Region linear_cover(const TileGraph& tg, VertexId v, const Region& out) {
    const Shape& x = tg.buffers[tg.nodes[v].operands[0]].shape;
    int64_t first = -1, last = -1;
    for_each_index(out, [&](const Idx& o) {
        naive_deps(tg, v, o, [&](int, const Idx& i) {
            int64_t l = linear(i, x);
            first = first < 0 ? l : std::min(first, l);
            last = std::max(last, l);
        });
    });
    Box box(x.size());
    for (int64_t l = first; l <= last; ++l) box.add(unravel(l, x));
    return box.region();
}

// Checks every operand of node `name` on many boxes of its output.
void check_node(const TileGraph& tg, const std::string& name, std::mt19937& rng) {
    VertexId v = vertex(tg, name);
    const NodeInfo& n = tg.nodes[v];
    for (const Region& out : boxes_of(tg.buffers[v].shape, rng))
        for (int k = 0; k < static_cast<int>(n.operands.size()); ++k) {
            Region want = brute_region(tg, v, k, out), got = operand_region(tg, v, k, out);
            INFO(name << " (" << op_name(n.op) << ") operand " << k << " for output box " << str(out) << ": got "
                      << str(got) << ", brute force " << str(want));
            REQUIRE(got.lo.size() == tg.buffers[n.operands[k]].shape.size());
            if (n.op == Op::reshape) {
                REQUIRE(inside(want, got));
                REQUIRE(inside(got, linear_cover(tg, v, out)));
            } else {
                REQUIRE(same(got, want));
            }
        }
}

// One small graph per case; `node` is the node checked.
struct Case {
    std::string label;
    std::function<void(GraphBuilder&)> build;
    std::string node = "y";
};

std::vector<Case> cases() {
    std::vector<Case> all;
    for (const OpInfo& info : all_ops()) {
        if (info.cls == OpClass::Unary)
            all.push_back({info.name, [op = info.op](GraphBuilder& b) {
                               b.input("x", {3, 5, 7});
                               b.node("y", op, {"x"});
                           }});
        if (info.cls == OpClass::Binary) {
            all.push_back({info.name + " broadcast", [op = info.op](GraphBuilder& b) {
                               b.input("a", {3, 1, 7});
                               b.param("b", {5, 1});
                               b.node("y", op, {"a", "b"});
                           }});
            all.push_back({info.name + " scalar", [op = info.op](GraphBuilder& b) {
                               b.param("a", {});
                               b.input("b", {2, 9});
                               b.node("y", op, {"a", "b"});
                           }});
        }
    }
    auto one = [&](std::string label, std::function<void(GraphBuilder&)> f) { all.push_back({label, f}); };
    one("softmax axis 1", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.node("y", Op::softmax, {"x"}, {{"axis", I(1)}});
    });
    one("softmax last", [](GraphBuilder& b) {
        b.input("x", {4, 9});
        b.node("y", Op::softmax, {"x"});
    });
    one("layernorm axis -2", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.param("g", {5, 7});
        b.param("b", {5, 7});
        b.node("y", Op::layernorm, {"x", "g", "b"}, {{"axis", I(-2)}});
    });
    one("rmsnorm", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.param("g", {7});
        b.node("y", Op::rmsnorm, {"x", "g"});
    });
    one("reduce_sum two axes", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.node("y", Op::reduce_sum, {"x"}, {{"axes", L({0, 2})}});
    });
    one("reduce_mean keepdims", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.node("y", Op::reduce_mean, {"x"}, {{"axes", L({-1, 1})}, {"keepdims", B(true)}});
    });
    one("reduce_max middle", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.node("y", Op::reduce_max, {"x"}, {{"axes", L({1})}});
    });
    one("matmul batched a, shared b", [](GraphBuilder& b) {
        b.input("a", {3, 5, 7});
        b.param("b", {7, 6});
        b.node("y", Op::matmul, {"a", "b"});
    });
    one("matmul transposed, batch broadcast", [](GraphBuilder& b) {
        b.input("a", {2, 1, 7, 5});
        b.param("b", {3, 6, 7});
        b.node("y", Op::matmul, {"a", "b"}, {{"transpose_a", B(true)}, {"transpose_b", B(true)}});
    });
    one("matmul transpose_b only", [](GraphBuilder& b) {
        b.input("a", {1, 5, 7});
        b.param("b", {3, 9, 7});
        b.node("y", Op::matmul, {"a", "b"}, {{"transpose_b", B(true)}});
    });
    one("transpose", [](GraphBuilder& b) {
        b.input("x", {3, 5, 7});
        b.node("y", Op::transpose, {"x"}, {{"perm", L({2, -3, 1})}});
    });
    one("reshape split heads", [](GraphBuilder& b) {
        b.input("x", {3, 5, 14});
        b.node("y", Op::reshape, {"x"}, {{"shape", L({3, 5, 2, 7})}});
    });
    one("reshape merge heads", [](GraphBuilder& b) {
        b.input("x", {3, 5, 2, 7});
        b.node("y", Op::reshape, {"x"}, {{"shape", L({3, 5, 14})}});
    });
    one("reshape across dims", [](GraphBuilder& b) {
        b.input("x", {6, 5});
        b.node("y", Op::reshape, {"x"}, {{"shape", L({3, 10})}});
    });
    one("reshape with ones", [](GraphBuilder& b) {
        b.input("x", {1, 35, 3, 1});
        b.node("y", Op::reshape, {"x"}, {{"shape", L({7, 1, 15})}});
    });
    one("concat three", [](GraphBuilder& b) {
        b.input("a", {3, 2, 5});
        b.input("b", {3, 4, 5});
        b.input("c", {3, 1, 5});
        b.node("y", Op::concat, {"a", "b", "c"}, {{"axis", I(1)}});
    });
    one("concat last axis", [](GraphBuilder& b) {
        b.input("a", {4, 3});
        b.input("b", {4, 6});
        b.node("y", Op::concat, {"a", "b"}, {{"axis", I(-1)}});
    });
    one("slice step 3", [](GraphBuilder& b) {
        b.input("x", {3, 13, 5});
        b.node("y", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(1)}, {"end", I(12)}, {"step", I(3)}});
    });
    one("slice negative start", [](GraphBuilder& b) {
        b.input("x", {3, 13});
        b.node("y", Op::slice, {"x"}, {{"axis", I(-1)}, {"start", I(-6)}, {"step", I(2)}});
    });
    one("conv2d groups 2, stride 2, dilation 2, padding, bias", [](GraphBuilder& b) {
        b.input("x", {2, 4, 11, 9});
        b.param("w", {6, 2, 3, 3});
        b.param("bias", {6});
        b.node("y", Op::conv2d, {"x", "w", "bias"},
               {{"groups", I(2)}, {"stride", L({2})}, {"dilation", L({2})}, {"padding", L({1, 2, 0, 1})}});
    });
    one("conv2d depthwise", [](GraphBuilder& b) {
        b.input("x", {1, 6, 10, 7});
        b.param("w", {6, 1, 3, 3});
        b.node("y", Op::conv2d, {"x", "w"}, {{"groups", I(6)}, {"stride", L({2, 1})}, {"padding", L({1})}});
    });
    one("conv2d dense, dilation [1, 2]", [](GraphBuilder& b) {
        b.input("x", {1, 4, 7, 11});
        b.param("w", {5, 4, 2, 3});
        b.node("y", Op::conv2d, {"x", "w"}, {{"dilation", L({1, 2})}});
    });
    one("conv2d padding only windows", [](GraphBuilder& b) {
        b.input("x", {1, 2, 5, 5});
        b.param("w", {3, 2, 1, 1});
        b.node("y", Op::conv2d, {"x", "w"}, {{"padding", L({3})}, {"stride", L({2})}});
    });
    one("conv2d dilation skips x", [](GraphBuilder& b) {
        b.input("x", {1, 2, 9, 9});
        b.param("w", {2, 1, 2, 2});
        b.node("y", Op::conv2d, {"x", "w"}, {{"groups", I(2)}, {"padding", L({3})}, {"dilation", L({4})}, {"stride", L({3})}});
    });
    one("maxpool2d", [](GraphBuilder& b) {
        b.input("x", {2, 3, 11, 8});
        b.node("y", Op::maxpool2d, {"x"}, {{"kernel", L({3})}, {"stride", L({2})}, {"padding", L({1})}});
    });
    one("avgpool2d", [](GraphBuilder& b) {
        b.input("x", {1, 3, 9, 10});
        b.node("y", Op::avgpool2d, {"x"}, {{"kernel", L({2, 3})}, {"stride", L({1, 2})}, {"padding", L({1, 1})}});
    });
    one("avgpool2d default stride", [](GraphBuilder& b) {
        b.input("x", {1, 2, 7, 8});
        b.node("y", Op::avgpool2d, {"x"}, {{"kernel", L({3})}});
    });
    one("global_avgpool", [](GraphBuilder& b) {
        b.input("x", {2, 3, 5, 7});
        b.node("y", Op::global_avgpool, {"x"});
    });
    one("batchnorm", [](GraphBuilder& b) {
        b.input("x", {2, 3, 5, 4});
        for (const char* p : {"s", "b", "m", "v"}) b.param(p, {3});
        b.node("y", Op::batchnorm, {"x", "s", "b", "m", "v"});
    });
    one("batchnorm rank 2", [](GraphBuilder& b) {
        b.input("x", {5, 3});
        for (const char* p : {"s", "b", "m", "v"}) b.param(p, {3});
        b.node("y", Op::batchnorm, {"x", "s", "b", "m", "v"});
    });
    one("embedding", [](GraphBuilder& b) {
        b.param("table", {11, 6});
        b.input("ids", {3, 4}, DType::i32);
        b.node("y", Op::embedding, {"table", "ids"});
    });
    one("embedding scalar id", [](GraphBuilder& b) {
        b.param("table", {11, 6});
        b.input("ids", {}, DType::i32);
        b.node("y", Op::embedding, {"table", "ids"});
    });
    return all;
}

}  // namespace

TEST_CASE("region: helpers", "[region]") {
    Region r{{1, 0, 2}, {3, 4, 5}};
    CHECK(r.elements() == 2 * 4 * 3);
    CHECK_FALSE(r.empty());
    CHECK(Region{{1, 2}, {1, 5}}.empty());
    CHECK(Region{{1, 2}, {1, 5}}.elements() == 0);
    CHECK(Region{}.elements() == 1);  // a scalar's only box
    Region w = whole({3, 5});
    CHECK(w.lo == Idx{0, 0});
    CHECK(w.hi == Idx{3, 5});

    GraphBuilder b(DType::f16);
    b.input("x", {4, 6});
    b.node("y", Op::relu, {"x"});
    TileGraph tg = tile_graph(b, "y");
    CHECK(region_bytes(tg, vertex(tg, "y"), Region{{1, 2}, {3, 5}}) == 2 * 3 * 2);
    CHECK(region_bytes(tg, vertex(tg, "y"), whole({4, 6})) == 48);
    CHECK(region_bytes(tg, vertex(tg, "x"), Region{{1, 2}, {1, 5}}) == 0);
}

TEST_CASE("region: operand_region equals brute force for every op", "[region]") {
    std::mt19937 rng(20240611);
    for (const Case& c : cases()) {
        DYNAMIC_SECTION(c.label) {
            GraphBuilder b;
            c.build(b);
            TileGraph tg = tile_graph(b, c.node);
            check_node(tg, c.node, rng);
        }
    }
}

TEST_CASE("region: the cases cover every op with operands", "[region]") {
    std::set<Op> covered;
    for (const Case& c : cases()) {
        GraphBuilder b;
        c.build(b);
        Graph g = b.graph();
        covered.insert(g.value(*g.find(c.node)).op);
    }
    for (const OpInfo& info : all_ops())
        if (info.implemented && info.max_inputs != 0) {
            INFO(info.name);
            CHECK(covered.count(info.op));
        }
}

TEST_CASE("region: concat operands outside the box read nothing", "[region]") {
    GraphBuilder b;
    b.input("a", {3, 2, 5});
    b.input("b", {3, 4, 5});
    b.node("y", Op::concat, {"a", "b"}, {{"axis", I(1)}});
    TileGraph tg = tile_graph(b, "y");
    VertexId y = vertex(tg, "y");
    Region box{{0, 0, 1}, {2, 2, 4}};
    CHECK(operand_region(tg, y, 0, box).lo == Idx{0, 0, 1});
    CHECK(operand_region(tg, y, 1, box).empty());
    CHECK(operand_region(tg, y, 1, Region{{0, 1, 0}, {3, 4, 5}}).hi == Idx{3, 2, 5});
    // An empty output box reads nothing of any operand.
    CHECK(operand_region(tg, y, 0, Region{{0, 2, 0}, {3, 2, 5}}).empty());
}

namespace {

// The composition of the brute force along a group (the union at every
// node reached twice), and the exact set of elements the output box needs.
std::map<VertexId, Region> brute_propagate(const TileGraph& tg, const std::vector<VertexId>& group, const Region& out) {
    std::map<VertexId, Region> need{{group.back(), out}};
    for (auto it = group.rbegin(); it != group.rend(); ++it) {
        if (!need.count(*it)) continue;
        const std::vector<VertexId>& ops = tg.nodes[*it].operands;
        for (int k = 0; k < static_cast<int>(ops.size()); ++k) {
            Region r = brute_region(tg, *it, k, need.at(*it));
            if (!need.count(ops[k]) || need.at(ops[k]).empty()) need[ops[k]] = r;
            else if (!r.empty())
                for (size_t d = 0; d < r.lo.size(); ++d) {
                    need[ops[k]].lo[d] = std::min(need[ops[k]].lo[d], r.lo[d]);
                    need[ops[k]].hi[d] = std::max(need[ops[k]].hi[d], r.hi[d]);
                }
        }
    }
    return need;
}

std::map<VertexId, std::set<Idx>> exact_closure(const TileGraph& tg, const std::vector<VertexId>& group,
                                                const Region& out) {
    std::map<VertexId, std::set<Idx>> need;
    for_each_index(out, [&](const Idx& i) { need[group.back()].insert(i); });
    for (auto it = group.rbegin(); it != group.rend(); ++it)
        for (const Idx& o : need[*it])
            naive_deps(tg, *it, o, [&](int k, const Idx& i) { need[tg.nodes[*it].operands[k]].insert(i); });
    return need;
}

void check_group(const TileGraph& tg, const std::vector<std::string>& names, std::mt19937& rng) {
    std::vector<VertexId> group;
    for (const std::string& n : names) group.push_back(vertex(tg, n));
    for (const Region& out : boxes_of(tg.buffers[group.back()].shape, rng, 25)) {
        std::map<VertexId, Region> got = propagate(tg, group, out), want = brute_propagate(tg, group, out);
        REQUIRE(got.size() == want.size());
        for (const auto& [v, r] : want) {
            INFO("output box " << str(out) << ", tensor " << tg.buffers[v].name << ": got "
                               << (got.count(v) ? str(got.at(v)) : "nothing") << ", brute force " << str(r));
            REQUIRE(got.count(v));
            CHECK(same(got.at(v), r));
        }
        // Sound: every element the output box needs lies in its tensor's box.
        for (const auto& [v, elems] : exact_closure(tg, group, out))
            for (const Idx& i : elems) REQUIRE(contains(got.at(v), i));
    }
}

}  // namespace

TEST_CASE("region: propagate through a chain conv -> relu -> maxpool", "[region]") {
    std::mt19937 rng(7);
    GraphBuilder b;
    b.input("x", {1, 3, 13, 11});
    b.param("w", {4, 3, 3, 3});
    b.param("bias", {4});
    b.node("conv", Op::conv2d, {"x", "w", "bias"}, {{"stride", L({2})}, {"padding", L({1})}, {"dilation", L({1, 2})}});
    b.node("act", Op::relu, {"conv"});
    b.node("pool", Op::maxpool2d, {"act"}, {{"kernel", L({3})}, {"stride", L({2})}, {"padding", L({1})}});
    TileGraph tg = tile_graph(b, "pool");
    check_group(tg, {"conv", "act", "pool"}, rng);

    // The group's output box [0:1, 1:3, 0:1, 1:2] reads the rows and columns
    // of its windows, then of the conv windows (stride 2, dilation 2 in W).
    auto need = propagate(tg, {vertex(tg, "conv"), vertex(tg, "act"), vertex(tg, "pool")},
                          Region{{0, 1, 0, 1}, {1, 3, 1, 2}});
    CHECK(need.at(vertex(tg, "act")).lo == Idx{0, 1, 0, 1});
    CHECK(need.at(vertex(tg, "act")).hi == Idx{1, 3, 2, 4});
    CHECK(need.at(vertex(tg, "x")).lo == Idx{0, 0, 0, 1});
    CHECK(need.at(vertex(tg, "x")).hi == Idx{1, 3, 4, 10});
    CHECK(need.at(vertex(tg, "w")).hi == Idx{3, 3, 3, 3});
    CHECK(need.at(vertex(tg, "bias")).lo == Idx{1});
}

TEST_CASE("region: propagate through matmul -> add(bias) -> gelu", "[region]") {
    std::mt19937 rng(8);
    GraphBuilder b;
    b.input("x", {2, 5, 7});
    b.param("w", {9, 7});
    b.param("bias", {9});
    b.node("mm", Op::matmul, {"x", "w"}, {{"transpose_b", B(true)}});
    b.node("biased", Op::add, {"mm", "bias"});
    b.node("y", Op::gelu, {"biased"});
    TileGraph tg = tile_graph(b, "y");
    check_group(tg, {"mm", "biased", "y"}, rng);
}

TEST_CASE("region: propagate through diamonds", "[region]") {
    std::mt19937 rng(9);
    SECTION("two slices of one node") {
        GraphBuilder b;
        b.input("in", {4, 9});
        b.node("x", Op::exp, {"in"});
        b.node("a", Op::slice, {"x"}, {{"axis", I(1)}, {"end", I(5)}});
        b.node("b", Op::slice, {"x"}, {{"axis", I(1)}, {"start", I(4)}});
        b.node("y", Op::add, {"a", "b"});
        TileGraph tg = tile_graph(b, "y");
        check_group(tg, {"x", "a", "b", "y"}, rng);
        // Columns 1:2 of y need columns 1:2 and 5:6 of x: their union.
        auto need = propagate(tg, {vertex(tg, "x"), vertex(tg, "a"), vertex(tg, "b"), vertex(tg, "y")},
                              Region{{0, 1}, {4, 2}});
        CHECK(need.at(vertex(tg, "x")).lo == Idx{0, 1});
        CHECK(need.at(vertex(tg, "x")).hi == Idx{4, 6});
    }
    SECTION("conv and avgpool of one node, and x read twice") {
        GraphBuilder b;
        b.input("in", {1, 2, 9, 10});
        b.param("w", {2, 2, 3, 3});
        b.node("x", Op::relu, {"in"});
        b.node("a", Op::conv2d, {"x", "w"}, {{"padding", L({1})}});
        b.node("p", Op::avgpool2d, {"x"}, {{"kernel", L({3})}, {"stride", L({1})}, {"padding", L({1})}});
        b.node("s", Op::add, {"a", "p"});
        b.node("y", Op::mul, {"s", "x"});
        TileGraph tg = tile_graph(b, "y");
        check_group(tg, {"x", "a", "p", "s", "y"}, rng);
    }
    SECTION("softmax beside its own input") {
        GraphBuilder b;
        b.input("in", {3, 8});
        b.node("x", Op::neg, {"in"});
        b.node("sm", Op::softmax, {"x"});
        b.node("y", Op::sub, {"sm", "x"});
        TileGraph tg = tile_graph(b, "y");
        check_group(tg, {"x", "sm", "y"}, rng);
    }
}

TEST_CASE("region: broken invariants throw InternalError", "[region]") {
    GraphBuilder b;
    b.input("x", {3, 5});
    b.node("r", Op::relu, {"x"});
    b.node("s", Op::neg, {"r"});
    b.node("c", Op::constant, {}, {{"value", F(1.0)}, {"shape", L({5})}});
    b.node("y", Op::add, {"s", "c"});
    TileGraph tg = tile_graph(b, "y");
    VertexId x = vertex(tg, "x"), r = vertex(tg, "r"), s = vertex(tg, "s"), c = vertex(tg, "c"), y = vertex(tg, "y");
    Region box = whole({3, 5});
    CHECK_THROWS_AS(operand_region(tg, r, 1, box), InternalError);
    CHECK_THROWS_AS(operand_region(tg, r, -1, box), InternalError);
    CHECK_THROWS_AS(operand_region(tg, c, 0, whole({5})), InternalError);  // a constant reads nothing
    CHECK_THROWS_AS(operand_region(tg, r, 0, whole({3, 5, 1})), InternalError);
    CHECK_THROWS_AS(operand_region(tg, r, 0, Region{{0, 0}, {3}}), InternalError);
    CHECK_THROWS_AS(operand_region(tg, r, 0, Region{{0, 0}, {4, 5}}), InternalError);  // outside the tensor
    CHECK_THROWS_AS(operand_region(tg, r, 0, Region{{2, 0}, {1, 5}}), InternalError);  // lo > hi
    CHECK_THROWS_AS(operand_region(tg, x, 0, box), InternalError);                     // an input is no node
    CHECK_THROWS_AS(operand_region(tg, VertexId(tg.nodes.size()), 0, box), InternalError);
    CHECK_THROWS_AS(propagate(tg, {r, y}, whole({3})), InternalError);
    CHECK_THROWS_AS(propagate(tg, {s, r, y}, box), InternalError);  // not in topological order
    CHECK(propagate(tg, {r, s, y}, box).size() == 5);               // x, r, s, c, y
    CHECK_THROWS_AS(propagate(tg, {}, box), InternalError);
    CHECK_THROWS_AS(propagate(tg, {x, y}, box), InternalError);  // an input is no member
    CHECK_THROWS_AS(region_bytes(tg, y, whole({3})), InternalError);
    CHECK_NOTHROW(operand_region(tg, y, 1, box));
}
