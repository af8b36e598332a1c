// Tile-level dependencies: a task waits for the earlier tasks whose written
// bytes overlap the bytes it reads (from the tiles' footprints).
#pragma once
#include <vector>

#include "schedule/schedule.h"

namespace anvil {

// For every task, the earlier tasks of `tasks` whose written bytes overlap
// what it reads.
std::vector<std::vector<int>> tile_dependencies(const TileGraph& tg, const std::vector<Task>& tasks);

}  // namespace anvil
