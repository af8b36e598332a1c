#include "frontend/ops.h"

#include "anvil/error.h"

namespace anvil {

namespace {

AttrSpec attr(std::string name, AttrType t, std::optional<AttrValue> def = std::nullopt,
              std::vector<std::string> choices = {}) {
    return AttrSpec{std::move(name), t, false, std::move(def), std::move(choices)};
}

AttrSpec required(std::string name, AttrType t) { return AttrSpec{std::move(name), t, true, std::nullopt, {}}; }

std::vector<OpInfo> build_table() {
    using A = AttrType;
    using C = OpClass;
    std::vector<OpInfo> t;
    auto add = [&](Op op, const char* name, C cls, int lo, int hi, std::vector<AttrSpec> attrs,
                   bool implemented = true) {
        if (static_cast<int>(t.size()) != static_cast<int>(op))
            throw InternalError(std::string("op table out of order at ") + name);
        t.push_back(OpInfo{op, name, cls, lo, hi, std::move(attrs), implemented});
    };
    add(Op::constant, "constant", C::Source, 0, 0,
        {required("value", A::Float), attr("shape", A::IntList, std::vector<int64_t>{})});
    for (auto [op, name] : {std::pair{Op::add, "add"}, {Op::sub, "sub"}, {Op::mul, "mul"},
                            {Op::div, "div"}, {Op::max, "max"}, {Op::min, "min"}, {Op::pow, "pow"}})
        add(op, name, C::Binary, 2, 2, {});
    for (auto [op, name] : {std::pair{Op::relu, "relu"}, {Op::sigmoid, "sigmoid"}, {Op::tanh, "tanh"},
                            {Op::exp, "exp"}, {Op::log, "log"}, {Op::sqrt, "sqrt"}, {Op::rsqrt, "rsqrt"},
                            {Op::neg, "neg"}, {Op::abs, "abs"}, {Op::silu, "silu"}})
        add(op, name, C::Unary, 1, 1, {});
    add(Op::gelu, "gelu", C::Unary, 1, 1,
        {attr("approximate", A::Choice, std::string("none"), {"none", "tanh"})});
    add(Op::softmax, "softmax", C::Rowwise, 1, 1, {attr("axis", A::Int, int64_t{-1})});
    add(Op::layernorm, "layernorm", C::Rowwise, 3, 3,
        {attr("axis", A::Int, int64_t{-1}), attr("eps", A::Float, 1e-5)});
    add(Op::rmsnorm, "rmsnorm", C::Rowwise, 2, 2, {attr("eps", A::Float, 1e-6)});
    for (auto [op, name] : {std::pair{Op::reduce_sum, "reduce_sum"}, {Op::reduce_mean, "reduce_mean"},
                            {Op::reduce_max, "reduce_max"}})
        add(op, name, C::Rowwise, 1, 1, {required("axes", A::IntList), attr("keepdims", A::Bool, false)});
    add(Op::matmul, "matmul", C::Matmul, 2, 2,
        {attr("transpose_a", A::Bool, false), attr("transpose_b", A::Bool, false)});
    add(Op::transpose, "transpose", C::Movement, 1, 1, {required("perm", A::IntList)});
    add(Op::reshape, "reshape", C::Movement, 1, 1, {required("shape", A::IntList)});
    add(Op::concat, "concat", C::Movement, 1, -1, {required("axis", A::Int)});
    add(Op::slice, "slice", C::Movement, 1, 1,
        {required("axis", A::Int), attr("start", A::Int, int64_t{0}), attr("end", A::Int),
         attr("step", A::Int, int64_t{1})});
    add(Op::conv2d, "conv2d", C::Spatial, 2, 3,
        {attr("stride", A::IntOrList, std::vector<int64_t>{1}),
         attr("padding", A::IntOrList, std::vector<int64_t>{0}),
         attr("dilation", A::IntOrList, std::vector<int64_t>{1}), attr("groups", A::Int, int64_t{1})});
    add(Op::maxpool2d, "maxpool2d", C::Spatial, 1, 1,
        {required("kernel", A::IntOrList), attr("stride", A::IntOrList),
         attr("padding", A::IntOrList, std::vector<int64_t>{0})});
    add(Op::avgpool2d, "avgpool2d", C::Spatial, 1, 1,
        {required("kernel", A::IntOrList), attr("stride", A::IntOrList),
         attr("padding", A::IntOrList, std::vector<int64_t>{0}),
         attr("count_include_pad", A::Bool, false)});
    add(Op::global_avgpool, "global_avgpool", C::Spatial, 1, 1, {});
    add(Op::batchnorm, "batchnorm", C::Spatial, 5, 5, {attr("eps", A::Float, 1e-5)});
    add(Op::embedding, "embedding", C::Spatial, 2, 2, {});
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
