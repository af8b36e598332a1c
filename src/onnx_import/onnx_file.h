// Reading an .onnx file: recognising one, parsing its protobuf, and turning
// its tensors (inline, raw or external data) into plain values. Every
// problem is a UserError naming the file.
#pragma once
#include <string>

#include "onnx_import/const_tensor.h"

namespace onnx {
class ModelProto;
class TensorProto;
}  // namespace onnx

namespace anvil {

// True when `path` ends in .onnx, or its first bytes are not text and look
// like a protobuf ModelProto (field 1, ir_version, as a varint).
bool looks_like_onnx(const std::string& path);

// Parses the file; a truncated or corrupt one is refused.
onnx::ModelProto read_onnx_model(const std::string& path);

// The values of `t`; external data is read relative to the model's folder.
// `what` names the tensor in messages ("initializer 'w'").
ConstTensor tensor_values(const onnx::TensorProto& t, const std::string& model_path, const std::string& what);

}  // namespace anvil
