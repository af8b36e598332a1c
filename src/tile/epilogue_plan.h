// Which epilogues the emitter writes as straight-line code: shared by
// codegen (what it emits) and the cost model (what a value costs).
#pragma once
#include <cstddef>
#include <set>
#include <string>

#include "tile/tile_graph.h"

namespace anvil {

// Distinct epilogue programs beyond this many run on the interpreter
// (rtasks/epilogue.cuh anvil_epilogue_interpret): each straight-line one is
// a function of the source, and a model of thousands would bloat the
// kernel and NVRTC's time for little gain.
constexpr int kMaxStraightLineEpilogues = 256;

// Whether every offset of `e`'s views and of the output it covers fits a
// signed 32-bit index, so its index math can be 32-bit.
bool epilogue_fits_32bit(const AnvilEpilogue& e);

// The identity of a program: equal keys, one straight-line function.
std::string epilogue_key(const AnvilEpilogue& e);

// The number of distinct epilogue programs of a tile graph (epilogues and
// row epilogues of every rOp).
size_t distinct_epilogues(const TileGraph& tg);

// The programs the emitter writes straight-line: the first `limit`
// distinct ones in rOp order (epilogue, then row epilogue), as emit numbers
// its table.
std::set<std::string> straight_line_programs(const TileGraph& tg, int limit = kMaxStraightLineEpilogues);

// Instructions one value of the epilogue costs, roughly: straight-line,
// the steps, a load per input and constant-divisor index math; interpreted,
// a 64-bit div/mod per dimension, a dtype switch per input and the operand
// selection of every step besides. The cost model charges it per value.
double epilogue_instructions_per_value(const AnvilEpilogue& e, bool straight_line);

}  // namespace anvil
