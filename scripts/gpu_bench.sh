#!/usr/bin/env bash
# On the GPU machine, with build/gpu_pack carried (scripts/gpu_pack.sh):
#   bash scripts/gpu_bench.sh tests       the [gpu] tests
#   bash scripts/gpu_bench.sh profile     calibrate; the [gpu] tests while every zoo model compiles and saves
#                                         its inputs, params and outputs (--save-io); then anvil profile of each
#   bash scripts/gpu_bench.sh baselines   every zoo model under PyTorch (eager, CUDA graph, torch.compile) and JAX
#   bash scripts/gpu_bench.sh hopper      issue 6's benchmarks (scripts/bench_hopper.py): 4096^3 GEMM vs cuBLAS,
#                                         GEMV chain and decode step bytes/s vs copy bandwidth
#   bash scripts/gpu_bench.sh tune        anvil tune of TUNE_MODELS (resnet18 bert_base): each GEMM's candidate
#                                         tiles timed alone (not in `all`; for a second call)
#   bash scripts/gpu_bench.sh layouts     the GEMV chain, row-major against blocked weights (anvil and topo
#                                         policies, --blocked-weights, --gemv-l2-prefetch); llama_decode without
#                                         and with --blocked-weights (64 and 16) and --gemv-l2-prefetch (alone and
#                                         with blocks of 16; not in `all`; a second call, ~6 minutes)
#   bash scripts/gpu_bench.sh all         profile, hopper, baselines: the one device command (below)
# SKIP_TESTS=1 leaves the [gpu] tests out of the profile phase.
# Each phase fits one device call (10 minutes) and writes its results under
# $OUT (or out/ without one); scripts/gpu_results.py merges them into
# docs/perf/gpu-zoo-<date>.json. MODELS="a b" limits the zoo.
#
# `all` is the one prepared device command (about 9 minutes): each phase runs
# under its own cap, and after each one everything measured so far is packed
# into ONE archive, $OUT/gpu-results.tar.gz, so a call cut off anywhere still
# returns what it measured. What the H200 run of 2026-11-28 (3cda44c) took:
# calibrate 10 s; the [gpu] tests ran into their 150 s cap in the zoo test
# (every small model under both policies; all it reached passed); 11 profiles
# fit in the profile phase (resnet18 and bert_base with their A/B); the
# hopper phase returned nothing in 110 s (bench_hopper.py now writes after
# each step); PyTorch eager and graph for 12 models took 100 s (stored now:
# the next H200 run goes on to torch.compile and JAX). A second call on the
# warm machine profiles what the cap left out, without the tests:
#   SKIP_TESTS=1 MODELS="llama_decode lstm_tc ..." bash scripts/gpu_bench.sh profile
# Plan, from the H100 run of 2026-11-27 (commit
# eecf9a0: [gpu] tests ~190 s in all; a small model's profile 5-10 s;
# lstm_tc's schedule alone 46 s; torch.compile 60-90 s a model):
#   profile    330 s  calibrate ~10 s; [gpu] tests (cap 150 s) beside the
#                     compile-and-check of every model; then one profile per
#                     model (cap 45 s; 120 s for llama_decode and lstm_tc,
#                     which go last); resnet18 and bert_base again with
#                     --epilogue-batch 1 (what taking the tile epilogues'
#                     values 8 at a time buys); bert_base and vit_b16 with
#                     --gemm-l2-prefetch; into out/ab; ~40 s
#   hopper     110 s  scripts/bench_hopper.py, tensor cores first (never
#                     measured yet), then CUDA cores
#   baselines  100 s  PyTorch eager and CUDA graph (and cuDNN's LSTM) for the
#                     models this device has none stored for (they do not
#                     depend on anvil's commit: gpu_results.py carries the
#                     stored ones forward); then torch.compile and JAX where
#                     none is stored, bert_base and llama_decode first
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pack=$root/build/gpu_pack
out=${OUT:-$root/out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$pack/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}
# The simt backend's host compiles find Boost.Context in the pack.
export CPLUS_INCLUDE_PATH=$pack/include${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}
export LIBRARY_PATH=$pack/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export ANVIL_CACHE_DIR=$root/build/anvil_cache   # kept between calls while the machine stays warm
# CUBINs compiled on the development machine (gpu_pack.sh --precompile).
if [ -f "$pack/anvil_cache.tar.xz" ] && [ ! -f "$ANVIL_CACHE_DIR/.unpacked" ]; then
    mkdir -p "$ANVIL_CACHE_DIR" && tar -xJf "$pack/anvil_cache.tar.xz" -C "$ANVIL_CACHE_DIR" && touch "$ANVIL_CACHE_DIR/.unpacked"
fi
anvil=$pack/anvil
[ -x "$anvil" ] || { echo "no $anvil: run scripts/gpu_pack.sh here and carry build/gpu_pack" >&2; exit 2; }

# The test binary knows the tree it was built in; point it at this checkout.
src=$(cat "$pack/source_dir")
if [ "$src" != "$root" ] && [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$root" "$src"; fi
# The CLI tests run ANVIL_SOURCE_DIR/build/anvil.
mkdir -p "$root/build" && cp "$anvil" "$root/build/anvil.new" && mv -f "$root/build/anvil.new" "$root/build/anvil"

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$gpu" in *H200*) target=h200 ;; *H100*) target=h100_sxm ;; *A100*) target=a100_sxm ;; *) target=h100_sxm ;; esac
# llama_decode (issue 14's decode step) goes early: no H200 run has reached it yet.
first="resnet18 bert_base llama_decode transformer_encoder_f16 mobilenet_v2 vit_b16"
slow="llama_decode lstm_tc"   # their profiles take minutes (a 1.6 GB model; a 132k-task schedule)
all_models=$(ls models/*.yaml | grep -v _small | xargs -n1 basename | sed 's/\.yaml$//')
zoo=${MODELS:-$first $(for m in $all_models; do case " $first $slow " in *" $m "*) ;; *) echo "$m" ;; esac; done) $(for m in $slow; do case " $first " in *" $m "*) ;; *) echo "$m" ;; esac; done)}
io=$root/build/io
db=$root/build/kernels_db   # kernels_db with this device's measured ceilings
{ echo "device: $gpu"; echo "target: $target"; echo "commit: $(cat "$pack/commit")"; echo "date: $(date -u +%F)"; } > "$out/meta.txt"

phase_tests() {
    echo "== [gpu] tests on $gpu"
    # The PTX wrappers' cross-check alone first: a fault there leaves its
    # process's CUDA context unusable (at caaf45f xc_tma_2d's illegal
    # instruction failed every later device test of that process). Then,
    # alone for the same reason, the wgmma tile's TMA paths (never on a
    # device). Then those that never ran on a device (the 2026-11-27 run's
    # cap stopped before them), then the rest. --foreground: a cap inside a
    # capped phase must stay in its process group.
    local first='[tensor][gpu],[tf32][gpu],[policy][gpu],[gpu][profile],[tune][gpu]'
    local rest='[gpu]~[crosscheck]~[tma]~[tensor]~[tf32]~[policy]~[profile]~[tune]'
    timeout --foreground -k 5 "${TESTS_CAP:-150}" sh -c '"$1" "[crosscheck]" -r compact -d yes; x=$?;
        "$1" "[tma][gpu]" -r compact -d yes; t=$?;
        "$1" "$2" -r compact -d yes; a=$?; "$1" "$3" -r compact -d yes; b=$?;
        echo "crosscheck rc=$x, tma rc=$t, first rc=$a, rest rc=$b"
        [ $x = 0 ] && [ $t = 0 ] && [ $a = 0 ] && [ $b = 0 ]' \
        _ "$pack/anvil_tests" "$first" "$rest" > "$out/gpu_tests.txt" 2>&1
    echo "rc=$?" >> "$out/gpu_tests.txt"
    tail -3 "$out/gpu_tests.txt"
}

# Compiles every schedule, many at a time (NVRTC uses one core per
# program), and saves each model's inputs, params and outputs for the
# baselines; runs the [gpu] tests meanwhile. Nothing here is timed.
prepare() {
    local tests=
    [ -n "${SKIP_TESTS:-}" ] || { phase_tests & tests=$!; }
    for m in $zoo; do
        echo "run models/$m.yaml --backend cuda --gpu $target --save-io $io/$m"
        echo "schedule models/$m.yaml --gpu $target --policy per_op --compile"
    done | xargs -P 12 -I{} sh -c "$anvil {} > /dev/null 2>&1"
    [ -z "$tests" ] || wait $tests
}

phase_profile() {
    rm -rf "$db" && cp -r kernels_db "$db" && mkdir -p "$db/measured"
    # First, alone on the device: its ceilings.
    "$anvil" calibrate --gpu "$target" --out "$db/measured/$target.yaml" | tee "$out/calibrate.txt"
    cp "$db/measured/$target.yaml" "$out/measured_$target.yaml"
    prepare
    mkdir -p "$out/profile"
    for m in $zoo; do
        trace=()
        case "$m" in transformer_encoder_f16 | resnet18 | bert_base | llama_decode) trace=(--trace "$out/profile/$m.trace.json") ;; esac
        echo "== profile $m"
        cap=${PROFILE_CAP:-45}
        case " $slow " in *" $m "*) cap=${SLOW_PROFILE_CAP:-120} ;; esac
        timeout --foreground -k 5 "$cap" "$anvil" profile "models/$m.yaml" --gpu "$target" --kernels-db "$db" --iters 50 --json "${trace[@]}" \
            > "$out/profile/$m.json" 2> "$out/profile/$m.err"
        echo "rc=$?" >> "$out/profile/$m.err"
        grep -E '"(megakernel_us|per_op_us|per_op_graph_us|roofline_us)"' "$out/profile/$m.json" | tr -d '\n'; echo
        # A/B, the same model: the tile epilogues a value per call (a round trip each) instead of 8 at a
        # time (rtasks/epilogue.cuh; docs/perf/epilogue-batches-2026-11-29.md). The cost model follows the
        # option, so the tiles may differ too; the default run's trace times each GEMM's epilogue alone.
        # (--reload-params and --poll-backoff-ns 1024 were measured at caaf45f: +41% and +3% on resnet18.)
        case "$m" in resnet18 | bert_base)
            mkdir -p "$out/ab"
            timeout --foreground -k 5 "$cap" "$anvil" profile "models/$m.yaml" --gpu "$target" --kernels-db "$db" --iters 50 \
                --json --epilogue-batch 1 > "$out/ab/$m.epilogue_batch_1.json" 2> "$out/ab/$m.epilogue_batch_1.err"
            echo "rc=$?" >> "$out/ab/$m.epilogue_batch_1.err"
            grep -E '"(megakernel_us|outputs_ok)"' "$out/ab/$m.epilogue_batch_1.json" | tr -d '\n' | sed 's/^/  --epilogue-batch 1: /'; echo ;;
        esac
        # The decode step's GEMVs stream 6.5 GB/s per block at caaf45f (docs/perf/gpu-notes-2026-11-28b.md):
        # a ring twice as deep says whether bytes in flight are what they lack.
        case "$m" in llama_decode)
            mkdir -p "$out/ab"
            timeout --foreground -k 5 "$cap" "$anvil" profile "models/$m.yaml" --gpu "$target" --kernels-db "$db" --iters 20 \
                --json --gemv-ring-stages 8 > "$out/ab/$m.gemv_ring_8.json" 2> "$out/ab/$m.gemv_ring_8.err"
            echo "rc=$?" >> "$out/ab/$m.gemv_ring_8.err"
            grep -E '"(megakernel_us|outputs_ok)"' "$out/ab/$m.gemv_ring_8.json" | tr -d '\n' | sed 's/^/  --gemv-ring-stages 8: /'; echo ;;
        esac
        # The tensor-core tiles' weights prefetched into L2 ahead of their stages: bert_base's GEMM
        # bodies spend about 0.46 us a slice plus 10.8 us a tile (docs/perf/gemm-slices-2026-11-28.md).
        case "$m" in bert_base | vit_b16)
            mkdir -p "$out/ab"
            timeout --foreground -k 5 "$cap" "$anvil" profile "models/$m.yaml" --gpu "$target" --kernels-db "$db" --iters 50 \
                --json --gemm-l2-prefetch > "$out/ab/$m.gemm_l2_prefetch.json" 2> "$out/ab/$m.gemm_l2_prefetch.err"
            echo "rc=$?" >> "$out/ab/$m.gemm_l2_prefetch.err"
            grep -E '"(megakernel_us|outputs_ok)"' "$out/ab/$m.gemm_l2_prefetch.json" | tr -d '\n' | sed 's/^/  --gemm-l2-prefetch: /'; echo ;;
        esac
        # The Hopper wgmma tile (its cross-check passed on the H200 at caaf45f): its outputs and time.
        case "$m" in bert_base | transformer_encoder_f16)
            mkdir -p "$out/ab"
            timeout --foreground -k 5 "$cap" "$anvil" profile "models/$m.yaml" --gpu "$target" --kernels-db "$db" --iters 50 \
                --json --wgmma > "$out/ab/$m.wgmma.json" 2> "$out/ab/$m.wgmma.err"
            echo "rc=$?" >> "$out/ab/$m.wgmma.err"
            grep -E '"(megakernel_us|outputs_ok)"' "$out/ab/$m.wgmma.json" | tr -d '\n' | sed 's/^/  --wgmma: /'; echo ;;
        esac
    done
}

phase_baselines() {
    mkdir -p "$out/baselines"
    export TORCHINDUCTOR_CACHE_DIR=$root/build/inductor_cache
    export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX next to PyTorch in one process
    python3 -c 'import yaml' 2> /dev/null || export PYTHONPATH=$pack/py${PYTHONPATH:+:$PYTHONPATH}
    python3 scripts/baselines.py --self-test > "$out/baselines_self_test.txt" 2>&1
    echo "rc=$?" >> "$out/baselines_self_test.txt"
    tail -5 "$out/baselines_self_test.txt"
    # Baselines do not depend on anvil's commit: skip those stored for this device (docs/perf/gpu-zoo-*.json).
    local stored compiled
    stored=" $(python3 scripts/gpu_results.py --stored-baselines "$gpu") "
    compiled=" $(python3 scripts/gpu_results.py --stored-baselines "$gpu" --names torch_compile,jax_jit) "
    for m in $zoo; do
        [ -d "$io/$m" ] || { echo "no $io/$m: run the profile phase first" >&2; continue; }
        case "$stored" in *" $m "*) [ -z "${MODELS:-}" ] && { echo "== baselines $m: stored"; continue; } ;; esac
        echo "== baselines $m"
        # One process for all (imports once); if it dies, one per baseline.
        if ! timeout --foreground -k 5 "${BASELINE_CAP:-30}" python3 scripts/baselines.py "models/$m.yaml" "$io/$m" \
            --iters 50 --warmup 10 --in-process --only torch_eager,torch_cuda_graph,torch_cudnn_lstm \
            --json "$out/baselines/$m.json" > "$out/baselines/$m.txt" 2>&1; then
            timeout --foreground -k 5 "${BASELINE_CAP:-30}" python3 scripts/baselines.py "models/$m.yaml" "$io/$m" \
                --iters 50 --warmup 10 --only torch_eager,torch_cuda_graph,torch_cudnn_lstm --timeout 20 \
                --json "$out/baselines/$m.json" >> "$out/baselines/$m.txt" 2>&1
        fi
        echo "rc=$?" >> "$out/baselines/$m.txt"
        tail -8 "$out/baselines/$m.txt"
    done
    # The compilers take tens of seconds each: the models the issue names first, while the phase's cap allows.
    for m in ${COMPILED_MODELS:-bert_base llama_decode transformer_encoder_f16 mobilenet_v2 vit_b16 resnet18}; do
        [ -d "$io/$m" ] || continue
        case "$compiled" in *" $m "*) [ -z "${COMPILED_MODELS:-}" ] && continue ;; esac
        echo "== compiled baselines $m"
        timeout --foreground -k 5 "${COMPILED_CAP:-90}" python3 scripts/baselines.py "models/$m.yaml" "$io/$m" \
            --iters 50 --warmup 10 --only torch_compile,jax_jit --timeout 80 \
            --json "$out/baselines/$m.compiled.json" > "$out/baselines/$m.compiled.txt" 2>&1
        echo "rc=$?" >> "$out/baselines/$m.compiled.txt"
        tail -4 "$out/baselines/$m.compiled.txt"
    done
}

phase_hopper() {
    [ -f "$db/measured/$target.yaml" ] || { rm -rf "$db" && cp -r kernels_db "$db" && mkdir -p "$db/measured" &&
        "$anvil" calibrate --gpu "$target" --out "$db/measured/$target.yaml"; }
    for tc in --tensor-cores ""; do
        python3 scripts/bench_hopper.py --anvil "$anvil" --kernels-db "$db" $tc \
            --json "$out/hopper${tc:+_tensor_cores}.json" > "$out/hopper${tc:+_tensor_cores}.txt" 2>&1
        echo "rc=$?" >> "$out/hopper${tc:+_tensor_cores}.txt"
        tail -25 "$out/hopper${tc:+_tensor_cores}.txt"
    done
}

# The GEMV chain with row-major and with blocked weights, under the anvil
# and topo policies, then with anvil's --blocked-weights pass and with
# --gemv-l2-prefetch (bench_hopper.py --gemv-layouts, about 60 s); then
# llama_decode without and with --blocked-weights, in blocks of 64 and of 16
# columns (the width of its BN-16 tiles: each tile's slice its whole block),
# with --gemv-l2-prefetch (each task's weights into L2 while it waits), and
# with both, side by side (about 330 s): whether the decode GEMV's stream is
# held back by the DRAM locality of its strided rows, or by too few bytes in
# flight while the tasks wait. Not part of `all` (it would not fit); a second
# call on the warm machine runs it.
phase_layouts() {
    [ -f "$db/measured/$target.yaml" ] || { rm -rf "$db" && cp -r kernels_db "$db" && mkdir -p "$db/measured" &&
        "$anvil" calibrate --gpu "$target" --out "$db/measured/$target.yaml"; }
    python3 scripts/bench_hopper.py --anvil "$anvil" --kernels-db "$db" --gemv-layouts \
        --json "$out/gemv_layouts.json" > "$out/gemv_layouts.txt" 2>&1
    echo "rc=$?" >> "$out/gemv_layouts.txt"
    tail -14 "$out/gemv_layouts.txt"
    mkdir -p "$out/ab"
    for variant in default blocked_weights blocked_weights_16 l2_prefetch blocked_weights_16_l2_prefetch; do
        flags=()
        case $variant in
            blocked_weights) flags=(--blocked-weights) ;;
            blocked_weights_16) flags=(--blocked-weights=16) ;;
            l2_prefetch) flags=(--gemv-l2-prefetch) ;;
            blocked_weights_16_l2_prefetch) flags=(--blocked-weights=16 --gemv-l2-prefetch) ;;
        esac
        timeout --foreground -k 5 "${SLOW_PROFILE_CAP:-120}" "$anvil" profile models/llama_decode.yaml --gpu "$target" \
            --kernels-db "$db" --iters 20 --json "${flags[@]}" > "$out/ab/llama_decode.$variant.json" \
            2> "$out/ab/llama_decode.$variant.err"
        echo "rc=$?" >> "$out/ab/llama_decode.$variant.err"
        grep -E '"(megakernel_us|outputs_ok)"' "$out/ab/llama_decode.$variant.json" | tr -d '\n' | sed "s/^/  $variant: /"; echo
    done
}

# Each distinct GEMM's candidate tiles alone on the device (anvil tune), for
# the models of TUNE_MODELS: set beside the in-situ medians of a trace, they
# say whether a tile is slow by itself or inside the megakernel.
phase_tune() {
    [ -f "$db/measured/$target.yaml" ] || { rm -rf "$db" && cp -r kernels_db "$db" && mkdir -p "$db/measured" &&
        "$anvil" calibrate --gpu "$target" --out "$db/measured/$target.yaml"; }
    mkdir -p "$out/tune"
    for m in ${TUNE_MODELS:-resnet18 bert_base}; do
        echo "== tune $m"
        timeout --foreground -k 5 "${TUNE_CAP:-60}" "$anvil" tune "models/$m.yaml" --gpu "$target" --kernels-db "$db" \
            --out "$out/tune/$m.yaml" > "$out/tune/$m.txt" 2>&1
        echo "rc=$?" >> "$out/tune/$m.txt"
        tail -5 "$out/tune/$m.txt"
    done
}

# One archive of everything measured so far ($stage), replaced whole after each phase.
pack_results() {
    cp "$log" "$stage/" 2> /dev/null
    tar -czf "$final/gpu-results.tar.gz.part" -C "$stage" . && mv "$final/gpu-results.tar.gz.part" "$final/gpu-results.tar.gz"
}

run_all() {
    final=$out
    stage=$root/build/gpu_results
    log=$final/gpu_bench.log
    rm -rf "$stage" && mkdir -p "$stage"
    cp "$out/meta.txt" "$stage/"
    for phase in "profile ${PROFILE_PHASE_CAP:-330}" "hopper ${HOPPER_PHASE_CAP:-110}" "baselines ${BASELINES_PHASE_CAP:-100}"; do
        set -- $phase
        echo "== phase $1 (cap $2 s) at ${SECONDS} s"
        # timeout (not --foreground) kills the phase's whole process group.
        OUT=$stage timeout -k 10 "$2" bash "$root/scripts/gpu_bench.sh" "$1"
        echo "== phase $1 rc=$? at ${SECONDS} s"
        pack_results
    done
}

case "${1:-all}" in
    tests) phase_tests ;;
    profile) phase_profile ;;
    baselines) phase_baselines ;;
    hopper) phase_hopper ;;
    layouts) phase_layouts ;;
    tune) phase_tune ;;
    all) run_all 2>&1 | tee "$out/gpu_bench.log" ;;
    *) echo "unknown phase '$1' (tests, profile, baselines, hopper, layouts, tune, all)" >&2; exit 2 ;;
esac
