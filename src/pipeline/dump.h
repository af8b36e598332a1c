// Readable text of each stage's value, for `anvil schedule --dump-after
// STAGE` and for tests that assert on a stage's structure.
#pragma once
#include <string>

#include "anvil/pipeline.h"

namespace anvil {

// The model as loaded: every input, param and node as the file names them.
std::string dump_model(const Model& m);
// Every tensor: role, name, op and operands (nodes), dtype and shape (a
// node's are "?" until `shapes_known`).
std::string dump_graph(const Graph& g, bool shapes_known);
// One line per rOp: name, kind, variant, tiles, fusion level and members,
// and its epilogue as a program ("v1 = v0 + in0; v2 = gelu(v1)").
std::string dump_tile_graph(const TileGraph& tg);
// An epilogue program, steps separated by "; " ("" when it has none).
std::string epilogue_program(const AnvilEpilogue& e);
// Launches, blocks, tasks, dependencies, then each rOp's placement.
std::string dump_schedule(const Schedule& s);
// The value `stage` left in `c` (which must have run it).
std::string dump_stage(Stage stage, const Compilation& c);

}  // namespace anvil
