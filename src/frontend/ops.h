// The operators of the model format, and the loader's view of them (name,
// arity, attributes with their defaults as values), built from the one
// operator table, frontend/op_table.h, which also holds what the later
// stages need to know of each op.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace anvil {

enum class Op : int {
    constant,
    // binary elementwise, broadcast
    add, sub, mul, div, max, min, pow,
    // unary elementwise
    relu, sigmoid, tanh, exp, log, sqrt, rsqrt, neg, abs, silu, gelu, erf,
    // row-wise
    softmax, layernorm, rmsnorm, reduce_sum, reduce_mean, reduce_max,
    matmul,
    // data movement
    transpose, reshape, concat, slice,
    // convolutional and lookup ops (issue 3)
    conv2d, maxpool2d, avgpool2d, global_avgpool, batchnorm, embedding,
    count_
};
constexpr int kOpCount = static_cast<int>(Op::count_);

enum class AttrType {
    Int,        // 3
    Float,      // 1e-5 (an int is accepted too)
    Bool,       // true
    IntList,    // [0, 2, 1]
    IntOrList,  // 2 or [2, 3] (stored as a list)
    Choice,     // one of AttrSpec::choices
};

using AttrValue = std::variant<int64_t, double, bool, std::string, std::vector<int64_t>>;

struct AttrSpec {
    std::string name;
    AttrType type;
    bool required = false;
    std::optional<AttrValue> default_value;  // filled in by the loader when absent
    std::vector<std::string> choices;        // for Choice
};

enum class OpClass { Source, Unary, Binary, Rowwise, Matmul, Movement, Spatial };

struct OpInfo {
    Op op;
    std::string name;
    OpClass cls;
    int min_inputs;
    int max_inputs;  // -1: any number
    std::vector<AttrSpec> attrs;
    bool implemented;  // false: in the spec, refused with a clear error for now
};

const OpInfo& op_info(Op op);
const char* op_name(Op op);
std::optional<Op> parse_op(const std::string& name);
const std::vector<OpInfo>& all_ops();

// A node's attributes after loading: every attribute the op knows that was
// given or has a default. Accessors throw InternalError on a type mismatch
// (the loader has already checked types against the table).
struct Attrs {
    std::map<std::string, AttrValue> values;

    bool has(const std::string& name) const { return values.count(name) != 0; }
    int64_t get_int(const std::string& name) const;
    double get_float(const std::string& name) const;
    bool get_bool(const std::string& name) const;
    const std::string& get_string(const std::string& name) const;
    const std::vector<int64_t>& get_ints(const std::string& name) const;
};

}  // namespace anvil
