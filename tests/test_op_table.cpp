// The operator table's own checks: the compile-time ones can fail, and the
// device codes it hands out name one function each.
#include <catch2/catch.hpp>

#include <set>

#include "anvil/error.h"
#include "frontend/op_table.h"

using namespace anvil;

namespace {

// A table whose second row forgot its device code, and one out of order.
constexpr OpDef kNoCode[] = {
    op_def_row(Op::constant, "constant", OpClass::Source, 0, 0, IndexMap::none),
    op_def_row(Op::add, "add", OpClass::Binary, 2, 2, IndexMap::broadcast),
};
constexpr OpDef kSwapped[] = {pointwise(Op::add, "add", 2, ANVIL_EW_ADD),
                              op_def_row(Op::constant, "constant", OpClass::Source, 0, 0, IndexMap::none)};
constexpr OpDef kNoRowAxes[] = {
    op_def_row(Op::constant, "constant", OpClass::Source, 0, 0, IndexMap::none),
    op_def_row(Op::add, "add", OpClass::Rowwise, 1, 1, IndexMap::rows).row(ANVIL_ROW_SUM, RowAxes::none),
};
constexpr OpDef kGood[] = {
    op_def_row(Op::constant, "constant", OpClass::Source, 0, 0, IndexMap::none),
    pointwise(Op::add, "add", 2, ANVIL_EW_ADD),
};
static_assert(!op_rows_consistent(kNoCode, 2), "a pointwise row without a device code must be refused");
static_assert(!op_rows_consistent(kSwapped, 2), "rows out of enum order must be refused");
static_assert(!op_rows_consistent(kNoRowAxes, 2), "a row op without its axes must be refused");
static_assert(op_rows_consistent(kGood, 2), "the check must accept a sound table");

}  // namespace

TEST_CASE("every elementwise device code belongs to one op of the table", "[ops]") {
    // Two ops on one code would compute the same function; a code no op
    // names (but the constant and the copy, which decompose uses itself)
    // is a device formula nothing reaches.
    std::multiset<int> named;
    for (const OpDef& d : kOpTable) {
        if (d.ew_code >= 0) named.insert(d.ew_code);
        if (d.alt_attr) named.insert(d.alt_code);
    }
    for (int code = 0; code < ANVIL_EW_COUNT; ++code) {
        INFO("AnvilEwOp " << code);
        CHECK(named.count(code) == (code == ANVIL_EW_CONST || code == ANVIL_EW_COPY ? 0u : 1u));
    }
}

TEST_CASE("an op's other device code is chosen by its attribute", "[ops]") {
    for (const OpDef& d : kOpTable) {
        if (!d.alt_attr) continue;
        INFO(d.name);
        const OpInfo& info = op_info(d.op);
        bool choice = false;  // the attribute is one of the op's choices, and alt_value one of its values
        for (const AttrSpec& a : info.attrs)
            if (a.name == d.alt_attr && a.type == AttrType::Choice)
                for (const std::string& c : a.choices) choice = choice || c == d.alt_value;
        CHECK(choice);
        Attrs attrs;
        attrs.values[d.alt_attr] = std::string(d.alt_value);
        CHECK(ew_code(d.op, attrs) == d.alt_code);
        for (const AttrSpec& a : info.attrs)
            if (a.name == d.alt_attr && a.default_value) {
                attrs.values[d.alt_attr] = *a.default_value;
                CHECK(ew_code(d.op, attrs) == d.ew_code);
            }
    }
}

TEST_CASE("row ops reduce the axes their attributes name", "[ops]") {
    Attrs axis1;
    axis1.values["axis"] = int64_t{1};
    CHECK(row_axes(Op::softmax, axis1, 3) == std::vector<int>{1});
    CHECK(row_axes(Op::layernorm, axis1, 3) == std::vector<int>{1, 2});
    CHECK(row_axes(Op::rmsnorm, Attrs{}, 3) == std::vector<int>{2});
    CHECK(row_axes(Op::global_avgpool, Attrs{}, 4) == std::vector<int>{2, 3});
    Attrs axes;
    axes.values["axes"] = std::vector<int64_t>{-1, 0};
    CHECK(row_axes(Op::reduce_sum, axes, 3) == std::vector<int>{0, 2});
    CHECK_THROWS_AS(row_axes(Op::add, Attrs{}, 3), InternalError);
}
