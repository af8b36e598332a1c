// The policies anvil knows, by name.
#include <string>

#include "anvil/policy.h"

namespace anvil {

Schedule per_op_policy(const TileGraph&, const Gpu&);
Schedule topo_policy(const TileGraph&, const Gpu&);

const std::vector<PolicyEntry>& all_policies() {
    static const std::vector<PolicyEntry> table = {
        {"topo", "one persistent megakernel: all rTasks in topological order, tile-level dependencies",
         topo_policy},
        {"per_op", "the baseline: one kernel launch per operator", per_op_policy},
    };
    return table;
}

const char* default_policy() { return "topo"; }

const PolicyEntry& find_policy(const std::string& name) {
    std::string known;
    for (const PolicyEntry& p : all_policies()) {
        if (name == p.name) return p;
        known += known.empty() ? p.name : std::string(", ") + p.name;
    }
    throw UserError("unknown policy '" + name + "' (known: " + known + ")");
}

}  // namespace anvil
