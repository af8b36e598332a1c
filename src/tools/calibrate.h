// Measuring a device's ceilings (the roofline's denominators): the copy
// bandwidth of DRAM and the peak FLOP rates of the CUDA cores and of the
// tensor cores through mma.sync, the instruction anvil's tiles can issue.
// `anvil calibrate` runs this once per device and keeps the numbers in
// kernels_db/measured/<gpu>.yaml.
#pragma once
#include <string>

#include "target/gpu.h"

namespace anvil {

// The microbenchmarks, one kernel each (compiles for sm_80 and newer).
const std::string& calibration_source();

// Runs the microbenchmarks on CUDA device `device` (a few seconds) and
// returns the best rate of several runs of each. Throws UserError when
// there is no usable device or a driver call fails.
Ceilings calibrate(int device = 0);

}  // namespace anvil
