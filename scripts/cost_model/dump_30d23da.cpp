// Built against commit 30d23da (scripts/cost_model/rebuild_30d23da.sh),
// not against this tree: prints that commit's schedule of a model under a
// policy as JSON (per rOp its tile shape, traffic and fused work as that
// commit's cost model counted them; per task its dependencies; per launch
// its queues), the input of the cost-model fit (src/tools/cost_fit.h).
// Usage: dump_30d23da MODEL.yaml POLICY
#include <cstdio>
#include <nlohmann/json.hpp>
#include "anvil/cost_model.h"
#include "anvil/graph.h"
#include "anvil/pipeline.h"

using namespace anvil;
using nlohmann::json;

static json epi(const AnvilEpilogue& e) { return json{{"nsteps", e.nsteps}, {"ninputs", e.ninputs}, {"rank", e.rank}}; }

int main(int argc, char** argv) {
    if (argc < 3) return 1;
    Graph graph = load_graph(argv[1]);
    const Gpu gpu = default_gpu();
    Schedule s = plan(graph, argv[2], gpu);
    Prediction p = predict(s);
    json j;
    j["model"] = argv[1];
    j["policy"] = argv[2];
    j["predicted_us"] = p.total_s * 1e6;
    j["threads_per_block"] = s.threads_per_block;
    json rops = json::array();
    for (size_t r = 0; r < s.tiles.rops.size(); ++r) {
        const ROp& op = s.tiles.rops[r];
        json o{{"name", op.name}, {"kind", task_kind_name(op.kind)}, {"tiles", op.tiles}, {"flops", op.flops},
               {"epilogue", epi(op.epilogue)}, {"row_epilogue", epi(op.row_epilogue)},
               {"dram_read", p.rops[r].dram_read}, {"dram_write", p.rops[r].dram_write},
               {"l2_read", p.rops[r].l2_read}, {"old_tile_s", p.rops[r].tile_s}};
        json dt = json::array();
        for (DType d : op.dtypes) dt.push_back(dtype_size(d));
        o["dtype_sizes"] = dt;
        if (auto* m = std::get_if<MatmulParams>(&op.params))
            o["gemm"] = json{{"M", m->M}, {"N", m->N}, {"K", m->K}, {"bm", m->bm}, {"bn", m->bn}, {"bk", m->bk},
                             {"batches", m->batches}, {"row_op", m->row_op}, {"tiles_m", m->tiles_m}, {"tiles_n", m->tiles_n}};
        if (auto* w = std::get_if<WindowParams>(&op.params)) {
            if (op.kind == TaskKind::conv2d)
                o["gemm"] = json{{"M", w->OH * w->OW}, {"N", w->Og}, {"K", w->Cg * w->KH * w->KW}, {"bm", w->bm},
                                 {"bn", w->bn}, {"bk", w->bk}, {"batches", w->N * w->groups}, {"row_op", 0},
                                 {"tiles_m", w->tiles_m}, {"tiles_n", w->tiles_n}};
            else
                o["window"] = json{{"op", w->op}, {"KH", w->KH}, {"KW", w->KW}, {"tile_elems", w->tile_elems}, {"C", w->C}, {"Cg", w->Cg}};
        }
        if (auto* e = std::get_if<EwParams>(&op.params)) o["ew"] = json{{"op", e->op}, {"ninputs", e->ninputs}, {"rank", e->rank}, {"tile_elems", e->tile_elems}, {"numel", e->numel}};
        if (auto* rw = std::get_if<RowParams>(&op.params)) o["row"] = json{{"op", rw->op}, {"rows_per_tile", rw->rows_per_tile}, {"row_len", rw->row_len}, {"rows", rw->rows}};
        if (auto* c = std::get_if<ChannelParams>(&op.params)) o["channel"] = json{{"tile_elems", c->tile_elems}, {"numel", c->numel}};
        if (auto* g = std::get_if<GatherParams>(&op.params)) o["gather"] = json{{"rows_per_tile", g->rows_per_tile}, {"D", g->D}};
        rops.push_back(o);
    }
    j["rops"] = rops;
    json tasks = json::array();
    for (const Task& t : s.tasks) tasks.push_back(json{t.rop, t.tile, t.deps});
    j["tasks"] = tasks;  // [rop, tile, deps]
    json launches = json::array();
    for (const Launch& l : s.launches) launches.push_back(l.queues);
    j["launches"] = launches;
    std::printf("%s\n", j.dump().c_str());
    return 0;
}
