// A model file as the user wrote it: names, declared shapes, attributes, and
// where each thing stands in the file. load_model() checks everything that
// can be checked without the graph (syntax, types, names, init files);
// build_graph() and infer_shapes() check the rest.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "anvil/error.h"
#include "frontend/ops.h"
#include "base/shape.h"
#include "base/tensor.h"

namespace anvil {

enum class InitKind { normal, uniform, zeros, ones, file };

struct InitSpec {
    InitKind kind = InitKind::normal;
    double std = 0.02;  // normal
    double low = -1.0;  // uniform and i32
    double high = 1.0;
    std::string file;                 // init: file, as written
    std::optional<HostTensor> values; // init: file, loaded and checked
};

// An input or a param.
struct TensorDecl {
    std::string name;
    Shape shape;
    DType dtype = DType::f32;
    InitSpec init;
    SourceLoc loc;
};

struct NodeDecl {
    std::string name;
    Op op = Op::constant;
    std::vector<std::string> inputs;
    std::vector<SourceLoc> input_locs;  // one per input, where its name is written
    Attrs attrs;                        // defaults filled in
    std::optional<DType> dtype;         // explicit output type
    SourceLoc loc;                      // the node's mapping
    std::map<std::string, SourceLoc> attr_locs;
};

struct Model {
    std::string path;  // as given on the command line
    std::string name;
    DType dtype = DType::f32;
    uint64_t seed = 0;
    std::vector<TensorDecl> inputs;
    std::vector<TensorDecl> params;
    std::vector<NodeDecl> nodes;
    std::vector<std::string> outputs;
    std::vector<SourceLoc> output_locs;
};

}  // namespace anvil
