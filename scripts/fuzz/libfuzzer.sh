#!/usr/bin/env bash
# libFuzzer on the loader and shape inference (scripts/fuzz/fuzz_loader.cpp),
# built with Debian's clang under ASan + UBSan in build-fuzz, seeded with
# every model and fuzz regression. A crash, sanitizer report, internal
# error, timeout or memory blow-up stops it with the input in build-fuzz/.
#   libfuzzer.sh [SECONDS (default 60)] [extra libFuzzer flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
cmake -S . -B build-fuzz -G Ninja -DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_CXX_COMPILER=clang++ \
      -DANVIL_LIBFUZZER=ON -DBUILD_TESTING=OFF ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} >/dev/null
cmake --build build-fuzz -j "${ANVIL_JOBS:-$(nproc)}" --target anvil_fuzz_loader
corpus=build-fuzz/corpus
mkdir -p "$corpus"
cp models/*.yaml tests/models/*.yaml tests/fuzz_regressions/*.yaml "$corpus"/
cd build-fuzz
ASAN_OPTIONS=detect_leaks=0 ./anvil_fuzz_loader corpus -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 "$@"
