// Calibrating the cost model's latency terms against measured schedules
// (issue 13, part 5). The only measurements are the H100 profiles of
// commit 30d23da (docs/perf/gpu-profile-2026-11-24.json); that commit's
// schedules are kept as JSON (docs/perf/cost-model/, written by
// scripts/cost_model/dump_30d23da.cpp built against that commit): per rOp
// its tile shape, traffic and fused work, per task its dependencies, per
// launch its queues, and the measured time. This file rebuilds each as a
// Timeline under the rules of that commit's rTasks (synchronous K slices,
// two round trips per conv2d slice, interpreted epilogues, thread 0
// checking one dependency after another, one block per SM) and plays it
// with today's terms (src/schedule/cost_terms.h), so the fit and the
// policies share one model.
#pragma once
#include <string>
#include <vector>

#include "schedule/cost_model.h"

namespace anvil {

struct MeasuredSchedule {
    std::string name;         // "resnet18 anvil"
    double measured_s = 0;    // the profile's median
    std::vector<TileWork> work;        // per rOp, one tile
    std::vector<TileLatency> latency;  // per rOp, one tile
    Timeline timeline;                 // tile_s and work_s filled by predict_measured
};

// Reads one schedule file; throws UserError naming the file and what is
// wrong with it.
MeasuredSchedule load_measured_schedule(const std::string& path);

// The schedule's predicted time on `g` (its latencies and rates).
Prediction predict_measured(const Gpu& g, const MeasuredSchedule& m);

struct LatencyFit {
    double poll_latency_s = 0, memory_latency_s = 0;
    std::vector<double> predicted_s;  // per schedule, with the fitted latencies
    double rms_log_error = 0;         // sqrt(mean(ln(predicted / measured)^2))
};

// The poll and memory latencies (each within [0.05, 5] us) that minimise
// the squared log error of the predictions over `ms`, the GPU's other
// numbers held: a log-spaced grid, then a finer one around its best.
LatencyFit fit_latencies(const Gpu& g, const std::vector<MeasuredSchedule>& ms);

}  // namespace anvil
