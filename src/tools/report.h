// What `anvil schedule` shows of a schedule and its prediction: a table, one
// JSON object, the predicted per-SM timeline as a Chrome/Perfetto trace, and
// the tile graph in Graphviz dot with each rOp (a fused group) a cluster.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/compile_nvrtc.h"
#include "schedule/cost_model.h"

namespace anvil {

// With `cubin` (schedule --compile), the kernels' registers, shared memory
// and spills from NVRTC, and the occupancy they allow; without, the
// occupancy the schedule's launch bounds promise (an estimate).
nlohmann::json schedule_json(const Schedule& s, const Prediction& p, const CubinResult* cubin = nullptr);
std::string schedule_table(const Schedule& s, const Prediction& p, const CubinResult* cubin = nullptr);
std::string trace_json(const Schedule& s, const Prediction& p);
// The measured timeline (AnvilTraceRecord per task, from an ANVIL_TRACE
// run) in the same format: one row per SM, each task's wait for its
// dependencies and its body as separate events; otherData has the span and
// the SMs' busy share.
std::string measured_trace_json(const Schedule& s, const std::vector<AnvilTraceRecord>& records);
std::string tile_graph_dot(const Schedule& s);

}  // namespace anvil
