// One ONNX node as the importer reads it: its attributes with their
// defaults, and errors that name the file and the node (name and op type).
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace anvil {

class OnnxNode {
public:
    OnnxNode(const onnx::NodeProto& node, const std::string& model_path) : n_(node), path_(model_path) {}

    const onnx::NodeProto& proto() const { return n_; }
    const std::string& op() const { return n_.op_type(); }
    std::string label() const;  // "node 'conv1' (Conv)"
    int num_inputs() const { return n_.input_size(); }
    // Input i's tensor name; "" when absent (an optional input left out).
    std::string input(int i) const { return i < n_.input_size() ? n_.input(i) : std::string(); }
    int num_outputs() const { return n_.output_size(); }
    // Output i's tensor name; a node without it is malformed (refused, never read past the end).
    const std::string& output(int i) const {
        if (i < 0 || i >= n_.output_size())
            fail("has " + std::to_string(n_.output_size()) + " outputs; output " + std::to_string(i) +
                 " is missing (a malformed model)");
        return n_.output(i);
    }

    bool has(const std::string& name) const { return find(name) != nullptr; }
    int64_t get_int(const std::string& name, int64_t fallback) const;
    float get_float(const std::string& name, float fallback) const;
    std::string get_string(const std::string& name, const std::string& fallback) const;
    std::optional<std::vector<int64_t>> get_ints(const std::string& name) const;
    const onnx::AttributeProto* find(const std::string& name) const;

    // Refuses every attribute not in `known` ("attribute 'x' is not supported").
    void allow_only(std::initializer_list<const char*> known) const;

    [[noreturn]] void fail(const std::string& what) const;

private:
    const onnx::NodeProto& n_;
    std::string path_;
};

}  // namespace anvil
