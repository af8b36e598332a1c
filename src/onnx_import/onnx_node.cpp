#include "onnx_import/onnx_node.h"

#include "anvil/error.h"

namespace anvil {

std::string OnnxNode::label() const {
    return "node '" + (n_.name().empty() ? (n_.output_size() ? n_.output(0) : std::string("?")) : n_.name()) + "' (" +
           n_.op_type() + ")";
}

const onnx::AttributeProto* OnnxNode::find(const std::string& name) const {
    for (const auto& a : n_.attribute())
        if (a.name() == name) return &a;
    return nullptr;
}

int64_t OnnxNode::get_int(const std::string& name, int64_t fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::INT) fail("attribute '" + name + "' must be an int");
    return a->i();
}

float OnnxNode::get_float(const std::string& name, float fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::FLOAT) fail("attribute '" + name + "' must be a float");
    return a->f();
}

std::string OnnxNode::get_string(const std::string& name, const std::string& fallback) const {
    const auto* a = find(name);
    if (!a) return fallback;
    if (a->type() != onnx::AttributeProto::STRING) fail("attribute '" + name + "' must be a string");
    return a->s();
}

std::optional<std::vector<int64_t>> OnnxNode::get_ints(const std::string& name) const {
    const auto* a = find(name);
    if (!a) return std::nullopt;
    if (a->type() != onnx::AttributeProto::INTS) fail("attribute '" + name + "' must be a list of ints");
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

void OnnxNode::allow_only(std::initializer_list<const char*> known) const {
    for (const auto& a : n_.attribute()) {
        bool ok = false;
        for (const char* k : known) ok = ok || a.name() == k;
        if (!ok) fail("attribute '" + a.name() + "' is not supported");
    }
}

void OnnxNode::fail(const std::string& what) const { user_error(SourceLoc{path_, 0, 0}, label(), what); }

}  // namespace anvil
