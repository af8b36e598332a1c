// anvil profile: a model's schedule measured on the GPU against the per-op
// baseline (one launch per rOp, the same rTask code), launched plainly and
// captured in a CUDA graph, next to the cost model's prediction and the
// roofline bound; optionally the measured per-task timeline.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "frontend/graph.h"
#include "anvil/pipeline.h"
#include "tools/roofline.h"
#include "schedule/schedule.h"

namespace anvil {

struct ProfileOptions {
    // The schedule under test, as `anvil schedule` would make it with these
    // options: its policy and GPU, the stages' specialisations (--no-fold,
    // ...) and how it is emitted (--reload-params, --poll-backoff-ns: A/B
    // runs). The per_op baseline is planned and emitted the same way.
    PipelineOptions pipeline;
    int iters = 20;      // timed runs of each schedule; the median is reported
    bool trace = false;  // also run the instrumented megakernel and keep its timeline
    int device = 0;
};

struct Timing {
    double median_s = 0, min_s = 0, max_s = 0;
};

struct ProfileResult {
    std::string model, policy, device, target;
    int iters = 0, warmup = 0;
    Timing megakernel, per_op, per_op_graph;
    size_t launches = 0, per_op_launches = 0, tasks = 0;
    double predicted_s = 0, per_op_predicted_s = 0;
    EmitOptions emit;  // as asked (--reload-params, --poll-backoff-ns)
    Ceilings ceilings;
    bool ceilings_measured_now = false;  // not from kernels_db: calibrated for this run
    Roofline roofline;
    std::vector<OutputCheck> checks;  // the megakernel's outputs against the reference
    Timing traced;                    // the instrumented megakernel (with trace)
    std::vector<AnvilTraceRecord> trace;  // by task
    std::string trace_json;               // measured_trace_json of it
    bool outputs_ok() const;
};

// Plans opt.pipeline's policy and per_op, runs both on the device, checks
// the schedule's outputs against the reference and times them. Throws
// UserError when no device is usable or a run fails.
ProfileResult profile(const Graph& graph, const ProfileOptions& opt);

nlohmann::json profile_json(const ProfileResult& r);
std::string profile_table(const ProfileResult& r);

}  // namespace anvil
