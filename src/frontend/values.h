// The values a run starts from: every input and param, drawn from the
// model's seed or read from files, and the --save-io layout of the spec.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "frontend/graph.h"
#include "base/tensor.h"

namespace anvil {

using TensorMap = std::map<std::string, HostTensor>;

// Values of every input and param. An input is read from inputs_dir/NAME.npy
// when inputs_dir is given (shape and type must match), else drawn from its
// init; the seed of each tensor derives from the model seed and its name, so
// adding a tensor changes no other tensor's values.
TensorMap make_values(const Graph& graph, const std::optional<std::string>& inputs_dir);

// Writes DIR/inputs, DIR/params and DIR/outputs as .npy (spec: "Running and
// saving values"). Writes into a temporary sibling and renames it into place,
// so a failure leaves nothing half-written.
void save_io(const std::string& dir, const Graph& graph, const TensorMap& values,
             const TensorMap& outputs);

}  // namespace anvil
