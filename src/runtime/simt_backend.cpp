// The simt backend's host side: options, link flags and the words of a
// failed thread-level check. The run itself is run_host's (same workers,
// task table, counters and race record); rtasks/simt.cuh is the emulation.
#include "runtime/simt_backend.h"

#include <cstdlib>
#include <cstring>

#include "anvil/error.h"
#include "runtime/run_errors.h"
#include "tile/verify_tile_graph.h"

namespace anvil {

bool simt_checks_default() {
    const char* env = std::getenv("ANVIL_SIMT_CHECKS");
    return !(env && std::strcmp(env, "0") == 0);
}

std::string simt_link_flags() { return "-lboost_context"; }

[[noreturn]] void report_simt_failure(const Schedule& s, size_t launch, SimtReportFn report) {
    char msg[1024] = {0};
    const int task = report(msg, sizeof msg);
    std::string kind;
    if (task >= 0 && task < static_cast<int>(s.tasks.size())) {
        const ROp& op = s.tiles.rops[s.tasks[task].rop];
        kind = std::string(task_kind_name(op.kind)) + " tile";
        if (computes_on_tensor_cores(op)) kind += " on tensor cores";
        if (const auto* p = std::get_if<MatmulParams>(&op.params); p && p->algo == ANVIL_MM_GEMV) kind = "gemv tile";
        kind = ", a " + kind;
    }
    throw UserError("model '" + s.tiles.model_name + "', launch '" + s.launches[launch].name +
                    "': simt check failed in " + task_str(s, task) + kind + ": " +
                    (msg[0] ? msg : "no message"));
}

}  // namespace anvil
