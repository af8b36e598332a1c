// The operator table: everything the compiler knows of an operator, one row
// each. The loader reads its name, arity and attributes; decompose, fusion
// and tile_region read its index map and device codes instead of switching
// on the op. A new pointwise op is a row here, its formula in the reference
// and on the device (rtasks/epilogue.cuh), and its AnvilEwOp code
// (rtasks/params.cuh); tests/test_ops.cpp makes cases from this table.
//
// Constexpr so that a forgotten or misplaced row fails the build (the
// static_asserts at the end), not a run.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <vector>

#include "frontend/ops.h"
#include "../../rtasks/params.cuh"

namespace anvil {

// How an op's output positions map to the positions of its operands it
// reads (tile_region), which is also how decompose lowers it.
enum class IndexMap {
    none,         // constant: reads nothing
    broadcast,    // pointwise: every operand where the output is, numpy-broadcast
    rows,         // softmax, the norms, global_avgpool: operand 0 whole along row_axes, the others broadcast
    reduce,       // reduce_*: the kept dims where the output is, the reduced ones whole
    matmul,       // the output's rows of a, its columns of b, the whole K
    transpose,    // output dim d walks operand dim perm[d]
    reshape,      // the same row-major order; no rTask (aliases its operand)
    concat,       // each operand its own range along the axis
    slice,        // a strided range along the axis
    conv_window,  // conv2d: windows of x, whole filters, per-channel bias
    pool_window,  // maxpool2d, avgpool2d: windows of x
    channel,      // batchnorm: x where the output is, statistics per channel
    gather,       // embedding: whole rows of the table, ids per row
};

// Which dims of its input a row op reduces (row_axes()).
enum class RowAxes {
    none,       // not a row op
    at_axis,    // the dim `axis` (softmax)
    from_axis,  // the dims from `axis` to the last (layernorm)
    last,       // the last dim (rmsnorm)
    plane,      // dims 2 and 3: the H and W of each (n, c) plane (global_avgpool)
    listed,     // the dims `axes` (reduce_*)
};

// An attribute, spelt with literals only so that the table is constexpr.
struct AttrDef {
    const char* name = nullptr;  // nullptr: the end of an op's list
    AttrType type = AttrType::Int;
    bool required = false;
    bool has_default = false;
    double number = 0;            // default of an Int, Float or Bool; every entry of a default list
    int list_len = 0;             // length of a default list (IntList, IntOrList)
    const char* text = nullptr;   // default of a Choice
    const char* choices[2] = {};  // of a Choice
};

constexpr AttrDef required_attr(const char* name, AttrType type) { return {name, type, true}; }
constexpr AttrDef optional_attr(const char* name, AttrType type) { return {name, type}; }
constexpr AttrDef number_attr(const char* name, AttrType type, double value) {
    return {name, type, false, true, value};
}
constexpr AttrDef list_attr(const char* name, AttrType type, int len, int64_t value) {
    return {name, type, false, true, static_cast<double>(value), len};
}
constexpr AttrDef choice_attr(const char* name, const char* def, const char* a, const char* b) {
    return {name, AttrType::Choice, false, true, 0, 0, def, {a, b}};
}

constexpr int kMaxAttrs = 4;

struct OpDef {
    Op op;
    const char* name;
    OpClass cls;
    int min_inputs;
    int max_inputs;  // -1: any number
    IndexMap map;
    AttrDef attrs[kMaxAttrs];
    int ew_code = -1;  // AnvilEwOp of a pointwise op, else -1
    // Where attribute alt_attr is alt_value the device code is alt_code
    // (gelu's tanh form).
    const char* alt_attr = nullptr;
    const char* alt_value = nullptr;
    int alt_code = -1;
    int row_code = -1;                    // AnvilRowOp of a row op, else -1
    RowAxes row_axes = RowAxes::none;
    int mm_row_code = ANVIL_MM_ROW_NONE;  // AnvilMmRowOp: a matmul may apply it to its finished tile
    bool implemented = true;              // false: in the spec, refused with a clear error for now

    constexpr OpDef when(const char* attr, const char* value, int code) const {
        OpDef d = *this;
        d.alt_attr = attr;
        d.alt_value = value;
        d.alt_code = code;
        return d;
    }
    constexpr OpDef row(int code, RowAxes axes, int mm_code = ANVIL_MM_ROW_NONE) const {
        OpDef d = *this;
        d.row_code = code;
        d.row_axes = axes;
        d.mm_row_code = mm_code;
        return d;
    }
};

// A row of the table. More than kMaxAttrs attributes writes past `attrs`,
// which a constant expression refuses: the build fails.
constexpr OpDef op_def_row(Op op, const char* name, OpClass cls, int lo, int hi, IndexMap map,
                           std::initializer_list<AttrDef> attrs = {}) {
    OpDef d{op, name, cls, lo, hi, map, {}};
    int i = 0;
    for (const AttrDef& a : attrs) d.attrs[i++] = a;
    return d;
}

// A pointwise op: unary or binary, broadcast, one device code.
constexpr OpDef pointwise(Op op, const char* name, int arity, int code, std::initializer_list<AttrDef> attrs = {}) {
    OpDef d = op_def_row(op, name, arity == 1 ? OpClass::Unary : OpClass::Binary, arity, arity,
                         IndexMap::broadcast, attrs);
    d.ew_code = code;
    return d;
}

// reduce_sum, reduce_mean, reduce_max: one row op each over `axes`.
constexpr OpDef reduce_op(Op op, const char* name, int row_code) {
    return op_def_row(op, name, OpClass::Rowwise, 1, 1, IndexMap::reduce,
                      {required_attr("axes", AttrType::IntList), number_attr("keepdims", AttrType::Bool, false)})
        .row(row_code, RowAxes::listed);
}

// In the order of the Op enum.
inline constexpr OpDef kOpTable[] = {
    op_def_row(Op::constant, "constant", OpClass::Source, 0, 0, IndexMap::none,
               {required_attr("value", AttrType::Float), list_attr("shape", AttrType::IntList, 0, 0)}),
    pointwise(Op::add, "add", 2, ANVIL_EW_ADD),
    pointwise(Op::sub, "sub", 2, ANVIL_EW_SUB),
    pointwise(Op::mul, "mul", 2, ANVIL_EW_MUL),
    pointwise(Op::div, "div", 2, ANVIL_EW_DIV),
    pointwise(Op::max, "max", 2, ANVIL_EW_MAX),
    pointwise(Op::min, "min", 2, ANVIL_EW_MIN),
    pointwise(Op::pow, "pow", 2, ANVIL_EW_POW),
    pointwise(Op::relu, "relu", 1, ANVIL_EW_RELU),
    pointwise(Op::sigmoid, "sigmoid", 1, ANVIL_EW_SIGMOID),
    pointwise(Op::tanh, "tanh", 1, ANVIL_EW_TANH),
    pointwise(Op::exp, "exp", 1, ANVIL_EW_EXP),
    pointwise(Op::log, "log", 1, ANVIL_EW_LOG),
    pointwise(Op::sqrt, "sqrt", 1, ANVIL_EW_SQRT),
    pointwise(Op::rsqrt, "rsqrt", 1, ANVIL_EW_RSQRT),
    pointwise(Op::neg, "neg", 1, ANVIL_EW_NEG),
    pointwise(Op::abs, "abs", 1, ANVIL_EW_ABS),
    pointwise(Op::silu, "silu", 1, ANVIL_EW_SILU),
    pointwise(Op::gelu, "gelu", 1, ANVIL_EW_GELU, {choice_attr("approximate", "none", "none", "tanh")})
        .when("approximate", "tanh", ANVIL_EW_GELU_TANH),
    pointwise(Op::erf, "erf", 1, ANVIL_EW_ERF),
    op_def_row(Op::softmax, "softmax", OpClass::Rowwise, 1, 1, IndexMap::rows,
               {number_attr("axis", AttrType::Int, -1)})
        .row(ANVIL_ROW_SOFTMAX, RowAxes::at_axis, ANVIL_MM_ROW_SOFTMAX),
    op_def_row(Op::layernorm, "layernorm", OpClass::Rowwise, 3, 3, IndexMap::rows,
               {number_attr("axis", AttrType::Int, -1), number_attr("eps", AttrType::Float, 1e-5)})
        .row(ANVIL_ROW_LAYERNORM, RowAxes::from_axis, ANVIL_MM_ROW_LAYERNORM),
    op_def_row(Op::rmsnorm, "rmsnorm", OpClass::Rowwise, 2, 2, IndexMap::rows,
               {number_attr("eps", AttrType::Float, 1e-6)})
        .row(ANVIL_ROW_RMSNORM, RowAxes::last, ANVIL_MM_ROW_RMSNORM),
    reduce_op(Op::reduce_sum, "reduce_sum", ANVIL_ROW_SUM),
    reduce_op(Op::reduce_mean, "reduce_mean", ANVIL_ROW_MEAN),
    reduce_op(Op::reduce_max, "reduce_max", ANVIL_ROW_MAX),
    op_def_row(Op::matmul, "matmul", OpClass::Matmul, 2, 2, IndexMap::matmul,
               {number_attr("transpose_a", AttrType::Bool, false), number_attr("transpose_b", AttrType::Bool, false)}),
    op_def_row(Op::transpose, "transpose", OpClass::Movement, 1, 1, IndexMap::transpose,
               {required_attr("perm", AttrType::IntList)}),
    op_def_row(Op::reshape, "reshape", OpClass::Movement, 1, 1, IndexMap::reshape,
               {required_attr("shape", AttrType::IntList)}),
    op_def_row(Op::concat, "concat", OpClass::Movement, 1, -1, IndexMap::concat,
               {required_attr("axis", AttrType::Int)}),
    op_def_row(Op::slice, "slice", OpClass::Movement, 1, 1, IndexMap::slice,
               {required_attr("axis", AttrType::Int), number_attr("start", AttrType::Int, 0),
                optional_attr("end", AttrType::Int), number_attr("step", AttrType::Int, 1)}),
    op_def_row(Op::conv2d, "conv2d", OpClass::Spatial, 2, 3, IndexMap::conv_window,
               {list_attr("stride", AttrType::IntOrList, 1, 1), list_attr("padding", AttrType::IntOrList, 1, 0),
                list_attr("dilation", AttrType::IntOrList, 1, 1), number_attr("groups", AttrType::Int, 1)}),
    op_def_row(Op::maxpool2d, "maxpool2d", OpClass::Spatial, 1, 1, IndexMap::pool_window,
               {required_attr("kernel", AttrType::IntOrList), optional_attr("stride", AttrType::IntOrList),
                list_attr("padding", AttrType::IntOrList, 1, 0), list_attr("dilation", AttrType::IntOrList, 1, 1)}),
    op_def_row(Op::avgpool2d, "avgpool2d", OpClass::Spatial, 1, 1, IndexMap::pool_window,
               {required_attr("kernel", AttrType::IntOrList), optional_attr("stride", AttrType::IntOrList),
                list_attr("padding", AttrType::IntOrList, 1, 0), number_attr("count_include_pad", AttrType::Bool, false)}),
    // One row per (n, c) plane, reduced over H and W into [N, C, 1, 1].
    op_def_row(Op::global_avgpool, "global_avgpool", OpClass::Spatial, 1, 1, IndexMap::rows)
        .row(ANVIL_ROW_MEAN, RowAxes::plane),
    op_def_row(Op::batchnorm, "batchnorm", OpClass::Spatial, 5, 5, IndexMap::channel,
               {number_attr("eps", AttrType::Float, 1e-5)}),
    op_def_row(Op::embedding, "embedding", OpClass::Spatial, 2, 2, IndexMap::gather),
};

constexpr const OpDef& op_def(Op op) { return kOpTable[static_cast<int>(op)]; }

// The checks that make a forgotten or misplaced row a build error: rows
// follow the Op enum, and an op's class, index map and device codes agree
// (a unary or binary op without an AnvilEwOp would compute nothing).
constexpr bool op_rows_consistent(const OpDef* rows, int n) {
    for (int i = 0; i < n; ++i) {
        const OpDef& d = rows[i];
        if (static_cast<int>(d.op) != i) return false;
        const bool pointwise = d.cls == OpClass::Unary || d.cls == OpClass::Binary;
        if (pointwise != (d.map == IndexMap::broadcast)) return false;
        if (pointwise != (d.ew_code >= 0 && d.ew_code < ANVIL_EW_COUNT)) return false;
        if (d.alt_attr && !(d.alt_code >= 0 && d.alt_code < ANVIL_EW_COUNT)) return false;
        const bool row = d.map == IndexMap::rows || d.map == IndexMap::reduce;
        if (row != (d.row_code >= 0 && d.row_code < ANVIL_ROW_COUNT) || row != (d.row_axes != RowAxes::none))
            return false;
    }
    return true;
}
static_assert(std::size(kOpTable) == kOpCount, "kOpTable needs one row per Op");
static_assert(op_rows_consistent(kOpTable, kOpCount),
              "kOpTable: rows in Op enum order; every unary or binary op needs an AnvilEwOp code, "
              "every row or reduce op an AnvilRowOp code and its RowAxes");

// The device code of pointwise node `op` with `attrs`; -1 when op is not pointwise.
int ew_code(Op op, const Attrs& attrs);

// The dims of an input of `rank` dims that row op `op` reduces, ascending.
std::vector<int> row_axes(Op op, const Attrs& attrs, int rank);

}  // namespace anvil
