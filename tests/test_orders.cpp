// The placements the persistent policies start from (src/schedule/orders.cpp):
// the producer-affine wavefront puts a tile-aligned consumer on its
// producer's block, where it polls no counter, and stays race-free.
#include <catch2/catch.hpp>

#include <string>

#include "anvil/pipeline.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "run_checks.h"
#include "schedule/builders.h"
#include "schedule/orders.h"
#include "schedule/race_check.h"
#include "tile/decompose.h"

using namespace anvil;

TEST_CASE("the producer-affine wavefront places a tile-aligned consumer on its producer's block, without waits",
          "[waits][orders]") {
    // Unfused: relu, then sigmoid and exp of each relu tile (a tile per row of 4096 elements: exact dependencies).
    const Graph g = infer_shapes(build_graph(load_model_from_string(R"(anvil: 1
name: chain
dtype: f32
seed: 7
inputs: [{name: x, shape: [65, 4096]}]
nodes:
  - {name: a, op: relu, inputs: [x]}
  - {name: b, op: sigmoid, inputs: [a]}
  - {name: c, op: exp, inputs: [a]}
outputs: [b, c]
)",
                                                                    "chain.yaml")));
    const TileGraph tg = decompose(g);
    REQUIRE(tg.rops.size() == 3);
    const int blocks = wavefront_blocks(tg, default_gpu());
    auto waits_of_consumers = [&](const Schedule& s) {
        size_t n = 0;
        for (const Task& t : s.tasks) n += t.rop != 0 ? t.waits.size() : 0;
        return n;
    };
    const Schedule plain = persistent_schedule("test", tg, default_gpu(), wavefront_order(tg, default_gpu()), blocks);
    const std::vector<Placed> affine_order = wavefront_order(tg, default_gpu(), true);
    const Schedule affine = persistent_schedule("test", tg, default_gpu(), affine_order, blocks);
    CHECK(waits_of_consumers(plain) > 0);
    // Of b and c, whichever comes first in the wave takes every producer's
    // block; the other one's tiles go elsewhere (the blocks are busier).
    CHECK(waits_of_consumers(affine) <= static_cast<size_t>(tg.rops[0].tiles) + 1);
    CHECK(waits_of_consumers(affine) < waits_of_consumers(plain));
    int on_producer = 0;
    for (const Placed& p : affine_order)
        if (p.rop != 0) on_producer += p.block == affine_order[p.tile].block;
    CHECK(on_producer >= tg.rops[0].tiles);
    CHECK(find_races(affine).empty());
    const TensorMap values = make_values(g, std::nullopt);
    HostRunOptions opt;
    opt.check_races = true;
    test::expect_reference(g, values, run_host(affine, values, opt), 2);
}
