#include "schedule/split_k.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "anvil/error.h"
#include "schedule/cost_model.h"
#include "schedule/cost_terms.h"
#include "schedule/task_graph.h"
#include "schedule/variants.h"
#include "tile/footprint.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

namespace {

constexpr int kWays[] = {2, 3, 4, 6, 8, 12, 16};
constexpr int kMaxTilesPerBlock = 4;  // a split's partial tiles, at most this many per grid block
constexpr int64_t kArenaAlign = 256;   // as decompose places tensors
constexpr int64_t kReduceRowsPerTile = 1024;  // outputs per reduce task (four per thread), fewer in a small GEMM

// Why `op` cannot be split at all (empty: it can).
std::string cannot_split(const ROp& op) {
    if (op.kind == TaskKind::conv2d) {
        // A grouped conv splits each group's K alike; depthwise and thin
        // groups are window rOps, never GEMMs.
        if (std::get<WindowParams>(op.params).k_split > 1) return "already split";
        for (DType t : op.dtypes)
            if (t == DType::i32) return "an integer conv2d: f32 partial sums would round";
        return "";
    }
    const auto& p = std::get<MatmulParams>(op.params);
    if (p.row_op != ANVIL_MM_ROW_NONE) return "a fused row op needs whole rows of finished sums";
    if (p.a_norm != ANVIL_MM_A_NORM_NONE) return "a norm of A's rows computed in the tile needs whole rows of A";
    if (p.a_rms) return "a folded rmsnorm's 1/RMS is over the whole row of A, not a slice of K";
    for (DType t : op.dtypes)
        if (t == DType::i32) return "an integer GEMM: f32 partial sums would round";
    if (p.batch_rank >= ANVIL_MAX_BATCH_RANK) return "no batch dim left for the K slices";
    return "";
}

bool slices_ok(int K, int ways) {
    return K % ways == 0 && (K / ways) % kSplitKSliceStep == 0 && K / ways >= kSplitKMinSlice;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The K (GEMM's, or a conv2d group's Cg * KH * KW) a split cuts.
int gemm_k(const ROp& op) {
    if (op.kind == TaskKind::conv2d) return anvil_conv_k(std::get<WindowParams>(op.params));
    return std::get<MatmulParams>(op.params).K;
}

// Whether `op` takes `ways` slices (a conv2d's: conv_slice is not 0).
bool splits_into(const ROp& op, int ways) {
    if (op.kind == TaskKind::conv2d) return conv_slice(std::get<WindowParams>(op.params), ways) != 0;
    return slices_ok(gemm_k(op), ways);
}

// The partials rOp of `op` split `ways` ways into `scratch`: the same tiles
// per K slice, nothing fused (the reduce applies the epilogues).
ROp partials_of(const ROp& op, int ways, VertexId scratch) {
    ROp part = op;
    part.name = op.name + "#partials";
    part.node = scratch;
    part.split_k = ways;
    part.fused.clear();
    part.fusion = FusionLevel::none;
    part.epilogue = AnvilEpilogue{};
    part.row_epilogue = AnvilEpilogue{};
    return part;
}

}  // namespace

int conv_slice(const WindowParams& p, int ways) {
    // A conv2d's K slices need not divide K: the tile bounds its k range
    // (the last slice is shorter). Whole BK slices keep each slice's
    // pipeline full; a multiple of 16 keeps w's rows 16-byte aligned.
    const int K = anvil_conv_k(p), step = std::lcm(kSplitKSliceStep, std::max(1, p.bk));
    const int64_t slice = ceil_div(ceil_div(K, ways), step) * step;
    if (ways < 2 || slice < kSplitKMinSlice || ceil_div(K, slice) != ways) return 0;
    return static_cast<int>(slice);
}

std::pair<ROp, ROp> split_conv_rop(const ROp& op, int ways, VertexId scratch, int64_t scratch_off) {
    ANVIL_CHECK(op.kind == TaskKind::conv2d && cannot_split(op).empty(),
                "split_conv_rop: rOp '" + op.name + "' cannot be split");
    const auto& whole = std::get<WindowParams>(op.params);
    const int slice = conv_slice(whole, ways);
    ANVIL_CHECK(slice > 0, fmt::format("split_conv_rop: K = {} in {} slices", anvil_conv_k(whole), ways));
    // The partials: the same conv2d tiles, once per K slice, each slice's
    // f32 sums (slice 0's with the bias) in its block of the scratch buffer.
    ROp part = partials_of(op, ways, scratch);
    const size_t operands = whole.bias_off >= 0 ? 3 : 2;  // x, w (, bias): the fused inputs follow
    part.reads.resize(std::min(part.reads.size(), operands));
    part.dtypes = {op.dtypes[0], op.dtypes[1], op.dtypes[2], DType::f32};
    auto& p = std::get<WindowParams>(part.params);
    p.epilogue = 0;
    p.k_split = ways;
    p.k_slice = slice;
    p.y_off = scratch_off;
    part.tiles = op.tiles * ways;

    // The reduce: one row per output of y (contiguous), its terms one
    // slice's block apart; the conv's epilogue locates its operands by the
    // output's offset in y, as the conv tile did.
    const int64_t outputs = int64_t{whole.N} * whole.O * whole.OH * whole.OW;
    ROp red = op;
    red.kind = TaskKind::rowwise;
    red.split_k = 1;
    red.dtypes = {DType::f32, op.dtypes[3], DType::f32, DType::f32};
    red.reads = {scratch};
    // The conv's operands too (a fused input may be one of them: reads are unique).
    red.reads.insert(red.reads.end(), op.reads.begin(), op.reads.end());
    red.row_epilogue = AnvilEpilogue{};
    RowParams r{};
    r.op = ANVIL_ROW_SPLIT_SUM;
    r.kept_rank = 1;
    r.rows = outputs;
    r.kept_shape[0] = outputs;
    r.kept_in[0] = r.kept_out[0] = 1;
    r.red_rank = 1;
    r.red_shape[0] = ways;
    r.red_in[0] = outputs;
    r.red_out[0] = 0;
    r.row_len = ways;
    r.in_off = scratch_off;
    r.out_off = whole.y_off;
    r.gamma_off = r.beta_off = -1;
    r.rows_per_tile = static_cast<int>(std::min<int64_t>(outputs, kReduceRowsPerTile));
    red.params = r;
    red.tiles = static_cast<int>(ceil_div(outputs, r.rows_per_tile));
    red.flops = outputs * ways;
    return {std::move(part), std::move(red)};
}

std::pair<ROp, ROp> split_rop(const ROp& op, int ways, VertexId scratch, int64_t scratch_off) {
    if (op.kind == TaskKind::conv2d) return split_conv_rop(op, ways, scratch, scratch_off);
    ANVIL_CHECK(op.kind == TaskKind::matmul && cannot_split(op).empty(), "split_rop: rOp '" + op.name + "' cannot be split");
    const auto& whole = std::get<MatmulParams>(op.params);
    ANVIL_CHECK(ways > 1 && slices_ok(whole.K, ways), "split_rop: K = " + std::to_string(whole.K) + " in " +
                                                          std::to_string(ways) + " slices");
    // The partials: the same GEMM batched over the K slices. The scratch
    // holds them slice-major ([ways][batch..][M][N], what the reduce reads),
    // but the tiles run output tile by output tile, the slices innermost:
    // a reduce tile then waits for one run of consecutive partial tiles
    // (one counter) instead of one run per slice.
    ROp part = partials_of(op, ways, scratch);
    part.reads.resize(std::min<size_t>(part.reads.size(), 2));
    part.dtypes = {op.dtypes[0], op.dtypes[1], DType::f32};
    auto& p = std::get<MatmulParams>(part.params);
    const int kc = whole.K / ways;
    p.K = kc;
    p.epilogue = p.row_epilogue = 0;
    p.c_off = scratch_off;
    p.c_sn = 1;
    p.c_sm = p.N;
    std::vector<anvil_i64> scratch_sb(whole.batch_rank);  // the scratch's strides of the GEMM's batch dims
    anvil_i64 stride = int64_t{p.M} * p.N;
    for (int d = whole.batch_rank - 1; d >= 0; --d) {
        scratch_sb[d] = stride;
        stride *= whole.batch_shape[d];
    }
    const anvil_i64 slice_stride = stride;
    for (int d = 0; d < whole.batch_rank; ++d) p.c_sb[d] = scratch_sb[d];
    auto add_dim = [&](anvil_i64 extent, anvil_i64 a_sb, anvil_i64 b_sb, anvil_i64 c_sb) {
        const int d = p.batch_rank++;
        p.batch_shape[d] = extent, p.a_sb[d] = a_sb, p.b_sb[d] = b_sb, p.c_sb[d] = c_sb;
        p.batches *= extent;
    };
    // Row bands, then column bands, as batch dims of one tile each where
    // they divide M and N (a ragged band would need its own tile count) and
    // the batch rank has room beside the slices.
    const bool rows_fold = p.tiles_m > 1 && p.M % p.bm == 0 && p.batch_rank + 2 <= ANVIL_MAX_BATCH_RANK;
    if (rows_fold) {
        add_dim(p.tiles_m, p.bm * p.a_sm, 0, int64_t{p.bm} * p.N);
        p.M = p.bm;
        p.tiles_m = 1;
    }
    if (p.tiles_m == 1 && p.tiles_n > 1 && p.N % p.bn == 0 && p.batch_rank + 2 <= ANVIL_MAX_BATCH_RANK) {
        add_dim(p.tiles_n, 0, p.bn * p.b_sn, p.bn);
        p.N = p.bn;
        p.tiles_n = 1;
    }
    add_dim(ways, kc * p.a_sk, kc * p.b_sk, slice_stride);
    part.tiles = static_cast<int>(p.batches * p.tiles_m * p.tiles_n);

    // The reduce: one row per output, its terms one slice apart.
    ROp red = op;
    red.kind = TaskKind::rowwise;
    red.split_k = 1;
    red.dtypes = {DType::f32, op.dtypes[2], DType::f32, DType::f32};
    red.reads = {scratch};
    red.reads.insert(red.reads.end(), op.reads.begin() + std::min<size_t>(op.reads.size(), 2), op.reads.end());
    red.row_epilogue = AnvilEpilogue{};
    RowParams r{};
    r.op = ANVIL_ROW_SPLIT_SUM;
    r.kept_rank = whole.batch_rank + 2;
    r.rows = whole.batches * whole.M * whole.N;
    for (int d = 0; d < whole.batch_rank; ++d) {
        r.kept_shape[d] = whole.batch_shape[d];
        r.kept_in[d] = scratch_sb[d];
        r.kept_out[d] = whole.c_sb[d];
    }
    r.kept_shape[whole.batch_rank] = whole.M, r.kept_shape[whole.batch_rank + 1] = whole.N;
    r.kept_in[whole.batch_rank] = whole.N, r.kept_in[whole.batch_rank + 1] = 1;
    r.kept_out[whole.batch_rank] = whole.c_sm, r.kept_out[whole.batch_rank + 1] = whole.c_sn;
    r.red_rank = 1;
    r.red_shape[0] = ways;
    r.red_in[0] = r.rows;
    r.red_out[0] = 0;
    r.row_len = ways;
    r.in_off = scratch_off;
    r.out_off = whole.c_off;
    r.gamma_off = r.beta_off = -1;
    r.rows_per_tile = static_cast<int>(std::min<int64_t>(r.rows, kReduceRowsPerTile));
    red.params = r;
    red.tiles = static_cast<int>((r.rows + r.rows_per_tile - 1) / r.rows_per_tile);
    red.flops = r.rows * ways;
    return {std::move(part), std::move(red)};
}

std::vector<int> split_k_ways(const ROp& op, int grid_blocks) {
    std::vector<int> out;
    if (!cannot_split(op).empty()) return out;
    for (int ways : kWays)
        if (splits_into(op, ways) && int64_t{op.tiles} * ways <= int64_t{kMaxTilesPerBlock} * grid_blocks)
            out.push_back(ways);
    return out;
}

SplitChoice choose_split_k(const ROp& op, const Gpu& gpu, const WaveLoad& wave) {
    ANVIL_CHECK(op.kind == TaskKind::matmul || op.kind == TaskKind::conv2d,
                "choose_split_k: rOp '" + op.name + "' is no GEMM");
    SplitChoice c;
    const int sms = std::max(1, gpu.sm_count);
    const int per_sm = std::max(1, wave.grid_blocks / sms);
    // A wave lasts as long as the rOp's tiles take on their blocks (blocks
    // sharing an SM hide each other's latency but share its rates), or as
    // the wave's work spread over the SMs.
    auto wave_s = [&](const ROp& rop) {
        const ROpCost cost = tile_cost_alone(gpu, rop);
        return std::max(rop_seconds_alone(gpu, rop, sms, per_sm),
                        (wave.other_work_s + rop.tiles * (cost.work_s + gpu.task_overhead_s)) / sms);
    };
    c.whole_s = wave_s(op);
    const std::string fills =
        op.tiles >= wave.grid_blocks
            ? fmt::format("its {} tiles fill the grid's {} blocks", op.tiles, wave.grid_blocks)
        : op.tiles + wave.other_tiles >= wave.grid_blocks
            ? fmt::format("its wave's {} tiles fill the grid's {} blocks", op.tiles + wave.other_tiles, wave.grid_blocks)
            : "";
    c.why_not = cannot_split(op);
    if (!c.why_not.empty()) {
        if (!fills.empty()) c.why_not = fills;
        return c;
    }
    const int K = gemm_k(op);
    int best = 1;
    std::string tried;  // every split weighed, with its prediction
    for (int ways : split_k_ways(op, wave.grid_blocks)) {
        const auto [part, red] = split_rop(op, ways, 0, 0);
        const double reduce_tile_s = split_k_reduce_tile_seconds(gpu, red) + gpu.task_overhead_s;
        const double s = wave_s(part) + std::ceil(double(red.tiles) / wave.grid_blocks) * reduce_tile_s +
                         gpu.sync_latency_s;
        tried += fmt::format("{}{} slices {:.2f} us", tried.empty() ? "" : ", ", ways, s * 1e6);
        if (c.split_s == 0 || s < c.split_s) c.split_s = s, best = ways;
    }
    if (c.split_s == 0) {
        c.why_not = !fills.empty() ? fills
                                   : fmt::format("K = {} has no slices of a multiple of {}, at least {} long, within {} "
                                                 "tiles per block",
                                                 K, kSplitKSliceStep, kSplitKMinSlice, kMaxTilesPerBlock);
        return c;
    }
    if (c.split_s < c.whole_s * (1 - kSplitKMinGain)) {
        c.ways = best;
        c.why_not.clear();
        const int64_t split_tiles = int64_t{op.tiles} * best;
        if (split_tiles < wave.grid_blocks)  // why not more slices, then
            c.why_not = fmt::format("{} K slices, {} tiles for the grid's {} blocks ({}): predicted fastest "
                                    "({:.2f} us whole; {}; more slices would pass {} tiles a block or be under {} "
                                    "deep)",
                                    best, split_tiles, wave.grid_blocks,
                                    split_tiles + wave.other_tiles >= wave.grid_blocks
                                        ? fmt::format("its wave's {} tiles fill them", split_tiles + wave.other_tiles)
                                        : fmt::format("its wave's {} tiles leave some idle", split_tiles + wave.other_tiles),
                                    c.whole_s * 1e6, tried, kMaxTilesPerBlock, kSplitKMinSlice);
        return c;
    }
    c.why_not = fmt::format("{}{}predicted {:.2f} us whole, {:.2f} us in {} K slices: under {:.0f}% faster",
                            fills, fills.empty() ? "" : "; ", c.whole_s * 1e6, c.split_s * 1e6, best,
                            100 * kSplitKMinGain);
    return c;
}

TileGraph split_k_in(const TileGraph& tg, int rop, int ways) {
    TileGraph out = tg;
    split_k_at(out, rop, ways);
    return out;
}

void split_k_at(TileGraph& out, int rop, int ways) {
    const ROp op = out.rops.at(rop);
    const VertexId v = static_cast<VertexId>(out.buffers.size());
    TensorBuffer b;
    b.name = op.name + "#partials";
    b.dtype = DType::f32;
    b.shape = {ways};
    if (const auto* w = std::get_if<WindowParams>(&op.params); w && op.kind == TaskKind::conv2d) {
        b.shape.insert(b.shape.end(), {w->N, w->O, w->OH, w->OW});
    } else {
        const auto& p = std::get<MatmulParams>(op.params);
        for (int d = 0; d < p.batch_rank; ++d) b.shape.push_back(p.batch_shape[d]);
        b.shape.push_back(p.M);
        b.shape.push_back(p.N);
    }
    b.offset = out.arena_bytes;
    b.bytes = numel(b.shape) * dtype_size(DType::f32);
    b.storage = v;
    out.arena_bytes += (b.bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign;
    out.buffers.push_back(b);
    out.nodes.push_back(NodeInfo{});
    auto [part, red] = split_rop(op, ways, v, b.offset);
    out.rops[rop] = std::move(red);
    out.rops.insert(out.rops.begin() + rop, std::move(part));
}

namespace {

bool is_norm(int row_op) {
    return row_op == ANVIL_ROW_SOFTMAX || row_op == ANVIL_ROW_LAYERNORM || row_op == ANVIL_ROW_RMSNORM;
}

// Whether element r * len + j of a kept index space sits at offset
// r * len + j: strides `st` over `shape` are the contiguous ones of rows `len` long.
bool rows_contiguous(const anvil_i64* shape, const anvil_i64* st, int rank, int64_t len) {
    int64_t want = len;
    for (int d = rank - 1; d >= 0; --d) {
        if (shape[d] != 1 && st[d] != want) return false;
        want *= shape[d];
    }
    return true;
}

// The rOps other than `self` that read tensor storage v (through any view).
std::vector<int> readers_of(const TileGraph& tg, VertexId v, int self) {
    std::vector<int> out;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (static_cast<int>(r) == self) continue;
        for (VertexId u : tg.rops[r].reads)
            if (tg.buffers[u].storage == v) {
                out.push_back(static_cast<int>(r));
                break;
            }
    }
    return out;
}

// Whether row rOp `norm` reads b's bytes other than as its input rows
// (gamma, beta, an input of its epilogue).
bool reads_bytes_of(const ROp& norm, const TensorBuffer& b) {
    const auto& p = std::get<RowParams>(norm.params);
    auto inside = [&](int64_t off) { return off >= b.offset && off < b.offset + b.bytes; };
    bool any = inside(p.gamma_off) || inside(p.beta_off);
    for (int i = 0; i < norm.epilogue.ninputs; ++i) any = any || inside(norm.epilogue.in_off[i]);
    return any;
}

// Whether an rOp before index `before` writes storage u (nothing does: an
// input or param), so that an rOp at `before` may read it.
bool written_before(const TileGraph& tg, VertexId u, int before) {
    const TensorBuffer& b = tg.buffers[tg.buffers[u].storage];
    for (size_t r = before; r < tg.rops.size(); ++r) {
        const ROp& op = tg.rops[r];
        if (tg.buffers[op.node].storage == b.storage) return false;
        const auto* p = std::get_if<RowParams>(&op.params);
        if (p && p->op == ANVIL_ROW_SPLIT_NORM && p->pre_off >= b.offset && p->pre_off < b.offset + b.bytes) return false;
    }
    return true;
}

// Where split-K reduce `red` may apply row op `norm`.
struct NormPlan {
    int row = -1;        // the row op's rOp; -1: none
    bool pre = false;    // other rOps (or the graph's outputs) read the GEMM's result: stored too
    int place = -1;      // the merged rOp's index before the reduce is removed
    std::string why;     // row >= 0 and place < 0: why not
};

// The softmax, layernorm or rmsnorm rOp that reads the result of split-K
// reduce `red`, and whether and where the reduce can apply it.
NormPlan norm_plan(const TileGraph& tg, int red) {
    NormPlan plan;
    const ROp& op = tg.rops[red];
    const auto& rp = std::get<RowParams>(op.params);
    const VertexId v = op.node;
    const TensorBuffer& bv = tg.buffers[v];
    const std::vector<int> readers = readers_of(tg, bv.storage, red);
    for (int r : readers)
        if (const auto* p = std::get_if<RowParams>(&tg.rops[r].params); p && is_norm(p->op) && plan.row < 0) plan.row = r;
    if (plan.row < 0) return plan;
    const ROp& norm = tg.rops[plan.row];
    const auto& np = std::get<RowParams>(norm.params);
    const int64_t n = rp.kept_rank >= 2 ? rp.kept_shape[rp.kept_rank - 1] : 0;
    bool output = false;
    for (const std::string& name : tg.outputs) output = output || buffer_of(tg, name).storage == bv.storage;
    plan.pre = output || readers.size() > 1;
    // The merged rOp goes where the row op was (what its epilogue reads is
    // produced before it), or, when other readers of the GEMM's result come
    // in between, where the reduce was (if the row op's inputs are ready there).
    bool between = false, ready = true;
    for (int r : readers) between = between || (r != plan.row && r > red && r < plan.row);
    for (VertexId u : norm.reads)
        if (tg.buffers[u].storage != bv.storage) ready = ready && written_before(tg, u, red);
    std::string& why = plan.why;
    if (rp.kept_rank < 2) {
        why = "a conv2d's reduce: the row op stays apart";
    } else if (bv.alias || rp.out_off != bv.offset || !rows_contiguous(rp.kept_shape, rp.kept_out, rp.kept_rank - 1, n) ||
               rp.kept_out[rp.kept_rank - 1] != 1) {
        why = "the GEMM writes a strided view, not whole contiguous rows";
    } else if (np.red_rank != 1 || np.red_shape[0] != n || np.red_in[0] != 1 || np.red_out[0] != 1 ||
               np.in_off != bv.offset || np.rows * n != rp.rows || norm.dtypes[0] != bv.dtype ||
               !rows_contiguous(np.kept_shape, np.kept_in, np.kept_rank, n) ||
               !rows_contiguous(np.kept_shape, np.kept_out, np.kept_rank, n)) {
        why = "the row op is not over the GEMM's contiguous rows of N";
    } else if (reads_bytes_of(norm, bv)) {
        why = "the row op's gamma, beta or epilogue reads the GEMM's result, which the reduce computes in the same tile";
    } else if (n > ANVIL_ROW_WARP_MAX) {
        why = fmt::format("rows of N = {} are over the {} a block holds in registers ({} a thread)", n,
                          ANVIL_ROW_WARP_MAX, ANVIL_ROW_WARP_MAX / 256);
    } else if (between && !ready) {
        why = "other readers of the GEMM's result run before the row op, whose inputs are produced after the reduce";
    } else {
        plan.place = between ? red : plan.row;
    }
    return plan;
}

// The reduce `red` of a split GEMM applying the row op `norm` after its
// sums, in `rows_per_tile` rows per task; `pre`: storing the GEMM's result too.
ROp split_norm_rop(const TileGraph& tg, const ROp& red, const ROp& norm, int rows_per_tile, bool pre) {
    const auto& rp = std::get<RowParams>(red.params);
    const auto& np = std::get<RowParams>(norm.params);
    const VertexId v = red.node;
    const int64_t n = rp.kept_shape[rp.kept_rank - 1];
    ROp m = red;
    m.name = red.name + "+" + norm.name;
    m.node = norm.node;
    m.dtypes = {DType::f32, norm.dtypes[1], norm.dtypes[2], norm.dtypes[3]};
    // The partials and the GEMM epilogue's inputs, then the row op's but v.
    for (VertexId u : norm.reads)
        if (tg.buffers[u].storage != tg.buffers[v].storage && std::find(m.reads.begin(), m.reads.end(), u) == m.reads.end())
            m.reads.push_back(u);
    // The nodes it does (their outputs unstored): the GEMM's chain with its
    // result v unless stored, the row op (found by its operand: a graph
    // without node records names none) and its chain.
    const bool v_fused = std::find(m.fused.begin(), m.fused.end(), v) != m.fused.end();
    if (pre && v_fused) m.fused.erase(std::find(m.fused.begin(), m.fused.end(), v));
    if (!pre && !v_fused) m.fused.push_back(v);
    if (tg.nodes.size() == tg.buffers.size()) {
        // The row op's node: the rOp's own, or the one its chain's first node reads.
        VertexId row_node = norm.node;
        if (!norm.fused.empty())
            for (VertexId u : tg.nodes[norm.fused.front()].operands)
                if (tg.nodes[u].is_node && !tg.nodes[u].operands.empty() &&
                    tg.buffers[tg.nodes[u].operands[0]].storage == tg.buffers[v].storage)
                    row_node = u;
        if (std::find(m.fused.begin(), m.fused.end(), row_node) == m.fused.end()) m.fused.push_back(row_node);
    }
    for (VertexId u : norm.fused)
        if (std::find(m.fused.begin(), m.fused.end(), u) == m.fused.end()) m.fused.push_back(u);
    m.fusion = FusionLevel::registers;
    m.row_epilogue = norm.epilogue;
    m.flops = red.flops + norm.flops;
    m.why_not_row_op.clear();
    RowParams q{};
    q.op = ANVIL_ROW_SPLIT_NORM;
    q.norm_op = np.op;
    q.rows = rp.rows / n;
    q.row_len = n;
    q.kept_rank = 1;
    q.kept_shape[0] = q.rows;
    q.kept_in[0] = q.kept_out[0] = n;
    q.red_rank = 1;
    q.red_shape[0] = n;
    q.red_in[0] = q.red_out[0] = 1;
    q.in_off = rp.in_off;
    q.out_off = np.out_off;
    q.gamma_off = np.gamma_off;
    q.beta_off = np.beta_off;
    q.eps = np.eps;
    q.k_split = static_cast<int>(rp.row_len);
    q.slice_stride = rp.red_in[0];
    q.mid_dtype = static_cast<int>(tg.buffers[v].dtype);
    q.pre_off = pre ? rp.out_off : -1;
    q.rows_per_tile = rows_per_tile;
    m.params = q;
    m.tiles = static_cast<int>(ceil_div(q.rows, rows_per_tile));
    return m;
}

// Rows per task of a split-norm reduce: of 1, 2, 4, ... rows (a warp each),
// the fewest tasks (polls, counters, task overheads) whose waves of
// `grid_blocks` are predicted within 2% of the fastest.
int split_norm_rows_per_tile(const TileGraph& tg, const ROp& red, const ROp& norm, bool pre, const Gpu& gpu,
                             int grid_blocks) {
    const auto& rp = std::get<RowParams>(red.params);
    const int64_t rows = rp.rows / rp.kept_shape[rp.kept_rank - 1];
    std::vector<std::pair<int, double>> options;
    double fastest = INFINITY;
    for (int64_t k = 1; k <= std::max<int64_t>(1, rows) && k <= (1 << 16); k *= 2) {
        const ROp m = split_norm_rop(tg, red, norm, static_cast<int>(k), pre);
        const double s = std::ceil(double(m.tiles) / std::max(1, grid_blocks)) *
                         (split_k_reduce_tile_seconds(gpu, m) + gpu.task_overhead_s);
        options.push_back({static_cast<int>(k), s});
        fastest = std::min(fastest, s);
    }
    int best = 1;
    for (const auto& [k, s] : options)
        if (s <= fastest * 1.02) best = k;
    return best;
}

// A conv2d's tile shape and split chosen together: the variants stage
// chose its tile whole, and a small tile (few products per shared-memory
// read) that runs a long K is slow at any split; a wider tile split along
// K may beat it. Of the tile shapes that keep the megakernel's blocks per
// SM (beside the graph's largest tile, `smem_cap` bytes), the one whose
// best split is fastest, when that beats `op` whole by kSplitKMinGain;
// otherwise `op` and its own choice.
std::pair<ROp, SplitChoice> conv_tile_and_split(const ROp& op, const Gpu& gpu, const WaveLoad& load, int smem_cap) {
    SplitChoice own = choose_split_k(op, gpu, load);
    ROp best_op = op;
    SplitChoice best = own;
    const double best_s = own.ways > 1 ? own.split_s : own.whole_s;
    double best_found = best_s;
    for (const ROp& v : tile_variants(op, gpu)) {
        if (v.tiles >= load.grid_blocks) continue;  // whole, it fills the grid
        const int smem = tile_smem_bytes(v, gpu);
        if (smem > smem_cap && megakernel_blocks_per_sm(smem, gpu) < megakernel_blocks_per_sm(smem_cap, gpu)) continue;
        const SplitChoice c = choose_split_k(v, gpu, load);
        if (c.ways > 1 && c.split_s < best_found) best_found = c.split_s, best_op = v, best = c;
    }
    if (best.ways > 1 && best_found < own.whole_s * (1 - kSplitKMinGain)) {
        best.whole_s = own.whole_s;
        return {best_op, best};
    }
    return {op, own};
}

// The rOp that writes the partials split-K reduce `red` sums.
const ROp* partials_for(const TileGraph& tg, const ROp& red) {
    const VertexId scratch = tg.buffers[red.reads.front()].storage;
    for (const ROp& op : tg.rops)
        if (op.split_k > 1 && tg.buffers[op.node].storage == scratch) return &op;
    return nullptr;
}

// Whether split-K reduce `reduce` runs as a wave of its own or, in the
// block of the last of its K slices to arrive, at once (Task::joins): the
// wave pays a sync latency and a poll on its consumer's path, and its
// tasks' polls; the inline reduce makes that block's last partial tile
// longer by the reduce of the tile's whole row band (rows per task: the
// band, so a slice joins one reduce task and a reduce task few slices).
// Taken when predicted within 1% of the wave (closer than the model can
// tell), the polls being fewer.
void choose_reduce_mode(TileGraph& tg, int reduce, const Gpu& gpu, int grid_blocks) {
    ROp& red = tg.rops[reduce];
    if (!gpu.last_slice_reduce) {
        red.reduce_mode = "wave: --no-last-slice-reduce";
        return;
    }
    const std::string why_not = why_not_by_last_slice(tg, red);
    if (!why_not.empty()) {
        red.reduce_mode = "wave: " + why_not;
        return;
    }
    ROp inl = by_last_slice_rop(tg, red);
    const double wave_s = std::ceil(double(red.tiles) / std::max(1, grid_blocks)) *
                              (split_k_reduce_tile_seconds(gpu, red) + gpu.task_overhead_s) +
                          gpu.sync_latency_s + poll_wait_seconds(gpu, 1);
    const double inline_s = split_k_reduce_tile_seconds(gpu, inl);
    const std::string numbers = fmt::format(
        "{} tasks of {} rows after their last K slice {:.2f} us, a wave of {} tasks {:.2f} us", inl.tiles,
        std::get<RowParams>(inl.params).rows_per_tile, inline_s * 1e6, red.tiles, wave_s * 1e6);
    if (inline_s <= wave_s * 1.01) {
        set_by_last_slice(tg, reduce);
        tg.rops[reduce].reduce_mode = "last slice: " + numbers;
    } else {
        red.reduce_mode = "wave: " + numbers;
    }
}

}  // namespace

TileGraph apply_split_k(const TileGraph& tg, const Gpu& gpu, SplitKMode mode) {
    TileGraph out = tg;
    out.rops.clear();
    const int grid = gpu.sm_count * megakernel_blocks_per_sm(tg, gpu);
    int smem_cap = 0;
    for (const ROp& op : tg.rops) smem_cap = std::max(smem_cap, tile_smem_bytes(op, gpu));
    const std::vector<int> wave = rop_waves(tg, task_graph(tg));
    // The other tiles of a wave occupy their SMs for their work; their
    // latency hides behind co-resident blocks.
    std::vector<double> work_s;
    for (const ROpCost& c : tile_costs_in_order(tg, gpu)) work_s.push_back(c.work_s);
    const int waves = wave.empty() ? 0 : *std::max_element(wave.begin(), wave.end()) + 1;
    std::vector<double> work(waves, 0);
    std::vector<int64_t> tiles(waves, 0);
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        work[wave[r]] += tg.rops[r].tiles * (work_s[r] + gpu.task_overhead_s);
        tiles[wave[r]] += tg.rops[r].tiles;
    }
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        ROp op = tg.rops[r];
        if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) {
            out.rops.push_back(std::move(op));
            continue;
        }
        const WaveLoad load{grid, tiles[wave[r]] - op.tiles,
                            work[wave[r]] - op.tiles * (work_s[r] + gpu.task_overhead_s)};
        SplitChoice c;
        if (op.kind == TaskKind::conv2d) {
            ROp tiled;  // a conv2d split may take another tile shape; whole, it keeps its own
            std::tie(tiled, c) = conv_tile_and_split(op, gpu, load, smem_cap);
            if (mode == SplitKMode::split) op = std::move(tiled);
        } else {
            c = choose_split_k(op, gpu, load);
        }
        if (mode == SplitKMode::keep_whole) {
            op.why_not_split = c.ways == 1 ? c.why_not
                                           : fmt::format("its wave's model splits K {} ways, but the whole schedule "
                                                         "with every GEMM whole was predicted faster",
                                                         c.ways);
            out.rops.push_back(std::move(op));
            continue;
        }
        if (c.ways == 1) {
            op.why_not_split = c.why_not;
            out.rops.push_back(std::move(op));
            continue;
        }
        op.why_not_split = c.why_not;  // the partials keep why they leave blocks idle, if they do
        out.rops.push_back(std::move(op));
        split_k_at(out, static_cast<int>(out.rops.size()) - 1, c.ways);
    }
    if (mode == SplitKMode::keep_whole) return out;
    // Back to front: a merge removes a reduce, the rOps before it stay put.
    for (int r = static_cast<int>(out.rops.size()) - 1; r >= 0; --r)
        if (const auto* p = std::get_if<RowParams>(&out.rops[r].params); p && p->op == ANVIL_ROW_SPLIT_SUM)
            apply_row_op_in_reduce(out, r, gpu, grid);
    for (size_t r = 0; r < out.rops.size(); ++r)
        if (const auto* p = std::get_if<RowParams>(&out.rops[r].params);
            p && (p->op == ANVIL_ROW_SPLIT_SUM || p->op == ANVIL_ROW_SPLIT_NORM))
            choose_reduce_mode(out, static_cast<int>(r), gpu, grid);
    return out;
}

int apply_row_op_in_reduce(TileGraph& tg, int reduce, const Gpu& gpu, int grid_blocks) {
    ROp& red = tg.rops.at(reduce);
    const auto* rp = std::get_if<RowParams>(&red.params);
    ANVIL_CHECK(red.kind == TaskKind::rowwise && rp && rp->op == ANVIL_ROW_SPLIT_SUM,
                "apply_row_op_in_reduce: rOp '" + red.name + "' is no split-K reduce");
    const NormPlan plan = norm_plan(tg, reduce);
    red.why_not_row_op = plan.why;
    if (plan.row < 0 || plan.place < 0) return -1;
    ANVIL_CHECK(plan.row > reduce, "apply_row_op_in_reduce: row op '" + tg.rops[plan.row].name + "' runs before its input");
    const int rows_per_tile = split_norm_rows_per_tile(tg, red, tg.rops[plan.row], plan.pre, gpu, grid_blocks);
    ROp merged = split_norm_rop(tg, red, tg.rops[plan.row], rows_per_tile, plan.pre);
    tg.rops.erase(tg.rops.begin() + plan.row);
    tg.rops[reduce] = std::move(merged);
    // Where the reduce was (just written), or moved to the row op's place.
    if (plan.place == reduce) return reduce;
    std::rotate(tg.rops.begin() + reduce, tg.rops.begin() + reduce + 1, tg.rops.begin() + plan.row);
    return plan.row - 1;
}

std::string why_not_by_last_slice(const TileGraph& tg, const ROp& red) {
    const auto* rp = std::get_if<RowParams>(&red.params);
    ANVIL_CHECK(red.kind == TaskKind::rowwise && rp && (rp->op == ANVIL_ROW_SPLIT_SUM || rp->op == ANVIL_ROW_SPLIT_NORM),
                "why_not_by_last_slice: rOp '" + red.name + "' is no split-K reduce");
    const ROp* part = partials_for(tg, red);
    ANVIL_CHECK(part, "why_not_by_last_slice: no rOp writes the partials of '" + red.name + "'");
    if (part->kind != TaskKind::matmul || (rp->op == ANVIL_ROW_SPLIT_SUM && rp->kept_rank < 2))
        return "a conv2d's partial tiles are not whole row bands of its output";
    return "";
}

ROp by_last_slice_rop(const TileGraph& tg, const ROp& red) {
    const std::string why_not = why_not_by_last_slice(tg, red);
    ANVIL_CHECK(why_not.empty(), "by_last_slice_rop: '" + red.name + "': " + why_not);
    const auto& rp = std::get<RowParams>(red.params);
    const auto& pp = std::get<MatmulParams>(partials_for(tg, red)->params);
    const int64_t band = std::min<int64_t>(pp.bm, pp.M);  // GEMM rows of one partial tile
    ROp out = red;
    auto& p = std::get<RowParams>(out.params);
    out.by_last_slice = true;
    if (rp.op == ANVIL_ROW_SPLIT_SUM) {
        // A reduce tile per partial output tile where the tiles divide M and
        // N: the kept dims [batch..][M / bm][N / bn][bm][bn], so a tile's
        // outputs are consecutive (footprints by rows: footprint.cpp).
        const int k = rp.kept_rank;
        const int64_t M = rp.kept_shape[k - 2], N = rp.kept_shape[k - 1];
        const int64_t bn = std::min<int64_t>(pp.bn, pp.N);
        if (M % band == 0 && N % bn == 0 && (M > band || N > bn) && k + 2 <= ANVIL_MAX_RANK &&
            rp.kept_in[k - 1] == 1) {
            const anvil_i64 in_m = rp.kept_in[k - 2], out_m = rp.kept_out[k - 2], out_n = rp.kept_out[k - 1];
            p.kept_rank = k + 2;
            p.kept_shape[k - 2] = M / band, p.kept_shape[k - 1] = N / bn, p.kept_shape[k] = band, p.kept_shape[k + 1] = bn;
            p.kept_in[k - 2] = band * in_m, p.kept_in[k - 1] = bn, p.kept_in[k] = in_m, p.kept_in[k + 1] = 1;
            p.kept_out[k - 2] = band * out_m, p.kept_out[k - 1] = bn * out_n, p.kept_out[k] = out_m, p.kept_out[k + 1] = out_n;
            p.rows_per_tile = static_cast<int>(band * bn);
        } else {
            p.rows_per_tile = static_cast<int>(std::min<int64_t>(std::max<int64_t>(1, rp.rows), band * N));
        }
    } else {
        p.rows_per_tile = static_cast<int>(std::min<int64_t>(std::max<int64_t>(1, rp.rows), band));
    }
    out.tiles = static_cast<int>(ceil_div(p.rows, p.rows_per_tile));
    return out;
}

void set_by_last_slice(TileGraph& tg, int reduce) {
    ROp red = by_last_slice_rop(tg, tg.rops.at(reduce));
    // Its partials' footprints go by rows, so that a reduce tile joins
    // only the partial tiles it reads (footprint.cpp).
    const VertexId scratch = tg.buffers[red.reads.front()].storage;
    for (ROp& op : tg.rops)
        if (op.split_k > 1 && tg.buffers[op.node].storage == scratch) op.by_last_slice = true;
    tg.rops[reduce] = std::move(red);
}

}  // namespace anvil
