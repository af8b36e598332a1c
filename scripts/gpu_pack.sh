#!/usr/bin/env bash
# Packs what the GPU machine needs into build/gpu_pack (that machine has the
# CUDA toolkit and a driver, but no network and none of our Debian
# packages): anvil and anvil_tests built here, every shared library they
# link that is neither libc's nor CUDA's, and PyYAML. Then, on the device:
#   run(command="bash scripts/gpu_bench.sh PHASE", carry=["build/gpu_pack"])
# With --precompile it also compiles every full-size zoo model's schedules
# (anvil and per_op) with NVRTC here and packs the cache (xz): the device
# (CUDA 13.0 like this machine) then finds them compiled and spends its time
# measuring. The GPUs to compile for follow --precompile (default h100_sxm;
# name the kind `status` offers: `--precompile h200`).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/build.ninja ] || bash scripts/setup.sh
cmake --build build --target anvil anvil_tests
pack=build/gpu_pack
rm -rf "$pack"
mkdir -p "$pack/lib"
strip -o "$pack/anvil" build/anvil
strip -o "$pack/anvil_tests" build/anvil_tests
# The simt side of the [crosscheck] test, found beside anvil_tests.
cp build/libanvil_crosscheck_simt.so "$pack/"
for lib in $(ldd build/anvil build/anvil_tests | awk '/=> \//{print $3}' | sort -u); do
    case "$(basename "$lib")" in
        libc.so* | libm.so* | libdl.so* | libpthread.so* | librt.so* | ld-linux*) ;;  # the device's own
        libnvrtc* | libcuda* | libcudart*) ;;                                          # the device's CUDA
        *) cp -L "$lib" "$pack/lib/" ;;
    esac
done
# The simt backend compiles its emitted source with the host compiler
# against Boost.Context (the [crosscheck] tests run it beside the device):
# its few headers and its library, which the device's image lacks.
mkdir -p "$pack/include"
for h in $(echo '#include <boost/context/detail/fcontext.hpp>' | g++ -x c++ -M - | tr ' \\' '\n\n' | grep '/boost/'); do
    rel=${h#/usr/include/}
    mkdir -p "$pack/include/$(dirname "$rel")" && cp "$h" "$pack/include/$rel"
done
cp -L /usr/lib/x86_64-linux-gnu/libboost_context.so "$pack/lib/libboost_context.so"
# PyYAML for scripts/baselines.py, in case the device's Python lacks it
# (pure Python: it falls back from its C extension on another Python).
mkdir -p "$pack/py"
cp -r "$(python3 -c 'import os, yaml; print(os.path.dirname(yaml.__file__))')" "$pack/py/"
# The source tree the test binary was built in: the device links it to its checkout.
echo "$PWD" > "$pack/source_dir"
git rev-parse HEAD > "$pack/commit" 2>/dev/null || echo unknown > "$pack/commit"
git diff --quiet HEAD 2>/dev/null || echo "dirty" >> "$pack/commit"
if [ "${1:-}" = "--precompile" ]; then
    shift
    gpus=${*:-h100_sxm}
    cache=build/gpu_pack_cache
    mkdir -p "$cache"
    for gpu in $gpus; do
        for m in $(ls models/*.yaml | grep -v _small); do
            for policy in anvil per_op; do
                ANVIL_CACHE_DIR=$cache build/anvil schedule "$m" --gpu "$gpu" --policy "$policy" --compile > /dev/null
            done
        done
        # The A/B runs of gpu_bench.sh's profile phase: each its own source.
        for ab in "resnet18 --reload-params" "resnet18 --poll-backoff-ns 1024" "bert_base --gemm-l2-prefetch" \
                  "vit_b16 --gemm-l2-prefetch" "bert_base --wgmma" "transformer_encoder_f16 --wgmma" \
                  "llama_decode --gemv-ring-stages 8" "llama_decode --blocked-weights" \
                  "llama_decode --blocked-weights=16" "llama_decode --gemv-l2-prefetch" \
                  "llama_decode --blocked-weights=16 --gemv-l2-prefetch"; do
            set -- $ab
            m=$1
            shift
            ANVIL_CACHE_DIR=$cache build/anvil schedule "models/$m.yaml" --gpu "$gpu" "$@" --compile > /dev/null
        done
    done
    tar -cJf "$pack/anvil_cache.tar.xz" -C "$cache" .
fi
du -sh "$pack"
