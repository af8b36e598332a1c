// decompose: Graph -> TileGraph. Lays every tensor out in one arena and cuts
// every node into rOperators of one rTask kind each. Reshape is free (its
// result aliases its operand's storage; one that changes dtype is a copy), and so is a slice that is a
// contiguous run of its operand, and a transpose that transpose_views made a view (its matmul's strides), and so is a
// slice read only by matmuls (their strides) and a concat of matmuls made only for it (each stores its part in place);
// another concat becomes one strided copy per operand; everything else is one rOperator (global_avgpool a row-wise mean
// over H and W, batchnorm a per-channel affine, conv2d an implicit GEMM or,
// for thin groups, a direct window).
#include "tile/decompose.h"

#include <algorithm>

#include "base/reshape_strides.h"
#include "frontend/norm_fold.h"
#include "frontend/op_table.h"
#include "frontend/transpose_views.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

namespace {

constexpr int64_t kAlign = 256;  // bytes: every tensor starts on a fresh cache-line group

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Whether row op `code` writes one value per row (else one per input element).
bool reduces_rows(int code) { return code == ANVIL_ROW_SUM || code == ANVIL_ROW_MEAN || code == ANVIL_ROW_MAX; }

struct Builder {
    const Graph& graph;
    const TileSizes& sizes;
    TileGraph tg;
    std::vector<bool> allocated;  // per vertex: its own bytes are in the arena

    const TensorBuffer& buf(VertexId v) const { return tg.buffers[v]; }

    void layout() {
        tg.buffers.resize(graph.size());
        tg.nodes.resize(graph.size());
        for (VertexId v : graph.topological_order()) {
            const Value& val = graph.value(v);
            TensorBuffer& b = tg.buffers[v];
            b.name = val.name;
            b.dtype = val.dtype;
            b.shape = val.shape;
            b.bytes = numel(val.shape) * dtype_size(val.dtype);
            b.storage = v;
            NodeInfo& n = tg.nodes[v];
            n.is_node = val.role == Role::node;
            if (n.is_node) {
                n.op = val.op;
                n.attrs = val.attrs;
                n.operands = graph.operands(v);
            }
            if (auto at = view_offset(v)) {
                const TensorBuffer& src = tg.buffers[graph.operands(v)[0]];
                b.offset = src.offset + *at;
                b.storage = src.storage;
                b.alias = true;
                continue;
            }
            if (auto c = stored_in_concat(v)) {  // its bytes lie inside the concat's, allocated first
                allocate(*c);
                b.offset = tg.buffers[*c].offset + part_offset(*c, v);
                b.storage = *c;
                b.alias = true;
                continue;
            }
            allocate(v);
        }
    }

    void allocate(VertexId v) {
        if (allocated.size() < graph.size()) allocated.assign(graph.size(), false);
        if (allocated[v]) return;
        allocated[v] = true;
        TensorBuffer& b = tg.buffers[v];
        const Value& val = graph.value(v);
        b.bytes = numel(val.shape) * dtype_size(val.dtype);
        b.storage = v;
        b.offset = tg.arena_bytes;
        tg.arena_bytes += ceil_div(std::max<int64_t>(b.bytes, 1), kAlign) * kAlign;
    }

    bool is_output(VertexId v) const {
        return std::find(graph.outputs.begin(), graph.outputs.end(), v) != graph.outputs.end();
    }

    bool is_node(VertexId v, Op op) const {
        const Value& val = graph.value(v);
        return val.role == Role::node && val.op == op;
    }

    // A concat whose every part is a matmul computed only for it, once, in
    // its dtype: each matmul stores its result in place (its C strides are
    // the concat's), so the concat copies nothing and its readers wait for
    // the matmuls' tiles themselves (decode attention's scores of the cache
    // and of the new token, then its softmax).
    bool concat_store_view(VertexId c) const {
        if (!is_node(c, Op::concat)) return false;
        const std::vector<VertexId> parts = graph.operands(c);
        for (size_t k = 0; k < parts.size(); ++k) {
            const VertexId m = parts[k];
            if (!is_node(m, Op::matmul) || is_output(m) || graph.value(m).dtype != graph.value(c).dtype) return false;
            if (graph.consumers(m).size() != 1 || std::count(parts.begin(), parts.end(), m) != 1) return false;
        }
        return true;
    }

    // The store-view concat that matmul `m` writes into, if any.
    std::optional<VertexId> stored_in_concat(VertexId m) const {
        if (!is_node(m, Op::matmul)) return std::nullopt;
        const std::vector<VertexId> readers = graph.consumers(m);
        if (readers.size() != 1 || !concat_store_view(readers[0])) return std::nullopt;
        return readers[0];
    }

    // Bytes from the concat's start to where part `m` starts.
    int64_t part_offset(VertexId c, VertexId m) const {
        const Shape& shape = graph.value(c).shape;
        const int axis = *normalize_axis(graph.value(c).attrs.get_int("axis"), static_cast<int>(shape.size()));
        int64_t at = 0;
        for (VertexId part : graph.operands(c)) {
            if (part == m) break;
            at += graph.value(part).shape[axis];
        }
        return at * contiguous_strides(shape)[axis] * dtype_size(graph.value(c).dtype);
    }

    // A slice read only by matmuls (which take any strides) of an operand
    // laid out row-major, in its dtype, no output: the matmuls read it in
    // place (decode attention's probabilities of the cache and of the new
    // token), with its operand's strides. Also a slice that is no contiguous
    // run (a column range of many rows: concat_sibling_matmuls' q, k, v)
    // whose readers reach matmuls only through views that keep strides
    // (strided_readers): the heads' reshapes and transposes.
    bool slice_read_view(VertexId v) const {
        if (!is_node(v, Op::slice) || is_output(v)) return false;
        const VertexId in = graph.operands(v)[0];
        if (graph.value(in).dtype != graph.value(v).dtype) return false;
        if (graph.value(v).attrs.get_int("step") < 1) return false;
        if (layout_strides(in) != contiguous_strides(graph.value(in).shape)) return false;
        const std::vector<VertexId> readers = graph.consumers(v);
        if (readers.empty()) return false;
        bool matmuls = true;
        for (VertexId r : readers) matmuls = matmuls && is_node(r, Op::matmul);
        return matmuls || (!contiguous_run(v) && strided_readers(v, slice_strides(v)));
    }

    // The element strides of slice v's view of its (row-major) operand.
    Strides slice_strides(VertexId v) const {
        const auto [axis, b] = slice_axis_bounds(v);
        Strides st = contiguous_strides(graph.value(graph.operands(v)[0]).shape);
        st[axis] *= b.step;
        return st;
    }

    // Whether slice v is one contiguous run of its operand (step 1, every
    // dim before the axis 1: a column range of a batch-1 row).
    bool contiguous_run(VertexId v) const {
        const Shape& in = graph.value(graph.operands(v)[0]).shape;
        const auto [axis, b] = slice_axis_bounds(v);
        for (int d = 0; d < axis; ++d)
            if (in[d] != 1) return false;
        return b.step == 1 || b.len <= 1;
    }

    // Whether every reader of v, laid out with strides `st`, reads it
    // through them: a matmul, a transpose its matmuls read permuted (a read
    // view), or a reshape (same dtype, no output) whose strides over `st`
    // exist (reshape_strides) and whose own readers do. Such a v needs no
    // contiguous copy; any other reader (elementwise, rowwise, an output)
    // reads its operand row-major, and v is then a copy.
    bool strided_readers(VertexId v, const Strides& st) const {
        const std::vector<VertexId> readers = graph.consumers(v);
        if (readers.empty() || is_output(v)) return false;
        for (VertexId r : readers) {
            if (is_node(r, Op::matmul) || transpose_read_view(r)) continue;
            if (!is_node(r, Op::reshape) || is_output(r) || graph.value(r).dtype != graph.value(v).dtype) return false;
            const auto rs = reshape_strides(graph.value(v).shape, st, graph.value(r).shape);
            if (!rs || !strided_readers(r, *rs)) return false;
        }
        return true;
    }

    bool transpose_read_view(VertexId v) const {
        const Value& val = graph.value(v);
        return val.role == Role::node && val.op == Op::transpose && val.attrs.has(kTransposeViewAttr) &&
               val.attrs.get_string(kTransposeViewAttr) == kTransposeReadView;
    }

    // The slice's bounds along its axis in its operand.
    std::pair<int, SliceBounds> slice_axis_bounds(VertexId v) const {
        const Value& val = graph.value(v);
        const Shape& in = graph.value(graph.operands(v)[0]).shape;
        const int axis = *normalize_axis(val.attrs.get_int("axis"), static_cast<int>(in.size()));
        std::optional<int64_t> end;
        if (val.attrs.has("end")) end = val.attrs.get_int("end");
        return {axis, slice_bounds(in[axis], val.attrs.get_int("start"), end, val.attrs.get_int("step"))};
    }

    // A reshape shares its operand's bytes, unless its dtype differs (a node's
    // dtype sets its output type): then it is a converting copy.
    bool aliases_operand(VertexId v) const { return view_offset(v).has_value(); }

    // Where a view's bytes start in its operand's: a reshape at 0, a slice
    // that is one contiguous run of its operand (step 1, every dim before the
    // axis 1: a column range of a batch-1 row, as concat_sibling_matmuls makes)
    // at its start. Not a view: a node that changes dtype or reorders.
    std::optional<int64_t> view_offset(VertexId v) const {
        const Value& val = graph.value(v);
        if (val.role != Role::node) return std::nullopt;
        const IndexMap map = op_def(val.op).map;
        if (val.attrs.has(kTransposeViewAttr)) return 0;  // its matmul reads or writes it permuted
        if (map != IndexMap::reshape && map != IndexMap::slice) return std::nullopt;
        if (graph.value(graph.operands(v)[0]).dtype != val.dtype) return std::nullopt;
        if (map == IndexMap::reshape) return 0;
        const Shape& in = graph.value(graph.operands(v)[0]).shape;
        const auto [axis, b] = slice_axis_bounds(v);
        if (!slice_read_view(v) && !contiguous_run(v)) return std::nullopt;
        return b.start * contiguous_strides(in)[axis] * dtype_size(val.dtype);
    }

    // Element strides of v's bytes in its own shape: row-major, but for the
    // two layouts transpose_views makes (src/frontend/transpose_views.h): a
    // read view is its operand's bytes permuted, and a matmul whose only
    // reader is a store view holds its result in the transpose's order.
    Strides layout_strides(VertexId v) const {
        const Value& val = graph.value(v);
        if (transpose_read_view(v)) {
            const Strides in = layout_strides(graph.operands(v)[0]);
            const auto& perm = val.attrs.get_ints("perm");
            const int rank = static_cast<int>(val.shape.size());
            Strides st(rank);
            for (int d = 0; d < rank; ++d) st[d] = in[*normalize_axis(perm[d], rank)];
            return st;
        }
        if (slice_read_view(v)) return slice_strides(v);
        if (val.role == Role::node && val.op == Op::reshape && aliases_operand(v)) {
            // A strided operand's strides reshaped; slice_read_view admitted
            // only reshapes whose strides exist.
            const VertexId in = graph.operands(v)[0];
            const Strides in_st = layout_strides(in);
            if (in_st != contiguous_strides(graph.value(in).shape)) {
                const auto st = reshape_strides(graph.value(in).shape, in_st, val.shape);
                ANVIL_CHECK(st.has_value(), "decompose: reshape '" + val.name + "' of a strided view has no strides");
                return *st;
            }
        }
        if (auto c = stored_in_concat(v)) return contiguous_strides(graph.value(*c).shape);
        if (val.role == Role::node && val.op == Op::matmul) {
            const std::vector<VertexId> readers = graph.consumers(v);
            if (readers.size() == 1) {
                const Value& t = graph.value(readers[0]);
                if (t.op == Op::transpose && t.attrs.has(kTransposeViewAttr) &&
                    t.attrs.get_string(kTransposeViewAttr) == kTransposeStoreView) {
                    const Strides ct = contiguous_strides(t.shape);
                    const auto& perm = t.attrs.get_ints("perm");
                    const int rank = static_cast<int>(t.shape.size());
                    Strides st(rank);
                    for (int d = 0; d < rank; ++d) st[*normalize_axis(perm[d], rank)] = ct[d];
                    return st;
                }
            }
        }
        return contiguous_strides(buf(v).shape);
    }

    // Every kind but the matmul reads its operands row-major: a strided view
    // (slice_read_view) is made only where no such reader sees it.
    void check_row_major(VertexId reader, VertexId in) const {
        ANVIL_CHECK(graph.value(in).role != Role::node || layout_strides(in) == contiguous_strides(buf(in).shape),
                    "decompose: '" + graph.value(reader).name + "' reads the strided view '" + graph.value(in).name +
                        "' row-major");
    }

    // The converting copy of a reshape that changes dtype: the operand read
    // in the output's shape, as a reshape keeps the row-major order.
    void reshape_copy_node(VertexId v) {
        if (aliases_operand(v)) return;
        const TensorBuffer& out = buf(v);
        const VertexId in = graph.operands(v)[0];
        ROp& op = add_elementwise(v, ANVIL_EW_COPY, out.shape, out.offset, contiguous_strides(out.shape));
        set_ew_input(op, 0, in, buf(in).offset, contiguous_strides(out.shape));
        op.flops = 0;
    }

    ROp& add_rop(VertexId v, TaskKind kind, std::string suffix = "") {
        if (kind != TaskKind::matmul)
            for (VertexId in : graph.operands(v)) check_row_major(v, in);
        ROp op;
        op.name = graph.value(v).name + suffix;
        op.node = v;
        op.kind = kind;
        op.loc = graph.value(v).loc;
        op.reads = graph.operands(v);
        tg.rops.push_back(std::move(op));
        return tg.rops.back();
    }

    // An elementwise rOp over `shape`, writing `out` through out_stride.
    ROp& add_elementwise(VertexId v, int code, const Shape& shape, int64_t out_off,
                         const Strides& out_stride, std::string suffix = "") {
        ROp& op = add_rop(v, TaskKind::elementwise, std::move(suffix));
        EwParams p{};
        p.op = code;
        p.rank = static_cast<int>(shape.size());
        p.numel = numel(shape);
        p.tile_elems = sizes.ew_tile_elems;
        p.out_off = out_off;
        for (size_t d = 0; d < shape.size(); ++d) {
            p.shape[d] = shape[d];
            p.out_stride[d] = out_stride[d];
        }
        op.params = p;
        op.tiles = static_cast<int>(ceil_div(p.numel, p.tile_elems));
        op.flops = p.numel;
        op.dtypes = {buf(v).dtype, DType::f32, DType::f32};
        return op;
    }

    void set_ew_input(ROp& op, int slot, VertexId in, int64_t offset, const Strides& strides) {
        EwParams& p = std::get<EwParams>(op.params);
        p.ninputs = std::max(p.ninputs, slot + 1);
        p.in_off[slot] = offset;
        for (size_t d = 0; d < strides.size(); ++d) p.in_stride[slot][d] = strides[d];
        op.dtypes[1 + slot] = buf(in).dtype;
    }

    void elementwise_node(VertexId v, int code) {
        const TensorBuffer& out = buf(v);
        ROp& op = add_elementwise(v, code, out.shape, out.offset, contiguous_strides(out.shape));
        std::vector<VertexId> ins = graph.operands(v);
        for (size_t i = 0; i < ins.size(); ++i)
            set_ew_input(op, static_cast<int>(i), ins[i], buf(ins[i]).offset,
                         broadcast_strides(buf(ins[i]).shape, out.shape));
    }

    void constant_node(VertexId v) {
        const TensorBuffer& out = buf(v);
        ROp& op = add_elementwise(v, ANVIL_EW_CONST, out.shape, out.offset, contiguous_strides(out.shape));
        std::get<EwParams>(op.params).scalar = static_cast<float>(graph.value(v).attrs.get_float("value"));
        op.flops = 0;
    }

    void transpose_node(VertexId v) {
        if (aliases_operand(v)) return;
        const TensorBuffer& out = buf(v);
        VertexId in = graph.operands(v)[0];
        Strides in_st = contiguous_strides(buf(in).shape);
        const auto& perm = graph.value(v).attrs.get_ints("perm");
        int rank = static_cast<int>(out.shape.size());
        Strides st(rank);
        for (int d = 0; d < rank; ++d) st[d] = in_st[*normalize_axis(perm[d], rank)];
        ROp& op = add_elementwise(v, ANVIL_EW_COPY, out.shape, out.offset, contiguous_strides(out.shape));
        set_ew_input(op, 0, in, buf(in).offset, st);
        op.flops = 0;
    }

    void slice_node(VertexId v) {
        if (aliases_operand(v)) return;
        const Value& val = graph.value(v);
        const TensorBuffer& out = buf(v);
        VertexId in = graph.operands(v)[0];
        const Shape& in_shape = buf(in).shape;
        int rank = static_cast<int>(in_shape.size());
        int axis = *normalize_axis(val.attrs.get_int("axis"), rank);
        std::optional<int64_t> end;
        if (val.attrs.has("end")) end = val.attrs.get_int("end");
        SliceBounds b = slice_bounds(in_shape[axis], val.attrs.get_int("start"), end, val.attrs.get_int("step"));
        Strides st = contiguous_strides(in_shape);
        int64_t offset = buf(in).offset + b.start * st[axis] * dtype_size(buf(in).dtype);
        st[axis] *= b.step;
        ROp& op = add_elementwise(v, ANVIL_EW_COPY, out.shape, out.offset, contiguous_strides(out.shape));
        set_ew_input(op, 0, in, offset, st);
        op.flops = 0;
    }

    void concat_node(VertexId v) {
        if (concat_store_view(v)) return;  // its parts wrote it
        const TensorBuffer& out = buf(v);
        int rank = static_cast<int>(out.shape.size());
        int axis = *normalize_axis(graph.value(v).attrs.get_int("axis"), rank);
        Strides out_st = contiguous_strides(out.shape);
        int64_t at = 0;  // position along the axis where the next part starts
        std::vector<VertexId> ins = graph.operands(v);
        for (size_t k = 0; k < ins.size(); ++k) {
            const TensorBuffer& in = buf(ins[k]);
            int64_t off = out.offset + at * out_st[axis] * dtype_size(out.dtype);
            ROp& op = add_elementwise(v, ANVIL_EW_COPY, in.shape, off, out_st, "#" + std::to_string(k));
            set_ew_input(op, 0, ins[k], in.offset, contiguous_strides(in.shape));
            op.reads = {ins[k]};
            op.flops = 0;
            at += in.shape[axis];
        }
    }

    void matmul_node(VertexId v) {
        const Value& val = graph.value(v);
        const TensorBuffer& c = buf(v);
        std::vector<VertexId> ins = graph.operands(v);
        const TensorBuffer& a = buf(ins[0]);
        const TensorBuffer& b = buf(ins[1]);
        bool ta = val.attrs.get_bool("transpose_a");
        bool tb = val.attrs.get_bool("transpose_b");
        int ra = static_cast<int>(a.shape.size()), rb = static_cast<int>(b.shape.size());
        int rc = static_cast<int>(c.shape.size());
        Strides sa = layout_strides(ins[0]), sb = layout_strides(ins[1]), sc = layout_strides(v);

        MatmulParams p{};
        p.M = static_cast<int>(c.shape[rc - 2]);
        p.N = static_cast<int>(c.shape[rc - 1]);
        p.K = static_cast<int>(ta ? a.shape[ra - 2] : a.shape[ra - 1]);
        p.a_sm = ta ? sa[ra - 1] : sa[ra - 2];
        p.a_sk = ta ? sa[ra - 2] : sa[ra - 1];
        p.b_sk = tb ? sb[rb - 1] : sb[rb - 2];
        p.b_sn = tb ? sb[rb - 2] : sb[rb - 1];
        p.c_sm = sc[rc - 2];
        p.c_sn = sc[rc - 1];
        p.a_off = a.offset;
        p.b_off = b.offset;
        p.b_fixed = graph.value(ins[1]).role != Role::node;  // a GEMV may stream it before its waits
        p.c_off = c.offset;
        p.batch_rank = rc - 2;
        p.batches = 1;
        for (int d = 0; d < p.batch_rank; ++d) {
            int da = d - (rc - ra), db = d - (rc - rb);  // the operands' own dims, right-aligned
            p.batch_shape[d] = c.shape[d];
            p.a_sb[d] = (da >= 0 && a.shape[da] != 1) ? sa[da] : 0;
            p.b_sb[d] = (db >= 0 && b.shape[db] != 1) ? sb[db] : 0;
            p.c_sb[d] = sc[d];
            p.batches *= c.shape[d];
        }
        // At most 4 rows (batch-1 decode): the streaming GEMV tile. Other
        // small M gets short tiles so the block is not mostly idle padding.
        p.algo = p.M <= sizes.gemv_max_m ? ANVIL_MM_GEMV : ANVIL_MM_TILED;
        if (val.attrs.has(kMatmulRmsEpsAttr)) {  // a folded rmsnorm: only the GEMV computes it
            ANVIL_CHECK(p.M <= ANVIL_GEMV_MAX_M,
                        "decompose: matmul '" + val.name + "' folds an rmsnorm over more rows than a GEMV takes");
            p.algo = ANVIL_MM_GEMV;
            p.a_rms = 1;
            p.a_rms_eps = static_cast<float>(val.attrs.get_float(kMatmulRmsEpsAttr));
        }
        if (val.attrs.has(kMatmulNormAttr)) {  // a folded norm: a GEMM tile computes it (rtasks/a_norm.cuh)
            p.a_norm = val.attrs.get_string(kMatmulNormAttr) == "layernorm" ? ANVIL_MM_A_LAYERNORM : ANVIL_MM_A_RMSNORM;
            p.a_norm_eps = static_cast<float>(val.attrs.get_float(kMatmulNormEpsAttr));
            if (p.algo == ANVIL_MM_GEMV) p.algo = ANVIL_MM_TILED;
        }
        p.bm = p.M <= 16 ? 16 : p.M <= 32 ? 32 : sizes.mm_bm;
        p.bn = p.algo == ANVIL_MM_GEMV ? sizes.gemv_bn : sizes.mm_bn;
        p.bk = p.algo == ANVIL_MM_GEMV ? 0 : sizes.mm_bk;
        p.tiles_m = static_cast<int>(ceil_div(p.M, p.bm));
        p.tiles_n = static_cast<int>(ceil_div(p.N, p.bn));

        ROp& op = add_rop(v, TaskKind::matmul);
        op.params = p;
        op.tiles = static_cast<int>(p.batches * p.tiles_m * p.tiles_n);
        op.flops = 2 * p.batches * int64_t{p.M} * p.N * p.K;
        op.dtypes = {a.dtype, b.dtype, c.dtype};
    }

    // A row-wise rOp: `red` lists the reduced dims of the input (ascending);
    // the others are kept. Reductions write one value per row.
    void rowwise_node(VertexId v, int code, const std::vector<int>& red, bool reduces) {
        const Value& val = graph.value(v);
        const TensorBuffer& out = buf(v);
        std::vector<VertexId> ins = graph.operands(v);
        const TensorBuffer& in = buf(ins[0]);
        int rank = static_cast<int>(in.shape.size());
        Strides in_st = contiguous_strides(in.shape);
        Strides out_st = contiguous_strides(out.shape);

        RowParams p{};
        p.op = code;
        p.in_off = in.offset;
        p.out_off = out.offset;
        p.rows = 1;
        p.row_len = 1;
        // For a reduction the output holds the kept dims in order (with 1s
        // where keepdims left them): their strides are the contiguous strides
        // of the kept shape.
        Shape kept_shape;
        for (int d = 0; d < rank; ++d)
            if (std::find(red.begin(), red.end(), d) == red.end()) kept_shape.push_back(in.shape[d]);
        Strides kept_out_st = contiguous_strides(kept_shape);
        int k = 0;
        for (int d = 0; d < rank; ++d) {
            bool reduced = std::find(red.begin(), red.end(), d) != red.end();
            if (reduced) {
                p.red_shape[p.red_rank] = in.shape[d];
                p.red_in[p.red_rank] = in_st[d];
                p.red_out[p.red_rank] = reduces ? 0 : out_st[d];
                p.row_len *= in.shape[d];
                ++p.red_rank;
            } else {
                p.kept_shape[p.kept_rank] = in.shape[d];
                p.kept_in[p.kept_rank] = in_st[d];
                p.kept_out[p.kept_rank] = reduces ? kept_out_st[k++] : out_st[d];
                p.rows *= in.shape[d];
                ++p.kept_rank;
            }
        }
        DType gamma = DType::f32, beta = DType::f32;
        if (ins.size() > 1) {
            p.gamma_off = buf(ins[1]).offset;
            gamma = buf(ins[1]).dtype;
        }
        if (ins.size() > 2) {
            p.beta_off = buf(ins[2]).offset;
            beta = buf(ins[2]).dtype;
        }
        if (val.attrs.has("eps")) p.eps = static_cast<float>(val.attrs.get_float("eps"));
        p.rows_per_tile = static_cast<int>(std::max<int64_t>(1, ceil_div(p.rows, sizes.row_target_tiles)));

        ROp& op = add_rop(v, TaskKind::rowwise);
        op.params = p;
        op.tiles = static_cast<int>(ceil_div(p.rows, p.rows_per_tile));
        op.flops = 5 * p.rows * p.row_len;
        op.dtypes = {in.dtype, out.dtype, gamma, beta};
    }

    // conv2d, maxpool2d, avgpool2d: the window geometry of x [N, C, H, W]
    // -> y [N, O, OH, OW] (shapes fixed by infer_shapes). An int-or-[h, w]
    // attribute is stored as one or two entries; a padding as 1, 2 or 4.
    WindowParams window_geometry(VertexId v, const Value& val) const {
        const TensorBuffer& x = buf(graph.operands(v)[0]);
        const TensorBuffer& y = buf(v);
        WindowParams p{};
        p.N = static_cast<int>(x.shape[0]);
        p.C = static_cast<int>(x.shape[1]);
        p.H = static_cast<int>(x.shape[2]);
        p.W = static_cast<int>(x.shape[3]);
        p.O = static_cast<int>(y.shape[1]);
        p.OH = static_cast<int>(y.shape[2]);
        p.OW = static_cast<int>(y.shape[3]);
        const std::vector<int64_t>& pad = val.attrs.get_ints("padding");  // top and left: the others only set OH, OW
        p.pt = static_cast<int>(pad[0]);
        p.pl = static_cast<int>(pad.size() == 1 ? pad[0] : pad[1]);
        p.x_off = x.offset;
        p.y_off = y.offset;
        p.bias_off = -1;
        return p;
    }

    void conv2d_node(VertexId v) {
        const Value& val = graph.value(v);
        std::vector<VertexId> ins = graph.operands(v);
        const TensorBuffer& w = buf(ins[1]);
        WindowParams p = window_geometry(v, val);
        p.op = ANVIL_WIN_CONV;
        p.KH = static_cast<int>(w.shape[2]);
        p.KW = static_cast<int>(w.shape[3]);
        const std::vector<int64_t>& st = val.attrs.get_ints("stride");
        const std::vector<int64_t>& dil = val.attrs.get_ints("dilation");
        p.sh = static_cast<int>(st.front());
        p.sw = static_cast<int>(st.back());
        p.dh = static_cast<int>(dil.front());
        p.dw = static_cast<int>(dil.back());
        p.groups = static_cast<int>(val.attrs.get_int("groups"));
        p.Cg = p.C / p.groups;
        p.Og = p.O / p.groups;
        p.w_off = w.offset;
        DType bias = DType::f32;  // a placeholder type when there is no bias
        if (ins.size() == 3) {
            p.bias_off = buf(ins[2]).offset;
            bias = buf(ins[2]).dtype;
        }
        const int64_t M = int64_t{p.OH} * p.OW, K = int64_t{p.Cg} * p.KH * p.KW;
        // An implicit GEMM whose N (the channels of a group) is narrower than
        // its smallest tile is mostly padding (depthwise: N = 1); the direct
        // window does no wasted work there, unless each output's sum is long.
        const bool gemm = p.Og >= 16 || K > 256;
        ROp& op = add_rop(v, gemm ? TaskKind::conv2d : TaskKind::window);
        if (gemm) {
            p.bm = M <= 16 ? 16 : M <= 32 ? 32 : sizes.mm_bm;
            p.bn = p.Og <= 16 ? 16 : p.Og <= 32 ? 32 : sizes.mm_bn;
            p.bk = sizes.mm_bk;
            p.tiles_m = static_cast<int>(ceil_div(M, p.bm));
            p.tiles_n = static_cast<int>(ceil_div(p.Og, p.bn));
            op.tiles = static_cast<int>(int64_t{p.N} * p.groups * p.tiles_m * p.tiles_n);
        } else {
            p.tile_elems = sizes.window_tile_elems;
            op.tiles = static_cast<int>(ceil_div(numel(buf(v).shape), p.tile_elems));
        }
        op.params = p;
        op.flops = 2 * numel(buf(v).shape) * K;
        op.dtypes = {buf(ins[0]).dtype, w.dtype, bias, buf(v).dtype};
    }

    void pool_node(VertexId v) {
        const Value& val = graph.value(v);
        WindowParams p = window_geometry(v, val);
        const std::vector<int64_t>& k = val.attrs.get_ints("kernel");
        p.KH = static_cast<int>(k.front());
        p.KW = static_cast<int>(k.back());
        const std::vector<int64_t>& st = val.attrs.has("stride") ? val.attrs.get_ints("stride") : k;  // default: the kernel
        p.sh = static_cast<int>(st.front());
        p.sw = static_cast<int>(st.back());
        const std::vector<int64_t> dil = val.attrs.has("dilation") ? val.attrs.get_ints("dilation") : std::vector<int64_t>{1};
        p.dh = static_cast<int>(dil.front());
        p.dw = static_cast<int>(dil.back());
        p.op = val.op == Op::maxpool2d                    ? ANVIL_WIN_MAX
               : val.attrs.get_bool("count_include_pad") ? ANVIL_WIN_AVG_PAD
                                                          : ANVIL_WIN_AVG;
        p.groups = p.C;  // channel o reads channel o
        p.Cg = p.Og = 1;
        p.w_off = p.x_off;  // unused
        p.tile_elems = sizes.window_tile_elems;
        ROp& op = add_rop(v, TaskKind::window);
        op.params = p;
        op.tiles = static_cast<int>(ceil_div(numel(buf(v).shape), p.tile_elems));
        op.flops = numel(buf(v).shape) * p.KH * p.KW;
        op.dtypes = {buf(graph.operands(v)[0]).dtype, DType::f32, DType::f32, buf(v).dtype};
    }

    void batchnorm_node(VertexId v) {
        const Value& val = graph.value(v);
        std::vector<VertexId> ins = graph.operands(v);  // x, scale, bias, mean, var
        const TensorBuffer& x = buf(ins[0]);
        ChannelParams p{};
        p.C = static_cast<int>(x.shape[1]);
        p.numel = numel(x.shape);
        p.inner = p.numel / (x.shape[0] * x.shape[1]);
        p.tile_elems = sizes.ew_tile_elems;
        p.x_off = x.offset;
        p.y_off = buf(v).offset;
        p.scale_off = buf(ins[1]).offset;
        p.bias_off = buf(ins[2]).offset;
        p.mean_off = buf(ins[3]).offset;
        p.var_off = buf(ins[4]).offset;
        p.eps = static_cast<float>(val.attrs.get_float("eps"));
        ROp& op = add_rop(v, TaskKind::channel);
        op.params = p;
        op.tiles = static_cast<int>(ceil_div(p.numel, p.tile_elems));
        op.flops = 4 * p.numel;
        op.dtypes = {x.dtype, buf(ins[1]).dtype, buf(ins[2]).dtype, buf(ins[3]).dtype, buf(ins[4]).dtype,
                     buf(v).dtype};
    }

    void embedding_node(VertexId v) {
        std::vector<VertexId> ins = graph.operands(v);  // table, ids
        const TensorBuffer& table = buf(ins[0]);
        const TensorBuffer& ids = buf(ins[1]);
        GatherParams p{};
        p.V = static_cast<int>(table.shape[0]);
        p.D = static_cast<int>(table.shape[1]);
        p.rows = numel(ids.shape);
        p.rows_per_tile = static_cast<int>(std::max<int64_t>(1, sizes.gather_tile_elems / p.D));
        p.table_off = table.offset;
        p.ids_off = ids.offset;
        p.out_off = buf(v).offset;
        ROp& op = add_rop(v, TaskKind::gather);
        const Value& val = graph.value(v);
        if (val.input_locs.size() > 1) op.loc = val.input_locs[1];  // a bad id is the ids' fault
        op.params = p;
        op.tiles = static_cast<int>(ceil_div(p.rows, p.rows_per_tile));
        op.flops = 0;
        op.dtypes = {table.dtype, ids.dtype, buf(v).dtype};
    }

    // How the op is lowered is its index map (frontend/op_table.h).
    void node(VertexId v) {
        const Value& val = graph.value(v);
        const OpDef& def = op_def(val.op);
        int rank = static_cast<int>(buf(graph.operands(v).empty() ? v : graph.operands(v)[0]).shape.size());
        switch (def.map) {
            case IndexMap::none: return constant_node(v);
            case IndexMap::broadcast: return elementwise_node(v, ew_code(val.op, val.attrs));
            case IndexMap::rows:
            case IndexMap::reduce:
                return rowwise_node(v, def.row_code, row_axes(val.op, val.attrs, rank), reduces_rows(def.row_code));
            case IndexMap::matmul: return matmul_node(v);
            case IndexMap::transpose: return transpose_node(v);
            case IndexMap::reshape: return reshape_copy_node(v);
            case IndexMap::concat: return concat_node(v);
            case IndexMap::slice: return slice_node(v);
            case IndexMap::conv_window: return conv2d_node(v);
            case IndexMap::pool_window: return pool_node(v);
            case IndexMap::channel: return batchnorm_node(v);
            case IndexMap::gather: return embedding_node(v);
        }
        throw InternalError(std::string("decompose: op '") + op_name(val.op) + "' has no rTask yet");
    }
};

}  // namespace

TileGraph decompose(const Graph& graph, const TileSizes& sizes) {
    Builder b{graph, sizes, {}, {}};
    b.tg.model_name = graph.model_name;
    b.layout();
    for (VertexId v : graph.topological_order())
        if (graph.value(v).role == Role::node) b.node(v);
    for (VertexId v : graph.of_role(Role::input)) b.tg.inputs.push_back(graph.value(v).name);
    for (VertexId v : graph.of_role(Role::param)) {
        b.tg.params.push_back(graph.value(v).name);
        if (graph.value(v).fold) b.tg.param_folds[graph.value(v).name] = graph.value(v).fold;
    }
    for (VertexId v : graph.outputs) b.tg.outputs.push_back(graph.value(v).name);
    return std::move(b.tg);
}

}  // namespace anvil
