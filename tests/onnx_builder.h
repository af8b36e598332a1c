// Small ONNX models built in the tests with libonnx's protobuf classes: a
// graph of named nodes over float inputs and initializers.
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

namespace anvil::test {

struct OnnxBuilder {
    onnx::ModelProto m;

    explicit OnnxBuilder(int opset = 13) {
        m.set_ir_version(8);
        auto* o = m.add_opset_import();
        o->set_domain("");
        o->set_version(opset);
        m.mutable_graph()->set_name("g");
    }
    onnx::ValueInfoProto* input(const std::string& name, std::vector<int64_t> dims,
                                int type = onnx::TensorProto::FLOAT) {
        auto* v = m.mutable_graph()->add_input();
        v->set_name(name);
        auto* t = v->mutable_type()->mutable_tensor_type();
        t->set_elem_type(type);
        auto* s = t->mutable_shape();
        for (int64_t d : dims) s->add_dim()->set_dim_value(d);
        return v;
    }
    void symbolic_input(const std::string& name, const std::string& dim_name, std::vector<int64_t> rest) {
        auto* v = input(name, {});
        auto* s = v->mutable_type()->mutable_tensor_type()->mutable_shape();
        s->add_dim()->set_dim_param(dim_name);
        for (int64_t d : rest) s->add_dim()->set_dim_value(d);
    }
    onnx::TensorProto* init(const std::string& name, std::vector<int64_t> dims, std::vector<float> values) {
        auto* t = m.mutable_graph()->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::FLOAT);
        for (int64_t d : dims) t->add_dims(d);
        for (float v : values) t->add_float_data(v);
        return t;
    }
    void init_bools(const std::string& name, std::vector<int64_t> dims, std::vector<bool> values) {
        auto* t = m.mutable_graph()->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::BOOL);
        for (int64_t d : dims) t->add_dims(d);
        for (bool v : values) t->add_int32_data(v ? 1 : 0);
    }
    void init_ints(const std::string& name, std::vector<int64_t> values) {
        auto* t = m.mutable_graph()->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(static_cast<int64_t>(values.size()));
        for (int64_t v : values) t->add_int64_data(v);
    }
    onnx::NodeProto* node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                          const std::string& name = "") {
        auto* n = m.mutable_graph()->add_node();
        n->set_op_type(op);
        n->set_name(name.empty() ? out.at(0) : name);
        for (auto& i : in) n->add_input(i);
        for (auto& o : out) n->add_output(o);
        return n;
    }
    static void attr_ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INTS);
        for (int64_t x : v) a->add_ints(x);
    }
    static void attr_int(onnx::NodeProto* n, const std::string& name, int64_t v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(v);
    }
    static void attr_string(onnx::NodeProto* n, const std::string& name, const std::string& v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::STRING);
        a->set_s(v);
    }
    void output(const std::string& name) {
        auto* v = m.mutable_graph()->add_output();
        v->set_name(name);
        v->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
    }
    std::string bytes() const { return m.SerializeAsString(); }
    std::string save(const std::string& path) const {
        std::ofstream(path, std::ios::binary) << bytes();
        return path;
    }
};

}  // namespace anvil::test
