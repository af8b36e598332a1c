// Conv2d test graphs of the GEMM tile tests (test_gemm_tiles, test_tf32_conv):
// one conv2d node per (case, variant), named y<case>_v<variant>, so that a
// test can give each variant of a case its own tile shape.
#pragma once
#include <fmt/format.h>

#include <string>
#include <vector>

#include "frontend/graph.h"
#include "frontend/infer_shapes.h"
#include "frontend/load_model.h"

namespace anvil::test {

struct ConvCase {
    int n, c, h, w, o, kh, kw, stride, pad, dilation, groups;
    bool bias;
};

inline Graph conv_cases_graph(DType dtype, const std::vector<ConvCase>& cases, int variants, int seed) {
    std::string inputs, params, nodes, outputs;
    for (size_t i = 0; i < cases.size(); ++i) {
        const ConvCase& cc = cases[i];
        inputs += fmt::format("  - {{name: x{}, shape: [{}, {}, {}, {}]}}\n", i, cc.n, cc.c, cc.h, cc.w);
        params += fmt::format("  - {{name: w{}, shape: [{}, {}, {}, {}]}}\n", i, cc.o, cc.c / cc.groups, cc.kh, cc.kw);
        if (cc.bias) params += fmt::format("  - {{name: b{}, shape: [{}]}}\n", i, cc.o);
        for (int v = 0; v < variants; ++v) {
            nodes += fmt::format("  - {{name: y{}_v{}, op: conv2d, inputs: [x{}, w{}{}], stride: {}, padding: {}, "
                                 "dilation: {}, groups: {}}}\n",
                                 i, v, i, i, cc.bias ? fmt::format(", b{}", i) : "", cc.stride, cc.pad, cc.dilation,
                                 cc.groups);
            outputs += fmt::format("{}y{}_v{}", outputs.empty() ? "" : ", ", i, v);
        }
    }
    const std::string text =
        fmt::format("anvil: 1\nname: conv_cases\ndtype: {}\nseed: {}\ninputs:\n{}params:\n{}nodes:\n{}outputs: [{}]\n",
                    dtype_name(dtype), seed, inputs, params, nodes, outputs);
    return infer_shapes(build_graph(load_model_from_string(text, "conv_cases.yaml")));
}

}  // namespace anvil::test
