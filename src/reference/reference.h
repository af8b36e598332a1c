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

// The same, with every node's result rounded to its storage type (f32, f16,
// bf16), as any device that stores its intermediates must. How far that
// alone moves an output is the model's own rounding floor: a deep or
// ill-conditioned model can lose more than a dtype's tolerance to it.
std::map<std::string, RefTensor> reference_execute_rounded(const Graph& graph, const TensorMap& values);

}  // namespace anvil
