#!/usr/bin/env bash
# The host-side tests under AddressSanitizer + UndefinedBehaviorSanitizer
# (issue 17): a separate build in build-asan (-DANVIL_SANITIZE=ON), then the
# tests that need no GPU and no long host compiles: the loader, shape
# inference, graphs, values and .npy, tile regions, fusion, the cache,
# the kernel-1 pools and the hostile-input tests (limits, paths); about a
# minute on 2 cores once built, and only their test files are compiled.
# (Not [tensor]: it grew to 36 tensor-core tests on simt and host compiles,
# over 20 minutes under ASan; ctest runs them.) Any report fails the run.
# Needs no CUDA driver (anvil loads it only when a command asks for the GPU).
#   sanitize.sh [extra Catch2 filter]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${ANVIL_JOBS:-$(nproc)}
tags=(loader infer graph values npy region fusion cache hostile limits paths pool)
# The default run compiles only the test files that hold its tags; a filter
# of one's own gets every test file.
if [ $# -gt 0 ]; then
  filter=$1
  only_tags=""
else
  filter=$(printf '[%s],' "${tags[@]}")
  filter=${filter%,}
  only_tags=$(IFS=';'; echo "${tags[*]}")
fi
cmake -S . -B build-asan -G Ninja -DCUDAToolkit_ROOT=/usr/local/cuda -DANVIL_SANITIZE=ON -DANVIL_TEST_TAGS="$only_tags" \
      -DCMAKE_BUILD_TYPE=Debug ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} >/dev/null
cmake --build build-asan -j "$jobs" --target anvil anvil_tests
# It must start without a CUDA driver: no libcuda.so.1 among its libraries.
if readelf -d build-asan/anvil_tests build-asan/anvil | grep -q 'libcuda\.so'; then
  echo "sanitize: the binaries need libcuda.so.1 to start; the driver must be loaded at run time" >&2
  exit 1
fi
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ANVIL_CACHE_DIR=$PWD/build-asan/cache
build-asan/anvil_tests "$filter" --order lex
