// Calibrating the cost model's latency terms against measured schedules
// (issue 13, part 5), kept as JSON in docs/perf/cost-model/ with their
// measured times. Two kinds of file:
//
// - commit 30d23da's (docs/perf/gpu-profile-2026-11-24.json; written by
//   scripts/cost_model/dump_30d23da.cpp built against that commit): per rOp
//   its tile shape, traffic and fused work, per task its dependencies, per
//   launch its queues. This file rebuilds each as a Timeline under the
//   rules of that commit's rTasks (synchronous K slices, two round trips
//   per conv2d slice, interpreted epilogues, thread 0 checking one
//   dependency after another, one block per SM).
// - "format": "timeline" (schedule_snapshot_json, `anvil schedule
//   --snapshot`, from commit eecf9a0 on): today's rules already applied,
//   per rOp its cost key, one tile's work (TileWork) and latency structure
//   (TileLatency), and the timeline (tasks, counters, polls, launches).
//   A cost key kernels_db has measured replaces that rOp's estimate, as in
//   predict().
//
// Both are played with today's terms (src/schedule/cost_terms.h), so the
// fit and the policies share one model.
#pragma once
#include <string>
#include <vector>

#include "schedule/cost_model.h"

namespace anvil {

struct MeasuredSchedule {
    std::string name;         // "resnet18 anvil"
    std::string gpu;          // the GPU description it was planned for (timeline files); empty: the caller's
    double measured_s = 0;    // the profile's median
    std::vector<TileWork> work;        // per rOp, one tile
    std::vector<TileLatency> latency;  // per rOp, one tile
    std::vector<std::string> cost_keys;  // per rOp (timeline files; empty for 30d23da's)
    std::vector<std::string> rop_names;  // per rOp (timeline files; empty for 30d23da's)
    bool timeline_format = false;        // work's rates are the snapshot's, not the GPU's FP32 peak
    Timeline timeline;                 // tile_s and work_s filled by predict_measured
};

// A schedule as a "timeline" file without its measured time: what
// `anvil schedule --snapshot` writes (docs/perf/cost-model/<commit>-*.json
// once a measured_us is added). predict_measured() of it on s.gpu is
// predict(s)'s total.
std::string schedule_snapshot_json(const Schedule& s);

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

// The same over schedules of several GPUs: ms[i] is played on gpus[i]
// (its rates), all with one pair of latencies.
LatencyFit fit_latencies(const std::vector<Gpu>& gpus, const std::vector<MeasuredSchedule>& ms);

}  // namespace anvil
