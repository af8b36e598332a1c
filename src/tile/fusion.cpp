// Fusion at the register level: a producer rOp (elementwise, matmul,
// conv2d, a direct window (depthwise conv, pools), a row-wise op (softmax,
// the norms, the reductions and global_avgpool), or a batchnorm) absorbs
// the chain of pointwise nodes that follows it as an epilogue program,
// applied to each value in registers before the one store; the
// intermediates of the chain are never written.
//
// A node joins the chain of the value v when v has exactly one reader (an
// rOp, through any reshape of v), is no graph output, is a float, and the
// node reads v itself with the identity index map (same shape: a broadcast
// v would be recomputed per use). The chain stops where the program would
// exceed ANVIL_EPI_MAX_STEPS steps or ANVIL_EPI_MAX_INPUTS inputs: the rest
// becomes a group of its own, never an error.
//
// At the shared-memory level, a matmul (with its chain) absorbs the
// softmax, layernorm or rmsnorm over its rows when a tile of it can hold
// whole rows (N <= ANVIL_MM_ROW_MAX_BN and the finished tile fits the
// static shared memory; its tile is widened to BN >= N, and the variants
// stage offers only such tiles, CUDA-core and tensor-core): the finished
// tile is normalised in shared memory, a warp per row, and the pointwise
// chain after the row op is a second epilogue applied before the store.
// Where no such tile fits, or FusionOptions::row_fusion_pays says the two
// rOps apart are faster, the row op stays an rOp of its own (and heads its
// own chain).
//
// The fused rOp takes the place of the last node of its group: everything
// the group reads is produced before that node, and nothing in between
// reads the intermediates.
#include "tile/fusion.h"

#include <algorithm>
#include <optional>
#include <set>

#include "anvil/error.h"
#include "frontend/op_table.h"
#include "tile/verify_tile_graph.h"
#include "target/occupancy.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

static_assert(static_cast<int>(DType::f32) == ANVIL_DT_F32 && static_cast<int>(DType::f16) == ANVIL_DT_F16 &&
                  static_cast<int>(DType::bf16) == ANVIL_DT_BF16 && static_cast<int>(DType::i32) == ANVIL_DT_I32,
              "AnvilDTypeCode must equal anvil::DType");

namespace {

// The AnvilEwOp of a pointwise node, or -1.
int pointwise_code(const NodeInfo& n) { return ew_code(n.op, n.attrs); }

// An epilogue under construction: steps over the value computed so far and
// strided views of other tensors over the output's index space.
struct Program {
    Shape shape;  // the output's
    std::vector<AnvilEpiStep> steps;
    std::vector<VertexId> inputs;
    std::vector<Strides> strides;  // per input, over `shape`
    int value = ANVIL_EPI_VALUE(0);  // the reference holding the chain's current value

    // The reference of tensor u viewed with `st`, adding it as an input if new.
    int input(VertexId u, const Strides& st) {
        for (size_t i = 0; i < inputs.size(); ++i)
            if (inputs[i] == u && strides[i] == st) return ANVIL_EPI_INPUT(static_cast<int>(i));
        inputs.push_back(u);
        strides.push_back(st);
        return ANVIL_EPI_INPUT(static_cast<int>(inputs.size() - 1));
    }
    int step(int op, int a, int b, float scalar = 0) {
        steps.push_back({op, a, b, scalar});
        return value = ANVIL_EPI_VALUE(static_cast<int>(steps.size()));
    }
    bool fits() const {
        return steps.size() <= ANVIL_EPI_MAX_STEPS && inputs.size() <= ANVIL_EPI_MAX_INPUTS;
    }
};

// The tile of matmul rOp `op` that applies row op `code` to whole rows,
// or nothing when no such tile fits: its own tile when that already holds
// whole rows, else a CUDA-core tile BN = N (rounded up to the tile step)
// wide, BM and BK as decompose chose them or halved until the tile fits
// the tile budget (tile_smem_budget). The variants stage offers the other whole-row
// shapes, tensor-core ones included (schedule/variants.cpp).
std::optional<MatmulParams> whole_row_tile(const ROp& op, int code, const Gpu& gpu) {
    MatmulParams p = std::get<MatmulParams>(op.params);
    if (p.algo == ANVIL_MM_GEMV || p.a_rms || p.N > ANVIL_MM_ROW_MAX_BN) return std::nullopt;
    const int limit = tile_smem_budget(gpu) - ANVIL_SMALL_TILE_SMEM_BYTES;  // the reductions' words beside it
    auto fits = [&](const MatmulParams& t) {
        return anvil_matmul_tile_smem_bytes(t.algo, code, t.bm, t.bn, t.bk, t.a_norm, 0, t.stages) <= limit;
    };
    if (p.tiles_n == 1 && p.N <= p.bn && fits(p)) return p;
    p.algo = ANVIL_MM_TILED;
    p.bn = anvil_mm_row_bn(p.N, ANVIL_GEMM_TILE_STEP);
    p.bk = std::max(p.bk, 8);
    while (!fits(p) && (p.bm > ANVIL_GEMM_TILE_STEP || p.bk > 8)) {
        if (p.bk > 8) p.bk /= 2;
        else p.bm /= 2;
    }
    if (!fits(p)) return std::nullopt;
    p.tiles_m = static_cast<int>((p.M + p.bm - 1) / p.bm);
    p.tiles_n = 1;
    return p;
}

struct Fuser {
    const TileGraph& tg;
    std::vector<std::vector<int>> rops_of;  // vertex -> the rOps that write it
    std::vector<std::set<int>> readers;     // storage vertex -> the rOps that read it (through any alias)
    std::vector<bool> kept;                 // storage vertex -> it (or an alias) is a graph output

    explicit Fuser(const TileGraph& t) : tg(t) {
        const size_t n = tg.buffers.size();
        rops_of.resize(n);
        readers.resize(n);
        kept.assign(n, false);
        for (size_t r = 0; r < tg.rops.size(); ++r) {
            rops_of[tg.rops[r].node].push_back(static_cast<int>(r));
            for (VertexId v : tg.rops[r].reads) readers[tg.buffers[v].storage].insert(static_cast<int>(r));
        }
        for (const std::string& name : tg.outputs) kept[buffer_of(tg, name).storage] = true;
    }

    const TensorBuffer& buf(VertexId v) const { return tg.buffers[v]; }
    bool single_rop(VertexId v) const { return rops_of[v].size() == 1; }

    // v's only reader, if v may stay unstored: -1 when v is a graph output
    // (or a reshape of one), an i32 (its stores truncate), or read by
    // several rOps.
    int reader_of(VertexId v) const {
        if (buf(v).storage != v || kept[v] || !is_float(buf(v).dtype) || readers[v].size() != 1) return -1;
        return *readers[v].begin();
    }

    // The rOp that could absorb the node after v, or -1: v's only reader,
    // reading v itself elementwise with the identity map.
    int next_of(VertexId v) const {
        const int r = reader_of(v);
        if (r < 0) return -1;
        const ROp& c = tg.rops[r];
        const NodeInfo& n = tg.nodes[c.node];
        if (!single_rop(c.node) || buf(c.node).shape != buf(v).shape) return -1;
        const bool pointwise = c.kind == TaskKind::elementwise && pointwise_code(n) >= 0;
        const bool affine = c.kind == TaskKind::channel && op_def(n.op).map == IndexMap::channel && n.operands[0] == v;
        if (!pointwise && !affine) return -1;
        for (size_t i = 0; i < n.operands.size(); ++i) {
            const VertexId u = n.operands[i];
            // Another view of v's bytes would read what is never written.
            if (u != v && buf(u).storage == v) return -1;
            if (affine && i > 0 && u == v) return -1;
        }
        return r;
    }

    // The AnvilMmRowOp that matmul rOp mm can apply in shared memory for
    // rOp c, the only reader of its result v: a softmax, layernorm or
    // rmsnorm over v's last axis when a tile of mm can hold whole rows
    // (whole_row_tile); else ANVIL_MM_ROW_NONE.
    int row_op_of(const ROp& mm, VertexId v, const ROp& c, const Gpu& gpu) const {
        const NodeInfo& n = tg.nodes[c.node];
        if (c.kind != TaskKind::rowwise || !single_rop(c.node) || n.operands[0] != v) return ANVIL_MM_ROW_NONE;
        const int rank = static_cast<int>(buf(v).shape.size());
        const int code = op_def(n.op).mm_row_code;
        if (code == ANVIL_MM_ROW_NONE) return ANVIL_MM_ROW_NONE;
        if (row_axes(n.op, n.attrs, rank) != std::vector<int>{rank - 1}) return ANVIL_MM_ROW_NONE;
        // gamma or beta as another view of v's bytes would read what is never written.
        for (size_t i = 1; i < n.operands.size(); ++i)
            if (buf(n.operands[i]).storage == v) return ANVIL_MM_ROW_NONE;
        return whole_row_tile(mm, code, gpu) ? code : ANVIL_MM_ROW_NONE;
    }

    // Extends the register chain after v (updated to its last node) into
    // program p, appending the absorbed rOps to `members`.
    void chain(VertexId& v, Program& p, std::vector<int>& members, std::vector<bool>& absorbed) const {
        for (int c = next_of(v); c >= 0 && !absorbed[c]; c = next_of(v)) {
            Program longer = p;
            append(longer, v, tg.rops[c]);
            if (!longer.fits()) break;
            p = std::move(longer);
            members.push_back(c);
            absorbed[c] = true;
            v = tg.rops[c].node;
        }
    }

    // Appends node c's work on p.value to the program.
    void append(Program& p, VertexId v, const ROp& c) const {
        const NodeInfo& n = tg.nodes[c.node];
        if (op_def(n.op).map == IndexMap::channel) {
            // (x - mean) / sqrt(var + eps) * scale + bias, the parameters
            // indexed by dim 1 of the output.
            Strides st(p.shape.size(), 0);
            st[1] = 1;
            const int scale = p.input(n.operands[1], st), bias = p.input(n.operands[2], st);
            const int mean = p.input(n.operands[3], st), var = p.input(n.operands[4], st);
            const float eps = static_cast<float>(n.attrs.get_float("eps"));
            const int centred = p.step(ANVIL_EW_SUB, p.value, mean);
            p.step(ANVIL_EW_ADD, var, ANVIL_EPI_SCALAR, eps);
            const int sd = p.step(ANVIL_EW_SQRT, p.value, ANVIL_EPI_NONE);
            p.step(ANVIL_EW_DIV, centred, sd);
            p.step(ANVIL_EW_MUL, p.value, scale);
            p.step(ANVIL_EW_ADD, p.value, bias);
            return;
        }
        int refs[2] = {ANVIL_EPI_NONE, ANVIL_EPI_NONE};
        for (size_t i = 0; i < n.operands.size() && i < 2; ++i) {
            const VertexId u = n.operands[i];
            refs[i] = u == v ? p.value : p.input(u, broadcast_strides(buf(u).shape, p.shape));
        }
        p.step(pointwise_code(n), refs[0], refs[1]);
    }

    // Whether rOp r can start a group, and with which program (a batchnorm
    // head becomes a copy of its input followed by its affine map).
    bool head(int r, Program& p) const {
        const ROp& op = tg.rops[r];
        if (!single_rop(op.node) || !is_float(buf(op.node).dtype)) return false;
        p = Program{};
        p.shape = buf(op.node).shape;
        switch (op.kind) {
            case TaskKind::elementwise:
            case TaskKind::matmul:
            case TaskKind::conv2d:
            case TaskKind::window:
            case TaskKind::rowwise: return true;
            case TaskKind::channel: append(p, tg.nodes[op.node].operands[0], op); return true;
            default: return false;
        }
    }

    AnvilEpilogue lower(const Program& p) const;
    void absorb_row_op(ROp& op, const ROp& row, int code, const Gpu& gpu) const;
    void add_row_epilogue(ROp& op, const std::vector<int>& members, const Program& p) const;
    void take_members(ROp& op, const std::vector<int>& members, const std::vector<VertexId>& inputs) const;
    ROp fused_rop(int head, const std::vector<int>& members, const Program& p) const;
};

// The program as the device reads it. Size-1 dims are dropped and
// adjacent dims merged where every view allows, so the device divides the
// output offset by as few extents as possible.
AnvilEpilogue Fuser::lower(const Program& p) const {
    AnvilEpilogue e{};
    e.nsteps = static_cast<int>(p.steps.size());
    e.ninputs = static_cast<int>(p.inputs.size());
    for (size_t k = 0; k < p.steps.size(); ++k) e.steps[k] = p.steps[k];
    Shape shape;
    std::vector<Strides> st(p.inputs.size());
    for (size_t d = 0; d < p.shape.size(); ++d) {
        if (p.shape[d] == 1) continue;
        bool merge = !shape.empty();
        for (size_t i = 0; i < st.size() && merge; ++i) merge = st[i].back() == p.strides[i][d] * p.shape[d];
        if (merge) {
            shape.back() *= p.shape[d];
            for (size_t i = 0; i < st.size(); ++i) st[i].back() = p.strides[i][d];
        } else {
            shape.push_back(p.shape[d]);
            for (size_t i = 0; i < st.size(); ++i) st[i].push_back(p.strides[i][d]);
        }
    }
    if (shape.empty()) {  // one element
        shape.push_back(1);
        for (Strides& s : st) s.push_back(0);
    }
    e.rank = static_cast<int>(shape.size());
    for (int d = 0; d < e.rank; ++d) e.shape[d] = shape[d];
    for (size_t i = 0; i < p.inputs.size(); ++i) {
        const TensorBuffer& b = buf(p.inputs[i]);
        e.in_dtype[i] = static_cast<int>(b.dtype);
        e.in_off[i] = b.offset;
        for (int d = 0; d < e.rank; ++d) e.in_stride[i][d] = st[i][d];
    }
    return e;
}

// The head rOp writing the last member's output after the program.
// `op` takes over the work of the rOps `members` and reads `inputs` too.
void Fuser::take_members(ROp& op, const std::vector<int>& members, const std::vector<VertexId>& inputs) const {
    for (int m : members) {
        const ROp& r = tg.rops[m];
        op.name += "+" + buf(r.node).name;
        op.fused.push_back(r.node);
        op.flops += r.flops;
    }
    for (VertexId u : inputs)
        if (std::find(op.reads.begin(), op.reads.end(), u) == op.reads.end()) op.reads.push_back(u);
}

ROp Fuser::fused_rop(int head, const std::vector<int>& members, const Program& p) const {
    ROp op = tg.rops[head];
    const VertexId last = tg.rops[members.back()].node;
    const TensorBuffer& out = buf(last);
    if (op.kind == TaskKind::channel) {
        // A copy of x; the batchnorm is the program's first steps.
        const auto& c = std::get<ChannelParams>(op.params);
        const TensorBuffer& x = buf(tg.nodes[op.node].operands[0]);
        const Strides st = contiguous_strides(x.shape);
        EwParams e{};
        e.op = ANVIL_EW_COPY;
        e.rank = static_cast<int>(x.shape.size());
        e.ninputs = 1;
        e.numel = c.numel;
        e.tile_elems = c.tile_elems;
        e.in_off[0] = x.offset;
        for (int d = 0; d < e.rank; ++d) {
            e.shape[d] = x.shape[d];
            e.out_stride[d] = e.in_stride[0][d] = st[d];
        }
        op.kind = TaskKind::elementwise;
        op.params = e;
        op.dtypes = {out.dtype, x.dtype, DType::f32};
        op.reads = {tg.nodes[op.node].operands[0]};
    }
    switch (op.kind) {
        case TaskKind::elementwise: std::get<EwParams>(op.params).out_off = out.offset; op.dtypes[0] = out.dtype; break;
        case TaskKind::matmul: std::get<MatmulParams>(op.params).c_off = out.offset; op.dtypes[2] = out.dtype; break;
        case TaskKind::rowwise: std::get<RowParams>(op.params).out_off = out.offset; op.dtypes[1] = out.dtype; break;
        case TaskKind::conv2d:
        case TaskKind::window: std::get<WindowParams>(op.params).y_off = out.offset; op.dtypes[3] = out.dtype; break;
        default: throw InternalError("fuse: rOp '" + op.name + "' cannot head a group");
    }
    op.node = last;
    op.fusion = FusionLevel::registers;
    op.epilogue = lower(p);
    take_members(op, members, p.inputs);
    return op;
}

// The matmul `op` also applies row op `code` (the rOp `row`) to its
// finished tiles and writes the row op's output.
void Fuser::absorb_row_op(ROp& op, const ROp& row, int code, const Gpu& gpu) const {
    auto& p = std::get<MatmulParams>(op.params);
    const TensorBuffer& out = buf(row.node);
    p = *whole_row_tile(op, code, gpu);
    op.tiles = static_cast<int>(p.batches * p.tiles_m * p.tiles_n);
    p.row_op = code;
    p.c_off = out.offset;
    p.gamma_off = p.beta_off = -1;
    if (code != ANVIL_MM_ROW_SOFTMAX) {
        // Read as the norm's rOp reads them: contiguous over the row.
        const auto& r = std::get<RowParams>(row.params);
        const std::vector<VertexId>& ins = tg.nodes[row.node].operands;
        p.eps = r.eps;
        p.gamma_off = r.gamma_off;
        p.gamma_dtype = static_cast<int>(row.dtypes[2]);
        if (code == ANVIL_MM_ROW_LAYERNORM) {
            p.beta_off = r.beta_off;
            p.beta_dtype = static_cast<int>(row.dtypes[3]);
        }
        for (size_t i = 1; i < ins.size(); ++i)
            if (std::find(op.reads.begin(), op.reads.end(), ins[i]) == op.reads.end()) op.reads.push_back(ins[i]);
    }
    op.dtypes[2] = out.dtype;
    op.node = row.node;
    op.name += "+" + out.name;
    op.fused.push_back(row.node);
    op.flops += row.flops;
    op.fusion = FusionLevel::shared;
}

// The pointwise chain after a fused row op, applied to the normalised rows
// before the store; the matmul then writes the chain's last output.
void Fuser::add_row_epilogue(ROp& op, const std::vector<int>& members, const Program& p) const {
    auto& mm = std::get<MatmulParams>(op.params);
    const VertexId last = tg.rops[members.back()].node;
    const TensorBuffer& out = buf(last);
    mm.c_off = out.offset;
    op.dtypes[2] = out.dtype;
    op.node = last;
    op.row_epilogue = lower(p);
    take_members(op, members, p.inputs);
}

}  // namespace

TileGraph fuse(const TileGraph& tg, const Gpu& gpu, const FusionOptions& options) {
    TileGraph out = tg;
    // A tile graph built by hand, without decompose's node records, has
    // nothing to fuse by.
    if ((!options.registers && !options.shared) || tg.nodes.size() != tg.buffers.size()) return out;
    Fuser f(tg);

    const int n = static_cast<int>(tg.rops.size());
    std::vector<int> last_of(n, -1);  // rOp -> the last member of the group it heads
    std::vector<bool> absorbed(n, false);
    std::vector<ROp> fused(n);
    for (int r = 0; r < n; ++r) {
        Program p;
        if (absorbed[r] || !f.head(r, p)) continue;
        std::vector<int> members;
        VertexId v = tg.rops[r].node;
        if (options.registers) f.chain(v, p, members, absorbed);
        ROp group = members.empty() ? tg.rops[r] : f.fused_rop(r, members, p);
        if (options.shared && group.kind == TaskKind::matmul) {
            const int c = f.reader_of(v);
            const int code = c >= 0 && !absorbed[c] ? f.row_op_of(group, v, tg.rops[c], gpu) : ANVIL_MM_ROW_NONE;
            if (code != ANVIL_MM_ROW_NONE) {
                ROp whole = group;
                f.absorb_row_op(whole, tg.rops[c], code, gpu);
                std::vector<bool> taken = absorbed;
                taken[c] = true;
                // Pointwise nodes after the row op continue the chain.
                VertexId w = tg.rops[c].node;
                Program post;
                post.shape = f.buf(w).shape;
                std::vector<int> after;
                if (options.registers) f.chain(w, post, after, taken);
                if (!after.empty()) f.add_row_epilogue(whole, after, post);
                // Fused, or the matmul's group and the row op's (with the same chain) apart.
                const bool pays = !options.row_fusion_pays ||
                                  options.row_fusion_pays(whole, group, after.empty() ? tg.rops[c] : f.fused_rop(c, after, post));
                if (pays) {
                    group = std::move(whole);
                    absorbed = std::move(taken);
                    members.push_back(c);
                    members.insert(members.end(), after.begin(), after.end());
                }
            }
        }
        if (members.empty()) continue;
        fused[r] = std::move(group);
        last_of[r] = members.back();
    }

    // Each group in the place of its last member.
    std::vector<int> head_of_last(n, -1);
    for (int r = 0; r < n; ++r)
        if (last_of[r] >= 0) head_of_last[last_of[r]] = r;
    out.rops.clear();
    for (int r = 0; r < n; ++r) {
        if (head_of_last[r] >= 0)
            out.rops.push_back(std::move(fused[head_of_last[r]]));
        else if (!absorbed[r] && last_of[r] < 0)
            out.rops.push_back(tg.rops[r]);
    }
    return out;
}

}  // namespace anvil
