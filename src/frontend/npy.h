// numpy .npy files (format version 1.0/2.0): the types anvil stores.
#pragma once
#include <string>

#include "base/tensor.h"

namespace anvil {

// f32 and bf16 are written as <f4, f16 as <f2, i32 as <i4.
void write_npy(const std::string& path, const HostTensor& t);

// Reads <f4, <f2, <i4 (and C or Fortran order) and converts to `want` type.
// `want` must be the type the file may hold (f32/bf16 <- <f4, f16 <- <f2,
// i32 <- <i4): otherwise a UserError names the file and both types.
HostTensor read_npy(const std::string& path, DType want);

}  // namespace anvil
