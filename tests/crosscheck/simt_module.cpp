// The cross-check kernels (kernels.cuh) in the simt configuration, built
// with the host compiler as a module beside anvil_tests: the emulator's
// side of tests/test_simt_crosscheck.cpp. Built here rather than at run
// time so that a GPU machine, which has no Boost headers, runs it too.
#define ANVIL_SIMT 1
#define ANVIL_SMEM_BYTES 27648
#include "rtasks/params.cuh"
#include "rtasks/simt.cuh"
#include "rtasks/platform.cuh"

#include "kernels.cuh"
