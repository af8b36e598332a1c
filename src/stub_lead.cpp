// TEMPORARY: replaced by decompose.cpp, footprint.cpp, schedule.cpp and policies/.
#include "anvil/policy.h"
namespace anvil {
const char* task_kind_name(TaskKind) { return "?"; }
TileGraph decompose(const Graph&, const TileSizes&) { throw InternalError("stub"); }
ByteRange tile_writes(const ROp&, int) { throw InternalError("stub"); }
std::vector<ByteRange> tile_reads(const ROp&, int) { throw InternalError("stub"); }
const TensorBuffer& buffer_of(const TileGraph&, const std::string&) { throw InternalError("stub"); }
void verify_schedule(const Schedule&) { throw InternalError("stub"); }
const std::vector<PolicyEntry>& all_policies() { throw InternalError("stub"); }
const char* default_policy() { return "topo"; }
const PolicyEntry& find_policy(const std::string&) { throw InternalError("stub"); }
std::vector<std::vector<int>> tile_dependencies(const TileGraph&, const std::vector<Task>&) { throw InternalError("stub"); }
}
