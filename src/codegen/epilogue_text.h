// The straight-line form of the epilogue table: one device function per
// distinct program, with its dtypes, strides, offsets and scalars as
// constants, and the dispatcher rtasks/epilogue.cuh calls.
#pragma once
#include <string>
#include <vector>

#include "../../rtasks/params.cuh"

namespace anvil {

// The text of `anvil_epilogue_straight` for `table` (the emitted
// anvil_epilogues[], entry 0 empty): the first `max_functions` distinct
// programs get their own function, any others (and any entry the
// dispatcher does not know) the interpreter. Also returns how many
// functions it wrote in `*written`, when given.
std::string straight_line_epilogues(const std::vector<AnvilEpilogue>& table, int max_functions,
                                    int* written = nullptr);

}  // namespace anvil
