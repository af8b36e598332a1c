// The ONNX frontend: an .onnx file becomes the same Model the YAML loader
// produces (inputs, params with their values, nodes of anvil's ops), so
// every later stage is shared. Shape computations fold at import; patterns
// anvil has as one op (GELU, SiLU) become that op after a numeric check.
#pragma once
#include <map>
#include <string>

#include "frontend/model.h"

namespace anvil {

struct ImportOptions {
    // Fixes the symbolic (or any) dims of a graph input: --input-shape NAME=1,3,224,224.
    std::map<std::string, Shape> input_shapes;
};

// Throws UserError naming the file and the ONNX node for anything anvil
// cannot import.
Model import_onnx(const std::string& path, const ImportOptions& opt = {});

// "x=1,3,224,224" -> {"x", [1, 3, 224, 224]}; a malformed one is a UserError.
std::pair<std::string, Shape> parse_input_shape(const std::string& text);

}  // namespace anvil
