// Scheduling policies: pure functions from a tile graph and a GPU to a
// Schedule, registered by name. One file per policy in policies/. A policy
// only places: the front stages it wants (fusion, a choice of tile shapes)
// are declared in its entry and run by the pipeline before it.
#pragma once
#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

using PolicyFn = Schedule (*)(const TileGraph&, const Gpu&);

// The tile shapes the pipeline's variants stage gives the policy to place.
enum class VariantChoice {
    keep,           // decompose's own
    by_wave,        // choose_variants_by_wave: Rammer's per-wave choice
    fastest_alone,  // each rOp's fastest on the whole GPU (Welder)
    // Both of the above: the policy places each, and the pipeline keeps the
    // schedule the cost model predicts fastest (the first on a tie).
    by_wave_and_fastest_alone,
};

struct PolicyEntry {
    const char* name;
    const char* summary;
    PolicyFn fn;
    bool fuses = false;  // the pipeline runs fuse before it
    VariantChoice variants = VariantChoice::keep;
};

const std::vector<PolicyEntry>& all_policies();
const char* default_policy();
// Throws UserError listing the known names when `name` is unknown.
const PolicyEntry& find_policy(const std::string& name);


}  // namespace anvil
