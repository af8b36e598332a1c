#include "tools/cost_fit.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "anvil/error.h"
#include "tile/epilogue_plan.h"

namespace anvil {

namespace {

using nlohmann::json;

// 30d23da's epilogue: interpreted, every step's operand loaded in turn.
AnvilEpilogue epilogue_shape(const json& e) {
    AnvilEpilogue out{};
    out.nsteps = e.at("nsteps").get<int>();
    out.ninputs = e.at("ninputs").get<int>();
    out.rank = e.at("rank").get<int>();
    return out;
}

// One rOp's tile under 30d23da's rTasks.
void old_tile(const json& r, TileWork& w, TileLatency& t) {
    const double tiles = std::max(1, r.at("tiles").get<int>());
    const std::string kind = r.at("kind").get<std::string>();
    const double out_size = r.at("dtype_sizes").back().get<double>();
    const double values = r.at("dram_write").get<double>() / out_size / tiles;  // stored per tile
    w.flops = r.at("flops").get<double>() / tiles;
    w.dram_bytes = (r.at("dram_read").get<double>() + r.at("dram_write").get<double>()) / tiles;
    w.l2_bytes = r.at("l2_read").get<double>() / tiles;
    double epi_rounds = 0;
    for (const char* which : {"epilogue", "row_epilogue"}) {
        const AnvilEpilogue e = epilogue_shape(r.at(which));
        w.epilogue_instructions += epilogue_instructions_per_value(e, false) * values;
        epi_rounds += e.ninputs * values;
    }
    if (r.contains("gemm")) {
        const json& m = r.at("gemm");
        const double M = m.at("M"), N = m.at("N"), K = m.at("K");
        const double bm = m.at("bm"), bn = m.at("bn"), bk = m.at("bk");
        if (M > 0 && N > 0) w.flops *= m.at("tiles_m").get<double>() * bm / M * (m.at("tiles_n").get<double>() * bn / N);
        t.k_slices = std::ceil(K / std::max(1.0, bk));
        w.smem_wavefronts = gemm_smem_wavefronts(t.k_slices * bk, int(bm), int(bn), false);
        t.slices_in_flight = 1;  // load, barrier, compute, barrier
        t.phases_per_slice = staged_slice_rounds(int(bm), int(bn), int(bk));
    } else if (r.contains("window")) {
        const json& x = r.at("window");
        const double reads = (x.at("op").get<int>() == ANVIL_WIN_CONV ? x.at("Cg").get<double>() : 1.0) *
                             x.at("KH").get<double>() * x.at("KW").get<double>();
        t.serial_rounds = element_loop_rounds(x.at("tile_elems").get<double>(), window_rounds_per_output(reads));
    } else if (r.contains("ew")) {
        t.serial_rounds = element_loop_rounds(r.at("ew").at("tile_elems").get<double>(), 1);
    } else if (r.contains("channel")) {
        t.serial_rounds = element_loop_rounds(r.at("channel").at("tile_elems").get<double>(), 1);
    } else if (r.contains("row")) {
        const json& x = r.at("row");
        t.serial_rounds = x.at("rows_per_tile").get<double>() *
                          element_loop_rounds(x.at("row_len").get<double>(), row_passes(x.at("op").get<int>()));
    } else if (r.contains("gather")) {
        const json& x = r.at("gather");
        t.serial_rounds = x.at("rows_per_tile").get<double>() * element_loop_rounds(x.at("D").get<double>(), 1);
    }
    t.serial_rounds += element_loop_rounds(epi_rounds, 1);
}

// Sorted ids as [first, end) runs (the files' compact lists).
json id_runs(std::vector<int> ids) {
    std::sort(ids.begin(), ids.end());
    json out = json::array();
    for (int x : ids) {
        if (!out.empty() && out.back()[1].get<int>() == x) out.back()[1] = x + 1;
        else out.push_back(json::array({x, x + 1}));
    }
    return out;
}

std::vector<int> read_runs(const json& runs, int limit, const std::string& path, const std::string& what) {
    std::vector<int> ids;
    for (const json& run : runs) {
        const int first = run.at(0).get<int>(), end = run.at(1).get<int>();
        if (first < 0 || end > limit || first >= end)
            throw UserError(path + ": " + what + " names ids [" + std::to_string(first) + ", " + std::to_string(end) +
                            "), outside [0, " + std::to_string(limit) + ")");
        for (int x = first; x < end; ++x) ids.push_back(x);
    }
    return ids;
}

// A "timeline" file (schedule_snapshot_json): today's rules, applied when it was written.
void load_timeline(const json& j, const std::string& path, MeasuredSchedule& m) {
    m.timeline_format = true;
    m.gpu = j.value("gpu", "");
    for (const json& r : j.at("rops")) {
        const json& w = r.at("work");
        const json& l = r.at("latency");
        TileWork work;
        work.flops = w.at("flops");
        work.flops_per_s = w.at("flops_per_s");
        work.dram_bytes = w.at("dram_bytes");
        work.l2_bytes = w.at("l2_bytes");
        work.epilogue_instructions = w.at("epilogue_instructions");
        work.smem_wavefronts = w.at("smem_wavefronts");
        TileLatency lat;
        lat.k_slices = l.at("k_slices");
        lat.phases_per_slice = l.at("phases_per_slice");
        lat.slices_in_flight = l.at("slices_in_flight");
        lat.serial_rounds = l.at("serial_rounds");
        lat.fill_hidden = l.value("fill_hidden", false);  // written from 3cda44c's snapshots on
        lat.one_slice_ahead = l.value("one_slice_ahead", false);  // written from the split-phase conv gather on
        if (!(work.flops_per_s > 0)) throw UserError(path + ": rOp '" + r.at("name").get<std::string>() + "' has no rate");
        m.work.push_back(work);
        m.latency.push_back(lat);
        m.cost_keys.push_back(r.at("cost_key").get<std::string>());
        m.rop_names.push_back(r.at("name").get<std::string>());
    }
    Timeline& tl = m.timeline;
    const int rops = static_cast<int>(m.work.size());
    tl.rop = j.at("tasks").get<std::vector<int>>();
    const int n = static_cast<int>(tl.rop.size());
    for (int t = 0; t < n; ++t)
        if (tl.rop[t] < 0 || tl.rop[t] >= rops) throw UserError(path + ": task " + std::to_string(t) + " names no rOp");
    const json& members = j.at("members");
    for (size_t k = 0; k < members.size(); ++k)
        tl.members.push_back(read_runs(members[k], n, path, "counter " + std::to_string(k)));
    const int counters = static_cast<int>(tl.members.size());
    for (const auto& mem : tl.members)
        if (mem.empty()) throw UserError(path + ": a counter has no members");
    const json& waits = j.at("waits");
    tl.poll_rounds = j.at("poll_rounds").get<std::vector<double>>();
    if (static_cast<int>(waits.size()) != n || static_cast<int>(tl.poll_rounds.size()) != n)
        throw UserError(path + ": waits and poll_rounds need one entry per task");
    for (int t = 0; t < n; ++t) {
        tl.waits.push_back(read_runs(waits[t], counters, path, "task " + std::to_string(t) + "'s waits"));
        // play() reads a counter's members before its waiters: they must all be earlier tasks.
        for (int k : tl.waits.back())
            if (tl.members[k].back() >= t)
                throw UserError(path + ": task " + std::to_string(t) + " waits for counter " + std::to_string(k) +
                                ", whose tasks are not all earlier");
    }
    for (const json& l : j.at("launches")) {
        Launch launch;
        launch.queues = l.get<std::vector<std::vector<int>>>();
        for (const auto& q : launch.queues)
            for (int t : q)
                if (t < 0 || t >= n) throw UserError(path + ": a queue names no task");
        tl.launches.push_back(std::move(launch));
    }
    // Tickets (Task::joins): a joined task runs on the block of the last of its joins. Written from
    // 3cda44c's snapshots on; an earlier file's schedule had none.
    if (j.contains("joins")) {
        const json& joins = j.at("joins");
        if (static_cast<int>(joins.size()) != n) throw UserError(path + ": joins needs one entry per task");
        for (int t = 0; t < n; ++t) {
            tl.joins.push_back(read_runs(joins[t], n, path, "task " + std::to_string(t) + "'s joins"));
            for (int x : tl.joins.back())
                if (x >= t) throw UserError(path + ": task " + std::to_string(t) + " joins a later task");
        }
    }
    tl.blocks_per_sm = j.at("blocks_per_sm").get<int>();
}

}  // namespace

std::string schedule_snapshot_json(const Schedule& s) {
    const Prediction p = predict(s);
    const Timeline tl = schedule_timeline(s);
    json j;
    j["format"] = "timeline";
    j["model"] = s.tiles.model_name;
    j["policy"] = s.policy;
    j["gpu"] = s.gpu.name;
    j["predicted_us"] = p.total_s * 1e6;
    j["blocks_per_sm"] = tl.blocks_per_sm;
    json rops = json::array();
    for (size_t r = 0; r < s.tiles.rops.size(); ++r) {
        const ROp& op = s.tiles.rops[r];
        const TileWork w = tile_work(s.gpu, op, p.rops[r]);
        const TileLatency l = tile_latency(op, s.gpu, p.rops[r].epilogue_rounds / std::max(1, op.tiles));
        rops.push_back({{"name", op.name},
                        {"cost_key", cost_key(op)},
                        {"tiles", op.tiles},
                        {"work", {{"flops", w.flops},
                                  {"flops_per_s", w.flops_per_s},
                                  {"dram_bytes", w.dram_bytes},
                                  {"l2_bytes", w.l2_bytes},
                                  {"epilogue_instructions", w.epilogue_instructions},
                                  {"smem_wavefronts", w.smem_wavefronts}}},
                        {"latency", {{"k_slices", l.k_slices},
                                     {"phases_per_slice", l.phases_per_slice},
                                     {"slices_in_flight", l.slices_in_flight},
                                     {"serial_rounds", l.serial_rounds},
                                     {"fill_hidden", l.fill_hidden},
                                     {"one_slice_ahead", l.one_slice_ahead}}}});
    }
    j["rops"] = rops;
    j["tasks_format"] = "tasks: rOp per task; waits: counters per task, members: tasks per counter, as [first, end) runs";
    j["tasks"] = tl.rop;
    j["poll_rounds"] = tl.poll_rounds;
    json waits = json::array(), members = json::array();
    for (const auto& w : tl.waits) waits.push_back(id_runs(w));
    for (const auto& m : tl.members) members.push_back(id_runs(m));
    j["waits"] = waits;
    j["members"] = members;
    if (!tl.joins.empty()) {
        json joins = json::array();
        for (const auto& x : tl.joins) joins.push_back(id_runs(x));
        j["joins"] = joins;
    }
    json launches = json::array();
    for (const Launch& l : tl.launches) launches.push_back(l.queues);
    j["launches"] = launches;
    return j.dump() + "\n";
}

MeasuredSchedule load_measured_schedule(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw UserError(path + ": cannot read the measured schedule");
    MeasuredSchedule m;
    try {
        const json j = json::parse(in);
        m.name = j.at("model").get<std::string>() + " " + j.at("policy").get<std::string>();
        m.measured_s = j.at("measured_us").get<double>() * 1e-6;
        if (!(m.measured_s > 0)) throw UserError(path + ": measured_us must be positive");
        if (j.value("format", "") == "timeline") {
            load_timeline(j, path, m);
            return m;
        }
        for (const json& r : j.at("rops")) {
            TileWork w;
            TileLatency t;
            old_tile(r, w, t);
            m.work.push_back(w);
            m.latency.push_back(t);
        }
        Timeline& tl = m.timeline;
        const size_t n = j.at("tasks").size();
        tl.waits.resize(n);
        tl.members.resize(n);
        for (size_t t = 0; t < n; ++t) {
            const json& task = j.at("tasks")[t];
            const int rop = task.at(0).get<int>();
            if (rop < 0 || rop >= static_cast<int>(m.work.size())) throw UserError(path + ": task " + std::to_string(t) + " names no rOp");
            tl.rop.push_back(rop);
            // One counter per task; thread 0 checks the dependencies one after another.
            tl.members[t] = {static_cast<int>(t)};
            for (const json& run : task.at(2)) {  // [first, end) of task ids
                const int first = run.at(0).get<int>(), end = run.at(1).get<int>();
                if (first < 0 || end > static_cast<int>(t) || first >= end)
                    throw UserError(path + ": task " + std::to_string(t) + " depends on tasks [" + std::to_string(first) +
                                    ", " + std::to_string(end) + "), not all earlier ones");
                for (int dep = first; dep < end; ++dep) tl.waits[t].push_back(dep);
            }
            tl.poll_rounds.push_back(static_cast<double>(tl.waits[t].size()));
        }
        for (const json& l : j.at("launches")) {
            Launch launch;
            launch.queues = l.get<std::vector<std::vector<int>>>();
            for (const auto& q : launch.queues)
                for (int t : q)
                    if (t < 0 || t >= static_cast<int>(n)) throw UserError(path + ": a queue names no task");
            tl.launches.push_back(std::move(launch));
        }
        tl.blocks_per_sm = j.at("blocks_per_sm").get<int>();
    } catch (const json::exception& e) {
        throw UserError(path + ": not a measured schedule: " + e.what());
    }
    return m;
}

Prediction predict_measured(const Gpu& g, const MeasuredSchedule& m) {
    Timeline tl = m.timeline;
    tl.tile_s.clear();
    tl.work_s.clear();
    for (size_t r = 0; r < m.work.size(); ++r) {
        if (m.timeline_format) {
            // A tile kernels_db has measured is taken whole, as predict() takes it.
            if (auto it = g.measured_tile_s.find(m.cost_keys[r]); it != g.measured_tile_s.end()) {
                tl.tile_s.push_back(it->second);
                tl.work_s.push_back(0);
                continue;
            }
        }
        TileWork w = m.work[r];
        if (!m.timeline_format) w.flops_per_s = g.fp32_flops_per_s;  // 30d23da had only the CUDA-core tiles
        const TileTime t = tile_time(g, w, m.latency[r]);
        tl.tile_s.push_back(t.total());
        tl.work_s.push_back(t.work_s);
    }
    Prediction p;
    play(g, tl, p);
    return p;
}

LatencyFit fit_latencies(const Gpu& g, const std::vector<MeasuredSchedule>& ms) {
    return fit_latencies(std::vector<Gpu>(ms.size(), g), ms);
}

LatencyFit fit_latencies(const std::vector<Gpu>& gpus, const std::vector<MeasuredSchedule>& ms) {
    if (gpus.size() != ms.size()) throw std::logic_error("fit_latencies: one GPU per schedule");
    auto error = [&](double poll, double mem, std::vector<double>* pred) {
        double sum = 0;
        for (size_t i = 0; i < ms.size(); ++i) {
            const MeasuredSchedule& m = ms[i];
            Gpu x = gpus[i];
            x.poll_latency_s = poll;
            x.memory_latency_s = mem;
            const double p = predict_measured(x, m).total_s;
            if (pred) pred->push_back(p);
            sum += std::pow(std::log(p / m.measured_s), 2);
        }
        return std::sqrt(sum / std::max<size_t>(1, ms.size()));
    };
    LatencyFit best;
    double best_err = INFINITY;
    // A log-spaced grid, 0.05 us to 5 us on each axis in 24 steps; then as
    // many steps across two of them around its best.
    double lo_p = std::log(5e-8), lo_m = std::log(5e-8), step = std::log(100.0) / 24;
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i <= 24; ++i)
            for (int k = 0; k <= 24; ++k) {
                const double poll = std::exp(lo_p + i * step), mem = std::exp(lo_m + k * step);
                const double e = error(poll, mem, nullptr);
                if (e < best_err) best_err = e, best.poll_latency_s = poll, best.memory_latency_s = mem;
            }
        lo_p = std::log(best.poll_latency_s) - step;
        lo_m = std::log(best.memory_latency_s) - step;
        step /= 12;
    }
    best.rms_log_error = error(best.poll_latency_s, best.memory_latency_s, &best.predicted_s);
    return best;
}

}  // namespace anvil
