#include "tools/tune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "schedule/cost_model.h"
#include "runtime/cuda_backend.h"
#include "base/dtype.h"
#include "anvil/error.h"
#include "anvil/pipeline.h"
#include "schedule/variants.h"
#include "schedule/builders.h"
#include "schedule/split_k.h"
#include "tile/footprint.h"
#include "tile/verify_tile_graph.h"
#include "runtime/cuda_driver.h"

namespace anvil {

namespace {

bool is_gemm(const ROp& op) { return op.kind == TaskKind::matmul || op.kind == TaskKind::conv2d; }

// cost_key with the tile shape blanked: equal for two rOps that compute the same problem.
std::string problem_key(const ROp& op) {
    ROp c = op;
    if (auto* p = std::get_if<MatmulParams>(&c.params)) p->bm = p->bn = p->bk = p->stages = 0, p->algo = ANVIL_MM_TILED;
    if (auto* w = std::get_if<WindowParams>(&c.params)) w->bm = w->bn = w->bk = w->stages = 0, w->algo = ANVIL_MM_TILED;
    return cost_key(c);
}

ByteRange written(const ROp& op) {
    ByteRange r{INT64_MAX, 0};
    for (int t = 0; t < op.tiles; ++t) {
        const ByteRange w = tile_writes(op, t);
        r.begin = std::min(r.begin, w.begin);
        r.end = std::max(r.end, w.end);
    }
    return r;
}

double element(DType t, const char* p) {
    uint16_t h = 0;
    float f = 0;
    int32_t i = 0;
    switch (t) {
        case DType::f32: std::memcpy(&f, p, 4); return f;
        case DType::f16: std::memcpy(&h, p, 2); return f16_to_float(h);
        case DType::bf16: std::memcpy(&h, p, 2); return bf16_to_float(h);
        case DType::i32: std::memcpy(&i, p, 4); return i;
    }
    return 0;
}

// Relative L2 distance of two images of elements of `t`.
double rel_l2(const std::vector<char>& got, const std::vector<char>& want, DType t) {
    const size_t size = dtype_size(t), n = want.size() / size;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        const double g = element(t, got.data() + i * size), w = element(t, want.data() + i * size);
        num += (g - w) * (g - w);
        den += w * w;
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

std::vector<TuneProblem> tune_problems(const TileGraph& tg, const Gpu& gpu) {
    std::vector<TuneProblem> problems;
    std::map<std::string, size_t> index;
    const int grid = gpu.sm_count * megakernel_blocks_per_sm(tg, gpu);
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        const ROp& op = tg.rops[r];
        if (!is_gemm(op)) continue;
        const std::string key = problem_key(op);
        auto [it, fresh] = index.emplace(key, problems.size());
        if (fresh) {
            TuneProblem p;
            p.key = key;
            std::set<std::string> seen;
            for (ROp& v : tile_variants(op, gpu))
                if (seen.insert(cost_key(v)).second) p.candidates.push_back(std::move(v));
            // A shape that leaves blocks idle whole is what split-K is for.
            for (size_t c = 0; c < p.candidates.size(); ++c)
                if (p.candidates[c].tiles < grid)
                    for (int ways : split_k_ways(p.candidates[c], grid)) p.splits.push_back({c, ways});
            problems.push_back(std::move(p));
        }
        problems[it->second].rops.push_back(static_cast<int>(r));
    }
    return problems;
}

TuningPlan tuning_plan(const TileGraph& tg, const Gpu& gpu, const std::vector<TuneProblem>& problems) {
    TileGraph all = tg;
    TuningPlan plan;
    plan.model_launches = tg.rops.size();
    for (size_t p = 0; p < problems.size(); ++p) {
        for (const ROp& c : problems[p].candidates) {
            plan.candidates.push_back({p, all.rops.size(), 1, written(c)});
            all.rops.push_back(c);
        }
        for (const TuneSplit& split : problems[p].splits) {
            const size_t at = all.rops.size();
            all.rops.push_back(problems[p].candidates.at(split.candidate));
            split_k_at(all, static_cast<int>(at), split.ways);  // partials at `at`, the reduce after them
            plan.candidates.push_back({p, at, split.ways, written(all.rops[at + 1])});
        }
    }
    plan.schedule = launch_per_rop("tune", all, gpu, "anvil_tune_");
    verify_tile_graph(plan.schedule.tiles, gpu);
    verify_schedule(plan.schedule);
    return plan;
}

Gpu tune(const Graph& graph, const Gpu& gpu, const TuneOptions& opt, std::vector<TuneRecord>* records,
         const std::function<void(const std::string&)>& progress) {
    if (opt.iters < 1) throw UserError("--iters must be at least 1, not " + std::to_string(opt.iters));
    if (const std::string why = cuda_unavailable_reason(); !why.empty())
        throw UserError("anvil tune measures on a GPU, and there is no CUDA device to use: " + why);
    // The GEMMs of the fused tile graph (the default policy fuses), as the
    // pipeline leaves it before tile shapes are chosen.
    Compilation c = from_graph(graph);
    PipelineOptions front;
    front.gpu = gpu;
    run_to(c, Stage::fuse, front);
    const TileGraph& tg = *c.tiles;
    const std::vector<TuneProblem> problems = tune_problems(tg, gpu);
    const TuningPlan plan = tuning_plan(tg, gpu, problems);
    auto say = [&](const std::string& s) {
        if (progress) progress(s);
    };
    say(fmt::format("{} GEMM rOps, {} distinct problems, {} candidates: compiling them as one source",
                    std::count_if(tg.rops.begin(), tg.rops.end(), is_gemm), problems.size(), plan.candidates.size()));
    CudaRunOptions run_opt;
    run_opt.device = opt.device;
    CudaProgram program = cuda_program(plan.schedule, run_opt);
    program.upload(make_values(graph, std::nullopt));
    program.run_launches(0, plan.model_launches);  // the model's own values everywhere

    Gpu tuned = gpu;
    size_t next = 0;
    for (size_t p = 0; p < problems.size(); ++p) {
        const TuneProblem& problem = problems[p];
        const ROp& own = problem.candidates.front();
        const DType out = own.dtypes.back();
        const ByteRange range = written(own);
        const std::vector<char> expected = program.read(range.begin, range.end - range.begin);
        std::string best;
        double best_s = INFINITY;
        for (; next < plan.candidates.size() && plan.candidates[next].problem == p; ++next) {
            const auto& c = plan.candidates[next];
            const size_t launches = c.ways > 1 ? 2 : 1;
            const ROp& op = plan.schedule.tiles.rops[c.launch];
            program.run_launches(c.launch, launches);  // warm-up, and the output to check
            // Every candidate writes the same elements (its problem's output).
            ANVIL_CHECK(c.writes.begin == range.begin && c.writes.end == range.end,
                        "tune: candidate " + cost_key(op) + " writes other bytes than its problem");
            const double err = rel_l2(program.read(range.begin, range.end - range.begin), expected, out);
            // A TF32 candidate (--precision tf32) rounds its operands: TF32's tolerance.
            const auto* mm = std::get_if<MatmulParams>(&op.params);
            const auto* conv = op.kind == TaskKind::conv2d ? std::get_if<WindowParams>(&op.params) : nullptr;
            const bool tf32 = (mm && mm->algo == ANVIL_MM_TENSOR_TF32) || (conv && conv->algo == ANVIL_MM_TENSOR_TF32);
            const bool ok = err <= 2 * (tf32 ? kTf32Tolerance : dtype_tolerance(out));
            if (!ok) program.write(range.begin, expected);  // later problems may read it
            // A split's partials and reduce are timed apart: the cost model
            // weighs each (choose_split_k) by its own key.
            double total_s = 0;
            for (size_t l = c.launch; l < c.launch + launches; ++l) {
                const ROp& rop = plan.schedule.tiles.rops[l];
                TuneRecord rec;
                rec.key = cost_key(rop);
                rec.ways = c.ways;
                rec.rel_l2 = err;
                rec.ok = ok;
                if (ok) {
                    std::vector<double> times;
                    for (int i = 0; i < opt.iters; ++i) times.push_back(program.run_launches(l, 1));
                    rec.launch_s = median(times);
                    const int per_sm = std::max(1, blocks_per_sm(gpu, 256, tile_smem_bytes(rop, gpu)));
                    const double waves = std::ceil(double(rop.tiles) / (double(program.sm_count()) * per_sm));
                    rec.tile_s = rec.launch_s / std::max(1.0, waves);
                    tuned.measured_tile_s[rec.key] = rec.tile_s;
                    total_s += rec.launch_s;
                }
                if (records) records->push_back(rec);
            }
            if (ok && total_s < best_s)
                best_s = total_s, best = c.ways > 1 ? fmt::format("{} in {} K slices", cost_key(op), c.ways) : cost_key(op);
        }
        say(fmt::format("[{}/{}] {} (x{} rOps): {} candidates, {} K splits; fastest {} at {:.2f} us", p + 1,
                        problems.size(), problem.key, problem.rops.size(), problem.candidates.size(),
                        problem.splits.size(), best, best_s * 1e6));
    }
    return tuned;
}

}  // namespace anvil
