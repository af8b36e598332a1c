// run_host: emit the schedule, compile it with the host C++ compiler, load
// it, and let worker threads play the persistent blocks over the same task
// table and counters the GPU uses.
#include "anvil/host_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

#include "anvil/compile.h"
#include "anvil/emit.h"
#include "anvil/error.h"
#include "anvil/race_check.h"

namespace anvil {

namespace {

// The entry points emit.cpp writes in the host branch.
using TaskCountFn = int (*)();
using LaunchCountFn = int (*)();
using BlockCountFn = int (*)(int);
using ObserveFn = void (*)(void* ctx, int task);
using WorkerFn = void (*)(int launch, int worker, int workers, char* arena, unsigned* counters, unsigned epoch,
                          AnvilStatus* status, double timeout_s, ObserveFn observe, void* observe_ctx);

struct Library {
    void* handle = nullptr;
    explicit Library(const std::string& path) {
        handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!handle) throw UserError("cannot load the host library " + path + ": " + ::dlerror());
    }
    ~Library() { ::dlclose(handle); }
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

    template <class F>
    F symbol(const char* name) const {
        void* p = ::dlsym(handle, name);
        if (!p) throw InternalError(std::string("the emitted host library has no symbol ") + name);
        return reinterpret_cast<F>(p);
    }
};

struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
};

std::string task_str(const Schedule& s, int task) {
    if (task < 0 || task >= static_cast<int>(s.tasks.size())) return "task " + std::to_string(task);
    const Task& t = s.tasks[task];
    const std::string rop = t.rop >= 0 && t.rop < static_cast<int>(s.tiles.rops.size()) ? s.tiles.rops[t.rop].name : "?";
    return "task " + std::to_string(task) + " (rop '" + rop + "' tile " + std::to_string(t.tile) + ")";
}

std::string seconds_str(double s) {
    std::ostringstream o;
    o << s;
    return o.str();
}

// The tensor stored at a byte offset of the arena (not an alias of another).
const TensorBuffer* buffer_at(const TileGraph& tg, int64_t offset) {
    for (const TensorBuffer& b : tg.buffers)
        if (!b.alias && b.offset == offset) return &b;
    return nullptr;
}

// A gather read an id outside its table: the user's error, in the words of
// the reference's (node, id, position in the ids, the table's rows), plus
// the task that found it.
[[noreturn]] void report_bad_index(const Schedule& s, size_t launch, const AnvilStatus& st) {
    const std::string found = "found by " + task_str(s, st.task) + " in launch '" + s.launches[launch].name + "'";
    const bool known = st.task >= 0 && st.task < static_cast<int>(s.tasks.size());
    const ROp* op = known ? &s.tiles.rops[s.tasks[st.task].rop] : nullptr;
    if (!op || op->kind != TaskKind::gather)
        throw UserError("model '" + s.tiles.model_name + "': an index " + std::to_string(st.detail) +
                        " out of range, " + found);
    const auto& p = std::get<GatherParams>(op->params);
    const TensorBuffer* ids = buffer_at(s.tiles, p.ids_off);
    const TensorBuffer* table = buffer_at(s.tiles, p.table_off);
    std::string position = "[" + std::to_string(st.waiting_on) + "]";
    if (ids) {  // the flat position as a multi-index of the ids
        Shape at(ids->shape.size());
        int64_t rest = st.waiting_on;
        for (size_t d = ids->shape.size(); d-- > 0; rest /= ids->shape[d]) at[d] = rest % ids->shape[d];
        position = shape_str(at);
    }
    const std::string v = std::to_string(p.V);
    user_error(op->loc, "node '" + op->name + "'",
               "embedding id " + std::to_string(st.detail) + " at position " + position + " of ids '" +
                   (ids ? ids->name : "?") + "' is outside [0, " + v + "): table '" + (table ? table->name : "?") +
                   "' has " + v + " rows (" + found + ")");
}

[[noreturn]] void report(const Schedule& s, size_t launch, const AnvilStatus& st, double timeout_s) {
    const std::string where = "model '" + s.tiles.model_name + "', launch '" + s.launches[launch].name + "': ";
    switch (st.code) {
        case ANVIL_DEADLOCK:
            throw UserError(where + task_str(s, st.task) + " waited more than " + seconds_str(timeout_s) + " s for " +
                            task_str(s, st.waiting_on) + ": deadlock");
        case ANVIL_BAD_INDEX: report_bad_index(s, launch, st);
        default:
            throw UserError(where + task_str(s, st.task) + " failed with status " + std::to_string(st.code));
    }
}

// The first few of `lines`, one a line, and how many more there are.
std::string first_few(const std::vector<std::string>& lines) {
    const size_t shown = std::min<size_t>(lines.size(), 5);
    std::string r;
    for (size_t i = 0; i < shown; ++i) r += "\n  " + lines[i];
    if (lines.size() > shown) r += "\n  ... and " + std::to_string(lines.size() - shown) + " more";
    return r;
}

std::string races_str(size_t n) { return std::to_string(n) + (n == 1 ? " race" : " races"); }

// Refuses a schedule in which some producer is not ordered before a consumer.
void check_schedule_races(const Schedule& s) {
    const std::vector<Race> races = find_races(s);
    if (races.empty()) return;
    std::vector<std::string> lines;
    for (const Race& r : races) lines.push_back(r.what);
    throw UserError("model '" + s.tiles.model_name + "', policy '" + s.policy + "': the schedule has " +
                    races_str(races.size()) + " (--check-races):" + first_few(lines));
}

// The run-time half of --check-races: every task, as it starts, notes which
// of its producers had not yet published. A task starts once, on one worker,
// so each slot of `late` has one writer; joining the launch makes it readable.
struct PublishRecord {
    std::vector<std::vector<int>> producers;
    const unsigned* counters = nullptr;
    unsigned epoch = 0;
    std::vector<std::vector<int>> late;

    static void observe(void* self, int task) {
        auto* r = static_cast<PublishRecord*>(self);
        for (int p : r->producers[task])
            if (__atomic_load_n(r->counters + p, __ATOMIC_ACQUIRE) != r->epoch) r->late[task].push_back(p);
    }

    void check(const Schedule& s) const {
        std::vector<std::string> lines;
        for (size_t t = 0; t < late.size(); ++t)
            for (int p : late[t])
                lines.push_back(task_str(s, static_cast<int>(t)) + " started before " + task_str(s, p) +
                                ", which writes bytes it reads, had published");
        if (!lines.empty())
            throw UserError("model '" + s.tiles.model_name + "', policy '" + s.policy + "': the run had " +
                            races_str(lines.size()) + " (--check-races):" + first_few(lines));
    }
};

}  // namespace

TensorMap run_host(const Schedule& s, const TensorMap& values, const HostRunOptions& opt) {
    const TileGraph& tg = s.tiles;
    if (opt.check_races && opt.static_race_check) check_schedule_races(s);
    const HostLibrary compiled = compile_host(emit_source(s));
    const Library lib(compiled.path);
    const auto task_count = lib.symbol<TaskCountFn>("anvil_host_task_count");
    const auto launch_count = lib.symbol<LaunchCountFn>("anvil_host_launch_count");
    const auto block_count = lib.symbol<BlockCountFn>("anvil_host_block_count");
    const auto worker_fn = lib.symbol<WorkerFn>("anvil_host_worker");
    ANVIL_CHECK(task_count() == static_cast<int>(s.tasks.size()) &&
                    launch_count() == static_cast<int>(s.launches.size()),
                "the host library " + compiled.path + " does not hold this schedule");

    // The arena: one zeroed allocation, 256-byte aligned like cudaMalloc's.
    const size_t arena_bytes = static_cast<size_t>((std::max<int64_t>(tg.arena_bytes, 1) + 255) / 256 * 256);
    std::unique_ptr<char, FreeDeleter> arena(static_cast<char*>(std::aligned_alloc(256, arena_bytes)));
    if (!arena) throw UserError("cannot allocate the host arena of " + std::to_string(arena_bytes) + " bytes");
    std::memset(arena.get(), 0, arena_bytes);

    for (const auto* names : {&tg.inputs, &tg.params}) {
        for (const std::string& name : *names) {
            const TensorBuffer& buf = buffer_of(tg, name);
            if (buf.alias) continue;  // its storage is its producer's
            auto it = values.find(name);
            if (it == values.end()) throw UserError("no value was given for tensor '" + name + "'");
            const HostTensor& v = it->second;
            if (v.dtype != buf.dtype || v.shape != buf.shape)
                throw UserError("the value of tensor '" + name + "' is " + dtype_name(v.dtype) + shape_str(v.shape) +
                                ", the model declares " + dtype_name(buf.dtype) + shape_str(buf.shape));
            ANVIL_CHECK(static_cast<int64_t>(v.bytes.size()) == buf.bytes && buf.offset >= 0 &&
                            buf.offset + buf.bytes <= tg.arena_bytes,
                        "buffer of '" + name + "' does not fit its value or the arena");
            std::memcpy(arena.get() + buf.offset, v.bytes.data(), v.bytes.size());
        }
    }

    // Fresh counters, so this run is epoch 1 (a backend that keeps its
    // counters between runs passes the run number instead, never resetting).
    std::vector<unsigned> counters(std::max<size_t>(s.tasks.size(), 1), 0u);
    const unsigned epoch = 1;
    AnvilStatus status{};
    PublishRecord record;
    if (opt.check_races) {
        record.producers = task_producers(s);
        record.counters = counters.data();
        record.epoch = epoch;
        record.late.resize(s.tasks.size());
    }
    const ObserveFn observe = opt.check_races ? &PublishRecord::observe : nullptr;
    unsigned hw = std::thread::hardware_concurrency();
    const int workers = opt.workers > 0 ? opt.workers : std::max(2, static_cast<int>(hw));

    for (size_t l = 0; l < s.launches.size(); ++l) {
        const int blocks = block_count(static_cast<int>(l));
        const int w = std::max(1, std::min(workers, blocks));
        std::vector<std::thread> threads;
        threads.reserve(static_cast<size_t>(w));
        for (int i = 0; i < w; ++i)
            threads.emplace_back(worker_fn, static_cast<int>(l), i, w, arena.get(), counters.data(), epoch, &status,
                                 opt.spin_timeout_s, observe, static_cast<void*>(&record));
        for (auto& t : threads) t.join();  // join = the launch boundary: everything is visible after it
        if (status.code != ANVIL_OK) report(s, l, status, opt.spin_timeout_s);
    }
    if (opt.check_races) record.check(s);

    TensorMap out;
    for (const std::string& name : tg.outputs) {
        const TensorBuffer& buf = buffer_of(tg, name);
        HostTensor t(buf.dtype, buf.shape);
        ANVIL_CHECK(static_cast<int64_t>(t.bytes.size()) <= buf.bytes && buf.offset + buf.bytes <= tg.arena_bytes,
                    "buffer of output '" + name + "' does not fit the arena");
        std::memcpy(t.bytes.data(), arena.get() + buf.offset, t.bytes.size());
        out[name] = std::move(t);
    }
    return out;
}

}  // namespace anvil
