#pragma once
#include <string>

#include "frontend/model.h"

namespace anvil {

// Reads and checks a model file (spec/model-format.md). Throws UserError.
Model load_model(const std::string& path);
// Same, from text; `path` is used in messages and to resolve init files.
Model load_model_from_string(const std::string& text, const std::string& path);

}  // namespace anvil
