#include "schedule/split_k.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "anvil/error.h"
#include "schedule/cost_model.h"
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
    for (int ways : kWays) {
        if (!splits_into(op, ways) || int64_t{op.tiles} * ways > int64_t{kMaxTilesPerBlock} * wave.grid_blocks) continue;
        const auto [part, red] = split_rop(op, ways, 0, 0);
        const double reduce_tile_s = split_k_reduce_tile_seconds(gpu, red) + gpu.task_overhead_s;
        const double s = wave_s(part) + std::ceil(double(red.tiles) / wave.grid_blocks) * reduce_tile_s +
                         gpu.sync_latency_s;
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
        const int smem = tile_smem_bytes(v);
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

}  // namespace

TileGraph apply_split_k(const TileGraph& tg, const Gpu& gpu) {
    TileGraph out = tg;
    out.rops.clear();
    const int grid = gpu.sm_count * megakernel_blocks_per_sm(tg, gpu);
    int smem_cap = 0;
    for (const ROp& op : tg.rops) smem_cap = std::max(smem_cap, tile_smem_bytes(op));
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
        if (op.kind == TaskKind::conv2d) std::tie(op, c) = conv_tile_and_split(op, gpu, load, smem_cap);
        else c = choose_split_k(op, gpu, load);
        if (c.ways == 1) {
            op.why_not_split = c.why_not;
            out.rops.push_back(std::move(op));
            continue;
        }
        out.rops.push_back(std::move(op));
        split_k_at(out, static_cast<int>(out.rops.size()) - 1, c.ways);
    }
    return out;
}

}  // namespace anvil
