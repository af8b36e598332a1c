#include "frontend/ops.h"

#include "frontend/op_table.h"

#include "anvil/error.h"

namespace anvil {

namespace {

// The loader's view of an attribute row: the default as an AttrValue.
AttrSpec attr_spec(const AttrDef& a) {
    AttrSpec s{a.name, a.type, a.required, std::nullopt, {}};
    for (const char* c : a.choices)
        if (c) s.choices.emplace_back(c);
    if (!a.has_default) return s;
    switch (a.type) {
        case AttrType::Int: s.default_value = static_cast<int64_t>(a.number); break;
        case AttrType::Float: s.default_value = a.number; break;
        case AttrType::Bool: s.default_value = a.number != 0; break;
        case AttrType::Choice: s.default_value = std::string(a.text); break;
        case AttrType::IntList:
        case AttrType::IntOrList:
            s.default_value = std::vector<int64_t>(a.list_len, static_cast<int64_t>(a.number));
            break;
    }
    return s;
}

std::vector<OpInfo> build_table() {
    std::vector<OpInfo> t;
    for (const OpDef& d : kOpTable) {
        std::vector<AttrSpec> attrs;
        for (const AttrDef& a : d.attrs)
            if (a.name) attrs.push_back(attr_spec(a));
        t.push_back(OpInfo{d.op, d.name, d.cls, d.min_inputs, d.max_inputs, std::move(attrs), d.implemented});
    }
    return t;
}

}  // namespace

const std::vector<OpInfo>& all_ops() {
    static const std::vector<OpInfo> table = build_table();
    return table;
}

const OpInfo& op_info(Op op) { return all_ops().at(static_cast<size_t>(op)); }

const char* op_name(Op op) { return op_info(op).name.c_str(); }

std::optional<Op> parse_op(const std::string& name) {
    for (const OpInfo& info : all_ops())
        if (info.name == name) return info.op;
    return std::nullopt;
}

namespace {
template <typename T>
const T& get_as(const Attrs& a, const std::string& name) {
    auto it = a.values.find(name);
    if (it == a.values.end()) throw InternalError("attribute '" + name + "' is missing");
    if (const T* v = std::get_if<T>(&it->second)) return *v;
    throw InternalError("attribute '" + name + "' has another type");
}
}  // namespace

int64_t Attrs::get_int(const std::string& name) const { return get_as<int64_t>(*this, name); }

double Attrs::get_float(const std::string& name) const {
    auto it = values.find(name);
    if (it != values.end())
        if (const int64_t* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
    return get_as<double>(*this, name);
}

bool Attrs::get_bool(const std::string& name) const { return get_as<bool>(*this, name); }

const std::string& Attrs::get_string(const std::string& name) const {
    return get_as<std::string>(*this, name);
}

const std::vector<int64_t>& Attrs::get_ints(const std::string& name) const {
    return get_as<std::vector<int64_t>>(*this, name);
}

}  // namespace anvil
