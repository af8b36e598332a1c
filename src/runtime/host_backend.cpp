// run_host: load the schedule's library (emitted and compiled by the
// pipeline), and let worker threads play the persistent blocks over the same
// task table and counters the GPU uses, in an arena whose unwritten bytes
// are poisoned and whose unowned bytes are guarded (arena_guard.h).
#include "runtime/host_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

#include "runtime/arena_guard.h"
#include "runtime/arena_io.h"
#include "anvil/error.h"
#include "schedule/race_check.h"
#include "schedule/sync_counters.h"
#include "runtime/run_errors.h"
#include "runtime/simt_backend.h"
#include "runtime/tensor_map.h"

namespace anvil {

namespace {

// The entry points emit.cpp writes in the host branch.
using TaskCountFn = int (*)();
using LaunchCountFn = int (*)();
using BlockCountFn = int (*)(int);
using ObserveFn = void (*)(void* ctx, int task, int phase);
using WorkerFn = void (*)(int launch, int worker, int workers, char* arena, unsigned* counters, unsigned epoch,
                          AnvilStatus* status, double timeout_s, AnvilTraceRecord* trace, ObserveFn observe,
                          void* observe_ctx);

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
// of its producers had not yet published (each task marks itself published
// after its body, before its arrivals). A task starts once, on one worker,
// so each slot of `late` has one writer; joining the launch makes it readable.
struct PublishRecord {
    std::vector<std::vector<int>> producers;
    std::unique_ptr<unsigned char[]> published;
    std::vector<std::vector<int>> late;

    static void observe(void* self, int task, int phase) {
        auto* r = static_cast<PublishRecord*>(self);
        if (phase == 1) {
            __atomic_store_n(&r->published[task], 1, __ATOMIC_RELEASE);
            return;
        }
        for (int p : r->producers[task])
            if (!__atomic_load_n(&r->published[p], __ATOMIC_ACQUIRE)) r->late[task].push_back(p);
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

TensorMap run_host(const Schedule& s, const HostLibrary& compiled, const TensorMap& values,
                   const HostRunOptions& opt) {
    const TileGraph& tg = s.tiles;
    if (opt.check_races && opt.static_race_check) check_schedule_races(s);
    const Library lib(compiled.path);
    const auto task_count = lib.symbol<TaskCountFn>("anvil_host_task_count");
    const auto launch_count = lib.symbol<LaunchCountFn>("anvil_host_launch_count");
    const auto block_count = lib.symbol<BlockCountFn>("anvil_host_block_count");
    const auto worker_fn = lib.symbol<WorkerFn>("anvil_host_worker");
    ANVIL_CHECK(task_count() == static_cast<int>(s.tasks.size()) &&
                    launch_count() == static_cast<int>(s.launches.size()),
                "the host library " + compiled.path + " does not hold this schedule");
    const auto simt_report = opt.simt ? lib.symbol<SimtReportFn>("anvil_simt_report") : nullptr;
    if (opt.simt) lib.symbol<SimtConfigureFn>("anvil_simt_configure")(opt.simt_checks ? 1 : 0);

    // The arena: the image of arena_io with its intermediates poisoned and
    // guards around and between its tensors (arena_guard.h).
    GuardedArena arena(tg, arena_image(tg, values));
    write_tensor_maps(tg, arena.data(), reinterpret_cast<std::uintptr_t>(arena.data()), encode_tma_simt);

    // Fresh counters, so this run is epoch 1 (a backend that keeps its
    // counters between runs passes the run number instead, never resetting).
    std::vector<unsigned> counters(std::max<size_t>(sync_counters(s).count(), 1), 0u);
    const unsigned epoch = 1;
    AnvilStatus status{};
    PublishRecord record;
    if (opt.check_races) {
        record.producers = task_producers(s);
        record.published = std::make_unique<unsigned char[]>(s.tasks.size() + 1);
        record.late.resize(s.tasks.size());
    }
    const ObserveFn observe = opt.check_races ? &PublishRecord::observe : nullptr;
    if (opt.trace) opt.trace->assign(s.tasks.size(), AnvilTraceRecord{});
    AnvilTraceRecord* trace = opt.trace ? opt.trace->data() : nullptr;
    unsigned hw = std::thread::hardware_concurrency();
    const int workers = opt.workers > 0 ? opt.workers : std::max(2, static_cast<int>(hw));

    for (size_t l = 0; l < s.launches.size(); ++l) {
        const int blocks = block_count(static_cast<int>(l));
        const int w = std::max(1, std::min(workers, blocks));
        std::vector<std::thread> threads;
        threads.reserve(static_cast<size_t>(w));
        for (int i = 0; i < w; ++i)
            threads.emplace_back(worker_fn, static_cast<int>(l), i, w, arena.data(), counters.data(), epoch, &status,
                                 opt.spin_timeout_s, trace, observe, static_cast<void*>(&record));
        for (auto& t : threads) t.join();  // join = the launch boundary: everything is visible after it
        if (status.code == ANVIL_SIMT_CHECK && simt_report) report_simt_failure(s, l, simt_report);
        if (status.code != ANVIL_OK) report_run_status(s, l, status, opt.spin_timeout_s);
        arena.check("model '" + tg.model_name + "', launch '" + s.launches[l].name + "'");
    }
    if (opt.check_races) record.check(s);

    return read_outputs(tg, arena.data());
}

}  // namespace anvil
