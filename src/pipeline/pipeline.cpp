#include "anvil/pipeline.h"

#include <algorithm>

#include "policies/registry.h"
#include "tile/decompose.h"
#include "tile/size_limits.h"

namespace anvil {

Schedule plan(const Graph& graph, const std::string& policy, const Gpu& gpu,
              const std::function<void(const char*)>& stage_done) {
    auto done = [&](const char* stage) {
        if (stage_done) stage_done(stage);
    };
    const PolicyEntry& entry = find_policy(policy);
    check_tensor_sizes(graph, gpu);  // before any work that grows with the model
    TileGraph tg = decompose(graph);
    check_arena_size(graph, tg, gpu);
    done("decompose");
    Schedule s = entry.fn(tg, gpu);
    verify_schedule(s);
    done("policy");
    return s;
}

namespace {

double loosest_tolerance(const Graph& graph, VertexId out) {
    std::vector<bool> seen(graph.size(), false);
    std::vector<VertexId> stack{out};
    double tol = 0;
    while (!stack.empty()) {
        VertexId v = stack.back();
        stack.pop_back();
        if (seen[v]) continue;
        seen[v] = true;
        if (is_float(graph.value(v).dtype)) tol = std::max(tol, dtype_tolerance(graph.value(v).dtype));
        for (VertexId u : graph.operands(v)) stack.push_back(u);
    }
    return tol;
}

}  // namespace

std::vector<OutputCheck> check_outputs(const Graph& graph, const TensorMap& outputs,
                                       const std::map<std::string, RefTensor>& reference) {
    std::vector<OutputCheck> checks;
    for (VertexId v : graph.outputs) {
        const std::string& name = graph.value(v).name;
        OutputCheck c;
        c.name = name;
        c.tolerance = loosest_tolerance(graph, v);
        c.rel_l2 = relative_l2_error(outputs.at(name).to_doubles(), reference.at(name).data);
        checks.push_back(c);
    }
    return checks;
}

}  // namespace anvil
