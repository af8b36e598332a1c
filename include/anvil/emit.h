// Code generation: one self-contained CUDA source for a Schedule. The same
// text compiles with NVRTC (device) and with the host C++ compiler (host
// backend): rtasks/platform.cuh picks the implementation of each primitive.
#pragma once
#include <string>

#include "anvil/schedule.h"

namespace anvil {

std::string emit_source(const Schedule& s);

// The embedded text of rtasks/<file> (generated at build time).
const std::string& rtask_source(const std::string& file);

}  // namespace anvil
