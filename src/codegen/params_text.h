// The emitted text of the params structs of rtasks/params.cuh: one C++17
// aggregate initialiser per struct, each value after a /*field*/ comment
// naming it. The text comes from the same field lists as the structs, so
// its values are in the order of the fields whatever that becomes.
#pragma once
#include <string>

#include "tile/tile_graph.h"

namespace anvil {

std::string params_text(const EwParams& p);
std::string params_text(const MatmulParams& p);
std::string params_text(const RowParams& p);
std::string params_text(const WindowParams& p);
std::string params_text(const ChannelParams& p);
std::string params_text(const GatherParams& p);
std::string params_text(const AnvilEpilogue& e);

// A float literal that reads back to exactly the same float.
std::string float_literal(float v);

}  // namespace anvil
