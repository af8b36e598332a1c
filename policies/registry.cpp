// The policies anvil knows, by name.
#include "policies/registry.h"

#include <string>


namespace anvil {

Schedule anvil_policy(const TileGraph&, const Gpu&);
Schedule per_op_policy(const TileGraph&, const Gpu&);
Schedule rammer_policy(const TileGraph&, const Gpu&);
Schedule topo_policy(const TileGraph&, const Gpu&);
Schedule welder_policy(const TileGraph&, const Gpu&);

const std::vector<PolicyEntry>& all_policies() {
    static const std::vector<PolicyEntry> table = {
        {"anvil",
         "fusion + co-scheduling in one persistent megakernel, placed along the critical path (the default)",
         anvil_policy, true, VariantChoice::by_wave_and_fastest_alone},
        {"rammer", "wavefront co-scheduling of independent operators, static placement, one persistent kernel",
         rammer_policy, false, VariantChoice::by_wave},
        {"welder", "fusion with intermediates in registers/shared memory, tile shapes searched, one kernel per group",
         welder_policy, true, VariantChoice::fastest_alone},
        {"topo", "one persistent megakernel: all rTasks in topological order, dealt round-robin", topo_policy},
        {"per_op", "the baseline: one kernel launch per operator", per_op_policy},
    };
    return table;
}

const char* default_policy() { return "anvil"; }

const PolicyEntry& find_policy(const std::string& name) {
    std::string known;
    for (const PolicyEntry& p : all_policies()) {
        if (name == p.name) return p;
        known += known.empty() ? p.name : std::string(", ") + p.name;
    }
    throw UserError("unknown policy '" + name + "' (known: " + known + ")");
}

}  // namespace anvil
