// emit_source: a Schedule -> one self-contained CUDA source. The text is
// the rtasks/*.cuh files (pasted, in dependency order) followed by
// generated tables: one params table per rTask kind (every value after a
// comment naming its field: params_text.cpp), the rOp table (each
// rOp's variant and its index in its kind's table), the task table, the
// dependency array, every launch's queues, per kernel its run_task_<k>
// dispatcher (and stream_task_<k>: the weights a task may start streaming
// before its waits, weight_ring.cuh),
// and the entry points (one __global__ function per kernel on
// CUDA, shared by the launches that dispatch the same variants; extern "C"
// functions for the host runner otherwise).
//
// A variant is a kind template with its template arguments: the dispatcher
// switches on the variant, not on the rOp, so its size is the handful of
// variants a launch uses whatever the number of rOps (an unrolled LSTM has
// ~15000), and NVRTC compiles it in seconds.
#include "codegen/emit.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "anvil/error.h"
#include "codegen/epilogue_text.h"
#include "codegen/params_text.h"
#include "schedule/sync_counters.h"
#include "tile/footprint.h"
#include "tile/tensor_maps.h"
#include "tile/verify_tile_graph.h"
#include "../../rtasks/tiling.cuh"

namespace anvil {

const std::map<std::string, std::string>& embedded_rtasks();  // generated at build time

namespace {

// The rtasks files in the order they are pasted (each only uses earlier ones).
const char* const kRtaskOrder[] = {"params.cuh",      "tensor_map.cuh", "tiling.cuh",  "simt.cuh",      "platform.cuh",
                                   "primitives.cuh",  "trace_marks.cuh", "epilogue.cuh", "gemm_stages.cuh", "weight_ring.cuh", "tc_stages.cuh", "a_norm.cuh", "elementwise.cuh", "matmul.cuh",
                                   "matmul_tc.cuh",   "matmul_wgmma.cuh", "rowwise.cuh",  "conv2d.cuh",    "conv2d_tc.cuh", "window.cuh",
                                   "channel.cuh",     "gather.cuh",   "gemv.cuh",
                                   "megakernel.cuh"};

static_assert(sizeof(AnvilTask) == 8 * 4, "AnvilTask changed: update the task table");
static_assert(sizeof(AnvilROpRef) == 2 * 4, "AnvilROpRef changed: update emit_rops");

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
// `maps`: the arena's tensor maps (tile/tensor_maps.h), rOp `rop`'s offsets in its params.
std::string emit_params(const ROp& op, int rop, int epilogue, int row_epilogue,
                        const std::vector<ArenaTensorMap>& maps) {
    auto with = [epilogue](auto p) {
        p.epilogue = epilogue;
        return p;
    };
    switch (op.kind) {
        case TaskKind::elementwise: return params_text(with(std::get<EwParams>(op.params)));
        case TaskKind::matmul: {
            MatmulParams p = with(std::get<MatmulParams>(op.params));
            p.row_epilogue = row_epilogue;
            p.a_map = tensor_map_at(maps, rop, MapOperand::a);
            p.b_map = tensor_map_at(maps, rop, MapOperand::b);
            return params_text(p);
        }
        case TaskKind::rowwise: {
            RowParams p = with(std::get<RowParams>(op.params));
            p.row_epilogue = row_epilogue;  // a split-K reduce's row op's
            return params_text(p);
        }
        case TaskKind::conv2d:
        case TaskKind::window: return params_text(with(std::get<WindowParams>(op.params)));
        case TaskKind::channel: return params_text(std::get<ChannelParams>(op.params));
        case TaskKind::gather: return params_text(std::get<GatherParams>(op.params));
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

}  // namespace

std::string variant_of(const ROp& op) {
    const KindInfo& k = kind_info(op.kind);
    std::ostringstream o;
    const auto* mm = op.kind == TaskKind::matmul ? &std::get<MatmulParams>(op.params) : nullptr;
    if (mm && mm->algo == ANVIL_MM_GEMV)
        return "anvil_gemv_tile<" + template_args(op, k.arity) + ", " + std::to_string(mm->bn) + ">";
    if (mm && mm->algo == ANVIL_MM_WGMMA)
        return "anvil_matmul_wgmma_tile<" + template_args(op, k.arity) + ", " + std::to_string(mm->bm) + ", " +
               std::to_string(mm->bn) + ", " + std::to_string(mm->bk) + ", " + std::to_string(anvil_tc_stages(mm->stages)) +
               ">";
    const char* fn = !computes_on_tensor_cores(op) ? k.fn : mm ? "anvil_matmul_tc_tile" : "anvil_conv2d_tc_tile";
    o << fn << "<" << template_args(op, k.arity);
    const auto* conv = op.kind == TaskKind::conv2d ? &std::get<WindowParams>(op.params) : nullptr;
    if (mm) o << ", " << mm->bm << ", " << mm->bn << ", " << mm->bk;
    else if (conv) o << ", " << conv->bm << ", " << conv->bn << ", " << conv->bk;
    // f32 on tensor cores: the format (--precision) follows the tile shape.
    const int algo = mm ? mm->algo : conv ? conv->algo : ANVIL_MM_TILED;
    const bool a_norm = mm && mm->a_norm != ANVIL_MM_A_NORM_NONE;  // its own variant (rtasks/a_norm.cuh)
    // A tensor-core tile's stages other than the default follow FMT (and a
    // matmul's A_NORM) in its template's arguments.
    const int stages = !anvil_mm_on_tensor_cores(algo) ? 0 : mm ? mm->stages : conv ? conv->stages : 0;
    const bool deeper = stages != 0 && stages != ANVIL_TC_STAGES;
    if (algo == ANVIL_MM_TENSOR_TF32 || algo == ANVIL_MM_TENSOR_3XTF32)
        o << ", " << (algo == ANVIL_MM_TENSOR_TF32 ? "ANVIL_TC_TF32" : "ANVIL_TC_3XTF32");
    else if ((a_norm || deeper) && algo == ANVIL_MM_TENSOR)
        o << ", " << (op.dtypes[0] == DType::bf16 ? "ANVIL_TC_BF16" : "ANVIL_TC_F16");
    if (a_norm || (deeper && mm)) o << ", " << (a_norm ? "true" : "false");
    if (deeper) o << ", " << stages;
    o << ">";
    return o.str();
}

namespace {

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
std::string params_entry(const Variants& v, int variant) {
    std::string index = "r.index";
    if (v.uses[variant] == 1)
        for (const AnvilROpRef& r : v.rops)
            if (r.variant == variant) index = std::to_string(r.index);
    return std::string(kind_info(v.kinds[variant]).table) + "[" + index + "]";
}

const std::string kGemv = "anvil_gemv_tile<";

bool is_gemv(const Variants& v, int variant) { return v.names[variant].rfind(kGemv, 0) == 0; }

// A GEMV also takes the block's weight ring.
std::string dispatch_call(const Variants& v, int variant) {
    const KindInfo& k = kind_info(v.kinds[variant]);
    return v.names[variant] + "(" + params_entry(v, variant) + ", tile, arena" + (k.reports ? ", status, task" : "") +
           (is_gemv(v, variant) ? ", ring" : "") + ");";
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
    const SyncCounters sync = sync_counters(s);
    o << "// ---- tasks: {op, tile, wait_begin, wait_count, signal_begin, signal_count, ticket_begin, ticket_count}\n"
      << "ANVIL_TABLE AnvilTask anvil_tasks[] = {\n";
    std::vector<int> waits, signals, tickets, ticket_tasks;
    for (int t = 0; t < ntasks; ++t) {
        const Task& task = s.tasks[t];
        ANVIL_CHECK(task.rop >= 0 && task.rop < static_cast<int>(s.tiles.rops.size()),
                    "task " + std::to_string(t) + " names rOp " + std::to_string(task.rop));
        o << "    {" << task.rop << ", " << task.tile << ", " << waits.size() << ", " << sync.waits[t].size() << ", "
          << signals.size() << ", " << sync.signals[t].size() << ", " << tickets.size() << ", "
          << sync.tickets[t].size() << "},\n";
        waits.insert(waits.end(), sync.waits[t].begin(), sync.waits[t].end());
        signals.insert(signals.end(), sync.signals[t].begin(), sync.signals[t].end());
        for (int k : sync.tickets[t]) {
            tickets.push_back(k);
            ticket_tasks.push_back(sync.ticket_task[k]);
        }
    }
    if (s.tasks.empty()) o << "    {0, 0, 0, 0, 0, 0, 0, 0},\n";
    std::vector<int> expected;
    for (const auto& m : sync.members) expected.push_back(static_cast<int>(m.size()));
    o << "};\n// ---- counters: " << sync.count() << " (" << s.groups.size()
      << " groups of tiles, then single tasks); the tasks each counter counts\n"
      << int_array("anvil_waits", waits) << int_array("anvil_signals", signals)
      << "// ---- tickets: per task the ticket counters it takes, beside each the task its last taker runs\n"
      << int_array("anvil_tickets", tickets) << int_array("anvil_ticket_tasks", ticket_tasks)
      << "ANVIL_TABLE unsigned anvil_expected[] = {";
    for (size_t i = 0; i < expected.size(); ++i) o << (i % 16 == 0 ? "\n    " : " ") << expected[i] << "u,";
    if (expected.empty()) o << "0u";
    o << "\n};\n";
}

// Per kind that occurs: its params table, one entry per rOp of the kind in
// rOp order; then the rOp table {variant, index}.
void emit_rops(std::ostringstream& o, const TileGraph& tg, const Variants& v, int max_straight_epilogues) {
    // The epilogue table first (entry 0 empty), and the accessor the
    // rtasks declared in epilogue.cuh.
    o << "// ---- epilogues of fused rOps (entry 0: none)\nANVIL_TABLE AnvilEpilogue anvil_epilogues[] = {\n    "
      << params_text(AnvilEpilogue{}) << ",\n";
    std::vector<int> epilogue(tg.rops.size(), 0), row_epilogue(tg.rops.size(), 0);
    std::vector<AnvilEpilogue> table{AnvilEpilogue{}};
    int next = 1;
    auto entry = [&](size_t i, const AnvilEpilogue& e, const char* what) {
        table.push_back(e);
        o << "    // [" << next << "] rOp " << i << " '" << one_line(tg.rops[i].name) << "'" << what << "\n    "
          << params_text(e) << ",\n";
        return next++;
    };
    for (size_t i = 0; i < tg.rops.size(); ++i) {
        const ROp& op = tg.rops[i];
        if (op.epilogue.nsteps != 0) epilogue[i] = entry(i, op.epilogue, "");
        if (op.row_epilogue.nsteps != 0) row_epilogue[i] = entry(i, op.row_epilogue, ", after its row op");
    }
    o << "};\nANVIL_DEVICE const AnvilEpilogue& anvil_epilogue(int index) { return anvil_epilogues[index]; }\n\n";
    o << straight_line_epilogues(table, max_straight_epilogues);
    o << "// ---- rOps: one params table per kind, then every rOp's {variant, index}\n";
    const std::vector<ArenaTensorMap> maps = arena_tensor_maps(tg);
    for (TaskKind kind : kAllKinds) {
        const KindInfo& k = kind_info(kind);
        bool any = false;
        for (size_t i = 0; i < tg.rops.size(); ++i) {
            const ROp& op = tg.rops[i];
            if (op.kind != kind) continue;
            if (!any) o << "ANVIL_TABLE " << k.params_type << " " << k.table << "[] = {\n";
            any = true;
            o << "    // [" << v.rops[i].index << "] rOp " << i << " '" << one_line(op.name) << "': "
              << task_kind_name(op.kind) << ", " << op.tiles << " tiles\n    "
              << emit_params(op, static_cast<int>(i), epilogue[i], row_epilogue[i], maps) << ",\n";
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
    // A task run by the last of its joins (in no queue) runs in their kernel.
    std::vector<std::vector<int>> inline_runs(s.tasks.size());
    for (size_t r = 0; r < s.tasks.size(); ++r)
        for (int j : s.tasks[r].joins)
            if (j >= 0 && j < static_cast<int>(s.tasks.size())) inline_runs[j].push_back(static_cast<int>(r));
    std::map<std::set<int>, int> ids;
    for (size_t l = 0; l < s.launches.size(); ++l) {
        std::set<int> used;
        for (const auto& q : s.launches[l].queues)
            for (int t : q) {
                ANVIL_CHECK(t >= 0 && t < static_cast<int>(s.tasks.size()),
                            "launch " + std::to_string(l) + " queues task " + std::to_string(t));
                used.insert(v.rops[s.tasks[t].rop].variant);
                for (int r : inline_runs[t]) used.insert(v.rops[s.tasks[r].rop].variant);
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
    o << "ANVIL_DEVICE void run_task_" << K
      << "(int op, int tile, char* arena, AnvilStatus* status, int task, AnvilRing* ring) {\n"
      << "    const AnvilROpRef r = anvil_rops[op];\n    switch (r.variant) {\n";
    for (int variant : k.variants[id]) o << "        case " << variant << ": " << dispatch_call(v, variant) << " break;\n";
    o << "        default: (void)ring; anvil_fail_variant(status, task, op, r.variant); break;\n    }\n}\n";
    // The weights its tasks may stream before their waits (megakernel.cuh): the GEMVs' ring.
    o << "ANVIL_DEVICE AnvilRingStream stream_task_" << K << "(int op, int tile, char* arena) {\n"
      << "    const AnvilROpRef r = anvil_rops[op];\n    switch (r.variant) {\n";
    for (int variant : k.variants[id])
        if (is_gemv(v, variant))
            o << "        case " << variant << ": return anvil_gemv_fixed_stream<" << v.names[variant].substr(kGemv.size())
              << "(" << params_entry(v, variant) << ", tile, arena);\n";
    o << "        default: (void)tile; (void)arena; return anvil_ring_none();\n    }\n}\n";
}

void emit_cuda_entries(std::ostringstream& o, const Kernels& k) {
    for (size_t id = 0; id < k.names.size(); ++id) {
        const std::string K = std::to_string(id);
        o << "// kernel " << K << ": grid = the launch's blocks, 256 threads each, all co-resident\n"
          << "extern \"C\" __global__ void __launch_bounds__(256, ANVIL_MIN_BLOCKS_PER_SM) " << k.names[id]
          << "(char* arena, unsigned* counters, unsigned epoch, AnvilStatus* status, unsigned long long timeout_ns,\n"
          << "        AnvilTraceRecord* trace, int launch) {\n"
          << "    const int b = anvil_launch_block0[launch] + (int)blockIdx.x;\n"
          << "    if (b >= anvil_launch_block0[launch + 1]) return;\n"
          << "    const AnvilTraceSink sink = {trace, anvil_smid(), blockIdx.x};\n"
          << "    const AnvilSync sync = {anvil_waits, anvil_signals, anvil_expected, counters, epoch, anvil_tickets,\n"
          << "                            anvil_ticket_tasks};\n"
          << "    anvil_run_queue<run_task_" << K << ", stream_task_" << K
          << ">(anvil_queue + anvil_qoff[b], anvil_qoff[b + 1] - anvil_qoff[b],\n"
          << "        anvil_tasks, sync, arena, status, timeout_ns, sink);\n"
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
      << "    const AnvilSync sync = {anvil_waits, anvil_signals, anvil_expected, counters, epoch, anvil_tickets,\n"
          << "                            anvil_ticket_tasks};\n"
      << "    switch (launch) {\n";
    for (size_t l = 0; l < s.launches.size(); ++l)
        o << "        case " << l << ": anvil_host_run_blocks<run_task_" << k.of_launch[l] << ", stream_task_"
          << k.of_launch[l] << ">(qoff, anvil_queue, blocks, worker, workers,\n"
          << "            anvil_tasks, sync, arena, status, timeout_ns, trace, observe, observe_ctx); break;\n";
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

int megakernel_smem_bytes(const Schedule& s) {
    int need = 16;
    for (const ROp& op : s.tiles.rops) need = std::max(need, tile_smem_bytes(op, s.gpu));
    return need;
}

int gemv_x_room(const Schedule& s) {
    int room = 0;
    for (const ROp& op : s.tiles.rops) room = std::max(room, gemv_staged_x_bytes(op, s.gpu));
    return room;
}

int launch_smem_bytes(const Schedule& s, size_t launch) {
    for (const auto& q : s.launches.at(launch).queues)
        for (int t : q) {
            const TaskKind kind = s.tiles.rops[s.tasks[t].rop].kind;
            if (kind == TaskKind::matmul || kind == TaskKind::conv2d) return megakernel_smem_bytes(s);
        }
    return 0;
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
    o << "#define ANVIL_SMEM_BYTES " << megakernel_smem_bytes(s) << "\n"
      << "#define ANVIL_SMEM_DYNAMIC 1\n"
      << "#define ANVIL_GEMV_X_BYTES " << gemv_x_room(s) << "\n";
    // A ring depth asked for (--gemv-ring-stages): the header's default otherwise.
    if (s.gpu.gemv_ring_stages) o << "#define ANVIL_GEMV_RING_STAGES " << s.gpu.gemv_ring_stages << "\n";
    // GEMV weights prefetched into L2 before a task's waits (--gemv-l2-prefetch): none otherwise.
    if (s.gpu.gemv_l2_prefetch_bytes)
        o << "#define ANVIL_GEMV_L2_PREFETCH_BYTES " << s.gpu.gemv_l2_prefetch_bytes << "\n";
    // Tensor-core matmul tiles' fixed B prefetched into L2 ahead of their stages (--gemm-l2-prefetch).
    if (s.gpu.gemm_l2_prefetch) o << "#define ANVIL_GEMM_L2_PREFETCH 1\n";
    // A tile epilogue's values per call asked for (--epilogue-batch): the header's default otherwise.
    if (s.gpu.epilogue_batch) o << "#define ANVIL_EPI_BATCH " << s.gpu.epilogue_batch << "\n";
    // The grid holds this many blocks per SM: ask for registers that let them be co-resident.
    o << "#define ANVIL_MIN_BLOCKS_PER_SM " << std::max(1, s.blocks_per_sm) << "\n";
    if (opt.trace) o << "// Every task records its timeline (AnvilTraceRecord).\n#define ANVIL_TRACE 1\n";
    // Only a schedule with tickets carries their code: its call in the
    // persistent loop costs registers, and the tightest tiles would spill.
    if (std::any_of(s.tasks.begin(), s.tasks.end(), [](const Task& t) { return !t.joins.empty(); }))
        o << "// Some split-K reduces run in the block of their last K slice (tickets).\n#define ANVIL_TICKETS 1\n";
    if (opt.simt) o << "// For the host compiler: the CUDA configuration on simt.cuh's fibers.\n#define ANVIL_SIMT 1\n";
    if (opt.reload_params) o << "// Tiles read their params through the table (--reload-params).\n#define ANVIL_COPY_PARAMS 0\n";
    if (opt.poll_backoff_ns >= 0)
        o << "// The pause between two polls of a counter (--poll-backoff-ns).\n#define ANVIL_POLL_BACKOFF_NS "
          << opt.poll_backoff_ns << "\n";
    o << "\n";
    for (const char* f : kRtaskOrder) o << paste_rtask(f) << "\n";

    const Variants variants = number_variants(tg);
    emit_rops(o, tg, variants, opt.max_straight_epilogues);
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
