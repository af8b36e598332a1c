// Writes a Model as a YAML file of the model format, its params' values as
// .npy files in a folder beside it (`anvil import`).
#pragma once
#include <string>

#include "frontend/model.h"

namespace anvil {

// The YAML text of `m`; every param with values refers to
// `weights_dir`/NAME.npy (relative to the YAML file).
std::string model_yaml(const Model& m, const std::string& weights_dir);

// Writes `yaml_path` and the folder `<yaml stem>/` of .npy files beside it.
// Returns the folder's path.
std::string save_model(const Model& m, const std::string& yaml_path);

}  // namespace anvil
