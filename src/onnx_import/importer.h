// The importer's state while it walks an ONNX graph in topological order:
// what it knows of every ONNX tensor (shape, element type, its value when
// known at import, the anvil tensor holding it at run time) and the Model
// it is building. Lowering (lower.cpp) and pattern recognition
// (patterns.cpp) add nodes through it.
#pragma once
#include <onnx/onnx_pb.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "frontend/model.h"
#include "onnx_import/const_tensor.h"
#include "onnx_import/import_onnx.h"
#include "onnx_import/onnx_node.h"

namespace anvil {

struct OnnxValue {
    Shape shape;
    OnnxType type = OnnxType::float32;
    std::optional<ConstTensor> constant;  // known at import
    std::string anvil;                    // the anvil tensor at run time ("" until needed for a constant)
};

class Importer {
public:
    Importer(const std::string& path, const ImportOptions& opt);
    Model run();

    // --- used by lowering and patterns ---
    const std::string& path() const { return path_; }
    int opset() const { return opset_; }
    const OnnxValue& value(const OnnxNode& n, const std::string& name) const;
    bool known(const std::string& name) const { return values_.count(name) != 0; }
    bool is_const(const std::string& name) const;
    const ConstTensor* constant_of(const std::string& name) const;
    // The run-time anvil tensor of ONNX tensor `name`; a constant becomes a
    // param (f32) the first time.
    std::string runtime(const OnnxNode& n, const std::string& name);
    // A float scalar (or any constant) as a param.
    std::string scalar(double v);
    std::string const_param(const ConstTensor& t, const std::string& hint);
    // Adds an anvil node, its shape inferred by anvil (with every check of
    // infer_shapes); attributes not given take the op's defaults.
    std::string emit(Op op, const std::vector<std::string>& inputs, std::map<std::string, AttrValue> attrs,
                     const std::string& hint);
    void define(const std::string& onnx_name, const std::string& anvil, Shape shape);
    void define_const(const std::string& onnx_name, ConstTensor t);
    Shape shape_of(const std::string& anvil) const;
    std::string reshape(const std::string& anvil, const Shape& to, const std::string& hint);

    // The ONNX nodes reading tensor `name` (indices into the graph), and the graph's outputs.
    const std::vector<int>& consumers(const std::string& name) const;
    bool is_graph_output(const std::string& name) const { return graph_outputs_.count(name) != 0; }
    const onnx::NodeProto& node_at(int i) const { return graph_.node(i); }
    std::string producer_op(const std::string& name) const;
    int producer(const std::string& name) const;
    void skip(int node_index) { skipped_.insert(node_index); }
    // Marks an int graph input as the ids of an embedding with `rows` rows.
    void use_as_ids(const OnnxNode& n, const std::string& anvil, int64_t rows);

private:
    void read_inputs();
    void sort_nodes();
    void import_node(int i);
    void finish_outputs();
    void drop_dead();
    std::string unique_name(const std::string& hint);
    ConstTensor tensor_attr(const OnnxNode& n, const std::string& name);

    std::string path_;
    ImportOptions opt_;
    onnx::ModelProto proto_;
    onnx::GraphProto graph_;
    int opset_ = 0;
    Model model_;
    std::map<std::string, OnnxValue> values_;
    std::map<std::string, Shape> anvil_shapes_;
    std::set<std::string> anvil_names_;
    std::map<std::string, std::vector<int>> consumers_;
    std::map<std::string, int> producers_;
    std::set<std::string> graph_outputs_;
    std::set<int> skipped_;
    std::vector<int> order_;
    int scalar_count_ = 0;
    const OnnxNode* lowering_ = nullptr;  // the ONNX node being lowered, named by emit's refusals
};

// Lowers one ONNX node that computes on run-time tensors (lower.cpp).
void lower_node(Importer& im, const OnnxNode& n, int index);
// When node `index` (an Erf, Tanh or Sigmoid) is the core of a GELU or SiLU
// written out elementwise, emits that op and returns true (patterns.cpp).
bool match_activation(Importer& im, const OnnxNode& n, int index);
// When ReduceMean node `index` starts a LayerNorm or RMSNorm written out
// (ReduceMean, Sub, Pow, Add eps, Sqrt, Div, scale, shift), emits that op.
bool match_norm(Importer& im, const OnnxNode& n, int index);

}  // namespace anvil
