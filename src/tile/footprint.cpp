// Tile footprints: which bytes of the arena a tile writes and reads. Reads
// are a conservative cover (one byte range per operand): a consumer may wait
// for a producer tile it does not strictly need, never the other way round.
#include "tile/footprint.h"

#include <algorithm>

#include "../../rtasks/tiling.cuh"
#include "base/dtype.h"
#include "target/occupancy.h"

namespace anvil {

namespace {

// The smallest and largest element offset reached by the multi-indices of a
// box [lo[d], hi[d]] (inclusive) through non-negative strides. A box of a
// linear range also keeps the range's two ends: through row-major strides
// the range's offsets run from one end's to the other's, tighter than the
// box's when the range crosses an outer dim (a row tile spanning two heads).
struct Box {
    int rank = 0;
    int64_t lo[ANVIL_MAX_RANK] = {};
    int64_t hi[ANVIL_MAX_RANK] = {};
    bool linear = false;  // first and last are the ends of a linear range over `shape`
    int64_t first[ANVIL_MAX_RANK] = {}, last[ANVIL_MAX_RANK] = {}, shape[ANVIL_MAX_RANK] = {};

    // Each dim's stride is the next (non-unit) inner dim's extent times its stride.
    bool row_major(const anvil_i64* strides) const {
        int64_t expect = -1;
        for (int d = rank - 1; d >= 0; --d) {
            if (shape[d] == 1) continue;
            if (strides[d] <= 0 || (expect >= 0 && strides[d] != expect)) return false;
            expect = strides[d] * shape[d];
        }
        return true;
    }

    ByteRange bytes(int64_t base, const anvil_i64* strides, int elem_size) const {
        const bool ends = linear && row_major(strides);
        int64_t from = 0, to = 0;
        for (int d = 0; d < rank; ++d) {
            from += (ends ? first[d] : lo[d]) * strides[d];
            to += (ends ? last[d] : hi[d]) * strides[d];
        }
        return {base + from * elem_size, base + (to + 1) * elem_size};
    }
};

// Bounding box of the linear indices [begin, end) of a row-major `shape`:
// dims before the first one where the two ends differ are fixed, that dim
// spans the two ends' values, and later dims span their whole extent.
Box linear_range_box(const anvil_i64* shape, int rank, int64_t begin, int64_t end) {
    Box box;
    box.rank = rank;
    int64_t a = begin, b = end - 1;
    int64_t ia[ANVIL_MAX_RANK], ib[ANVIL_MAX_RANK];
    for (int d = rank - 1; d >= 0; --d) {
        ia[d] = a % shape[d];
        a /= shape[d];
        ib[d] = b % shape[d];
        b /= shape[d];
    }
    box.linear = true;
    for (int d = 0; d < rank; ++d) box.first[d] = ia[d], box.last[d] = ib[d], box.shape[d] = shape[d];
    bool split = false;
    for (int d = 0; d < rank; ++d) {
        if (split) {
            box.lo[d] = 0;
            box.hi[d] = shape[d] - 1;
        } else {
            box.lo[d] = ia[d];
            box.hi[d] = ib[d];
            split = ia[d] != ib[d];
        }
    }
    return box;
}

// The device's span of a tile (rtasks/tiling.cuh), as a pair for structured bindings.
std::pair<int64_t, int64_t> tile_span(int tile, int64_t per_tile, int64_t total) {
    const AnvilSpan s = anvil_tile_span(tile, per_tile, total);
    return {s.begin, s.end};
}

int size_of(const ROp& op, int slot) { return dtype_size(op.dtypes.at(slot)); }

// Matmul tile coordinates (where the device places the tile) and the batch
// element offsets of each operand.
struct MatmulTile {
    int64_t m0, m1, n0, n1;
    int64_t a_batch, b_batch, c_batch;
};

MatmulTile matmul_tile(const MatmulParams& p, int tile) {
    const AnvilMmPlace at = anvil_mm_place(p, tile, p.bm, p.bn);
    return {at.m0, std::min<int64_t>(p.M, int64_t{at.m0} + p.bm), at.n0, std::min<int64_t>(p.N, int64_t{at.n0} + p.bn),
            at.ab, at.bb, at.cb};
}

ByteRange span2(int64_t base, int64_t origin, int64_t r0, int64_t r1, int64_t rs, int64_t c0, int64_t c1,
                int64_t cs, int elem) {
    int64_t first = origin + r0 * rs + c0 * cs;
    int64_t last = origin + (r1 - 1) * rs + (c1 - 1) * cs;
    return {base + first * elem, base + (last + 1) * elem};
}

// The bytes of the same 2-D block, exactly where it is a block of a wider
// matrix: one range per outer index (the dim of the larger stride) when one
// outer index's span of inner elements ends before the next begins (a tile
// of a column view, a head's columns of q, k or v), else span2's one range.
// Past kMaxRuns outer indices the one range (a cover) is kept.
void span2_runs(std::vector<ByteRange>& out, int64_t base, int64_t origin, int64_t r0, int64_t r1, int64_t rs,
                int64_t c0, int64_t c1, int64_t cs, int elem) {
    constexpr int64_t kMaxRuns = 1024;
    const bool rows_outer = rs >= cs;
    const int64_t o0 = rows_outer ? r0 : c0, o1 = rows_outer ? r1 : c1, os = rows_outer ? rs : cs;
    const int64_t i0 = rows_outer ? c0 : r0, i1 = rows_outer ? c1 : r1, is = rows_outer ? cs : rs;
    if (o1 - o0 <= 1 || i1 <= i0 || o1 - o0 > kMaxRuns || os <= (i1 - i0 - 1) * is + 1) {
        out.push_back(span2(base, origin, r0, r1, rs, c0, c1, cs, elem));
        return;
    }
    for (int64_t o = o0; o < o1; ++o) {
        const int64_t first = origin + o * os + i0 * is, last = origin + o * os + (i1 - 1) * is;
        out.push_back({base + first * elem, base + (last + 1) * elem});
    }
}

Box full_box(const anvil_i64* shape, int rank) {
    Box box;
    box.rank = rank;
    for (int d = 0; d < rank; ++d) box.hi[d] = shape[d] - 1;
    return box;
}

// A sliding window (conv2d, pools): output element e of y [N, O, OH, OW]
// is the device's anvil_window_cell(p, e) (n, o, oh, ow). Input rows
// [lo, hi] read by output rows [oh0, oh1]; lo > hi when all are padding.
std::pair<int64_t, int64_t> window_rows(const WindowParams& p, int64_t oh0, int64_t oh1) {
    return {std::max<int64_t>(0, oh0 * p.sh - p.pt),
            std::min<int64_t>(p.H - 1, oh1 * p.sh - p.pt + int64_t{p.KH - 1} * p.dh)};
}

// Bytes of x from (n0, c0, row0, 0) to (n1, c1, row1, W - 1) inclusive.
ByteRange x_span(const WindowParams& p, int elem, int64_t n0, int64_t c0, int64_t row0, int64_t n1, int64_t c1,
                 int64_t row1) {
    const int64_t plane = int64_t{p.H} * p.W;
    const int64_t first = (n0 * p.C + c0) * plane + row0 * p.W;
    const int64_t last = (n1 * p.C + c1) * plane + row1 * p.W + p.W - 1;
    if (last < first) return {p.x_off, p.x_off};  // only padding: reads nothing
    return {p.x_off + first * elem, p.x_off + (last + 1) * elem};
}

// The conv2d (implicit GEMM) tile: image n, group g, pixels [m0, m1), the
// group's output channels [o0, o1), k in [k0, k1) of K slice ks.
struct ConvTile {
    int64_t n, g, m0, m1, o0, o1, ks, k0, k1;
};

ConvTile conv_tile(const WindowParams& p, int tile) {
    const int64_t M = int64_t{p.OH} * p.OW;
    const AnvilConvPlace at = anvil_conv_place(p, tile, p.bm, p.bn);
    return {at.n, at.g, at.m0, std::min<int64_t>(M, int64_t{at.m0} + p.bm), at.o0,
            std::min<int64_t>(p.Og, int64_t{at.o0} + p.bn), at.ks, at.k0, at.k1};
}

// The direct window's tile: y elements [e0, e1) and the x they read. Within
// one (n, o) plane: that plane's group's channels, the rows under its output
// rows. Across planes: from the first plane's group's first channel to the
// last plane's group's last channel (later planes of the first group start
// at row 0, earlier planes of the last group end at row H - 1).
ByteRange window_x_reads(const WindowParams& p, int elem, int64_t e0, int64_t e1) {
    const AnvilWindowCell a = anvil_window_cell(p, e0), b = anvil_window_cell(p, e1 - 1);
    const int64_t ca = a.o / p.Og * p.Cg, cb = b.o / p.Og * p.Cg + p.Cg - 1;
    if (a.n == b.n && a.o == b.o) {
        auto [r0, r1] = window_rows(p, a.oh, b.oh);
        return x_span(p, elem, a.n, ca, r0, b.n, cb, r1);
    }
    return x_span(p, elem, a.n, ca, 0, b.n, cb, p.H - 1);
}

// Where the output's element 0 is and its storage slot in op.dtypes, for
// the kinds that apply an epilogue.
std::pair<int64_t, int> output_of(const ROp& op) {
    switch (op.kind) {
        case TaskKind::elementwise: return {std::get<EwParams>(op.params).out_off, 0};
        case TaskKind::matmul: return {std::get<MatmulParams>(op.params).c_off, 2};
        case TaskKind::rowwise: return {std::get<RowParams>(op.params).out_off, 1};
        case TaskKind::conv2d:
        case TaskKind::window: return {std::get<WindowParams>(op.params).y_off, 3};
        default: throw InternalError("footprint: a " + std::string(task_kind_name(op.kind)) + " rOp has no epilogue");
    }
}

// An epilogue reads its inputs at the coordinates of the elements the tile
// writes. The output is contiguous, so the written bytes are a run of
// element offsets; its bounding box in the (merged) index space gives each
// input's range.
void epilogue_reads(const ROp& op, const AnvilEpilogue& e, int tile, std::vector<ByteRange>& reads) {
    if (e.nsteps == 0) return;
    const auto [out_off, slot] = output_of(op);
    const ByteRange w = tile_writes(op, tile);
    const int elem = dtype_size(op.dtypes.at(slot));
    const int64_t b = (w.begin - out_off) / elem, end = (w.end - out_off) / elem;
    if (end <= b) return;
    const Box box = linear_range_box(e.shape, e.rank, b, end);
    for (int i = 0; i < e.ninputs; ++i)
        reads.push_back(box.bytes(e.in_off[i], e.in_stride[i], dtype_size(static_cast<DType>(e.in_dtype[i]))));
}

// Whether a split sum's kept dims are blocked (a reduce tile per partial
// output tile, split_k.cpp's by_last_slice_rop): its rows' outputs are
// then runs of the innermost dim, apart.
bool blocked_split_sum(const RowParams& p) {
    return p.op == ANVIL_ROW_SPLIT_SUM && p.kept_rank >= 4 && p.kept_in[p.kept_rank - 1] == 1 &&
           p.kept_in[p.kept_rank - 2] > p.kept_shape[p.kept_rank - 1];
}

// The bytes of kept indices [b, e) through strides `st` (the innermost 1),
// one range per run of the innermost dim: exact where the dims are blocked.
void kept_runs(const RowParams& p, const anvil_i64* st, int64_t base, int elem, int64_t b, int64_t e,
               std::vector<ByteRange>& out) {
    const int rank = p.kept_rank;
    int64_t idx[ANVIL_MAX_RANK] = {};
    for (int64_t d = rank - 1, a = b; d >= 0; --d) {
        idx[d] = a % p.kept_shape[d];
        a /= p.kept_shape[d];
    }
    for (int64_t r = b; r < e;) {
        const int64_t len = std::min<int64_t>(e - r, p.kept_shape[rank - 1] - idx[rank - 1]);
        int64_t off = 0;
        for (int d = 0; d < rank; ++d) off += idx[d] * st[d];
        out.push_back({base + off * elem, base + (off + len) * elem});
        r += len;
        idx[rank - 1] += len;
        for (int d = rank - 1; d > 0 && idx[d] >= p.kept_shape[d]; --d) {
            idx[d] -= p.kept_shape[d];
            ++idx[d - 1];
        }
    }
}

}  // namespace

ByteRange tile_writes(const ROp& op, int tile) {
    switch (op.kind) {
        case TaskKind::elementwise: {
            const auto& p = std::get<EwParams>(op.params);
            auto [b, e] = tile_span(tile, p.tile_elems, p.numel);
            return linear_range_box(p.shape, p.rank, b, e).bytes(p.out_off, p.out_stride, size_of(op, 0));
        }
        case TaskKind::matmul: {
            const auto& p = std::get<MatmulParams>(op.params);
            MatmulTile t = matmul_tile(p, tile);
            return span2(p.c_off, t.c_batch, t.m0, t.m1, p.c_sm, t.n0, t.n1, p.c_sn, size_of(op, 2));
        }
        case TaskKind::rowwise: {
            const auto& p = std::get<RowParams>(op.params);
            auto [b, e] = tile_span(tile, p.rows_per_tile, p.rows);
            ByteRange kept = linear_range_box(p.kept_shape, p.kept_rank, b, e)
                                 .bytes(p.out_off, p.kept_out, size_of(op, 1));
            ByteRange row = full_box(p.red_shape, p.red_rank).bytes(0, p.red_out, size_of(op, 1));
            return {kept.begin, kept.end + row.end - size_of(op, 1)};
        }
        case TaskKind::conv2d: {
            const auto& p = std::get<WindowParams>(op.params);
            const ConvTile t = conv_tile(p, tile);
            // y's plane of channel o0 is ch + o0 (in K slice ks's block of split-K partials)
            const int64_t M = int64_t{p.OH} * p.OW, ch = (t.ks * p.N + t.n) * p.O + t.g * p.Og;
            return span2(p.y_off, 0, ch + t.o0, ch + t.o1, M, t.m0, t.m1, 1, size_of(op, 3));
        }
        case TaskKind::window: {
            const auto& p = std::get<WindowParams>(op.params);
            auto [b, e] = tile_span(tile, p.tile_elems, int64_t{p.N} * p.O * p.OH * p.OW);
            return {p.y_off + b * size_of(op, 3), p.y_off + e * size_of(op, 3)};
        }
        case TaskKind::channel: {
            const auto& p = std::get<ChannelParams>(op.params);
            auto [b, e] = tile_span(tile, p.tile_elems, p.numel);
            return {p.y_off + b * size_of(op, 5), p.y_off + e * size_of(op, 5)};
        }
        case TaskKind::gather: {
            const auto& p = std::get<GatherParams>(op.params);
            auto [b, e] = tile_span(tile, p.rows_per_tile, p.rows);
            return {p.out_off + b * p.D * size_of(op, 2), p.out_off + e * p.D * size_of(op, 2)};
        }
    }
    throw InternalError("tile_writes: unknown task kind");
}

void matmul_operand_reads(const ROp& op, int tile, std::vector<ByteRange>& reads) {
    const auto& p = std::get<MatmulParams>(op.params);
    const MatmulTile t = matmul_tile(p, tile);
    // Exact rows where they are columns of a wider tensor (a head of q or k
    // in a joined q/k/v output); a fixed B (a weight no task writes) keeps
    // the one range.
    span2_runs(reads, p.a_off, t.a_batch, t.m0, t.m1, p.a_sm, 0, p.K, p.a_sk, size_of(op, 0));
    if (p.b_fixed)
        reads.push_back(span2(p.b_off, t.b_batch, 0, p.K, p.b_sk, t.n0, t.n1, p.b_sn, size_of(op, 1)));
    else
        span2_runs(reads, p.b_off, t.b_batch, 0, p.K, p.b_sk, t.n0, t.n1, p.b_sn, size_of(op, 1));
}

std::vector<ByteRange> tile_writes_all(const ROp& op, int tile) {
    if (op.kind == TaskKind::matmul) {  // each row of a tile narrower than C's rows apart
        const auto& p = std::get<MatmulParams>(op.params);
        const MatmulTile t = matmul_tile(p, tile);
        std::vector<ByteRange> w;
        span2_runs(w, p.c_off, t.c_batch, t.m0, t.m1, p.c_sm, t.n0, t.n1, p.c_sn, size_of(op, 2));
        return w;
    }
    if (const auto* p = std::get_if<RowParams>(&op.params); p && blocked_split_sum(*p) && p->kept_out[p->kept_rank - 1] == 1) {
        auto [b, e] = tile_span(tile, p->rows_per_tile, p->rows);
        std::vector<ByteRange> w;
        kept_runs(*p, p->kept_out, p->out_off, size_of(op, 1), b, e, w);
        return w;
    }
    std::vector<ByteRange> w{tile_writes(op, tile)};
    if (const auto* p = std::get_if<RowParams>(&op.params); p && p->op == ANVIL_ROW_SPLIT_NORM && p->pre_off >= 0) {
        auto [b, e] = tile_span(tile, p->rows_per_tile, p->rows);
        const int64_t elem = dtype_size(static_cast<DType>(p->mid_dtype));
        w.push_back({p->pre_off + b * p->row_len * elem, p->pre_off + e * p->row_len * elem});
    }
    return w;
}

std::vector<ByteRange> tile_reads(const ROp& op, int tile) {
    std::vector<ByteRange> reads;
    switch (op.kind) {
        case TaskKind::elementwise: {
            const auto& p = std::get<EwParams>(op.params);
            auto [b, e] = tile_span(tile, p.tile_elems, p.numel);
            Box box = linear_range_box(p.shape, p.rank, b, e);
            for (int i = 0; i < p.ninputs; ++i) reads.push_back(box.bytes(p.in_off[i], p.in_stride[i], size_of(op, 1 + i)));
            break;
        }
        case TaskKind::matmul: {
            const auto& p = std::get<MatmulParams>(op.params);
            matmul_operand_reads(op, tile, reads);
            // A fused norm's gamma and beta, over the whole row.
            const int64_t offs[2] = {p.gamma_off, p.beta_off};
            const int dts[2] = {p.gamma_dtype, p.beta_dtype};
            for (int i = 0; i < 2; ++i)
                if (p.row_op >= ANVIL_MM_ROW_LAYERNORM && offs[i] >= 0)
                    reads.push_back({offs[i], offs[i] + p.N * int64_t{dtype_size(static_cast<DType>(dts[i]))}});
            break;
        }
        case TaskKind::rowwise: {
            const auto& p = std::get<RowParams>(op.params);
            auto [b, e] = tile_span(tile, p.rows_per_tile, p.rows);
            ByteRange kept = linear_range_box(p.kept_shape, p.kept_rank, b, e).bytes(p.in_off, p.kept_in, size_of(op, 0));
            if (blocked_split_sum(p)) {  // a partial output tile of each K slice, by rows
                for (int64_t j = 0; j < p.row_len; ++j)
                    kept_runs(p, p.kept_in, p.in_off + j * p.red_in[0] * size_of(op, 0), size_of(op, 0), b, e, reads);
                break;
            }
            if (p.op == ANVIL_ROW_SPLIT_SUM) {  // the same outputs of each K slice's partials, exactly
                for (int64_t j = 0; j < p.row_len; ++j) {
                    const int64_t at = j * p.red_in[0] * size_of(op, 0);
                    reads.push_back({kept.begin + at, kept.end + at});
                }
                break;
            }
            ByteRange row = full_box(p.red_shape, p.red_rank).bytes(0, p.red_in, size_of(op, 0));
            if (p.op == ANVIL_ROW_SPLIT_NORM) {  // the tile's rows of each K slice's partials, then gamma and beta
                for (int64_t k = 0; k < p.k_split; ++k) {
                    const int64_t at = k * p.slice_stride * size_of(op, 0);
                    reads.push_back({kept.begin + at, kept.end + row.end - size_of(op, 0) + at});
                }
                if (p.gamma_off >= 0 && p.norm_op != ANVIL_ROW_SOFTMAX)
                    reads.push_back({p.gamma_off, p.gamma_off + p.row_len * size_of(op, 2)});
                if (p.beta_off >= 0 && p.norm_op == ANVIL_ROW_LAYERNORM)
                    reads.push_back({p.beta_off, p.beta_off + p.row_len * size_of(op, 3)});
                break;
            }
            reads.push_back({kept.begin, kept.end + row.end - size_of(op, 0)});
            if (p.op == ANVIL_ROW_LAYERNORM || p.op == ANVIL_ROW_RMSNORM)
                reads.push_back({p.gamma_off, p.gamma_off + p.row_len * size_of(op, 2)});
            if (p.op == ANVIL_ROW_LAYERNORM)
                reads.push_back({p.beta_off, p.beta_off + p.row_len * size_of(op, 3)});
            break;
        }
        case TaskKind::conv2d: {
            const auto& p = std::get<WindowParams>(op.params);
            const ConvTile t = conv_tile(p, tile);
            // The group's input channels its k range walks, the rows under the tile's output rows.
            auto [r0, r1] = window_rows(p, t.m0 / p.OW, (t.m1 - 1) / p.OW);
            const int64_t khw = int64_t{p.KH} * p.KW, c0 = t.g * p.Cg + t.k0 / khw, c1 = t.g * p.Cg + (t.k1 - 1) / khw;
            reads.push_back(x_span(p, size_of(op, 0), t.n, c0, r0, t.n, c1, r1));
            // w's rows of the tile's channels, from k0 of the first to k1 of the last.
            const int64_t K = anvil_conv_k(p), o0 = t.g * p.Og + t.o0, o1 = t.g * p.Og + t.o1;
            reads.push_back({p.w_off + (o0 * K + t.k0) * size_of(op, 1), p.w_off + ((o1 - 1) * K + t.k1) * size_of(op, 1)});
            if (p.bias_off >= 0 && t.ks == 0)
                reads.push_back({p.bias_off + o0 * size_of(op, 2), p.bias_off + o1 * size_of(op, 2)});
            break;
        }
        case TaskKind::window: {
            const auto& p = std::get<WindowParams>(op.params);
            auto [b, e] = tile_span(tile, p.tile_elems, int64_t{p.N} * p.O * p.OH * p.OW);
            reads.push_back(window_x_reads(p, size_of(op, 0), b, e));
            if (p.op == ANVIL_WIN_CONV) {
                // The weights of the output channels [o(b), o(e - 1)] (of any image when the tile spans several).
                const AnvilWindowCell first = anvil_window_cell(p, b), last = anvil_window_cell(p, e - 1);
                const bool one_image = first.n == last.n;
                const int64_t o0 = one_image ? first.o : 0, o1 = one_image ? last.o : p.O - 1;
                const int64_t K = int64_t{p.Cg} * p.KH * p.KW;
                reads.push_back({p.w_off + o0 * K * size_of(op, 1), p.w_off + (o1 + 1) * K * size_of(op, 1)});
                if (p.bias_off >= 0)
                    reads.push_back({p.bias_off + o0 * size_of(op, 2), p.bias_off + (o1 + 1) * size_of(op, 2)});
            }
            break;
        }
        case TaskKind::channel: {
            const auto& p = std::get<ChannelParams>(op.params);
            auto [b, e] = tile_span(tile, p.tile_elems, p.numel);
            reads.push_back({p.x_off + b * size_of(op, 0), p.x_off + e * size_of(op, 0)});
            // The channels of elements [b, e): one span, unless the tile meets
            // C or more channel runs or wraps past channel C - 1.
            int64_t c0 = b / p.inner % p.C, c1 = (e - 1) / p.inner % p.C;
            if ((e - 1) / p.inner - b / p.inner + 1 >= p.C || c1 < c0) c0 = 0, c1 = p.C - 1;
            const int64_t offs[4] = {p.scale_off, p.bias_off, p.mean_off, p.var_off};
            for (int i = 0; i < 4; ++i)
                reads.push_back({offs[i] + c0 * size_of(op, 1 + i), offs[i] + (c1 + 1) * size_of(op, 1 + i)});
            break;
        }
        case TaskKind::gather: {
            const auto& p = std::get<GatherParams>(op.params);
            auto [b, e] = tile_span(tile, p.rows_per_tile, p.rows);
            reads.push_back({p.ids_off + b * size_of(op, 1), p.ids_off + e * size_of(op, 1)});
            // Any row of the table: the ids are data.
            reads.push_back({p.table_off, p.table_off + int64_t{p.V} * p.D * size_of(op, 0)});
            break;
        }
    }
    epilogue_reads(op, op.epilogue, tile, reads);
    epilogue_reads(op, op.row_epilogue, tile, reads);
    return reads;
}

bool gemv_takes_ring(const ROp& op) {
    const auto* p = std::get_if<MatmulParams>(&op.params);
    if (op.kind != TaskKind::matmul || !p || p->algo != ANVIL_MM_GEMV) return false;
    const long long b_elem = static_cast<long long>(dtype_size(op.dtypes.at(1)));
    const auto aligned = [&](long long elems) { return elems * b_elem % 16 == 0; };
    bool ok = p->b_sn == 1 && aligned(p->b_sk) && p->b_off % 16 == 0 && aligned(p->bn);
    for (int d = 0; d < p->batch_rank; ++d) ok = ok && aligned(p->b_sb[d]);
    return ok;
}

int gemv_ring_stages(const Gpu& gpu) { return gpu.gemv_ring_stages ? gpu.gemv_ring_stages : ANVIL_GEMV_RING_STAGES; }
int max_gemv_ring_stages() { return ANVIL_GEMV_MAX_RING_STAGES; }

int gemv_x_limit(const Gpu& gpu) {
    return std::max(0, (tile_smem_budget(gpu) - anvil_gemv_ring_bytes(gemv_ring_stages(gpu)) - ANVIL_GEMV_MAX_M * 4) /
                           16 * 16);
}

int gemv_staged_x_bytes(const ROp& op, const Gpu& gpu) {
    if (!gemv_takes_ring(op)) return 0;
    const auto& p = std::get<MatmulParams>(op.params);
    const int64_t x = anvil_gemv_x_bytes(p.M, p.K, static_cast<int>(dtype_size(op.dtypes.at(0))));
    // (The region also holds the partial sums: a few KB, within any real budget.)
    const bool fits = x <= gemv_x_limit(gpu) &&
                      anvil_gemv_smem_bytes(ANVIL_BLOCK_THREADS, static_cast<int>(x), gemv_ring_stages(gpu)) <=
                          tile_smem_budget(gpu);
    return fits ? static_cast<int>(x) : 0;
}

int tile_smem_bytes(const ROp& op, const Gpu& gpu) {
    if (op.kind == TaskKind::matmul) {
        const auto& p = std::get<MatmulParams>(op.params);
        return anvil_matmul_tile_smem_bytes(p.algo, p.row_op, p.bm, p.bn, p.bk, p.a_norm, gemv_staged_x_bytes(op, gpu),
                                            p.algo == ANVIL_MM_GEMV ? gemv_ring_stages(gpu) : p.stages);
    }
    if (op.kind == TaskKind::conv2d) {
        const auto& p = std::get<WindowParams>(op.params);
        return anvil_conv_tile_smem_bytes(p.algo, p.bm, p.bn, p.bk, p.stages);
    }
    return ANVIL_SMALL_TILE_SMEM_BYTES;
}

}  // namespace anvil
