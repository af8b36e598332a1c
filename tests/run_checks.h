// What the tests of runs share: skipping, visibly, where there is no CUDA
// device, checking every output of a run against the float64 reference, and
// mutating the emitted source.
#pragma once
#include <catch2/catch.hpp>

#include <string>

#include "anvil/pipeline.h"
#include "runtime/cuda_driver.h"
#include "runtime/host_backend.h"

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

// Run options that emit the source with the first `from` (which it must
// hold; `unique`: exactly once) replaced by `to`: a mutation the test must
// catch.
inline HostRunOptions with_mutation(const std::string& from, const std::string& to, bool unique = true) {
    HostRunOptions opt;
    opt.edit_source = [from, to, unique](std::string& src) {
        const size_t at = src.find(from);
        REQUIRE(at != std::string::npos);
        if (unique) REQUIRE(src.find(from, at + 1) == std::string::npos);
        src.replace(at, from.size(), to);
    };
    return opt;
}

}  // namespace anvil::test
