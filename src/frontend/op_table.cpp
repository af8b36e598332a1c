#include "frontend/op_table.h"

#include <algorithm>
#include <string>

#include "anvil/error.h"
#include "base/shape.h"

namespace anvil {

int ew_code(Op op, const Attrs& attrs) {
    const OpDef& d = op_def(op);
    if (d.alt_attr && attrs.has(d.alt_attr) && attrs.get_string(d.alt_attr) == d.alt_value) return d.alt_code;
    return d.ew_code;
}

std::vector<int> row_axes(Op op, const Attrs& attrs, int rank) {
    auto axis = [&](int64_t a) {
        std::optional<int> n = normalize_axis(a, rank);
        ANVIL_CHECK(n.has_value(), std::string("row_axes: axis out of range for ") + op_name(op) +
                                       " (was infer_shapes run?)");
        return *n;
    };
    std::vector<int> axes;
    switch (op_def(op).row_axes) {
        case RowAxes::at_axis: return {axis(attrs.get_int("axis"))};
        case RowAxes::from_axis:
        case RowAxes::last:
            for (int d = op_def(op).row_axes == RowAxes::last ? rank - 1 : axis(attrs.get_int("axis")); d < rank; ++d)
                axes.push_back(d);
            return axes;
        case RowAxes::plane: return {2, 3};
        case RowAxes::listed:
            for (int64_t a : attrs.get_ints("axes")) axes.push_back(axis(a));
            std::sort(axes.begin(), axes.end());
            return axes;
        case RowAxes::none: break;
    }
    ANVIL_CHECK(false, std::string("row_axes: ") + op_name(op) + " is not a row op");
    return {};
}

}  // namespace anvil
