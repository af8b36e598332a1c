// anvil tune's parts that need no GPU: the distinct problems of a model and
// their candidates (tile shapes, and K splits of those that leave blocks
// idle), the one tuning schedule (which must compile with NVRTC
// and, run on the host, rewrite every output with each candidate and still
// match the reference), and cost keys shared by identical layers. On a
// device ([gpu]) the whole tuner runs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>

#include "schedule/cost_model.h"
#include "codegen/emit.h"
#include "tile/fusion.h"
#include "runtime/host_backend.h"
#include "anvil/pipeline.h"
#include "tools/tune.h"
#include "schedule/split_k.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "tile/decompose.h"
#include "runtime/cuda_driver.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {

Graph zoo(const std::string& name) { return load_graph((fs::path(ANVIL_SOURCE_DIR) / "models" / name).string()); }

Gpu with_tensor_cores() {
    Gpu g = default_gpu();
    g.tensor_core_tiles = true;
    return g;
}

}  // namespace

TEST_CASE("identical layers are one problem, measured once", "[tune]") {
    const TileGraph tg = fuse(decompose(zoo("bert_base_small.yaml")), default_gpu());
    const std::vector<TuneProblem> problems = tune_problems(tg, default_gpu());
    size_t gemms = 0, covered = 0;
    for (const ROp& op : tg.rops) gemms += op.kind == TaskKind::matmul || op.kind == TaskKind::conv2d;
    for (const TuneProblem& p : problems) {
        INFO(p.key);
        covered += p.rops.size();
        const ROp& first = tg.rops[p.rops.front()];
        for (int r : p.rops) {
            // The same problem: equal cost keys once tiled alike.
            CHECK(cost_key(tg.rops[r]) == cost_key(first));
        }
        REQUIRE(!p.candidates.empty());
        CHECK(cost_key(p.candidates.front()) == cost_key(first));  // its own tiles first
        std::set<std::string> keys;
        for (const ROp& c : p.candidates) keys.insert(cost_key(c));
        CHECK(keys.size() == p.candidates.size());
        CHECK(p.candidates.size() > 1);
    }
    CHECK(covered == gemms);
    CHECK(problems.size() < gemms);  // the layers share theirs
}

TEST_CASE("decode GEMVs and tensor-core tiles are candidates where they apply", "[tune]") {
    const TileGraph decode = fuse(decompose(zoo("llama_decode_small.yaml")), default_gpu());
    bool gemv = false;
    for (const TuneProblem& p : tune_problems(decode, default_gpu()))
        for (const ROp& c : p.candidates) gemv = gemv || cost_key(c).find(" gemv ") != std::string::npos;
    CHECK(gemv);
    const TileGraph enc = fuse(decompose(zoo("transformer_encoder_f16.yaml")), default_gpu());
    bool tc = false;
    for (const TuneProblem& p : tune_problems(enc, with_tensor_cores()))
        for (const ROp& c : p.candidates) tc = tc || cost_key(c).find(" tc ") != std::string::npos;
    CHECK(tc);
}

TEST_CASE("tile shapes that leave blocks idle are also measured split along K", "[tune]") {
    const Gpu gpu = with_tensor_cores();
    const TileGraph tg = fuse(decompose(zoo("bert_base.yaml")), gpu);  // full size: K long enough to slice
    const int grid = gpu.sm_count * megakernel_blocks_per_sm(tg, gpu);
    size_t splits = 0;
    for (const TuneProblem& p : tune_problems(tg, gpu)) {
        INFO(p.key);
        std::set<std::pair<size_t, int>> seen;
        for (const TuneSplit& s : p.splits) {
            REQUIRE(s.candidate < p.candidates.size());
            const ROp& c = p.candidates[s.candidate];
            CHECK(c.tiles < grid);  // whole, it would leave blocks idle
            CHECK(s.ways > 1);
            CHECK(seen.insert({s.candidate, s.ways}).second);
            // Exactly the slice counts choose_split_k weighs.
            const std::vector<int> ways = split_k_ways(c, grid);
            CHECK(std::find(ways.begin(), ways.end(), s.ways) != ways.end());
        }
        for (size_t c = 0; c < p.candidates.size(); ++c) {
            const size_t n = std::count_if(p.splits.begin(), p.splits.end(), [&](const TuneSplit& s) { return s.candidate == c; });
            CHECK(n == (p.candidates[c].tiles < grid ? split_k_ways(p.candidates[c], grid).size() : 0));
        }
        splits += p.splits.size();
    }
    CHECK(splits > 0);
}

TEST_CASE("the tuning schedule compiles as one source and every candidate recomputes its output", "[tune][host]") {
    const Graph g = zoo("transformer_encoder_f16.yaml");
    const TileGraph tg = fuse(decompose(g), default_gpu());
    const std::vector<TuneProblem> problems = tune_problems(tg, with_tensor_cores());
    const TuningPlan plan = tuning_plan(tg, with_tensor_cores(), problems);
    size_t candidates = 0, splits = 0;
    for (const TuneProblem& p : problems) candidates += p.candidates.size(), splits += p.splits.size();
    REQUIRE(splits > 0);
    REQUIRE(plan.candidates.size() == candidates + splits);
    CHECK(plan.model_launches == tg.rops.size());
    CHECK(plan.schedule.launches.size() == tg.rops.size() + candidates + 2 * splits);
    for (const auto& c : plan.candidates) {
        CHECK(c.launch >= plan.model_launches);
        CHECK(c.writes.end > c.writes.begin);
        if (c.ways == 1) continue;
        // A split: its partials, then the reduce that writes the output.
        const ROp& part = plan.schedule.tiles.rops.at(c.launch);
        const ROp& red = plan.schedule.tiles.rops.at(c.launch + 1);
        CHECK(part.split_k == c.ways);
        CHECK(red.kind == TaskKind::rowwise);
        CHECK(std::get<RowParams>(red.params).op == ANVIL_ROW_SPLIT_SUM);
        CHECK(red.reads.front() == part.node);  // the scratch the partials wrote
    }
    const CubinResult cubin = compile_nvrtc(emit_source(plan.schedule), "sm_90");
    CHECK(!cubin.cubin.empty());
    // On the host: the model, then every candidate rewriting its problem's
    // output from the same inputs; the outputs must still be the model's.
    const TensorMap values = make_values(g, std::nullopt);
    test::expect_reference(g, values, run_host(plan.schedule, values));
}

TEST_CASE("tune measures every candidate on the device and the cost model uses the times", "[tune][gpu]") {
    if (const std::string why = cuda_unavailable_reason(); !why.empty()) {
        WARN("skipped: " << why);
        CHECK_THROWS_WITH(tune(zoo("mlp_f16.yaml"), default_gpu(), {}, nullptr), Catch::Contains("no CUDA device"));
        return;
    }
    const Graph g = zoo("transformer_encoder_f16.yaml");
    std::vector<TuneRecord> records;
    std::vector<std::string> lines;
    TuneOptions opt;
    opt.iters = 3;
    const Gpu tuned = tune(g, with_tensor_cores(), opt, &records, [&](const std::string& l) { lines.push_back(l); });
    REQUIRE(!records.empty());
    CHECK(std::any_of(records.begin(), records.end(), [](const TuneRecord& r) { return r.ways > 1; }));
    for (const TuneRecord& r : records) {
        INFO(r.key << ": relative L2 " << r.rel_l2);
        CHECK(r.ok);
        CHECK(r.tile_s > 0);
        CHECK(tuned.measured_tile_s.count(r.key) == 1);
    }
    CHECK(lines.size() > 1);
    const Prediction p = predict(plan(g, "anvil", tuned));
    bool measured = false;
    for (const auto& r : p.rops) measured = measured || r.measured;
    CHECK(measured);
}
