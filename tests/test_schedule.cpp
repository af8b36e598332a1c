// Structure of tile graphs and schedules, checked without running anything:
// footprints against a brute-force walk of every element a tile touches,
// dependencies against the exact writer of every byte a task reads, and the
// shape of each policy's schedule.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "tile/fusion.h"
#include "anvil/pipeline.h"
#include "policies/registry.h"
#include "frontend/concat_siblings.h"
#include "frontend/transpose_views.h"
#include "tile/decompose.h"
#include "tile/footprint.h"
#include "schedule/cost_model.h"
#include "schedule/sync_counters.h"
#include "schedule/variants.h"

using namespace anvil;
namespace fs = std::filesystem;

namespace {

// The element of every epilogue input that the output element at element
// offset `at` reads, as anvil_epilogue_apply finds them.
template <typename F>
void walk_epilogue(const AnvilEpilogue& e, int64_t at, F&& visit) {
    if (e.nsteps == 0) return;
    int64_t off[ANVIL_EPI_MAX_INPUTS] = {};
    for (int d = e.rank - 1; d >= 0; --d) {
        const int64_t idx = at % e.shape[d];
        at /= e.shape[d];
        for (int i = 0; i < e.ninputs; ++i) off[i] += idx * e.in_stride[i][d];
    }
    for (int i = 0; i < e.ninputs; ++i) {
        const int size = dtype_size(static_cast<DType>(e.in_dtype[i]));
        visit(e.in_off[i] + off[i] * size, size, false);
    }
}

// Calls visit(byte_offset, bytes, is_write) for every element tile `tile`
// of `op` touches, by walking the index spaces the device code walks.
template <typename F>
void walk_tile(const ROp& op, int tile, F&& visit) {
    auto size = [&](int slot) { return dtype_size(op.dtypes[slot]); };
    // A write of the element at element offset `at` of the output at `base`,
    // with the epilogue inputs it reads.
    auto write = [&](int64_t base, int64_t at, int slot) {
        visit(base + at * size(slot), size(slot), true);
        walk_epilogue(op.epilogue, at, visit);
    };
    if (op.kind == TaskKind::elementwise) {
        const auto& p = std::get<EwParams>(op.params);
        for (int64_t i = tile * p.tile_elems; i < std::min(p.numel, (tile + 1) * p.tile_elems); ++i) {
            int64_t rest = i, out = 0, in[2] = {0, 0};
            for (int d = p.rank - 1; d >= 0; --d) {
                int64_t idx = rest % p.shape[d];
                rest /= p.shape[d];
                out += idx * p.out_stride[d];
                for (int k = 0; k < p.ninputs; ++k) in[k] += idx * p.in_stride[k][d];
            }
            write(p.out_off, out, 0);
            for (int k = 0; k < p.ninputs; ++k) visit(p.in_off[k] + in[k] * size(1 + k), size(1 + k), false);
        }
    } else if (op.kind == TaskKind::matmul) {
        const auto& p = std::get<MatmulParams>(op.params);
        int64_t per_batch = int64_t{p.tiles_m} * p.tiles_n;
        int64_t batch = tile / per_batch, tm = tile % per_batch / p.tiles_n, tn = tile % p.tiles_n;
        int64_t ab = 0, bb = 0, cb = 0;
        for (int d = p.batch_rank - 1; d >= 0; --d) {
            int64_t i = batch % p.batch_shape[d];
            batch /= p.batch_shape[d];
            ab += i * p.a_sb[d];
            bb += i * p.b_sb[d];
            cb += i * p.c_sb[d];
        }
        for (int64_t m = tm * p.bm; m < std::min<int64_t>(p.M, (tm + 1) * p.bm); ++m)
            for (int64_t n = tn * p.bn; n < std::min<int64_t>(p.N, (tn + 1) * p.bn); ++n) {
                write(p.c_off, cb + m * p.c_sm + n * p.c_sn, 2);
                for (int64_t k = 0; k < p.K; ++k) {
                    visit(p.a_off + (ab + m * p.a_sm + k * p.a_sk) * size(0), size(0), false);
                    visit(p.b_off + (bb + k * p.b_sk + n * p.b_sn) * size(1), size(1), false);
                }
            }
    } else if (op.kind == TaskKind::conv2d || op.kind == TaskKind::window) {
        // For every output cell: every (c, i, j) of its window that lies in x,
        // as the device code gathers them.
        const auto& p = std::get<WindowParams>(op.params);
        const int64_t M = int64_t{p.OH} * p.OW, K = int64_t{p.Cg} * p.KH * p.KW;
        auto cell = [&](int64_t n, int64_t o, int64_t m) {  // o: the output channel, m: the pixel
            const int64_t oh = m / p.OW, ow = m % p.OW, g = o / p.Og;
            write(p.y_off, (n * p.O + o) * M + m, 3);
            for (int64_t c = 0; c < p.Cg; ++c)
                for (int64_t i = 0; i < p.KH; ++i)
                    for (int64_t j = 0; j < p.KW; ++j) {
                        const int64_t ih = oh * p.sh - p.pt + i * p.dh, iw = ow * p.sw - p.pl + j * p.dw;
                        if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)
                            visit(p.x_off + (((n * p.C + g * p.Cg + c) * p.H + ih) * p.W + iw) * size(0), size(0), false);
                        if (p.op == ANVIL_WIN_CONV)
                            visit(p.w_off + (o * K + (c * p.KH + i) * p.KW + j) * size(1), size(1), false);
                    }
            if (p.op == ANVIL_WIN_CONV && p.bias_off >= 0) visit(p.bias_off + o * size(2), size(2), false);
        };
        if (op.kind == TaskKind::conv2d) {
            const int64_t tn = tile % p.tiles_n, tm = tile / p.tiles_n % p.tiles_m;
            const int64_t ng = tile / (int64_t{p.tiles_n} * p.tiles_m), g = ng % p.groups, n = ng / p.groups;
            for (int64_t m = tm * p.bm; m < std::min<int64_t>(M, (tm + 1) * p.bm); ++m)
                for (int64_t o = tn * p.bn; o < std::min<int64_t>(p.Og, (tn + 1) * p.bn); ++o) cell(n, g * p.Og + o, m);
        } else {
            const int64_t total = int64_t{p.N} * p.O * M;
            for (int64_t e = tile * p.tile_elems; e < std::min<int64_t>(total, (tile + 1) * p.tile_elems); ++e)
                cell(e / (M * p.O), e / M % p.O, e % M);
        }
    } else if (op.kind == TaskKind::channel) {
        const auto& p = std::get<ChannelParams>(op.params);
        const int64_t offs[4] = {p.scale_off, p.bias_off, p.mean_off, p.var_off};
        for (int64_t i = tile * p.tile_elems; i < std::min(p.numel, (tile + 1) * p.tile_elems); ++i) {
            visit(p.x_off + i * size(0), size(0), false);
            visit(p.y_off + i * size(5), size(5), true);
            for (int k = 0; k < 4; ++k) visit(offs[k] + (i / p.inner % p.C) * size(1 + k), size(1 + k), false);
        }
    } else if (op.kind == TaskKind::gather) {
        // The table rows read depend on the ids: any row may be read.
        const auto& p = std::get<GatherParams>(op.params);
        for (int64_t r = tile * p.rows_per_tile; r < std::min<int64_t>(p.rows, (tile + 1) * int64_t{p.rows_per_tile}); ++r) {
            visit(p.ids_off + r * size(1), size(1), false);
            for (int64_t d = 0; d < p.D; ++d) visit(p.out_off + (r * p.D + d) * size(2), size(2), true);
        }
        for (int64_t e = 0; e < int64_t{p.V} * p.D; ++e) visit(p.table_off + e * size(0), size(0), false);
    } else {
        const auto& p = std::get<RowParams>(op.params);
        for (int64_t row = tile * p.rows_per_tile; row < std::min<int64_t>(p.rows, int64_t{tile + 1} * p.rows_per_tile); ++row) {
            int64_t rest = row, in = 0, out = 0;
            for (int d = p.kept_rank - 1; d >= 0; --d) {
                int64_t idx = rest % p.kept_shape[d];
                rest /= p.kept_shape[d];
                in += idx * p.kept_in[d];
                out += idx * p.kept_out[d];
            }
            for (int64_t r = 0; r < p.row_len; ++r) {
                int64_t rr = r, ri = 0, ro = 0;
                for (int d = p.red_rank - 1; d >= 0; --d) {
                    int64_t idx = rr % p.red_shape[d];
                    rr /= p.red_shape[d];
                    ri += idx * p.red_in[d];
                    ro += idx * p.red_out[d];
                }
                visit(p.in_off + (in + ri) * size(0), size(0), false);
                write(p.out_off, out + ro, 1);
                if (p.op == ANVIL_ROW_LAYERNORM || p.op == ANVIL_ROW_RMSNORM)
                    visit(p.gamma_off + r * size(2), size(2), false);
                if (p.op == ANVIL_ROW_LAYERNORM) visit(p.beta_off + r * size(3), size(3), false);
            }
        }
    }
}

bool inside(int64_t at, int bytes, ByteRange r) { return at >= r.begin && at + bytes <= r.end; }

// Every element every tile of `op` touches lies in its footprint.
void check_footprints(const ROp& op) {
    for (int tile = 0; tile < op.tiles; ++tile) {
        ByteRange w = tile_writes(op, tile);
        std::vector<ByteRange> reads = tile_reads(op, tile);
        int64_t misses = 0;
        walk_tile(op, tile, [&](int64_t at, int bytes, bool write) {
            if (write) {
                misses += !inside(at, bytes, w);
            } else {
                bool any = false;
                for (ByteRange r : reads) any = any || inside(at, bytes, r);
                misses += !any;
            }
        });
        INFO(op.name << " tile " << tile);
        CHECK(misses == 0);
    }
}

// A model of models/, or of tests/models/ when the name starts with "tests/".
Graph zoo_graph(const std::string& name) {
    const bool test_model = name.rfind("tests/", 0) == 0;
    const fs::path path = test_model ? fs::path(ANVIL_SOURCE_DIR) / "tests" / "models" / name.substr(6)
                                     : fs::path(ANVIL_SOURCE_DIR) / "models" / name;
    return load_graph(path.string());
}

}  // namespace

TEST_CASE("footprints cover every element a tile touches", "[schedule]") {
    auto model = GENERATE(as<std::string>{}, "transformer_encoder_f16.yaml", "llama_mlp_bf16.yaml", "mlp_f32.yaml",
                          "resnet18_small.yaml", "mobilenet_v2_small.yaml", "resnext29_small.yaml",
                          "tests/cnn_mixed_f16.yaml", "tests/embed_mlp_bf16.yaml", "tests/assorted_bf16.yaml",
                          "tests/every_tile_f16.yaml");
    const bool fused = GENERATE(false, true);
    DYNAMIC_SECTION(model << (fused ? " fused" : "")) {
        TileGraph tg = decompose(zoo_graph(model));
        if (fused) tg = fuse(tg, default_gpu());
        for (const ROp& op : tg.rops) check_footprints(op);
    }
}

TEST_CASE("footprints cover every element a tile of every GEMM tile shape touches", "[schedule]") {
    // Every candidate shape of every GEMM (tensor-core, GEMV and tiled),
    // each with its tile placement and the shared facts of rtasks/tiling.cuh.
    auto model = GENERATE(as<std::string>{}, "tests/every_tile_f16.yaml", "tests/assorted_bf16.yaml",
                          "tests/cnn_mixed_f16.yaml");
    const bool fused = GENERATE(false, true);
    DYNAMIC_SECTION(model << (fused ? " fused" : "")) {
        Gpu gpu = default_gpu();
        gpu.tensor_core_tiles = true;
        TileGraph tg = decompose(zoo_graph(model));
        if (fused) tg = fuse(tg, gpu);
        std::set<int> algos;
        for (const ROp& op : tg.rops)
            for (const ROp& v : tile_variants(op, gpu)) {
                if (const auto* p = std::get_if<MatmulParams>(&v.params)) algos.insert(p->algo);
                check_footprints(v);
            }
        if (model == "tests/every_tile_f16.yaml") CHECK(algos == std::set<int>{ANVIL_MM_TILED, ANVIL_MM_GEMV, ANVIL_MM_TENSOR});
    }
}

TEST_CASE("tiles of one rOperator write disjoint bytes", "[schedule]") {
    auto model = GENERATE(as<std::string>{}, "transformer_encoder_f32.yaml", "tests/cnn_mixed_f16.yaml",
                          "tests/embed_mlp_bf16.yaml");
    const bool fused = GENERATE(false, true);
    CAPTURE(model, fused);
    TileGraph tg = decompose(zoo_graph(model));
    if (fused) tg = fuse(tg, default_gpu());
    for (const ROp& op : tg.rops) {
        std::map<int64_t, int> writer;
        int clashes = 0;
        for (int tile = 0; tile < op.tiles; ++tile)
            walk_tile(op, tile, [&](int64_t at, int, bool write) {
                if (!write) return;
                auto [it, fresh] = writer.emplace(at, tile);
                clashes += !fresh && it->second != tile;
            });
        INFO(op.name);
        CHECK(clashes == 0);
    }
}

// Whether task t may rely on task w being finished: w is a dependency of
// t, an earlier launch, earlier in t's own block, or earlier in the block
// of one of t's dependencies (a block runs its queue in order, so policies
// may keep only the latest dependency per block).
class Ordering {
public:
    explicit Ordering(const Schedule& s) : s_(s), sync_(sync_counters(s)), block_(s.tasks.size()), prev_(s.tasks.size(), -1) {
        for (size_t l = 0; l < s.launches.size(); ++l)
            for (size_t b = 0; b < s.launches[l].queues.size(); ++b) {
                const std::vector<int>& q = s.launches[l].queues[b];
                for (size_t i = 0; i < q.size(); ++i) {
                    block_[q[i]] = {static_cast<int>(l), static_cast<int>(b)};
                    if (i > 0) prev_[q[i]] = q[i - 1];
                }
            }
    }
    // An earlier launch, or a chain of counter waits and queue order from w to t.
    bool finished_before(int w, int t) const {
        if (block_[w].first != block_[t].first) return block_[w].first < block_[t].first;
        auto [it, fresh] = memo_.emplace(std::make_pair(w, t), false);
        if (!fresh) return it->second;
        std::vector<char> seen(s_.tasks.size(), 0);
        std::vector<int> todo{t};
        bool found = false;
        while (!todo.empty() && !found) {
            const int u = todo.back();
            todo.pop_back();
            std::vector<int> before = waited_tasks(s_, sync_, u);
            if (prev_[u] >= 0) before.push_back(prev_[u]);
            for (int v : before) {
                found = found || v == w;
                if (v > w && !seen[v]) seen[v] = 1, todo.push_back(v);
            }
        }
        return it->second = found;
    }

private:
    const Schedule& s_;
    const SyncCounters sync_;
    std::vector<std::pair<int, int>> block_;  // task -> (launch, block)
    std::vector<int> prev_;
    mutable std::map<std::pair<int, int>, bool> memo_;
};

TEST_CASE("every byte a task reads is published by a task it waits for", "[schedule]") {
    auto model = GENERATE(as<std::string>{}, "transformer_encoder_f32.yaml", "llama_mlp_f16.yaml",
                          "resnet18_small.yaml", "tests/cnn_mixed_f16.yaml", "tests/embed_mlp_bf16.yaml",
                          "tests/assorted_bf16.yaml");
    const bool fused = GENERATE(false, true);
    DYNAMIC_SECTION(model << (fused ? " fused" : "")) {
        const Graph g = zoo_graph(model);
        Schedule s = fused ? find_policy("topo").fn(fuse(decompose(g), default_gpu()), default_gpu())
                           : plan(g, "topo", default_gpu());
        std::map<int64_t, int> writer;  // byte -> task
        for (size_t t = 0; t < s.tasks.size(); ++t)
            walk_tile(s.tiles.rops[s.tasks[t].rop], s.tasks[t].tile, [&](int64_t at, int bytes, bool write) {
                if (write)
                    for (int b = 0; b < bytes; ++b) writer[at + b] = static_cast<int>(t);
            });
        // Bytes nobody writes must be the run's inputs and params (never a
        // fused-away intermediate).
        std::vector<ByteRange> given;
        for (const TensorBuffer& b : s.tiles.buffers)
            if (!s.tiles.nodes[b.storage].is_node) given.push_back({b.offset, b.offset + b.bytes});
        const Ordering order(s);
        int64_t missing = 0, unwritten = 0;
        for (size_t t = 0; t < s.tasks.size(); ++t) {
            walk_tile(s.tiles.rops[s.tasks[t].rop], s.tasks[t].tile, [&](int64_t at, int bytes, bool write) {
                if (write) return;
                auto it = writer.find(at);
                if (it != writer.end() && !order.finished_before(it->second, static_cast<int>(t))) ++missing;
                if (it == writer.end())
                    unwritten += std::none_of(given.begin(), given.end(), [&](ByteRange r) { return inside(at, bytes, r); });
            });
        }
        CHECK(missing == 0);
        CHECK(unwritten == 0);
    }
}

TEST_CASE("dependencies are tile-level, not operator-level", "[schedule]") {
    Schedule s = plan(zoo_graph("transformer_encoder_f32.yaml"), "topo", default_gpu());
    // A row of layernorm needs only the tiles of its producer that hold its row.
    int narrower = 0;
    const SyncCounters sync = sync_counters(s);
    for (size_t i = 0; i < s.tasks.size(); ++i) {
        const Task& t = s.tasks[i];
        const ROp& op = s.tiles.rops[t.rop];
        const std::vector<int> waited = waited_tasks(s, sync, static_cast<int>(i));  // through its counters
        if (op.kind != TaskKind::rowwise || waited.empty()) continue;
        int producer_tiles = s.tiles.rops[s.tasks[waited.front()].rop].tiles;
        narrower += static_cast<int>(waited.size()) < producer_tiles;
    }
    CHECK(narrower > 0);
}

TEST_CASE("policies give the schedule shapes they promise", "[schedule]") {
    Graph g = zoo_graph("transformer_encoder_f32.yaml");
    Gpu gpu = default_gpu();
    Schedule mega = plan(g, "topo", gpu);
    Schedule per_op = plan(g, "per_op", gpu);
    TileGraph tg = decompose(transpose_views(concat_sibling_matmuls(g)));  // the fold stage's passes that apply here
    size_t tiles = 0;
    for (const ROp& op : tg.rops) tiles += op.tiles;

    CHECK(mega.launches.size() == 1);
    CHECK(mega.launches[0].queues.size() == static_cast<size_t>(gpu.sm_count * kCudaCoreBlocksPerSm));  // every co-resident block
    CHECK(mega.tasks.size() == tiles);
    CHECK(per_op.launches.size() == tg.rops.size());
    CHECK(per_op.tasks.size() == tiles);
    for (const Task& t : per_op.tasks) CHECK(t.deps.empty());
    // reshape costs nothing: it aliases its operand's storage
    const TensorBuffer& q1 = buffer_of(tg, "q1");
    const TensorBuffer& q2 = buffer_of(tg, "q2");
    CHECK(q2.alias);
    CHECK(q2.offset == q1.offset);
}

TEST_CASE("verify_schedule catches broken invariants", "[schedule]") {
    Schedule s = plan(zoo_graph("transformer_encoder_f32.yaml"), "topo", default_gpu());
    SECTION("a dependency on a later task") {
        s.tasks[0].deps.push_back(1);
        CHECK_THROWS_WITH(verify_schedule(s), Catch::Contains("depends on a later task"));
    }
    SECTION("a task in no queue") {
        s.launches[0].queues[0].erase(s.launches[0].queues[0].begin());
        CHECK_THROWS_WITH(verify_schedule(s), Catch::Contains("is in no queue"));
    }
    SECTION("a queue out of order") {
        auto& q = s.launches[0].queues[0];
        REQUIRE(q.size() >= 2);
        std::swap(q[0], q[1]);
        CHECK_THROWS_WITH(verify_schedule(s), Catch::Contains("ascending"));
    }
}

TEST_CASE("an unknown policy is a user error naming the known ones", "[schedule]") {
    CHECK_THROWS_WITH(find_policy("fastest"), Catch::Contains("unknown policy 'fastest'") && Catch::Contains("per_op"));
}
