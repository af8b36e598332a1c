#!/usr/bin/env bash
# Tests the op layer of scripts/baselines.py (scripts/baselines/) against
# anvil, without torch or jax: every CI-sized model (models/*_small.yaml, the
# hand-written models and tests/models/*.yaml) is run on the host backend with
# --save-io, and the numpy baseline, the same graph walker and op layer the
# torch and jax baselines use, must agree with anvil's outputs. Then
# baselines.py --self-test (with whatever frameworks are installed). Fails if
# any model disagrees. Needs numpy and PyYAML.
#
#   scripts/test_baselines.sh [ANVIL] [IO_ROOT]
#
# ANVIL: the anvil binary (default build/anvil). IO_ROOT: where the IO
# directories go (default: a temporary directory, removed at the end); an IO
# directory already there is reused, so a second run skips anvil.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
anvil=${1:-$root/build/anvil}
python=${PYTHON:-/usr/bin/python3}
if [ ! -x "$anvil" ]; then
    echo "test_baselines.sh: no anvil binary at $anvil (build it, or pass its path)" >&2
    exit 2
fi
if ! "$python" -c "import yaml" 2>/dev/null; then
    echo "test_baselines.sh: $python has no PyYAML (set PYTHONPATH to a directory holding the yaml package)" >&2
    exit 2
fi
if [ -n "${2:-}" ]; then
    io_root=$2
    mkdir -p "$io_root"
else
    io_root=$(mktemp -d "${TMPDIR:-/tmp}/anvil-baselines-XXXXXX")
    trap 'rm -rf "$io_root"' EXIT
fi

cd "$root"
passed=0 failed=0 failures=()
for model in models/*_small.yaml models/mlp_*.yaml models/llama_mlp_*.yaml \
             models/transformer_encoder_*.yaml tests/models/*.yaml; do
    name=$(basename "$model" .yaml)
    io=$io_root/$name
    if [ ! -d "$io/outputs" ]; then
        rm -rf "$io"
        if ! "$anvil" run "$model" --backend host --save-io "$io" > "$io_root/$name.anvil.log" 2>&1 \
            || [ ! -d "$io/outputs" ]; then
            echo "FAIL $name: anvil run did not pass its own check (see $io_root/$name.anvil.log)"
            rm -rf "$io"
            failed=$((failed + 1)) failures+=("$name")
            continue
        fi
    fi
    if out=$("$python" "$root/scripts/baselines.py" "$model" "$io" --only numpy --iters 1 --warmup 0 \
                 --strict 2>&1); then
        echo "ok   $name: $(echo "$out" | grep -o 'ok (worst rel L2 [^)]*)')"
        passed=$((passed + 1))
    else
        echo "FAIL $name:"
        echo "$out" | sed 's/^/     /'
        failed=$((failed + 1)) failures+=("$name")
    fi
done

if "$python" "$root/scripts/baselines.py" --self-test; then
    passed=$((passed + 1))
else
    failed=$((failed + 1)) failures+=("--self-test")
fi

[ "$failed" -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
