// The pipeline's stages after loading, called in order by the CLI and tests:
// decompose -> policy -> verified Schedule; and the check of a run's outputs
// against the reference.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "reference/reference.h"
#include "schedule/schedule.h"

namespace anvil {

// decompose + the named policy + verify_schedule. `stage_done`, when
// given, is called with each stage's name as it ends (for timing).
Schedule plan(const Graph& graph, const std::string& policy, const Gpu& gpu,
              const std::function<void(const char*)>& stage_done = {});

struct OutputCheck {
    std::string name;
    double rel_l2 = 0;
    double tolerance = 0;
    bool ok() const { return rel_l2 <= tolerance; }
};

// Relative L2 error of every output against the reference. The tolerance of
// an output is the loosest of the dtypes of every tensor it depends on.
std::vector<OutputCheck> check_outputs(const Graph& graph, const TensorMap& outputs,
                                       const std::map<std::string, RefTensor>& reference);

}  // namespace anvil
