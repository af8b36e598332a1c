// A model of matmul cases, each repeated once per tile variant a test puts
// it on: one compile (or one run) covers every (case, variant). Node names
// end in _v<variant>.
#pragma once
#include <fmt/format.h>

#include <string>
#include <vector>

#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"

namespace anvil::test {

struct MmCase {
    int m, k, n;
    bool transpose_b;
};

inline Graph matmul_cases_graph(const std::string& name, DType dtype, const std::vector<MmCase>& cases, int variants,
                                int seed) {
    std::string inputs, params, nodes, outputs;
    for (size_t c = 0; c < cases.size(); ++c) {
        const MmCase& mc = cases[c];
        inputs += fmt::format("  - {{name: x{}, shape: [{}, {}]}}\n", c, mc.m, mc.k);
        params += mc.transpose_b ? fmt::format("  - {{name: w{}, shape: [{}, {}]}}\n", c, mc.n, mc.k)
                                 : fmt::format("  - {{name: w{}, shape: [{}, {}]}}\n", c, mc.k, mc.n);
        for (int v = 0; v < variants; ++v) {
            nodes += fmt::format("  - {{name: y{}_v{}, op: matmul, inputs: [x{}, w{}]{}}}\n", c, v, c, c,
                                 mc.transpose_b ? ", transpose_b: true" : "");
            outputs += fmt::format("{}y{}_v{}", outputs.empty() ? "" : ", ", c, v);
        }
    }
    const std::string text =
        fmt::format("anvil: 1\nname: {}\ndtype: {}\nseed: {}\ninputs:\n{}params:\n{}nodes:\n{}outputs: [{}]\n", name,
                    dtype_name(dtype), seed, inputs, params, nodes, outputs);
    return infer_shapes(build_graph(load_model_from_string(text, name + ".yaml")));
}

}  // namespace anvil::test
