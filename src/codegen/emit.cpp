// emit_source: a Schedule -> one self-contained CUDA source. The text is
// the rtasks/*.cuh files (pasted, in dependency order) followed by
// generated tables: one params table per rTask kind, the rOp table (each
// rOp's variant and its index in its kind's table), the task table, the
// dependency array, every launch's queues, per kernel its run_task_<k>
// dispatcher, and the entry points (one __global__ function per kernel on
// CUDA, shared by the launches that dispatch the same variants; extern "C"
// functions for the host runner otherwise).
//
// A variant is a kind template with its template arguments: the dispatcher
// switches on the variant, not on the rOp, so its size is the handful of
// variants a launch uses whatever the number of rOps (an unrolled LSTM has
// ~15000), and NVRTC compiles it in seconds.
#include "codegen/emit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "anvil/error.h"
#include "schedule/variants.h"
#include "tile/footprint.h"

namespace anvil {

const std::map<std::string, std::string>& embedded_rtasks();  // generated at build time

namespace {

// The rtasks files in the order they are pasted (each only uses earlier ones).
const char* const kRtaskOrder[] = {"params.cuh",  "simt.cuh", "platform.cuh", "primitives.cuh", "epilogue.cuh",
                                   "elementwise.cuh", "matmul.cuh", "matmul_tc.cuh", "rowwise.cuh", "conv2d.cuh",
                                   "window.cuh",  "channel.cuh",  "gather.cuh",     "gemv.cuh",
                                   "megakernel.cuh"};

// A new field in params.cuh must reach the emitters below: these sizes are
// the field lists they write.
static_assert(sizeof(EwParams) == 4 * 4 + 8 * 2 + 8 * 6 + 8 + 8 * 6 + 8 * 2 + 8 * 12 + 4 + 4,
              "EwParams changed: update emit_ew_params");
static_assert(sizeof(MatmulParams) == 16 * 4 + 8 * 6 + 8 * 6 + 8 * 4 * 4,
              "MatmulParams changed: update emit_matmul_params");
static_assert(sizeof(RowParams) == 4 * 4 + 8 * 2 + 8 * 4 + 8 * 6 * 6 + 4 + 4, "RowParams changed: update emit_row_params");
static_assert(sizeof(WindowParams) == 26 * 4 + 8 + 8 * 4, "WindowParams changed: update emit_window_params");
static_assert(sizeof(AnvilEpiStep) == 4 * 4, "AnvilEpiStep changed: update emit_epilogue");
static_assert(sizeof(AnvilEpilogue) == 4 * 4 + 16 * ANVIL_EPI_MAX_STEPS + 4 * ANVIL_EPI_MAX_INPUTS + 8 * ANVIL_MAX_RANK +
                                           8 * ANVIL_EPI_MAX_INPUTS + 8 * ANVIL_EPI_MAX_INPUTS * ANVIL_MAX_RANK,
              "AnvilEpilogue changed: update emit_epilogue");
static_assert(sizeof(ChannelParams) == 2 * 4 + 8 * 3 + 8 * 6 + 4 + 4, "ChannelParams changed: update emit_channel_params");
static_assert(sizeof(GatherParams) == 4 * 4 + 8 * 4, "GatherParams changed: update emit_gather_params");
static_assert(sizeof(AnvilTask) == 4 * 4, "AnvilTask changed: update the task table");
static_assert(sizeof(AnvilROpRef) == 2 * 4, "AnvilROpRef changed: update emit_rops");

std::string i64(anvil_i64 v) { return std::to_string(v) + "LL"; }

// A float literal that reads back to exactly the same float.
std::string f32(float v) {
    // NVRTC knows no __builtin_huge_valf; every compiler folds these.
    if (std::isnan(v)) return "(0.0f / 0.0f)";
    if (std::isinf(v)) return v > 0 ? "(1.0f / 0.0f)" : "(-1.0f / 0.0f)";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    std::string s = buf;
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s + "f";
}

std::string list(const anvil_i64* v, int n) {
    std::string s = "{";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + i64(v[i]);
    return s + "}";
}

// One emitter per params struct: positional aggregate initialisers, fields
// exactly in the order of rtasks/params.cuh.
std::string emit_ew_params(const EwParams& p) {
    std::ostringstream o;
    o << "{" << p.op << ", " << p.rank << ", " << p.ninputs << ", " << p.epilogue << ", " << i64(p.numel) << ", "
      << i64(p.tile_elems) << ", " << list(p.shape, ANVIL_MAX_RANK) << ", " << i64(p.out_off) << ", "
      << list(p.out_stride, ANVIL_MAX_RANK) << ", " << list(p.in_off, 2) << ", {"
      << list(p.in_stride[0], ANVIL_MAX_RANK) << ", " << list(p.in_stride[1], ANVIL_MAX_RANK) << "}, "
      << f32(p.scalar) << ", " << p.pad2_ << "}";
    return o.str();
}

std::string emit_matmul_params(const MatmulParams& p) {
    std::ostringstream o;
    o << "{" << p.M << ", " << p.N << ", " << p.K << ", " << p.bm << ", " << p.bn << ", " << p.bk << ", "
      << p.tiles_m << ", " << p.tiles_n << ", " << p.batch_rank << ", " << p.epilogue << ", " << p.row_op << ", "
      << p.row_epilogue << ", " << p.gamma_dtype << ", " << p.beta_dtype << ", " << f32(p.eps) << ", " << p.algo
      << ", " << i64(p.batches) << ", " << i64(p.a_off) << ", " << i64(p.b_off) << ", " << i64(p.c_off) << ", "
      << i64(p.gamma_off) << ", " << i64(p.beta_off) << ", " << i64(p.a_sm) << ", "
      << i64(p.a_sk) << ", " << i64(p.b_sk) << ", " << i64(p.b_sn) << ", " << i64(p.c_sm) << ", "
      << i64(p.c_sn) << ", " << list(p.batch_shape, ANVIL_MAX_BATCH_RANK) << ", "
      << list(p.a_sb, ANVIL_MAX_BATCH_RANK) << ", " << list(p.b_sb, ANVIL_MAX_BATCH_RANK) << ", "
      << list(p.c_sb, ANVIL_MAX_BATCH_RANK) << "}";
    return o.str();
}

std::string emit_row_params(const RowParams& p) {
    std::ostringstream o;
    o << "{" << p.op << ", " << p.kept_rank << ", " << p.red_rank << ", " << p.rows_per_tile << ", "
      << i64(p.rows) << ", " << i64(p.row_len) << ", " << i64(p.in_off) << ", " << i64(p.out_off) << ", "
      << i64(p.gamma_off) << ", " << i64(p.beta_off) << ", " << list(p.kept_shape, ANVIL_MAX_RANK) << ", "
      << list(p.kept_in, ANVIL_MAX_RANK) << ", " << list(p.kept_out, ANVIL_MAX_RANK) << ", "
      << list(p.red_shape, ANVIL_MAX_RANK) << ", " << list(p.red_in, ANVIL_MAX_RANK) << ", "
      << list(p.red_out, ANVIL_MAX_RANK) << ", " << f32(p.eps) << ", " << p.epilogue << "}";
    return o.str();
}

std::string emit_window_params(const WindowParams& p) {
    std::ostringstream o;
    o << "{" << p.op << ", " << p.N << ", " << p.C << ", " << p.H << ", " << p.W << ", " << p.O << ", " << p.OH
      << ", " << p.OW << ", " << p.KH << ", " << p.KW << ", " << p.sh << ", " << p.sw << ", " << p.pt << ", "
      << p.pl << ", " << p.dh << ", " << p.dw << ", " << p.groups << ", " << p.Cg << ", " << p.Og << ", " << p.bm
      << ", " << p.bn << ", " << p.bk << ", " << p.tiles_m << ", " << p.tiles_n << ", " << p.epilogue << ", "
      << p.pad_ << ", " << i64(p.tile_elems) << ", " << i64(p.x_off) << ", " << i64(p.w_off) << ", "
      << i64(p.bias_off) << ", " << i64(p.y_off) << "}";
    return o.str();
}

std::string emit_channel_params(const ChannelParams& p) {
    std::ostringstream o;
    o << "{" << p.C << ", " << p.pad_ << ", " << i64(p.inner) << ", " << i64(p.numel) << ", " << i64(p.tile_elems)
      << ", " << i64(p.x_off) << ", " << i64(p.y_off) << ", " << i64(p.scale_off) << ", " << i64(p.bias_off) << ", "
      << i64(p.mean_off) << ", " << i64(p.var_off) << ", " << f32(p.eps) << ", " << p.pad2_ << "}";
    return o.str();
}

std::string emit_gather_params(const GatherParams& p) {
    std::ostringstream o;
    o << "{" << p.V << ", " << p.D << ", " << p.rows_per_tile << ", " << p.pad_ << ", " << i64(p.rows) << ", "
      << i64(p.table_off) << ", " << i64(p.ids_off) << ", " << i64(p.out_off) << "}";
    return o.str();
}

std::string emit_epilogue(const AnvilEpilogue& e) {
    std::ostringstream o;
    o << "{" << e.nsteps << ", " << e.ninputs << ", " << e.rank << ", " << e.pad_ << ", {";
    for (int k = 0; k < ANVIL_EPI_MAX_STEPS; ++k) {
        const AnvilEpiStep& s = e.steps[k];
        o << (k ? ", " : "") << "{" << s.op << ", " << s.a << ", " << s.b << ", " << f32(s.scalar) << "}";
    }
    o << "}, {";
    for (int i = 0; i < ANVIL_EPI_MAX_INPUTS; ++i) o << (i ? ", " : "") << e.in_dtype[i];
    o << "}, " << list(e.shape, ANVIL_MAX_RANK) << ", " << list(e.in_off, ANVIL_EPI_MAX_INPUTS) << ", {";
    for (int i = 0; i < ANVIL_EPI_MAX_INPUTS; ++i) o << (i ? ", " : "") << list(e.in_stride[i], ANVIL_MAX_RANK);
    o << "}}";
    return o.str();
}

// What emission needs to know of each kind: its device template, how many
// storage types it takes, its params struct and table, whether it reports
// run-time errors (takes the status word and the task id).
struct KindInfo {
    const char* fn;
    size_t arity;
    const char* params_type;
    const char* table;
    bool reports;
};

const KindInfo& kind_info(TaskKind k) {
    static const KindInfo ew{"anvil_ew_tile", 3, "EwParams", "anvil_ew_params", false};
    static const KindInfo mm{"anvil_matmul_tile", 3, "MatmulParams", "anvil_matmul_params", false};
    static const KindInfo row{"anvil_row_tile", 4, "RowParams", "anvil_row_params", false};
    static const KindInfo conv{"anvil_conv2d_tile", 4, "WindowParams", "anvil_conv2d_params", false};
    static const KindInfo win{"anvil_window_tile", 4, "WindowParams", "anvil_window_params", false};
    static const KindInfo chan{"anvil_channel_tile", 6, "ChannelParams", "anvil_channel_params", false};
    static const KindInfo gather{"anvil_gather_tile", 3, "GatherParams", "anvil_gather_params", true};
    switch (k) {
        case TaskKind::elementwise: return ew;
        case TaskKind::matmul: return mm;
        case TaskKind::rowwise: return row;
        case TaskKind::conv2d: return conv;
        case TaskKind::window: return win;
        case TaskKind::channel: return chan;
        case TaskKind::gather: return gather;
    }
    throw InternalError("emit: unknown task kind");
}

const TaskKind kAllKinds[] = {TaskKind::elementwise, TaskKind::matmul,  TaskKind::rowwise, TaskKind::conv2d,
                              TaskKind::window,      TaskKind::channel, TaskKind::gather};

// `epilogue`, `row_epilogue`: the rOp's entries in the epilogue table (0: none).
std::string emit_params(const ROp& op, int epilogue, int row_epilogue) {
    auto with = [epilogue](auto p) {
        p.epilogue = epilogue;
        return p;
    };
    switch (op.kind) {
        case TaskKind::elementwise: return emit_ew_params(with(std::get<EwParams>(op.params)));
        case TaskKind::matmul: {
            MatmulParams p = with(std::get<MatmulParams>(op.params));
            p.row_epilogue = row_epilogue;
            return emit_matmul_params(p);
        }
        case TaskKind::rowwise: return emit_row_params(with(std::get<RowParams>(op.params)));
        case TaskKind::conv2d:
        case TaskKind::window: return emit_window_params(with(std::get<WindowParams>(op.params)));
        case TaskKind::channel: return emit_channel_params(std::get<ChannelParams>(op.params));
        case TaskKind::gather: return emit_gather_params(std::get<GatherParams>(op.params));
    }
    throw InternalError("emit: unknown task kind");
}

const char* storage_type(DType t) {
    switch (t) {
        case DType::f32: return "float";
        case DType::f16: return "anvil_f16";
        case DType::bf16: return "anvil_bf16";
        case DType::i32: return "int";
    }
    return "float";
}

std::string template_args(const ROp& op, size_t arity) {
    ANVIL_CHECK(op.dtypes.size() == arity, "rOp '" + op.name + "' has " + std::to_string(op.dtypes.size()) +
                                               " dtypes, its kind takes " + std::to_string(arity));
    std::string s;
    for (size_t i = 0; i < arity; ++i) s += std::string(i ? ", " : "") + storage_type(op.dtypes[i]);
    return s;
}

// rOp's variant: its kind template with its storage types (and, for the
// GEMM kinds, their tile shape), e.g. "anvil_matmul_tile<float, float, float, 64, 64, 32>".
std::string variant_of(const ROp& op) {
    const KindInfo& k = kind_info(op.kind);
    std::ostringstream o;
    const auto* mm = op.kind == TaskKind::matmul ? &std::get<MatmulParams>(op.params) : nullptr;
    if (mm && mm->algo == ANVIL_MM_GEMV)
        return "anvil_gemv_tile<" + template_args(op, k.arity) + ", " + std::to_string(mm->bn) + ">";
    o << (mm && mm->algo == ANVIL_MM_TENSOR ? "anvil_matmul_tc_tile" : k.fn) << "<" << template_args(op, k.arity);
    if (mm) {
        o << ", " << mm->bm << ", " << mm->bn << ", " << mm->bk;
    } else if (op.kind == TaskKind::conv2d) {
        const auto& p = std::get<WindowParams>(op.params);
        o << ", " << p.bm << ", " << p.bn << ", " << p.bk;
    }
    o << ">";
    return o.str();
}

// Every rOp's variant and its index in its kind's params table.
struct Variants {
    std::vector<std::string> names;  // variant id -> its template call
    std::vector<TaskKind> kinds;     // variant id -> its kind
    std::vector<AnvilROpRef> rops;   // rOp -> {variant, index}
    std::vector<int> uses;           // variant id -> how many rOps use it
};

Variants number_variants(const TileGraph& tg) {
    Variants v;
    std::map<std::string, int> ids;
    std::map<TaskKind, int> next_index;
    for (const ROp& op : tg.rops) {
        const std::string name = variant_of(op);
        auto [it, fresh] = ids.emplace(name, static_cast<int>(v.names.size()));
        if (fresh) {
            v.names.push_back(name);
            v.kinds.push_back(op.kind);
            v.uses.push_back(0);
        }
        ++v.uses[it->second];
        v.rops.push_back({it->second, next_index[op.kind]++});
    }
    return v;
}

// The dispatcher's case for one variant. A variant of a single rOp names
// its params entry by a constant index: NVRTC then folds the params into a
// specialised copy of the function (smaller code, compiled faster), as it
// did when every rOp had its own case.
std::string dispatch_call(const Variants& v, int variant) {
    const KindInfo& k = kind_info(v.kinds[variant]);
    std::string index = "r.index";
    if (v.uses[variant] == 1)
        for (const AnvilROpRef& r : v.rops)
            if (r.variant == variant) index = std::to_string(r.index);
    return v.names[variant] + "(" + k.table + "[" + index + "], tile, arena" + (k.reports ? ", status, task" : "") + ");";
}

// The rtasks text with its quoted includes removed: the files are pasted
// in dependency order, and the emitted source must include nothing.
std::string paste_rtask(const std::string& file) {
    std::istringstream in(rtask_source(file));
    std::ostringstream out;
    out << "// ---- rtasks/" << file << "\n";
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("#include \"", 0) == 0)
            out << "// (pasted above) " << line.substr(1) << "\n";
        else
            out << line << "\n";
    }
    return out.str();
}

// Comments must stay comments whatever a name holds.
std::string one_line(std::string s) {
    std::replace(s.begin(), s.end(), '\n', ' ');
    std::replace(s.begin(), s.end(), '\r', ' ');
    return s;
}

std::string int_array(const std::string& name, const std::vector<int>& values) {
    std::ostringstream o;
    o << "ANVIL_TABLE int " << name << "[] = {";
    if (values.empty()) o << "0";  // C++ has no empty arrays
    for (size_t i = 0; i < values.size(); ++i) o << (i ? ", " : "") << values[i];
    o << "};\n";
    return o.str();
}

int smem_bytes_needed(const Schedule& s) {
    int need = 16;
    for (const ROp& op : s.tiles.rops) need = std::max(need, tile_smem_bytes(op));
    return need;
}

// The device code's static_asserts say the same; checked here too so that
// the host backend refuses what NVRTC would.
void check_gemm_tile(const ROp& op, int bm, int bn, int bk, long long smem_bytes) {
    const std::string what = std::string(task_kind_name(op.kind)) + " tile " + std::to_string(bm) + "x" +
                             std::to_string(bn) + "x" + std::to_string(bk);
    ANVIL_CHECK(bm > 0 && bm % 16 == 0 && bn > 0 && bn % 16 == 0 && bk > 0,
                "rOp '" + op.name + "': " + what + " (BM and BN must be multiples of 16)");
    ANVIL_CHECK(smem_bytes <= 48 * 1024,
                "rOp '" + op.name + "': " + what + " needs more than 48 KiB of static shared memory");
}

// Only these kinds apply an epilogue, and the device code trusts its
// references: a bad one would read or compute garbage silently.
void check_epilogue(const ROp& op, const AnvilEpilogue& e) {
    const bool kind_ok = op.kind == TaskKind::elementwise || op.kind == TaskKind::matmul ||
                         op.kind == TaskKind::conv2d || op.kind == TaskKind::window || op.kind == TaskKind::rowwise;
    ANVIL_CHECK(kind_ok, "rOp '" + op.name + "': a " + task_kind_name(op.kind) +
                             " rOp of this op cannot apply an epilogue");
    ANVIL_CHECK(e.nsteps > 0 && e.nsteps <= ANVIL_EPI_MAX_STEPS && e.ninputs >= 0 &&
                    e.ninputs <= ANVIL_EPI_MAX_INPUTS && e.rank >= 1 && e.rank <= ANVIL_MAX_RANK,
                "rOp '" + op.name + "': epilogue sizes out of range");
    for (int k = 0; k < e.nsteps; ++k)
        for (int ref : {e.steps[k].a, e.steps[k].b}) {
            const bool ok = ref == ANVIL_EPI_NONE || ref == ANVIL_EPI_SCALAR ||
                            (ref >= ANVIL_EPI_VALUE(0) && ref <= ANVIL_EPI_VALUE(k)) ||
                            (ref >= ANVIL_EPI_INPUT(0) && ref < ANVIL_EPI_INPUT(e.ninputs));
            ANVIL_CHECK(ok && e.steps[k].op >= 0 && e.steps[k].op < ANVIL_EW_COUNT,
                        "rOp '" + op.name + "': epilogue step " + std::to_string(k) + " is malformed");
        }
}

void check_rop(const ROp& op) {
    const bool ok = (op.kind == TaskKind::elementwise && std::holds_alternative<EwParams>(op.params)) ||
                    (op.kind == TaskKind::matmul && std::holds_alternative<MatmulParams>(op.params)) ||
                    (op.kind == TaskKind::rowwise && std::holds_alternative<RowParams>(op.params)) ||
                    ((op.kind == TaskKind::conv2d || op.kind == TaskKind::window) &&
                     std::holds_alternative<WindowParams>(op.params)) ||
                    (op.kind == TaskKind::channel && std::holds_alternative<ChannelParams>(op.params)) ||
                    (op.kind == TaskKind::gather && std::holds_alternative<GatherParams>(op.params));
    ANVIL_CHECK(ok, "rOp '" + op.name + "': params do not match its kind");
    if (op.kind == TaskKind::conv2d) {
        const auto& p = std::get<WindowParams>(op.params);
        check_gemm_tile(op, p.bm, p.bn, p.bk, tile_smem_bytes(op));
    }
    if (op.kind == TaskKind::gather)
        ANVIL_CHECK(op.dtypes.size() == 3 && op.dtypes[1] == DType::i32, "rOp '" + op.name + "': gather ids must be i32");
    if (op.kind == TaskKind::matmul && std::get<MatmulParams>(op.params).algo == ANVIL_MM_GEMV) {
        const auto& p = std::get<MatmulParams>(op.params);
        const int vec = 16 / dtype_size(op.dtypes[1]);
        ANVIL_CHECK(p.M <= 4 && p.tiles_m == 1 && p.bm >= p.M && p.row_op == ANVIL_MM_ROW_NONE,
                    "rOp '" + op.name + "': a GEMV tile takes at most 4 rows of A, all in one tile, and no row op");
        ANVIL_CHECK(p.bn >= 16 && (p.bn & (p.bn - 1)) == 0 && p.bn / vec <= 256,
                    "rOp '" + op.name + "': GEMV tile width " + std::to_string(p.bn) +
                        " is not a power of two in [16, " + std::to_string(256 * vec) + "]");
    } else if (op.kind == TaskKind::matmul) {
        const auto& p = std::get<MatmulParams>(op.params);
        check_gemm_tile(op, p.bm, p.bn, p.bk, tile_smem_bytes(op));
        ANVIL_CHECK(p.algo != ANVIL_MM_TENSOR || (tensor_core_operands(op) && p.row_op == ANVIL_MM_ROW_NONE && p.bm % 32 == 0 &&
                                                  p.bn % 32 == 0 && p.bk % 16 == 0),
                    "rOp '" + op.name + "': a tensor-core tile needs f16 or bf16 operands of one dtype, no row op, "
                    "BM and BN multiples of 32 and BK of 16");
        ANVIL_CHECK(p.row_op == ANVIL_MM_ROW_NONE || (p.tiles_n == 1 && p.N <= p.bn),
                    "rOp '" + op.name + "': a fused row op needs whole rows in one tile");
        ANVIL_CHECK(p.row_op >= ANVIL_MM_ROW_NONE && p.row_op <= ANVIL_MM_ROW_RMSNORM,
                    "rOp '" + op.name + "': unknown fused row op");
        ANVIL_CHECK(op.row_epilogue.nsteps == 0 || p.row_op != ANVIL_MM_ROW_NONE,
                    "rOp '" + op.name + "': an epilogue after a row op needs a fused row op");
    }
    ANVIL_CHECK(op.row_epilogue.nsteps == 0 || op.kind == TaskKind::matmul,
                "rOp '" + op.name + "': only a matmul applies an epilogue after a fused row op");
    if (op.epilogue.nsteps != 0) check_epilogue(op, op.epilogue);
    if (op.row_epilogue.nsteps != 0) check_epilogue(op, op.row_epilogue);
}

void emit_header(std::ostringstream& o, const Schedule& s) {
    const TileGraph& tg = s.tiles;
    o << "// anvil megakernel, generated: do not edit.\n"
      << "// model '" << one_line(tg.model_name) << "', policy '" << one_line(s.policy) << "', target '"
      << one_line(s.gpu.name) << "' (" << one_line(s.gpu.arch) << ")\n"
      << "// " << tg.rops.size() << " rOps, " << s.tasks.size() << " tasks, " << s.launches.size()
      << " launches, " << s.threads_per_block << " threads per block\n";
    for (size_t l = 0; l < s.launches.size(); ++l) {
        size_t n = 0;
        for (const auto& q : s.launches[l].queues) n += q.size();
        o << "//   launch " << l << ": kernel " << s.launches[l].name << ", " << s.launches[l].queues.size() << " blocks, " << n << " tasks\n";
    }
    o << "// Self-contained: compiles with NVRTC, with nvcc -c, and as C++ for the host backend.\n\n";
}

void emit_tasks(std::ostringstream& o, const Schedule& s) {
    const int ntasks = static_cast<int>(s.tasks.size());
    o << "// ---- tasks: {op, tile, dep_begin, dep_count}\n"
      << "ANVIL_TABLE AnvilTask anvil_tasks[] = {\n";
    std::vector<int> deps;
    for (int t = 0; t < ntasks; ++t) {
        const Task& task = s.tasks[t];
        ANVIL_CHECK(task.rop >= 0 && task.rop < static_cast<int>(s.tiles.rops.size()),
                    "task " + std::to_string(t) + " names rOp " + std::to_string(task.rop));
        for (int d : task.deps)
            ANVIL_CHECK(d >= 0 && d < ntasks, "task " + std::to_string(t) + " depends on task " + std::to_string(d));
        o << "    {" << task.rop << ", " << task.tile << ", " << deps.size() << ", " << task.deps.size() << "},\n";
        deps.insert(deps.end(), task.deps.begin(), task.deps.end());
    }
    if (s.tasks.empty()) o << "    {0, 0, 0, 0},\n";
    o << "};\n" << int_array("anvil_deps", deps);
}

// Per kind that occurs: its params table, one entry per rOp of the kind in
// rOp order; then the rOp table {variant, index}.
void emit_rops(std::ostringstream& o, const TileGraph& tg, const Variants& v) {
    // The epilogue table first (entry 0 empty), and the accessor the
    // rtasks declared in epilogue.cuh.
    o << "// ---- epilogues of fused rOps (entry 0: none)\nANVIL_TABLE AnvilEpilogue anvil_epilogues[] = {\n    "
      << emit_epilogue(AnvilEpilogue{}) << ",\n";
    std::vector<int> epilogue(tg.rops.size(), 0), row_epilogue(tg.rops.size(), 0);
    int next = 1;
    auto entry = [&](size_t i, const AnvilEpilogue& e, const char* what) {
        o << "    // [" << next << "] rOp " << i << " '" << one_line(tg.rops[i].name) << "'" << what << "\n    "
          << emit_epilogue(e) << ",\n";
        return next++;
    };
    for (size_t i = 0; i < tg.rops.size(); ++i) {
        const ROp& op = tg.rops[i];
        if (op.epilogue.nsteps != 0) epilogue[i] = entry(i, op.epilogue, "");
        if (op.row_epilogue.nsteps != 0) row_epilogue[i] = entry(i, op.row_epilogue, ", after its row op");
    }
    o << "};\nANVIL_DEVICE const AnvilEpilogue& anvil_epilogue(int index) { return anvil_epilogues[index]; }\n\n";
    o << "// ---- rOps: one params table per kind, then every rOp's {variant, index}\n";
    for (TaskKind kind : kAllKinds) {
        const KindInfo& k = kind_info(kind);
        bool any = false;
        for (size_t i = 0; i < tg.rops.size(); ++i) {
            const ROp& op = tg.rops[i];
            if (op.kind != kind) continue;
            if (!any) o << "ANVIL_TABLE " << k.params_type << " " << k.table << "[] = {\n";
            any = true;
            o << "    // [" << v.rops[i].index << "] rOp " << i << " '" << one_line(op.name) << "': "
              << task_kind_name(op.kind) << ", " << op.tiles << " tiles\n    " << emit_params(op, epilogue[i], row_epilogue[i]) << ",\n";
        }
        if (any) o << "};\n";
    }
    o << "// variants:\n";
    for (size_t i = 0; i < v.names.size(); ++i) o << "//   " << i << ": " << v.names[i] << "\n";
    o << "ANVIL_TABLE AnvilROpRef anvil_rops[] = {";
    for (size_t i = 0; i < v.rops.size(); ++i)
        o << (i % 16 == 0 ? "\n    " : " ") << "{" << v.rops[i].variant << ", " << v.rops[i].index << "},";
    if (v.rops.empty()) o << "{0, 0}";
    o << "\n};\n";
}

// Launches that dispatch the same variants share one kernel: per_op's
// hundreds of launches become a handful of kernels, so NVRTC compiles each
// rTask variant once, not once per launch. A kernel is named after the
// first launch that runs it.
struct Kernels {
    std::vector<std::string> names;        // kernel id -> name
    std::vector<std::set<int>> variants;   // kernel id -> the variants it dispatches
    std::vector<std::vector<int>> users;   // kernel id -> the launches that run it
    std::vector<int> of_launch;            // launch -> kernel id
};

Kernels group_kernels(const Schedule& s, const Variants& v) {
    Kernels k;
    std::map<std::set<int>, int> ids;
    for (size_t l = 0; l < s.launches.size(); ++l) {
        std::set<int> used;
        for (const auto& q : s.launches[l].queues)
            for (int t : q) {
                ANVIL_CHECK(t >= 0 && t < static_cast<int>(s.tasks.size()),
                            "launch " + std::to_string(l) + " queues task " + std::to_string(t));
                used.insert(v.rops[s.tasks[t].rop].variant);
            }
        auto [it, fresh] = ids.emplace(used, static_cast<int>(k.names.size()));
        if (fresh) {
            k.names.push_back(s.launches[l].name);
            k.variants.push_back(used);
            k.users.emplace_back();
        }
        k.users[it->second].push_back(static_cast<int>(l));
        k.of_launch.push_back(it->second);
    }
    return k;
}

// Every block of every launch, launch after launch: block b of launch l is
// row anvil_launch_block0[l] + b of the queue offsets.
void emit_queues(std::ostringstream& o, const Schedule& s) {
    std::vector<int> off{0}, queue, block0{0};
    for (const Launch& l : s.launches) {
        for (const auto& q : l.queues) {
            queue.insert(queue.end(), q.begin(), q.end());
            off.push_back(static_cast<int>(queue.size()));
        }
        block0.push_back(static_cast<int>(off.size()) - 1);
    }
    o << "\n// ---- queues: per block of each launch, launch l's blocks from row anvil_launch_block0[l]\n"
      << int_array("anvil_launch_block0", block0) << int_array("anvil_qoff", off) << int_array("anvil_queue", queue);
}

// Per kernel, run_task_<k>: a switch over the variants of its launches
// only, so a kernel holds only its own rTask code and its register count
// is its own.
void emit_dispatcher(std::ostringstream& o, const Variants& v, const Kernels& k, size_t id) {
    const std::string K = std::to_string(id);
    o << "\n// ---- kernel " << K << " '" << one_line(k.names[id]) << "', run by " << k.users[id].size() << " launch"
      << (k.users[id].size() == 1 ? "" : "es") << ":";
    for (size_t i = 0; i < k.users[id].size() && i < 8; ++i) o << " " << k.users[id][i];
    o << (k.users[id].size() > 8 ? " ...\n" : "\n");
    o << "ANVIL_DEVICE void run_task_" << K << "(int op, int tile, char* arena, AnvilStatus* status, int task) {\n"
      << "    (void)status;\n    (void)task;\n"
      << "    const AnvilROpRef r = anvil_rops[op];\n    switch (r.variant) {\n";
    for (int variant : k.variants[id]) o << "        case " << variant << ": " << dispatch_call(v, variant) << " break;\n";
    o << "        default: break;\n    }\n}\n";
}

void emit_cuda_entries(std::ostringstream& o, const Kernels& k) {
    for (size_t id = 0; id < k.names.size(); ++id) {
        const std::string K = std::to_string(id);
        o << "// kernel " << K << ": grid = the launch's blocks, 256 threads each, all co-resident\n"
          << "extern \"C\" __global__ void __launch_bounds__(256) " << k.names[id]
          << "(char* arena, unsigned* counters, unsigned epoch, AnvilStatus* status, unsigned long long timeout_ns,\n"
          << "        AnvilTraceRecord* trace, int launch) {\n"
          << "    const int b = anvil_launch_block0[launch] + (int)blockIdx.x;\n"
          << "    if (b >= anvil_launch_block0[launch + 1]) return;\n"
          << "    const AnvilTraceSink sink = {trace, anvil_smid(), blockIdx.x};\n"
          << "    anvil_run_queue<run_task_" << K << ">(anvil_queue + anvil_qoff[b], anvil_qoff[b + 1] - anvil_qoff[b],\n"
          << "        anvil_tasks, anvil_deps, arena, counters, epoch, status, timeout_ns, sink);\n"
          << "}\n";
    }
}

void emit_host_entries(std::ostringstream& o, const Schedule& s, const Kernels& k) {
    o << "extern \"C\" int anvil_host_task_count(void) { return " << s.tasks.size() << "; }\n"
      << "extern \"C\" int anvil_host_launch_count(void) { return " << s.launches.size() << "; }\n"
      << "extern \"C\" int anvil_host_block_count(int launch) {\n"
      << "    return anvil_launch_block0[launch + 1] - anvil_launch_block0[launch];\n}\n"
      << "// Worker `worker` of `workers` runs its share of launch `launch`'s blocks (anvil_host_run_blocks).\n"
      << "extern \"C\" void anvil_host_worker(int launch, int worker, int workers, char* arena, unsigned* counters,\n"
      << "                                  unsigned epoch, AnvilStatus* status, double timeout_s,\n"
      << "                                  AnvilTraceRecord* trace, AnvilHostObserver observe, void* observe_ctx) {\n"
      << "    const unsigned long long timeout_ns = (unsigned long long)(timeout_s * 1e9);\n"
      << "    const int* qoff = anvil_qoff + anvil_launch_block0[launch];\n"
      << "    const int blocks = anvil_host_block_count(launch);\n"
      << "    switch (launch) {\n";
    for (size_t l = 0; l < s.launches.size(); ++l)
        o << "        case " << l << ": anvil_host_run_blocks<run_task_" << k.of_launch[l]
          << ">(qoff, anvil_queue, blocks, worker, workers,\n"
          << "            anvil_tasks, anvil_deps, arena, counters, epoch, status, timeout_ns, trace, observe, observe_ctx); break;\n";
    o << "        default: break;\n    }\n}\n";
}

}  // namespace

const std::string& rtask_source(const std::string& file) {
    const auto& files = embedded_rtasks();
    auto it = files.find(file);
    if (it == files.end()) internal_error(__FILE__, __LINE__, "no embedded rtasks file '" + file + "'");
    return it->second;
}

std::vector<std::string> launch_kernels(const Schedule& s) {
    const Kernels k = group_kernels(s, number_variants(s.tiles));
    std::vector<std::string> names;
    for (int id : k.of_launch) names.push_back(k.names[id]);
    return names;
}

std::string emit_source(const Schedule& s, const EmitOptions& opt) {
    const TileGraph& tg = s.tiles;
    ANVIL_CHECK(s.threads_per_block == 256, "the rtasks are written for 256 threads per block, the schedule asks for " +
                                                std::to_string(s.threads_per_block));
    // Every rtasks file must be pasted: a new one has to be placed in kRtaskOrder.
    for (const auto& entry : embedded_rtasks())
        ANVIL_CHECK(std::find_if(std::begin(kRtaskOrder), std::end(kRtaskOrder),
                                 [&](const char* f) { return entry.first == f; }) != std::end(kRtaskOrder),
                    "rtasks/" + entry.first + " is not in emit.cpp's kRtaskOrder");

    std::ostringstream o;
    emit_header(o, s);
    o << "#define ANVIL_SMEM_BYTES " << smem_bytes_needed(s) << "\n";
    if (opt.trace) o << "// Every task records its timeline (AnvilTraceRecord).\n#define ANVIL_TRACE 1\n";
    if (opt.simt) o << "// For the host compiler: the CUDA configuration on simt.cuh's fibers.\n#define ANVIL_SIMT 1\n";
    o << "\n";
    for (const char* f : kRtaskOrder) o << paste_rtask(f) << "\n";

    for (const ROp& op : tg.rops) check_rop(op);
    const Variants variants = number_variants(tg);
    emit_rops(o, tg, variants);
    o << "\n";
    emit_tasks(o, s);
    emit_queues(o, s);
    const Kernels kernels = group_kernels(s, variants);
    for (size_t id = 0; id < kernels.names.size(); ++id) emit_dispatcher(o, variants, kernels, id);

    o << "\n#ifdef __CUDACC__\n";
    emit_cuda_entries(o, kernels);
    o << "#else\n";
    emit_host_entries(o, s, kernels);
    o << "#endif\n";
    return o.str();
}

}  // namespace anvil
