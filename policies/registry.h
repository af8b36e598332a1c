// Scheduling policies: pure functions from a tile graph and a GPU to a
// Schedule, registered by name. One file per policy in policies/.
#pragma once
#include <string>
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

using PolicyFn = Schedule (*)(const TileGraph&, const Gpu&);

struct PolicyEntry {
    const char* name;
    const char* summary;
    PolicyFn fn;
};

const std::vector<PolicyEntry>& all_policies();
const char* default_policy();
// Throws UserError listing the known names when `name` is unknown.
const PolicyEntry& find_policy(const std::string& name);


}  // namespace anvil
