#include "schedule/cost_model.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "anvil/error.h"
#include "schedule/cost_terms.h"
#include "schedule/sync_counters.h"
#include "target/occupancy.h"
#include "tile/epilogue_plan.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

namespace {

// The stored (non-alias) buffer holding each arena byte, by binary search.
class Owners {
public:
    explicit Owners(const TileGraph& tg) {
        for (size_t v = 0; v < tg.buffers.size(); ++v)
            if (!tg.buffers[v].alias) by_offset_.push_back({tg.buffers[v].offset, static_cast<int>(v)});
        std::sort(by_offset_.begin(), by_offset_.end());
    }
    int at(int64_t byte) const {
        auto it = std::upper_bound(by_offset_.begin(), by_offset_.end(), std::make_pair(byte, INT32_MAX));
        ANVIL_CHECK(it != by_offset_.begin(), "byte " + std::to_string(byte) + " lies before every buffer");
        return std::prev(it)->second;
    }

private:
    std::vector<std::pair<int64_t, int>> by_offset_;
};

// Bytes one tile moves from L2 into its SM: the exact operand slices of a
// GEMM tile (the byte-range cover of a column block of B would be all of B),
// the byte-range footprint of the other kinds and of any further operands.
double tile_in_bytes(const ROp& op, int tile) {
    std::vector<ByteRange> reads = tile_reads(op, tile);
    double bytes = 0;
    size_t first_generic = 0;
    if (op.kind == TaskKind::matmul) {
        const auto& p = std::get<MatmulParams>(op.params);
        const double rows = std::min(p.bm, p.M);  // rows past M are never loaded
        bytes = double(p.K) * (rows * dtype_size(op.dtypes[0]) + double(p.bn) * dtype_size(op.dtypes[1]));
        if (p.a_norm) bytes += double(p.K) * rows * dtype_size(op.dtypes[0]);  // the statistics pass reads A's rows once more
        std::vector<ByteRange> ab;
        matmul_operand_reads(op, tile, ab);
        first_generic = ab.size();
    } else if (op.kind == TaskKind::conv2d) {
        const auto& p = std::get<WindowParams>(op.params);
        const double k = anvil_conv_k_len(p);
        bytes = k * (double(p.bm) * dtype_size(op.dtypes[0]) + double(p.bn) * dtype_size(op.dtypes[1]));
        first_generic = 2;
    }
    // An elementwise tile's cover spans whole rows of a 2-D view; it reads
    // at most its own elements of each operand.
    double cap = INFINITY;
    if (const auto* e = std::get_if<EwParams>(&op.params)) {
        const int64_t first = int64_t{tile} * e->tile_elems;
        cap = static_cast<double>(std::min(e->tile_elems, e->numel - first)) * dtype_size(op.dtypes[0]);
    }
    for (size_t i = first_generic; i < reads.size(); ++i)
        bytes += std::min(cap, static_cast<double>(std::max<int64_t>(0, reads[i].end - reads[i].begin)));
    return bytes;
}

// Bytes an rOp stores: its node's whole output, or for a part of a concat
// (an elementwise copy into a slice of it) the part. Byte-range covers of
// tiles would count the gaps of strided tiles.
double written_bytes(const TileGraph& tg, const ROp& op) {
    if (op.kind == TaskKind::elementwise)
        return static_cast<double>(std::get<EwParams>(op.params).numel) * dtype_size(op.dtypes[0]);
    return static_cast<double>(tg.buffers[op.node].bytes);
}

// The instructions an rOp's epilogues cost over all its values: each
// stored value goes through the epilogue (and a row epilogue) once.
double epilogue_instructions(const ROp& op, double values, const std::set<std::string>& straight) {
    double per_value = 0;
    for (const AnvilEpilogue* e : {&op.epilogue, &op.row_epilogue})
        per_value += epilogue_instructions_per_value(*e, straight.count(epilogue_key(*e)) != 0);
    return per_value * values;
}

// Epilogue inputs that change along the output: a scalar (every stride 0,
// attention's 1/sqrt(d) as a constant tensor) is one address, in L1 after
// the tile's first value.
int varying_inputs(const AnvilEpilogue& e) {
    int n = 0;
    for (int i = 0; i < e.ninputs; ++i) {
        bool varies = false;
        for (int d = 0; d < e.rank; ++d) varies = varies || e.in_stride[i][d] != 0;
        n += varies;
    }
    return n;
}

// Dependent round trips of an rOp's epilogues per stored value: the
// straight-line code loads every operand at once, the interpreter one step
// after another; scalar operands cost none.
double epilogue_rounds_per_value(const ROp& op, const std::set<std::string>& straight) {
    double rounds = 0;
    for (const AnvilEpilogue* e : {&op.epilogue, &op.row_epilogue})
        if (const int varying = varying_inputs(*e); varying > 0) rounds += straight.count(epilogue_key(*e)) ? 1.0 : varying;
    return rounds;
}

// Per rOp, in the order the schedule first runs them: bytes read from DRAM
// and from L2, bytes written (see the header for the model).
std::vector<ROpCost> traffic(const Schedule& s) {
    const TileGraph& tg = s.tiles;
    const Owners owners(tg);
    std::vector<int> first(tg.rops.size(), -1), order;
    for (size_t t = 0; t < s.tasks.size(); ++t)
        if (first[s.tasks[t].rop] < 0) {
            first[s.tasks[t].rop] = static_cast<int>(t);
            order.push_back(s.tasks[t].rop);
        }
    const double l2_window = 0.5 * static_cast<double>(s.gpu.l2_bytes);
    std::vector<double> last_touch(tg.buffers.size(), -1);
    double clock = 0;  // bytes moved so far
    std::vector<ROpCost> costs(tg.rops.size());
    const std::set<std::string> straight = straight_line_programs(tg);
    for (int r : order) {
        const ROp& op = tg.rops[r];
        ROpCost& c = costs[r];
        c.flops = static_cast<double>(op.flops);
        std::map<int, double> read;  // buffer -> bytes read over all tiles
        double written = 0, into_sms = 0;
        for (int tile = 0; tile < op.tiles; ++tile) {
            for (ByteRange br : tile_reads(op, tile))
                if (br.end > br.begin) read[owners.at(br.begin)] += static_cast<double>(br.end - br.begin);
            into_sms += tile_in_bytes(op, tile);
        }
        written = written_bytes(tg, op);
        c.epilogue_instructions = epilogue_instructions(op, written / dtype_size(op.dtypes.back()), straight);
        c.epilogue_rounds = epilogue_rounds_per_value(op, straight) * written / dtype_size(op.dtypes.back());
        const auto* rp = std::get_if<RowParams>(&op.params);
        const bool pre = rp && rp->op == ANVIL_ROW_SPLIT_NORM && rp->pre_off >= 0;  // a second output
        if (pre) written += static_cast<double>(tg.buffers[owners.at(rp->pre_off)].bytes);
        double dram = 0, l2 = 0;
        for (auto& [buf, bytes] : read) {
            bytes = std::min(bytes, static_cast<double>(tg.buffers[buf].bytes));
            const bool hit = last_touch[buf] >= 0 && clock - last_touch[buf] + bytes <= l2_window;
            (hit ? l2 : dram) += bytes;
            last_touch[buf] = clock;
            clock += bytes;
        }
        c.dram_read = dram;
        // What the tiles read beyond the first touch of each byte is served by L2.
        c.l2_read = std::max(l2, into_sms - dram);
        c.dram_write = written;
        clock += written;
        last_touch[tg.buffers[op.node].storage] = clock;  // reuse distance counts from the end of the write
        if (pre) last_touch[tg.buffers[owners.at(rp->pre_off)].storage] = clock;
    }
    return costs;
}

// How a GEMM rOp (matmul, conv2d) computes (AnvilMmAlgo); -1 for the other kinds.
int gemm_algo(const ROp& op) {
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && op.kind == TaskKind::matmul) return p->algo;
    if (const auto* w = std::get_if<WindowParams>(&op.params); w && op.kind == TaskKind::conv2d) return w->algo;
    return -1;
}

// A norm of A's rows in a GEMM tile (rtasks/a_norm.cuh). Its statistics:
// a warp per row; where A's rows are k contiguous and 16-byte aligned, two
// rows side by side, a round trip per chunk of 32 lanes x
// ANVIL_A_NORM_VECS 16-byte loads of each, else a row at a time, a round
// trip per 32 x ANVIL_A_NORM_UNROLL elements; each element added and its
// squared deviation summed (4 instructions with its load). The
// normalisation: per staged slice, BM x BK elements loaded, shifted, scaled
// and stored with their rows' statistics, 4 m at a time on CUDA cores (4
// instructions an element), 2 k at a time with the 16-bit conversions on
// tensor cores (7).
double a_norm_stats_rounds(const MatmulParams& p, size_t a_elem) {
    const double rows = std::min(p.bm, p.M), warps = ANVIL_BLOCK_THREADS / 32;
    const int v = static_cast<int>(ANVIL_VEC_BYTES / a_elem);
    bool vec = p.a_sk == 1 && p.K % v == 0 && p.a_sm % v == 0 && p.a_off % ANVIL_VEC_BYTES == 0;
    for (int d = 0; d < p.batch_rank; ++d) vec = vec && p.a_sb[d] % v == 0;
    if (vec)
        return std::ceil(rows / (warps * ANVIL_A_NORM_ROWS)) * std::ceil(double(p.K) / (32.0 * ANVIL_A_NORM_VECS * v));
    return std::ceil(rows / warps) * std::ceil(double(p.K) / (32.0 * ANVIL_A_NORM_UNROLL));
}
double a_norm_instructions(const MatmulParams& p) {
    const double rows = std::min(p.bm, p.M), slices = std::ceil(double(p.K) / std::max(1, p.bk));
    return rows * p.K * 4 + slices * double(p.bm) * p.bk * (p.algo == ANVIL_MM_TILED ? 4 : 7);
}

// Whether a tensor-core conv2d copies its 16-bit x by 16-byte cp.async
// (conv2d_tc.cuh's anvil_conv_tc_x_vec: a pointwise conv whose planes keep
// 16-byte alignment; the arena's base is aligned).
bool conv_tc_x_copied(const WindowParams& p, DType x) {
    return dtype_size(x) == 2 && anvil_conv_x_planes(p, 8) && p.x_off % 16 == 0;
}

// A tiled GEMM's algo in its cost key: the CUDA-core tile has none.
const char* algo_tag(int algo) {
    return algo == ANVIL_MM_TENSOR          ? " tc "
           : algo == ANVIL_MM_TENSOR_TF32   ? " tf32 "
           : algo == ANVIL_MM_TENSOR_3XTF32 ? " 3xtf32 "
           : algo == ANVIL_MM_WGMMA         ? " wgmma "
                                            : " ";
}

}  // namespace

TileLatency tile_latency(const ROp& op, const Gpu& g, double epilogue_rounds) {
    TileLatency t;
    const auto f32 = [&](size_t i) { return op.dtypes.size() > i && op.dtypes[i] == DType::f32; };
    // The CUDA-core stages copy f32 operands asynchronously (S - 1 slices in
    // flight); other storage types are loaded, widened and stored at once.
    const bool async_copies = f32(0) && f32(1);
    const double cuda_core_in_flight = async_copies ? ANVIL_GEMM_STAGES - 1 : 1;
    auto staged = [&](int bm, int bn, int bk) { return async_copies ? 1.0 : staged_slice_rounds(bm, bn, bk); };
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && op.kind == TaskKind::matmul) {
        if (p->algo == ANVIL_MM_GEMV && gemv_takes_ring(op)) {
            // The weight ring (gemv.cuh): stages of ANVIL_GEMV_STAGE_BYTES,
            // all but one in flight; a fixed B's first stages are issued
            // before the waits or by the block's previous GEMV, so its fill
            // is hidden (taken as always: the first task of a block after a
            // short wait still pays it).
            const double rows = double(ANVIL_GEMV_STAGE_BYTES) / (double(p->bn) * dtype_size(op.dtypes.at(1)));
            t.k_slices = std::ceil(double(p->K) / rows);
            t.slices_in_flight = gemv_ring_stages(g) - 1;
            t.fill_hidden = p->b_fixed != 0;
            // x staged in shared memory after the waits (where it fits the
            // budget: gemv_staged_x_bytes): its one round trip precedes the
            // first stage's multiply; a computed B's fill, issued beside it,
            // covers it.
            if (t.fill_hidden && gemv_staged_x_bytes(op, g) > 0)
                t.serial_rounds = 1;
        } else if (p->algo == ANVIL_MM_GEMV) {
            // Each thread streams its share of B's columns, ANVIL_GEMV_UNROLL (4) 16-byte loads at a time.
            const double bytes = double(p->K) * p->bn * dtype_size(op.dtypes.at(1));
            t.serial_rounds = element_loop_rounds(bytes / (ANVIL_VEC_BYTES * 4.0), 1);
        } else {
            // Every algorithm but the CUDA-core tile runs on the tensor cores' stages.
            const bool cuda_cores = p->algo == ANVIL_MM_TILED;
            t.k_slices = std::ceil(double(p->K) / std::max(1, p->bk));
            // The wgmma tile's pipeline issues S - 2 slices ahead (one stage holds
            // the slice whose wgmma may still run: matmul_wgmma.cuh).
            t.slices_in_flight = cuda_cores ? cuda_core_in_flight
                                 : p->algo == ANVIL_MM_WGMMA ? anvil_tc_stages(p->stages) - 2
                                                             : anvil_tc_stages(p->stages) - 1;
            if (cuda_cores) t.phases_per_slice = staged(p->bm, p->bn, p->bk);
            // A fused row op's pass over the finished tile.
            t.serial_rounds = fused_row_rounds(p->row_op, std::min(p->bm, p->M), double(p->N));
            if (p->a_norm) t.serial_rounds += a_norm_stats_rounds(*p, dtype_size(op.dtypes.at(0)));
        }
    } else if (const auto* w = std::get_if<WindowParams>(&op.params)) {
        if (op.kind == TaskKind::conv2d) {
            t.k_slices = std::ceil(double(anvil_conv_k_len(*w)) / std::max(1, w->bk));
            if (!anvil_mm_on_tensor_cores(w->algo)) {
                t.slices_in_flight = cuda_core_in_flight;
                t.phases_per_slice = staged(w->bm, w->bn, w->bk);
            } else if (f32(0) || conv_tc_x_copied(*w, op.dtypes.at(0))) {
                // The tensor-core conv keeps its stages of weights in flight
                // (cp.async), and of x where x takes cp.async too: f32 (TF32)
                // by 4-byte copies, a pointwise 16-bit x by 16-byte ones.
                t.slices_in_flight = anvil_tc_stages(w->stages) - 1;
            } else {
                // Any other 16-bit x is gathered through registers, its loads
                // (all of a thread's at once) issued before a slice's multiply
                // and stored after it: one slice ahead, its round trip behind
                // one slice's work (rtasks/conv2d_tc.cuh).
                t.slices_in_flight = 1;
                t.one_slice_ahead = true;
            }
        } else {
            const double reads = (w->op == ANVIL_WIN_CONV ? double(w->Cg) : 1.0) * w->KH * w->KW;
            t.serial_rounds = element_loop_rounds(double(w->tile_elems), window_rounds_per_output(reads));
        }
    } else if (const auto* e = std::get_if<EwParams>(&op.params)) {
        // A vector copy (anvil_ew_copy_vec) moves 16 bytes per thread and round.
        const int vec = op.epilogue.nsteps == 0
                            ? anvil_ew_copy_vec(*e, dtype_size(op.dtypes[0]), dtype_size(op.dtypes[1]))
                            : 1;
        t.serial_rounds = element_loop_rounds(double(e->tile_elems) / vec, 1);
    } else if (const auto* c = std::get_if<ChannelParams>(&op.params)) {
        t.serial_rounds = element_loop_rounds(double(c->tile_elems), 1);
    } else if (const auto* r = std::get_if<RowParams>(&op.params); r && r->op == ANVIL_ROW_SPLIT_SUM) {
        // A split-K reduce gives each thread whole rows: its `row_len`
        // partials are independent loads, in flight together.
        t.serial_rounds = element_loop_rounds(double(r->rows_per_tile), window_rounds_per_output(r->row_len));
    } else if (const auto* r = std::get_if<RowParams>(&op.params); r && r->op == ANVIL_ROW_SPLIT_NORM) {
        // The block per row, a row after another, each thread loading its
        // elements' partials of every slice (independent loads); the
        // epilogues' rounds are added below, spread over the block.
        t.serial_rounds = r->rows_per_tile * element_loop_rounds(double(r->row_len), window_rounds_per_output(r->k_split));
    } else if (const auto* r = std::get_if<RowParams>(&op.params); r && row_by_warps(*r, op.epilogue.nsteps > 0)) {
        // A warp per row, its values in registers: the rows side by side,
        // each lane's loads in flight together, one round trip for them.
        t.serial_rounds = row_warp_rounds(r->rows_per_tile, double(r->row_len));
    } else if (const auto* r = std::get_if<RowParams>(&op.params)) {
        t.serial_rounds = r->rows_per_tile * element_loop_rounds(double(r->row_len), row_passes(r->op));
    } else if (const auto* gp = std::get_if<GatherParams>(&op.params)) {
        t.serial_rounds = gp->rows_per_tile * element_loop_rounds(double(gp->D), 1);
    }
    // A GEMM or conv tile's thread applies its epilogue to ANVIL_EPI_BATCH
    // values per call (or --epilogue-batch), their loads in flight together
    // (epilogue.cuh); the other kinds, and a GEMM's row store, a value per call.
    const auto* mm = std::get_if<MatmulParams>(&op.params);
    const bool batched = op.kind == TaskKind::conv2d ||
                         (op.kind == TaskKind::matmul && mm && mm->algo != ANVIL_MM_GEMV && mm->row_op == ANVIL_MM_ROW_NONE);
    const int batch = g.epilogue_batch ? g.epilogue_batch : ANVIL_EPI_BATCH;
    t.serial_rounds += batched ? std::ceil(element_loop_rounds(epilogue_rounds, 1) / batch)
                               : element_loop_rounds(epilogue_rounds, 1);
    return t;
}

TileWork tile_work(const Gpu& g, const ROp& op, const ROpCost& c) {
    const double n = std::max(1, op.tiles);
    // Rates: the device's measured ceilings once `anvil calibrate` has run
    // on it, else the datasheet's. Every rTask but the tensor-core tile
    // computes on CUDA cores. A GEMM tile computes its padding too: BM x BN
    // products per k, however few rows and columns are real.
    const Ceilings& m = g.ceilings;
    TileWork w;
    w.flops = c.flops / n;
    w.flops_per_s = m.measured() ? m.fp32_flops_per_s : g.fp32_flops_per_s;
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->algo != ANVIL_MM_GEMV && p->M > 0 && p->N > 0)
        w.flops *= double(p->tiles_m) * p->bm / p->M * (double(p->tiles_n) * p->bn / p->N);
    if (computes_on_tensor_cores(op))
        w.flops_per_s = !m.measured() ? g.tensor_f16_flops_per_s
                        : op.dtypes[0] == DType::bf16 ? m.tensor_bf16_flops_per_s : m.tensor_f16_flops_per_s;
    // TF32 mma runs at half the f16 rate; 3xTF32 issues three of them.
    const int algo = gemm_algo(op);
    if (algo == ANVIL_MM_TENSOR_TF32) w.flops_per_s /= 2;
    if (algo == ANVIL_MM_TENSOR_3XTF32) w.flops_per_s /= 6;
    // wgmma reaches the datasheet's tensor rate (its peak is quoted for
    // wgmma); a calibrated ceiling is mma.sync's (tools/calibrate.cpp), which
    // Hopper runs at a fraction of it. Not yet measured for wgmma itself.
    if (algo == ANVIL_MM_WGMMA) w.flops_per_s = std::max(w.flops_per_s, g.tensor_f16_flops_per_s);
    w.dram_bytes = (c.dram_read + c.dram_write) / n;
    w.l2_bytes = c.l2_read / n;
    w.epilogue_instructions = c.epilogue_instructions / n;
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->a_norm && p->algo != ANVIL_MM_GEMV)
        w.epilogue_instructions += a_norm_instructions(*p);
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->algo == ANVIL_MM_TILED)
        w.smem_wavefronts = gemm_smem_wavefronts(std::ceil(double(p->K) / p->bk) * p->bk, p->bm, p->bn, true);
    if (const auto* p = std::get_if<WindowParams>(&op.params); p && op.kind == TaskKind::conv2d && p->algo == ANVIL_MM_TILED) {
        const double slices = std::ceil(double(anvil_conv_k_len(*p)) / p->bk);
        w.smem_wavefronts = conv_smem_wavefronts(slices * p->bk, p->bm, p->bn, p->bk);
        // conv2d.cuh's anvil_conv_a_vec and anvil_conv_b_vec (the arena keeps tensors 16-byte aligned).
        const bool f32_x = op.dtypes.at(0) == DType::f32, f32_w = op.dtypes.at(1) == DType::f32;
        const bool pointwise = p->KH == 1 && p->KW == 1 && p->sh == 1 && p->sw == 1 && p->pt == 0 && p->pl == 0;
        const bool a_vec = f32_x && pointwise && (p->H * p->W) % 4 == 0;
        const bool b_vec = f32_w && p->bk % 4 == 0 && anvil_conv_k(*p) % 4 == 0;
        w.issue_slots = slices * conv_slice_issue_slots(p->bm, p->bn, p->bk, !a_vec, b_vec) +
                        conv_group_sum_issue_slots(p->bm, p->bn, p->bk);
    }
    return w;
}

double tile_seconds(const Gpu& g, const ROp& op, ROpCost& c) {
    auto it = g.measured_tile_s.find(cost_key(op));
    if (it != g.measured_tile_s.end()) {
        // Measured per wave of tiles, co-resident blocks included: taken whole.
        c.measured = true;
        c.work_s = 0;
        return c.latency_s = it->second;
    }
    const TileTime t = tile_time(g, tile_work(g, op, c), tile_latency(op, g, c.epilogue_rounds / std::max(1, op.tiles)));
    c.work_s = t.work_s;
    c.latency_s = t.latency_s;
    return t.total();
}

double tile_seconds_alone(const Gpu& g, const ROp& op) { return tile_cost_alone(g, op).tile_s; }

double rop_seconds_alone(const Gpu& g, const ROp& op, int sms, int per_sm) {
    const ROpCost c = tile_cost_alone(g, op);
    const double slots = std::max(1, sms) * double(std::max(1, per_sm));
    const double waves = std::ceil(op.tiles / slots);
    // Blocks sharing an SM in a wave: as many as the tiles fill.
    const int share = static_cast<int>(std::min<double>(std::max(1, per_sm), std::ceil(double(op.tiles) / std::max(1, sms))));
    return waves * (co_resident_seconds(c.tile_s, c.work_s, share) + g.task_overhead_s);
}

ROpCost tile_cost_alone(const Gpu& g, const ROp& op) {
    ROpCost c;
    c.flops = static_cast<double>(op.flops);
    for (int tile = 0; tile < op.tiles; ++tile) c.l2_read += tile_in_bytes(op, tile);
    if (const auto* p = std::get_if<MatmulParams>(&op.params))
        c.dram_write = double(p->batches) * p->M * p->N * dtype_size(op.dtypes.back());
    else if (const auto* w = std::get_if<WindowParams>(&op.params))
        c.dram_write = double(anvil_conv_k_splits(*w)) * w->N * w->O * w->OH * w->OW * dtype_size(op.dtypes.back());
    // Alone, an rOp's epilogues are straight-line (far below the emitter's limit).
    std::set<std::string> straight;
    for (const AnvilEpilogue* e : {&op.epilogue, &op.row_epilogue})
        if (e->nsteps != 0) straight.insert(epilogue_key(*e));
    if (c.dram_write > 0) {
        const double values = c.dram_write / dtype_size(op.dtypes.back());
        c.epilogue_instructions = epilogue_instructions(op, values, straight);
        c.epilogue_rounds = epilogue_rounds_per_value(op, straight) * values;
    }
    c.tile_s = tile_seconds(g, op, c);
    return c;
}

std::vector<ROpCost> tile_costs_in_order(const TileGraph& tg, const Gpu& g) {
    Schedule s;
    s.gpu = g;
    s.tiles = tg;
    for (size_t r = 0; r < tg.rops.size(); ++r) s.tasks.push_back(Task{static_cast<int>(r), 0, {}, {}, {}});
    std::vector<ROpCost> costs = traffic(s);
    for (size_t r = 0; r < tg.rops.size(); ++r) costs[r].tile_s = tile_seconds(g, tg.rops[r], costs[r]);
    return costs;
}

std::vector<double> tile_seconds_in_order(const TileGraph& tg, const Gpu& g) {
    std::vector<double> out;
    for (const ROpCost& c : tile_costs_in_order(tg, g)) out.push_back(c.tile_s);
    return out;
}

std::string cost_key(const ROp& op) {
    std::ostringstream o;
    o << task_kind_name(op.kind) << " ";
    for (size_t i = 0; i < op.dtypes.size(); ++i) o << (i ? "," : "") << dtype_name(op.dtypes[i]);
    if (op.kind == TaskKind::matmul) {
        const auto& p = std::get<MatmulParams>(op.params);
        if (p.algo == ANVIL_MM_GEMV) o << " gemv BN=" << p.bn;
        else o << algo_tag(p.algo) << p.bm << "x" << p.bn << "x" << p.bk;
        o << " M=" << p.M << " N=" << p.N << " K=" << p.K;
        if (p.batches != 1) o << " batches=" << p.batches;
        // Which axis of each operand is contiguous decides how tiles load it.
        o << " A=" << (p.a_sk == 1 ? "mk" : "km") << " B=" << (p.b_sn == 1 ? "kn" : "nk");
        if (p.a_norm) o << " a_norm=" << p.a_norm;
    } else if (op.kind == TaskKind::conv2d) {
        const auto& p = std::get<WindowParams>(op.params);
        o << algo_tag(p.algo) << p.bm << "x" << p.bn << "x" << p.bk << " M=" << int64_t{p.OH} * p.OW << " N=" << p.Og
          << " K=" << anvil_conv_k_len(p);
        if (p.k_split > 1) o << " split=" << p.k_split;
    } else {
        int code = 0;  // which function of the kind
        if (const auto* e = std::get_if<EwParams>(&op.params)) code = e->op;
        if (const auto* r = std::get_if<RowParams>(&op.params)) code = r->op == ANVIL_ROW_SPLIT_NORM ? 100 * (r->norm_op + 1) + r->op : r->op;
        if (const auto* w = std::get_if<WindowParams>(&op.params)) code = w->op;
        o << " op=" << code << " tiles=" << op.tiles << " flops=" << op.flops;
    }
    // Fused work by what it does, not by which nodes: identical layers share keys.
    auto steps = [&](const char* what, const AnvilEpilogue& e) {
        if (e.nsteps == 0) return;
        o << " " << what << "=";
        for (int k = 0; k < e.nsteps; ++k) o << (k ? "," : "") << e.steps[k].op;
    };
    steps("epi", op.epilogue);
    if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->row_op != ANVIL_MM_ROW_NONE)
        o << " row=" << p->row_op;
    steps("post", op.row_epilogue);
    return o.str();
}

int blocks_per_sm(const Gpu& gpu, int threads, int smem) {
    return occupancy(gpu, KernelUsage{threads, 0, smem}).blocks_per_sm;
}

int megakernel_blocks_per_sm(const TileGraph& tg, const Gpu& gpu) {
    int smem = 0;
    for (const ROp& op : tg.rops) smem = std::max(smem, tile_smem_bytes(op, gpu));
    return megakernel_blocks_per_sm(smem, gpu);
}

int megakernel_blocks_per_sm(int smem, const Gpu& gpu) {
    const int want = kCudaCoreBlocksPerSm;
    const KernelUsage usage{256, register_cap(gpu, 256, want), smem + kMegakernelSmemExtra};
    return std::max(1, std::min(want, occupancy(gpu, usage).blocks_per_sm));
}

void play(const Gpu& g, const Timeline& tl, Prediction& p) {
    ANVIL_CHECK(g.sm_count > 0, "GPU '" + g.name + "' has no SMs");
    const size_t n = tl.rop.size();
    constexpr int kUnplayed = -2, kManySms = -1;
    std::vector<int> counter_sm(tl.members.size(), kUnplayed);
    std::vector<double> counter_done(tl.members.size(), 0);
    p.start_s.assign(n, 0);
    p.end_s.assign(n, 0);
    p.sm.assign(n, 0);
    p.sm_busy_s.assign(g.sm_count, 0);
    p.launch_start_s.clear();
    p.launch_end_s.clear();
    p.cross_sm_deps = 0;
    std::vector<int> block_of(n, 0);
    const int per_sm = std::max(1, tl.blocks_per_sm);
    const size_t slots = static_cast<size_t>(g.sm_count) * per_sm;
    double now = 0;
    for (const Launch& launch : tl.launches) {
        const double begin = now + g.launch_overhead_s;
        p.launch_start_s.push_back(begin);
        // An SM holds blocks_per_sm blocks at once, each slot its own
        // timeline (slot i on SM i mod sm_count). A persistent launch (at
        // most that many blocks per SM) keeps block b in slot b; a wider one
        // puts each block into the slot that frees first. A task shares the
        // SM's rates with the co-resident blocks busy when it starts, but
        // not its exposed latency (co_resident_seconds).
        const bool persistent = launch.queues.size() <= slots;
        std::vector<double> slot_free(slots, begin);
        auto busy_partners = [&](size_t slot, double at) {
            int k = 0;
            for (size_t o = slot % g.sm_count; o < slots; o += g.sm_count) k += o != slot && slot_free[o] > at;
            return k;
        };
        std::vector<int> tasks;
        for (size_t b = 0; b < launch.queues.size(); ++b)
            for (int t : launch.queues[b]) {
                block_of[t] = static_cast<int>(b);
                tasks.push_back(t);
            }
        std::sort(tasks.begin(), tasks.end());  // dependencies point backwards: play in global order
        // Joined tasks (in no queue): each is played as soon as its joins
        // all are, on the block of the one that ends last.
        std::vector<std::vector<int>> completes;  // per task: the joined tasks it may complete
        std::vector<int> joins_left;
        if (!tl.joins.empty()) {
            completes.resize(n);
            joins_left.assign(n, 0);
            for (size_t r = 0; r < n; ++r)
                for (int j : tl.joins[r]) {
                    completes[j].push_back(static_cast<int>(r));
                    ++joins_left[r];
                }
        }
        std::vector<int> slot_of_block(launch.queues.size(), -1);
        double end = begin;
        std::vector<int> pending;
        for (size_t i = 0; i < tasks.size() || !pending.empty();) {
            int t;
            bool joined = false;
            if (!pending.empty()) {
                t = pending.back();
                pending.pop_back();
                joined = true;
                int last = tl.joins[t].front();
                for (int j : tl.joins[t])
                    if (p.end_s[j] > p.end_s[last]) last = j;
                block_of[t] = block_of[last];
            } else {
                t = tasks[i++];
            }
            const int b = block_of[t];
            int& slot = slot_of_block[b];
            if (slot < 0)  // a block is placed when it starts: statically, or in the slot that frees first
                slot = persistent ? b : static_cast<int>(std::min_element(slot_free.begin(), slot_free.end()) - slot_free.begin());
            const int sm = slot % g.sm_count;
            double ready = slot_free[slot];
            if (joined)  // right after its last join (the block's later tasks may have been played already)
                for (int j : tl.joins[t]) ready = std::max(ready, p.end_s[j]);
            for (int k : tl.waits[t]) {
                // A counter is complete when its last member has published
                // (members precede their waiters: played already); its
                // arrival crosses SMs unless every member ran on this one.
                if (counter_sm[k] == kUnplayed) {
                    counter_sm[k] = p.sm[tl.members[k].front()];
                    for (int m : tl.members[k]) {
                        counter_done[k] = std::max(counter_done[k], p.end_s[m]);
                        if (p.sm[m] != counter_sm[k]) counter_sm[k] = kManySms;
                    }
                }
                const bool crosses = counter_sm[k] != sm;
                p.cross_sm_deps += crosses;
                ready = std::max(ready, counter_done[k] + (crosses ? g.sync_latency_s : 0));
            }
            ready += poll_wait_seconds(g, tl.poll_rounds[t]);
            const int r = tl.rop[t];
            const int share = 1 + busy_partners(slot, ready);
            const double busy = co_resident_seconds(tl.tile_s[r], tl.work_s[r], share) + g.task_overhead_s;
            p.sm[t] = sm;
            p.start_s[t] = ready;
            p.end_s[t] = ready + busy;
            slot_free[slot] = p.end_s[t];
            p.sm_busy_s[sm] += busy / share;
            end = std::max(end, p.end_s[t]);
            if (!completes.empty())
                for (int r : completes[t])
                    if (--joins_left[r] == 0) pending.push_back(r);
        }
        p.launch_end_s.push_back(end);
        now = end;
    }
    p.total_s = now;
    double busy = 0;
    for (double b : p.sm_busy_s) busy += b;
    p.sm_idle_share = p.total_s > 0 ? 1.0 - busy / (g.sm_count * p.total_s) : 0;
}

Timeline schedule_timeline(const Schedule& s) {
    Timeline tl;
    SyncCounters sync = sync_counters(s);
    tl.launches = s.launches;
    for (const Task& t : s.tasks) tl.rop.push_back(t.rop);
    // Warp 0 polls up to 32 counters at once: one round trip each 32.
    for (const auto& w : sync.waits) tl.poll_rounds.push_back(std::ceil(static_cast<double>(w.size()) / 32.0));
    tl.waits = std::move(sync.waits);
    tl.members = std::move(sync.members);
    bool any_joins = false;
    for (const Task& t : s.tasks) any_joins = any_joins || !t.joins.empty();
    if (any_joins)
        for (const Task& t : s.tasks) tl.joins.push_back(t.joins);
    // A plain launch's blocks share an SM as far as the megakernel's could.
    tl.blocks_per_sm = std::max(s.blocks_per_sm, megakernel_blocks_per_sm(s.tiles, s.gpu));
    return tl;
}

Prediction predict(const Schedule& s) {
    const Gpu& g = s.gpu;
    ANVIL_CHECK(g.sm_count > 0, "GPU '" + g.name + "' has no SMs");
    Prediction p;
    p.rops = traffic(s);
    Timeline tl = schedule_timeline(s);
    for (size_t r = 0; r < p.rops.size(); ++r) {
        p.rops[r].tile_s = tile_seconds(g, s.tiles.rops[r], p.rops[r]);
        tl.tile_s.push_back(p.rops[r].tile_s);
        tl.work_s.push_back(p.rops[r].work_s);
        p.dram_bytes += p.rops[r].dram_read + p.rops[r].dram_write;
        p.l2_bytes += p.rops[r].l2_read;
        p.flops += p.rops[r].flops;
    }
    play(g, tl, p);
    return p;
}

}  // namespace anvil

namespace anvil {

double split_k_reduce_tile_seconds(const Gpu& g, const ROp& reduce) {
    const auto& p = std::get<RowParams>(reduce.params);
    ANVIL_CHECK(p.op == ANVIL_ROW_SPLIT_SUM || p.op == ANVIL_ROW_SPLIT_NORM,
                "split_k_reduce_tile_seconds: rOp '" + reduce.name + "' is no split-K reduce");
    // Outputs, and the partials each adds (a split sum's row is one output's).
    const bool norm = p.op == ANVIL_ROW_SPLIT_NORM;
    const double outputs = static_cast<double>(p.rows) * (norm ? p.row_len : 1);
    const double terms = norm ? p.k_split : static_cast<double>(p.row_len);
    ROpCost c;
    c.flops = static_cast<double>(reduce.flops);
    c.l2_read = outputs * terms * dtype_size(reduce.dtypes[0]);
    if (norm && p.norm_op != ANVIL_ROW_SOFTMAX)  // gamma and beta, once per tile
        c.l2_read += reduce.tiles * static_cast<double>(p.row_len) * (dtype_size(reduce.dtypes[2]) + dtype_size(reduce.dtypes[3]));
    c.dram_write = outputs * dtype_size(reduce.dtypes[1]);
    if (norm && p.pre_off >= 0) c.dram_write += outputs * dtype_size(static_cast<DType>(p.mid_dtype));
    std::set<std::string> straight;
    for (const AnvilEpilogue* e : {&reduce.epilogue, &reduce.row_epilogue})
        if (e->nsteps != 0) straight.insert(epilogue_key(*e));
    c.epilogue_instructions = epilogue_instructions(reduce, outputs, straight);
    if (norm) c.epilogue_rounds = epilogue_rounds_per_value(reduce, straight) * outputs;
    return tile_seconds(g, reduce, c);
}

}  // namespace anvil
