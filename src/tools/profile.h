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
    std::string policy;  // the schedule under test
    int iters = 20;      // timed runs of each schedule; the median is reported
    bool trace = false;  // also run the instrumented megakernel and keep its timeline
    bool reload_params = false;  // every kernel's tiles reload their params (--reload-params)
    int poll_backoff_ns = -1;    // the pause between polls (--poll-backoff-ns); negative: the default
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
    int poll_backoff_ns = -1;  // as asked (--poll-backoff-ns); negative: the default
    Ceilings ceilings;
    bool ceilings_measured_now = false;  // not from kernels_db: calibrated for this run
    Roofline roofline;
    std::vector<OutputCheck> checks;  // the megakernel's outputs against the reference
    Timing traced;                    // the instrumented megakernel (with trace)
    std::vector<AnvilTraceRecord> trace;  // by task
    std::string trace_json;               // measured_trace_json of it
    bool outputs_ok() const;
};

// Plans `policy` and per_op for `gpu`, runs both on the device, checks the
// schedule's outputs against the reference and times them. Throws
// UserError when no device is usable or a run fails.
ProfileResult profile(const Graph& graph, const Gpu& gpu, const ProfileOptions& opt);

nlohmann::json profile_json(const ProfileResult& r);
std::string profile_table(const ProfileResult& r);

}  // namespace anvil
