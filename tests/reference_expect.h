// Comparing a reference result with values a test computed on its own.
#pragma once
#include <catch2/catch.hpp>

#include <vector>

#include "reference/reference.h"

namespace anvil::test {

inline void check_values(const RefTensor& got, const Shape& shape, const std::vector<double>& want, double tol = 1e-12) {
    REQUIRE(got.shape == shape);
    REQUIRE(got.data.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
        INFO("element " << i);
        REQUIRE(got.data[i] == Approx(want[i]).epsilon(tol).margin(tol));
    }
}

}  // namespace anvil::test
