// Tile footprints: which bytes of the arena a tile writes and reads. Reads
// are a conservative cover (one byte range per operand): a consumer may wait
// for a producer tile it does not strictly need, never the other way round.
#include <algorithm>

#include "anvil/tile_graph.h"

namespace anvil {

namespace {

// The smallest and largest element offset reached by the multi-indices of a
// box [lo[d], hi[d]] (inclusive) through non-negative strides.
struct Box {
    int rank = 0;
    int64_t lo[ANVIL_MAX_RANK] = {};
    int64_t hi[ANVIL_MAX_RANK] = {};

    ByteRange bytes(int64_t base, const anvil_i64* strides, int elem_size) const {
        int64_t first = 0, last = 0;
        for (int d = 0; d < rank; ++d) {
            first += lo[d] * strides[d];
            last += hi[d] * strides[d];
        }
        return {base + first * elem_size, base + (last + 1) * elem_size};
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

std::pair<int64_t, int64_t> tile_span(int64_t tile, int64_t per_tile, int64_t total) {
    return {tile * per_tile, std::min(total, (tile + 1) * per_tile)};
}

int size_of(const ROp& op, int slot) { return dtype_size(op.dtypes.at(slot)); }

// Matmul tile coordinates and the batch element offsets of each operand.
struct MatmulTile {
    int64_t m0, m1, n0, n1;
    int64_t a_batch = 0, b_batch = 0, c_batch = 0;
};

MatmulTile matmul_tile(const MatmulParams& p, int tile) {
    int64_t per_batch = int64_t{p.tiles_m} * p.tiles_n;
    int64_t batch = tile / per_batch, rest = tile % per_batch;
    MatmulTile t;
    t.m0 = rest / p.tiles_n * p.bm;
    t.m1 = std::min<int64_t>(p.M, t.m0 + p.bm);
    t.n0 = rest % p.tiles_n * p.bn;
    t.n1 = std::min<int64_t>(p.N, t.n0 + p.bn);
    for (int d = p.batch_rank - 1; d >= 0; --d) {
        int64_t i = batch % p.batch_shape[d];
        batch /= p.batch_shape[d];
        t.a_batch += i * p.a_sb[d];
        t.b_batch += i * p.b_sb[d];
        t.c_batch += i * p.c_sb[d];
    }
    return t;
}

ByteRange span2(int64_t base, int64_t origin, int64_t r0, int64_t r1, int64_t rs, int64_t c0, int64_t c1,
                int64_t cs, int elem) {
    int64_t first = origin + r0 * rs + c0 * cs;
    int64_t last = origin + (r1 - 1) * rs + (c1 - 1) * cs;
    return {base + first * elem, base + (last + 1) * elem};
}

Box full_box(const anvil_i64* shape, int rank) {
    Box box;
    box.rank = rank;
    for (int d = 0; d < rank; ++d) box.hi[d] = shape[d] - 1;
    return box;
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
    }
    throw InternalError("tile_writes: unknown task kind");
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
            MatmulTile t = matmul_tile(p, tile);
            reads.push_back(span2(p.a_off, t.a_batch, t.m0, t.m1, p.a_sm, 0, p.K, p.a_sk, size_of(op, 0)));
            reads.push_back(span2(p.b_off, t.b_batch, 0, p.K, p.b_sk, t.n0, t.n1, p.b_sn, size_of(op, 1)));
            break;
        }
        case TaskKind::rowwise: {
            const auto& p = std::get<RowParams>(op.params);
            auto [b, e] = tile_span(tile, p.rows_per_tile, p.rows);
            ByteRange kept = linear_range_box(p.kept_shape, p.kept_rank, b, e).bytes(p.in_off, p.kept_in, size_of(op, 0));
            ByteRange row = full_box(p.red_shape, p.red_rank).bytes(0, p.red_in, size_of(op, 0));
            reads.push_back({kept.begin, kept.end + row.end - size_of(op, 0)});
            if (p.op == ANVIL_ROW_LAYERNORM || p.op == ANVIL_ROW_RMSNORM)
                reads.push_back({p.gamma_off, p.gamma_off + p.row_len * size_of(op, 2)});
            if (p.op == ANVIL_ROW_LAYERNORM)
                reads.push_back({p.beta_off, p.beta_off + p.row_len * size_of(op, 3)});
            break;
        }
    }
    return reads;
}

}  // namespace anvil
