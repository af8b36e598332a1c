// What the tests of runs share: skipping, visibly, where there is no CUDA
// device, and checking every output of a run against the float64 reference.
#pragma once
#include <catch2/catch.hpp>

#include <string>

#include "anvil/pipeline.h"
#include "runtime/cuda_driver.h"

// Returns from the test (reporting it skipped, with the reason) when no
// CUDA device is usable.
#define REQUIRE_DEVICE()                                                  \
    do {                                                                  \
        const std::string why_ = anvil::cuda_unavailable_reason();        \
        if (!why_.empty()) {                                              \
            WARN("skipped: " << why_);                                    \
            return;                                                       \
        }                                                                 \
    } while (0)

namespace anvil::test {

// Every output of a run of `g` on `values` within its tolerance of the
// reference; `count`, when not 0, is how many outputs there must be.
inline void expect_reference(const Graph& g, const TensorMap& values, const TensorMap& outputs, size_t count = 0) {
    const auto checks = check_outputs(g, outputs, reference_execute(g, values));
    REQUIRE(!checks.empty());
    if (count != 0) REQUIRE(checks.size() == count);
    for (const OutputCheck& c : checks) {
        INFO("output " << c.name << ": relative L2 error " << c.rel_l2 << ", tolerance " << c.tolerance);
        CHECK(c.ok());
    }
}

}  // namespace anvil::test
