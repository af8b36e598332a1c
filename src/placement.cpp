#include "anvil/placement.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "anvil/cost_model.h"
#include "anvil/policy.h"

namespace anvil {

std::vector<Task> task_graph(const TileGraph& tg) {
    std::vector<Task> tasks;
    for (size_t r = 0; r < tg.rops.size(); ++r)
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile) tasks.push_back(Task{static_cast<int>(r), tile, {}});
    std::vector<std::vector<int>> deps = tile_dependencies(tg, tasks);
    for (size_t t = 0; t < tasks.size(); ++t) tasks[t].deps = std::move(deps[t]);
    return tasks;
}

std::vector<int> rop_waves(const TileGraph& tg, const std::vector<Task>& tasks) {
    std::vector<int> wave(tg.rops.size(), 0);
    for (const Task& t : tasks)  // producers come first: one pass in task order
        for (int d : t.deps) wave[t.rop] = std::max(wave[t.rop], wave[tasks[d].rop] + 1);
    return wave;
}

ROp retile(const ROp& op, int bm, int bn, int bk) {
    ROp r = op;
    auto ceil_div = [](int64_t a, int64_t b) { return (a + b - 1) / b; };
    if (auto* p = std::get_if<MatmulParams>(&r.params); p && op.kind == TaskKind::matmul) {
        p->algo = ANVIL_MM_TILED;
        p->bm = bm, p->bn = bn, p->bk = bk;
        p->tiles_m = static_cast<int>(ceil_div(p->M, bm));
        p->tiles_n = static_cast<int>(ceil_div(p->N, bn));
        r.tiles = static_cast<int>(p->batches * p->tiles_m * p->tiles_n);
    } else if (auto* w = std::get_if<WindowParams>(&r.params); w && op.kind == TaskKind::conv2d) {
        w->bm = bm, w->bn = bn, w->bk = bk;
        w->tiles_m = static_cast<int>(ceil_div(int64_t{w->OH} * w->OW, bm));
        w->tiles_n = static_cast<int>(ceil_div(w->Og, bn));
        r.tiles = static_cast<int>(int64_t{w->N} * w->groups * w->tiles_m * w->tiles_n);
    } else {
        throw InternalError("retile: rOp '" + op.name + "' is not a GEMM");
    }
    return r;
}

ROp as_gemv(const ROp& op, int bn) {
    ROp r = retile(op, 16, bn, 0);
    auto& p = std::get<MatmulParams>(r.params);
    ANVIL_CHECK(p.M <= 4 && p.row_op == ANVIL_MM_ROW_NONE, "as_gemv: rOp '" + op.name + "' is not a GEMV");
    p.algo = ANVIL_MM_GEMV;
    return r;
}

bool tensor_core_operands(const ROp& op) {
    return op.kind == TaskKind::matmul && op.dtypes.size() == 3 &&
           (op.dtypes[0] == DType::f16 || op.dtypes[0] == DType::bf16) && op.dtypes[1] == op.dtypes[0];
}

ROp on_tensor_cores(const ROp& op, int bm, int bn, int bk) {
    ROp r = retile(op, bm, bn, bk);
    auto& p = std::get<MatmulParams>(r.params);
    ANVIL_CHECK(tensor_core_operands(op) && p.row_op == ANVIL_MM_ROW_NONE, "on_tensor_cores: rOp '" + op.name + "' cannot use them");
    p.algo = ANVIL_MM_TENSOR;
    return r;
}

std::vector<ROp> tile_variants(const ROp& op, const Gpu& gpu) {
    std::vector<ROp> out{op};
    if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) return out;
    const auto* p = std::get_if<MatmulParams>(&op.params);
    if (gpu.tensor_core_tiles && p && tensor_core_operands(op) && p->row_op == ANVIL_MM_ROW_NONE)
        for (int bm : {32, 64, 128})
            for (int bn : {32, 64, 128}) out.push_back(on_tensor_cores(op, bm, bn, 32));
    if (p && p->M <= 4 && p->row_op == ANVIL_MM_ROW_NONE)
        for (int bn : {16, 32, 64, 128, 256}) out.push_back(as_gemv(op, bn));
    // BM and BN are multiples of the 16 x 16 thread grid; the shared tiles
    // must fit the 48 KiB of static shared memory of one block.
    for (int bm : {16, 32, 64, 128})
        for (int bn : {16, 32, 64, 128}) {
            ROp v = retile(op, bm, bn, 32);
            const auto* mm = std::get_if<MatmulParams>(&v.params);
            if (mm && mm->row_op != ANVIL_MM_ROW_NONE && mm->tiles_n != 1) continue;  // a fused row op needs whole rows
            if (tile_smem_bytes(v) <= std::min(48 * 1024, gpu.smem_per_block)) out.push_back(std::move(v));
        }
    return out;
}

ROp fastest_alone(const ROp& op, const Gpu& gpu, int sms) {
    ROp best = op;
    double best_s = INFINITY;
    for (ROp& v : tile_variants(op, gpu)) {
        const double waves = std::ceil(static_cast<double>(v.tiles) / std::max(1, sms));
        const double s = waves * (tile_seconds_alone(gpu, v) + gpu.task_overhead_s);
        if (s < best_s) best_s = s, best = std::move(v);
    }
    return best;
}

ROp most_efficient(const ROp& op, const Gpu& gpu) {
    ROp best = op;
    double best_s = INFINITY;
    for (ROp& v : tile_variants(op, gpu)) {
        const double s = v.tiles * (tile_seconds_alone(gpu, v) + gpu.task_overhead_s);
        if (s < best_s) best_s = s, best = std::move(v);
    }
    return best;
}

TileGraph choose_variants_by_wave(const TileGraph& tg, const Gpu& gpu) {
    TileGraph out = tg;
    const std::vector<int> wave = rop_waves(tg, task_graph(tg));
    const std::vector<double> tile_s = tile_seconds_in_order(tg, gpu);
    const int waves = wave.empty() ? 0 : *std::max_element(wave.begin(), wave.end()) + 1;
    std::vector<double> work(waves, 0);
    std::vector<int64_t> tiles(waves, 0);
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        work[wave[r]] += tg.rops[r].tiles * tile_s[r];
        tiles[wave[r]] += tg.rops[r].tiles;
    }
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        const ROp& op = tg.rops[r];
        if (op.kind != TaskKind::matmul && op.kind != TaskKind::conv2d) continue;
        if (tiles[wave[r]] >= gpu.sm_count) {
            out.rops[r] = most_efficient(op, gpu);
        } else {
            const double share = work[wave[r]] > 0 ? op.tiles * tile_s[r] / work[wave[r]] : 1.0;
            out.rops[r] = fastest_alone(op, gpu, std::max(1, static_cast<int>(share * gpu.sm_count)));
        }
    }
    return out;
}

int wavefront_blocks(const TileGraph& tg, const Gpu& gpu) {
    int64_t tasks = 0;
    for (const ROp& op : tg.rops) tasks += op.tiles;
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(gpu.sm_count, tasks)));
}

std::vector<Placed> wavefront_order(const TileGraph& tg, const Gpu& gpu) {
    const std::vector<int> wave = rop_waves(tg, task_graph(tg));
    const std::vector<double> tile_s = tile_seconds_in_order(tg, gpu);
    const int blocks = wavefront_blocks(tg, gpu);
    std::vector<std::vector<int>> by_wave;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        if (wave[r] >= static_cast<int>(by_wave.size())) by_wave.resize(wave[r] + 1);
        by_wave[wave[r]].push_back(static_cast<int>(r));
    }
    std::vector<Placed> order;
    std::vector<double> load(blocks, 0);
    for (std::vector<int>& rops : by_wave) {
        // Rops of one wave are independent: any order of their tiles is topological.
        std::stable_sort(rops.begin(), rops.end(), [&](int a, int b) { return tile_s[a] > tile_s[b]; });
        const double floor = *std::max_element(load.begin(), load.end());  // the wave starts when the last one ends
        std::fill(load.begin(), load.end(), floor);
        for (int r : rops)
            for (int tile = 0; tile < tg.rops[r].tiles; ++tile) {
                const int b = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
                load[b] += tile_s[r] + gpu.task_overhead_s;
                order.push_back(Placed{r, tile, b});
            }
    }
    return order;
}

std::vector<Placed> round_robin_order(const TileGraph& tg, int blocks) {
    std::vector<Placed> order;
    for (size_t r = 0; r < tg.rops.size(); ++r)
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile)
            order.push_back(Placed{static_cast<int>(r), tile, static_cast<int>(order.size() % blocks)});
    return order;
}

Schedule launch_per_rop(const std::string& policy, const TileGraph& tg, const Gpu& gpu, const std::string& prefix) {
    Schedule s;
    s.policy = policy;
    s.gpu = gpu;
    s.tiles = tg;
    for (size_t r = 0; r < tg.rops.size(); ++r) {
        Launch launch;
        launch.name = prefix + std::to_string(r);
        for (int tile = 0; tile < tg.rops[r].tiles; ++tile) {
            launch.queues.push_back({static_cast<int>(s.tasks.size())});
            s.tasks.push_back(Task{static_cast<int>(r), tile, {}});
        }
        s.launches.push_back(std::move(launch));
    }
    return s;
}

Schedule persistent_schedule(const std::string& policy, const TileGraph& tg, const Gpu& gpu,
                             const std::vector<Placed>& order, int blocks) {
    Schedule s;
    s.policy = policy;
    s.gpu = gpu;
    s.tiles = tg;
    for (const Placed& p : order) s.tasks.push_back(Task{p.rop, p.tile, {}});
    std::vector<std::vector<int>> deps = tile_dependencies(tg, s.tasks);
    Launch launch;
    launch.name = "anvil_megakernel";
    launch.queues.resize(static_cast<size_t>(std::max(1, blocks)));
    std::unordered_map<int, int> latest;  // block -> latest producer on it
    for (size_t t = 0; t < order.size(); ++t) {
        const int block = order[t].block;
        ANVIL_CHECK(block >= 0 && block < blocks, "task placed on block " + std::to_string(block));
        launch.queues[block].push_back(static_cast<int>(t));
        latest.clear();
        for (int d : deps[t]) {
            const int b = order[d].block;
            if (b == block) continue;  // the queue runs d first
            int& l = latest[b];
            l = std::max(l, d);  // d's block runs d before l, and l before this task
        }
        for (const auto& [b, d] : latest) s.tasks[t].deps.push_back(d);
        std::sort(s.tasks[t].deps.begin(), s.tasks[t].deps.end());
    }
    s.launches.push_back(std::move(launch));
    return s;
}

}  // namespace anvil
