// How the row tiles find their rows and elements (rtasks/rowwise.cuh): a
// view whose dims merge into one run is walked by a multiply (the warp path
// takes only those), any other by the multi-index in 32-bit division. Rows
// of 1, 7, 33 and 129 elements (and one past the warp path's 1024), one to
// three reduced dims, kept dims that merge and that do not, f32 and f16,
// against the float64 reference on the simt backend (the CUDA code) and the
// host backend. And the PTX of the row tiles: no local memory, no 64-bit
// division, a row tile a fraction of its old 15,770 instructions.
#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "anvil/pipeline.h"
#include "codegen/emit.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"
#include "frontend/values.h"
#include "run_checks.h"
#include "runtime/compile_nvrtc.h"
#include "runtime/host_backend.h"
#include "runtime/simt_backend.h"

using namespace anvil;

namespace {

// Each output y<i> is one row op; the comment says which walk it takes.
std::string row_cases(DType dtype) {
    return fmt::format(R"(anvil: 1
name: row_walks
dtype: {}
seed: 23
inputs:
  - {{name: a, shape: [5, 1]}}
  - {{name: b, shape: [3, 7]}}
  - {{name: c, shape: [2, 33, 3]}}
  - {{name: d, shape: [3, 7, 129]}}
  - {{name: e, shape: [2, 3, 5, 7]}}
  - {{name: f, shape: [2, 1029]}}
  - {{name: g, shape: [5, 7], init: uniform, low: 0.5, high: 2.0}}
  - {{name: h, shape: [5, 7]}}
  - {{name: k, shape: [129], init: uniform, low: 0.5, high: 2.0}}
nodes:
  - {{name: y0, op: softmax, inputs: [a]}}
  - {{name: y1, op: softmax, inputs: [b]}}
  - {{name: y2, op: softmax, inputs: [c], axis: 1}}
  - {{name: y3, op: reduce_sum, inputs: [d], axes: [1]}}
  - {{name: y4, op: reduce_mean, inputs: [e], axes: [1, 2, 3]}}
  - {{name: y5, op: reduce_max, inputs: [e], axes: [0, 2]}}
  - {{name: y6, op: reduce_sum, inputs: [e], axes: [1, 3], keepdims: true}}
  - {{name: y7, op: layernorm, inputs: [e, g, h], axis: -2}}
  - {{name: y8, op: rmsnorm, inputs: [d, k]}}
  - {{name: y9, op: reduce_mean, inputs: [f], axes: [1]}}
  - {{name: y10, op: softmax, inputs: [f]}}
  - {{name: y11, op: global_avgpool, inputs: [e]}}
outputs: [y0, y1, y2, y3, y4, y5, y6, y7, y8, y9, y10, y11]
)",
                       dtype_name(dtype));
}
// y0: rows of 1; y1: 7 (warp path, one run); y2: 33 with stride 3 and kept
// dims (2, 3) that do not merge; y3: kept (3, 129) not merged, rows of 7;
// y4: three reduced dims that merge (105); y5, y6: reduced dims that do not
// merge (block-wide walk, multi-index); y7: layernorm over two merged dims
// (35); y8: rows of 129; y9, y10: 1029, the block-wide walk in one run; y11:
// rank-2 pool rows of 35.

Graph row_graph(DType dtype) {
    return infer_shapes(build_graph(load_model_from_string(row_cases(dtype), "row_walks.yaml")));
}

void expect_reference(const Graph& g, const TensorMap& values, const TensorMap& out) {
    const auto reference = reference_execute(g, values);
    int checked = 0;
    for (const OutputCheck& c : check_outputs(g, out, reference)) {
        INFO(c.name << ": rel L2 " << c.rel_l2 << " (tolerance " << c.tolerance << ")");
        double norm = 0;
        for (double v : reference.at(c.name).data) norm += v * v;
        CHECK(norm > 0);
        CHECK(c.rel_l2 <= c.tolerance);
        ++checked;
    }
    CHECK(checked == 12);
}

// Per PTX function whose name contains `part`: instructions, ld/st.local,
// 64-bit div/rem (scripts/ptx_func_stats.py counts the same).
struct PtxCounts {
    int functions = 0, instructions = 0, local = 0, div64 = 0;
};
PtxCounts ptx_counts(const std::string& ptx, const std::string& part) {
    static const std::regex header(R"(^(\.visible\s+|\.weak\s+)?\.func\s+(\([^)]*\)\s*)?(\w+))");
    static const std::regex instr(R"(^\s*(@!?%p\d+\s+)?([a-z][\w.]*))");
    static const std::regex div64(R"(^(div|rem)\.[su]64$)");
    PtxCounts c;
    std::istringstream in(ptx);
    std::string line;
    bool inside = false, body = false;
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_search(line, m, header)) {
            inside = std::string(m[3]).find(part) != std::string::npos;
            body = false;
            continue;
        }
        if (!inside) continue;
        if (line == "{") {
            body = true;
            ++c.functions;
            continue;
        }
        if (!body || !std::regex_search(line, m, instr)) continue;
        const std::string op = m[2];
        ++c.instructions;
        c.local += op.rfind("ld.local", 0) == 0 || op.rfind("st.local", 0) == 0;
        c.div64 += std::regex_match(op, div64);
    }
    return c;
}

}  // namespace

TEST_CASE("row walks: every walk of the row tiles matches the reference on simt and host", "[rowwise][simt]") {
    const DType dtype = GENERATE(DType::f32, DType::f16);
    CAPTURE(dtype_name(dtype));
    const Graph g = row_graph(dtype);
    const TensorMap values = make_values(g, std::nullopt);
    const Schedule s = plan(g, "per_op", default_gpu());
    expect_reference(g, values, run_simt(s, values));
    HostRunOptions checked;
    checked.check_races = true;
    expect_reference(g, values, run_host(s, values, checked));
}

TEST_CASE("row walks: the row tiles' PTX has no local memory and no 64-bit division", "[rowwise][compile]") {
    // The row cases (every walk) and resnet18_small (split-K reduces of 3
    // and 4 partials with their epilogues, the pool).
    for (const std::string& name : {std::string("row_walks"), std::string("resnet18_small")}) {
        CAPTURE(name);
        const Graph g = name == "row_walks" ? row_graph(DType::f32)
                                            : infer_shapes(build_graph(load_model(std::string(ANVIL_SOURCE_DIR) +
                                                                                  "/models/resnet18_small.yaml")));
        const std::string ptx = compile_ptx(emit_source(plan(g, "anvil", default_gpu())), "compute_90");
        const PtxCounts row = ptx_counts(ptx, "anvil_row_tile");
        REQUIRE(row.functions >= 1);
        CHECK(row.local == 0);
        CHECK(row.div64 == 0);
        CHECK(row.instructions <= 6000 * row.functions);  // 15,770 for one f32 instance before
        const PtxCounts sum = ptx_counts(ptx, "anvil_row_split_sum");
        if (name == "resnet18_small") REQUIRE(sum.functions >= 1);
        CHECK(sum.local == 0);
        CHECK(sum.div64 == 0);
        const PtxCounts norm = ptx_counts(ptx, "anvil_row_split_norm");
        CHECK(norm.local == 0);
    }
}
