// Run-time faults in the words of the model: shared by every backend.
#include "runtime/run_errors.h"

#include <sstream>

#include "anvil/error.h"
#include "schedule/sync_counters.h"

namespace anvil {

std::string task_str(const Schedule& s, int task) {
    if (task < 0 || task >= static_cast<int>(s.tasks.size())) return "task " + std::to_string(task);
    const Task& t = s.tasks[task];
    const std::string rop = t.rop >= 0 && t.rop < static_cast<int>(s.tiles.rops.size()) ? s.tiles.rops[t.rop].name : "?";
    return "task " + std::to_string(task) + " (rop '" + rop + "' tile " + std::to_string(t.tile) + ")";
}

namespace {

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

}  // namespace

[[noreturn]] void report_run_status(const Schedule& s, size_t launch, const AnvilStatus& st, double timeout_s) {
    const std::string where = "model '" + s.tiles.model_name + "', launch '" + s.launches[launch].name + "': ";
    switch (st.code) {
        case ANVIL_DEADLOCK:
            throw UserError(where + task_str(s, st.task) + " waited more than " + seconds_str(timeout_s) + " s for " +
                            counter_str(s, sync_counters(s), st.waiting_on) + ": deadlock");
        case ANVIL_BAD_INDEX: report_bad_index(s, launch, st);
        case ANVIL_BAD_VARIANT: {
            // anvil's own fault: the emitted rOp table and the dispatchers disagree.
            const bool known = st.waiting_on >= 0 && st.waiting_on < static_cast<int>(s.tiles.rops.size());
            throw InternalError(where + task_str(s, st.task) + ": its rOp " + std::to_string(st.waiting_on) + " '" +
                                (known ? s.tiles.rops[st.waiting_on].name : "?") + "' names variant " +
                                std::to_string(st.detail) + ", which the launch's kernel does not dispatch");
        }
        default:
            throw UserError(where + task_str(s, st.task) + " failed with status " + std::to_string(st.code));
    }
}

}  // namespace anvil
