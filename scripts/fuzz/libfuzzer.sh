#!/usr/bin/env bash
# libFuzzer, built with Debian's clang under ASan + UBSan in build-fuzz, on
#   the YAML loader and shape inference (scripts/fuzz/fuzz_loader.cpp), seeded
#     with every model and fuzz regression; or, with FUZZ_TARGET=onnx,
#   the ONNX importer (scripts/fuzz/fuzz_onnx.cpp), seeded with the node
#     tests' models of libonnx-testdata.
# A crash, sanitizer report, internal error, timeout or memory blow-up stops
# it with the input in build-fuzz/.
#   [FUZZ_TARGET=loader|onnx] libfuzzer.sh [SECONDS (default 60)] [extra libFuzzer flags]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
shift || true
cmake -S . -B build-fuzz -G Ninja -DCUDAToolkit_ROOT=/usr/local/cuda -DCMAKE_CXX_COMPILER=clang++ \
      -DANVIL_LIBFUZZER=ON -DBUILD_TESTING=OFF ${CMAKE_CXX_COMPILER_LAUNCHER:+-DCMAKE_CXX_COMPILER_LAUNCHER=$CMAKE_CXX_COMPILER_LAUNCHER} >/dev/null
target=${FUZZ_TARGET:-loader}
cmake --build build-fuzz -j "${ANVIL_JOBS:-$(nproc)}" --target "anvil_fuzz_$target"
corpus=build-fuzz/corpus_$target
mkdir -p "$corpus"
if [ "$target" = onnx ]; then
    for m in /usr/share/libonnx-testdata/data/node/*/model.onnx; do
        cp "$m" "$corpus/$(basename "$(dirname "$m")").onnx"
    done
else
    cp models/*.yaml tests/models/*.yaml tests/fuzz_regressions/*.yaml "$corpus"/
fi
cd build-fuzz
ASAN_OPTIONS=detect_leaks=0 "./anvil_fuzz_$target" "corpus_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=65536 -print_final_stats=1 "$@"
