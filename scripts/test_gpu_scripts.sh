#!/usr/bin/env bash
# The GPU run's scripts, checked here without a GPU on what the H100 run
# of 2026-11-27 wrote (tests/gpu_results_fixture): gpu_results.py merges the
# archive into a results file and the README table, says why a model is
# missing and lists the stored baselines; trace_summary.py summarises a
# measured trace beside its prediction and refuses a trace that is not one;
# bench_hopper.py survives failed steps and writes its JSON after each.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fx=$root/tests/gpu_results_fixture
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

tar -czf "$tmp/gpu-results.tar.gz" -C "$fx/out" .
mkdir "$tmp/perf"
printf 'intro\n<!-- measured:begin -->\nold table\n<!-- measured:end -->\nafter\n' > "$tmp/README.md"
$py "$root/scripts/gpu_results.py" "$tmp/gpu-results.tar.gz" --command "fixture" --perf-dir "$tmp/perf" \
    --readme-file "$tmp/README.md" > /dev/null
$py - "$tmp/perf/gpu-zoo-2026-11-27.json" <<'PY' || fail "the merged results file"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["device"] == "NVIDIA H100 80GB HBM3" and d["commit"].startswith("eecf9a0") and d["command"] == "fixture", d
assert list(d["models"]) == ["mlp_f32"], list(d["models"])
m = d["models"]["mlp_f32"]
assert abs(m["megakernel_us"] - 32.736) < 0.01 and m["outputs_ok"] is True, m
assert m["per_op_us"] > m["per_op_graph_us"] > m["megakernel_us"], m
for name in ("torch_eager", "torch_cuda_graph", "torch_compile", "jax_jit"):
    assert m["baselines"][name]["us"] > 0, (name, m["baselines"])
assert "cut off by its time cap" in d["failed"]["lstm_tc"], d["failed"]["lstm_tc"]
assert d["failed"]["resnet18"].startswith("not reached"), d["failed"]["resnet18"]
assert d["stored_baselines"]["lstm_tc"]["torch_cudnn_lstm"]["us"] > 0, d["stored_baselines"]
ab = d["comparisons"]["mlp_f32"]["reload_params"]  # out/ab: the same model profiled with --reload-params
assert ab["megakernel_us"] == 35.125 and abs(ab["default_megakernel_us"] - 32.736) < 0.01 and ab["outputs_ok"], ab
PY
grep -q '^| mlp_f32 | ' "$tmp/README.md" || fail "README table has no mlp_f32 row"
grep -q 'old table' "$tmp/README.md" && fail "README table not replaced"
grep -q '^after$' "$tmp/README.md" || fail "README text after the table lost"
grep -q 'Not measured (see the file):.*lstm_tc' "$tmp/README.md" || fail "README does not name the missing models"

stored=$($py "$root/scripts/gpu_results.py" --perf-dir "$tmp/perf" --stored-baselines "NVIDIA H100 80GB HBM3")
[ "$stored" = "lstm_tc mlp_f32" ] || fail "stored baselines: '$stored'"
compiled=$($py "$root/scripts/gpu_results.py" --perf-dir "$tmp/perf" --stored-baselines "NVIDIA H100 80GB HBM3" --names torch_compile,jax_jit)
[ "$compiled" = "mlp_f32" ] || fail "stored compiled baselines: '$compiled'"
[ -z "$($py "$root/scripts/gpu_results.py" --perf-dir "$tmp/perf" --stored-baselines "NVIDIA H200")" ] || fail "another device's baselines"

summary=$($py "$root/scripts/trace_summary.py" "$fx/transformer_encoder_f16.trace.json.gz" \
    --predicted "$fx/transformer_encoder_f16.predicted.json.gz" --top 3 --json "$tmp/summary.json")
grep -q 'span 129.4 us measured, ' <<< "$summary" || fail "span: $summary"
grep -q 'SMs busy 14% of the span' <<< "$summary" || fail "busy share: $summary"
grep -q '^| matmul | 224 | 64.7% | 6.85 | ' <<< "$summary" || fail "matmul row: $summary"
grep -q '^| f0+f1+f2 | matmul | 64 | 20.3% | 7.55 | ' <<< "$summary" || fail "top rOp row: $summary"
[ "$(grep -c '^| .*%' <<< "$summary")" -eq 6 ] || fail "3 kinds and 3 rOps: $summary"
if $py "$root/scripts/trace_summary.py" "$fx/transformer_encoder_f16.predicted.json.gz" > "$tmp/err" 2>&1; then
    fail "a predicted trace was taken for a measured one"
fi
grep -q 'not a measured trace' "$tmp/err" || fail "refusal message: $(cat "$tmp/err")"
# A trace that records the arrivals (publish_us) gets their mean per kind; one without shows '-'.
$py - "$tmp/published.json" <<'PY'
import json, sys
ev = [{"ph": "X", "cat": "wait", "name": "wait", "dur": 1.0, "args": {"task": t}} for t in (0, 1)]
ev += [{"ph": "X", "cat": "conv2d", "name": "c", "dur": 20.0, "args": {"task": 0, "publish_us": 1.5}},
       {"ph": "X", "cat": "conv2d", "name": "c", "dur": 30.0, "args": {"task": 1, "publish_us": 2.5}}]
json.dump({"traceEvents": ev, "otherData": {"measured": True, "model": "m", "span_us": 50, "busy_share": 1}},
          open(sys.argv[1], "w"))
PY
published=$($py "$root/scripts/trace_summary.py" "$tmp/published.json")
grep -q '^| conv2d | 2 | 100.0% | 25.00 | 0.00 | 1.00 | 2.0 |' <<< "$published" || fail "publish column: $published"
grep -q '^| matmul | 224 | 64.7% | 6.85 | .* | - |$' <<< "$summary" || fail "no publish column without publish_us: $summary"
# bench_hopper.py keeps going past a failed step and rewrites its JSON after
# each one (a cap can stop it anywhere): here every step fails (no anvil that
# runs, and torch only if this machine has it), in the order that puts one
# figure of each kind first.
stub=$tmp/anvil_fails
printf '#!/bin/sh\necho "no GPU here" >&2\nexit 3\n' > "$stub" && chmod +x "$stub"
$py "$root/scripts/bench_hopper.py" --anvil "$stub" --iters 2 --json "$tmp/hopper.json" > "$tmp/hopper.txt" 2>&1 ||
    fail "bench_hopper.py stopped at a failed step: $(tail -5 "$tmp/hopper.txt")"
$py - "$tmp/hopper.json" <<'PY' || fail "bench_hopper.py's JSON"
import json, sys
d = json.load(open(sys.argv[1]))
steps = list(d["step_seconds"])
assert steps == ["cublas_4096_f16", "gemm_4096_f16", "gemv_chain", "decode_step", "cublas_4096_bf16",
                 "gemm_4096_bf16"], steps
for name in ("gemm_4096_f16", "gemv_chain", "decode_step", "gemm_4096_bf16"):
    assert "no GPU here" in d["errors"][name], (name, d["errors"])
PY
grep -q 'gemm_4096_f16: .* ERROR ' "$tmp/hopper.txt" || fail "bench_hopper.py's progress: $(cat "$tmp/hopper.txt")"
echo "gpu scripts: ok"
