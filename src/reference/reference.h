// The reference executor: every operator evaluated in float64 with Eigen,
// with no rounding of intermediates, from the stored values of the inputs
// and params. Backends are judged against it.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "frontend/graph.h"
#include "frontend/values.h"

namespace anvil {

struct RefTensor {
    Shape shape;
    std::vector<double> data;  // row-major
};

// Values of every tensor of the graph (inputs, params and nodes), by name.
std::map<std::string, RefTensor> reference_execute(const Graph& graph, const TensorMap& values);

}  // namespace anvil
