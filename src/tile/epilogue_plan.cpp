// Straight-line epilogue plan: the limit and the 32-bit test.
#include "tile/epilogue_plan.h"

#include <cstdint>
#include <cstring>
#include <set>
#include <string>

namespace anvil {

bool epilogue_fits_32bit(const AnvilEpilogue& e) {
    constexpr int64_t kMax = INT32_MAX;
    int64_t numel = 1;
    for (int d = 0; d < e.rank; ++d) {
        if (e.shape[d] <= 0 || numel > kMax / e.shape[d]) return false;
        numel *= e.shape[d];
    }
    for (int i = 0; i < e.ninputs; ++i) {
        int64_t last = 0;  // the largest element offset the view reaches
        for (int d = 0; d < e.rank; ++d) {
            const int64_t s = e.in_stride[i][d];
            if (s < 0 || (s != 0 && (e.shape[d] - 1) > (kMax - last) / s)) return false;
            last += (e.shape[d] - 1) * s;
        }
    }
    return true;
}

std::string epilogue_key(const AnvilEpilogue& e) {
    // The bytes of the fields the program's code depends on: without
    // inputs, the output's shape does not matter (a bias + relu of one
    // layer is the code of every other's).
    AnvilEpilogue k{};
    k.nsteps = e.nsteps;
    k.ninputs = e.ninputs;
    for (int s = 0; s < e.nsteps && s < ANVIL_EPI_MAX_STEPS; ++s) k.steps[s] = e.steps[s];
    if (e.ninputs > 0) {
        k.rank = e.rank;
        for (int d = 0; d < e.rank && d < ANVIL_MAX_RANK; ++d) k.shape[d] = e.shape[d];
        for (int i = 0; i < e.ninputs && i < ANVIL_EPI_MAX_INPUTS; ++i) {
            k.in_dtype[i] = e.in_dtype[i];
            k.in_off[i] = e.in_off[i];
            for (int d = 0; d < e.rank && d < ANVIL_MAX_RANK; ++d) k.in_stride[i][d] = e.in_stride[i][d];
        }
    }
    return std::string(reinterpret_cast<const char*>(&k), sizeof k);
}

size_t distinct_epilogues(const TileGraph& tg) {
    return straight_line_programs(tg, INT32_MAX).size();
}

std::set<std::string> straight_line_programs(const TileGraph& tg, int limit) {
    std::set<std::string> seen;
    auto add = [&](const AnvilEpilogue& e) {
        if (e.nsteps != 0 && static_cast<int64_t>(seen.size()) < limit) seen.insert(epilogue_key(e));
    };
    for (const ROp& op : tg.rops) {
        add(op.epilogue);
        add(op.row_epilogue);
    }
    return seen;
}

double epilogue_instructions_per_value(const AnvilEpilogue& e, bool straight_line) {
    if (e.nsteps == 0) return 0;
    if (straight_line) return 4.0 + e.nsteps + 2.0 * e.ninputs + 3.0 * e.rank;
    return 30.0 + e.rank * (80.0 + 2.0 * e.ninputs) + 8.0 * e.ninputs + 24.0 * e.nsteps;
}

}  // namespace anvil
