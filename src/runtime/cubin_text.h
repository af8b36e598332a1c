// The machine code a kernel occupies in a CUBIN: the size of its ELF
// section `.text.<kernel>` (the __noinline__ functions it calls live in the
// same section). A megakernel's code far beyond an SM's instruction caches
// is fetched from L2 whenever a block turns to another tile kind.
#pragma once

#include <cstdint>
#include <string>

namespace anvil {

// Bytes of `.text.<kernel>` in `cubin` (an ELF64 object, as NVRTC writes
// for sm_XX); 0 when the CUBIN holds no such section or is not a readable
// ELF64 object.
int64_t cubin_text_bytes(const std::string& cubin, const std::string& kernel);

}  // namespace anvil
