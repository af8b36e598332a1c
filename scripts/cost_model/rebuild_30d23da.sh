#!/bin/sh
# Rebuilds docs/perf/cost-model/30d23da-*.json: the schedules of commit
# 30d23da, whose H100 profiles (docs/perf/gpu-profile-2026-11-24.json) the
# cost model is fitted to. Checks that commit out in a temporary worktree,
# builds it with dump_30d23da.cpp beside it, dumps each profiled model under
# anvil and per_op, and adds the measured times.
#
#   scripts/cost_model/rebuild_30d23da.sh [WORKTREE_DIR]
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WT=${1:-/tmp/anvil-30d23da}
[ -d "$WT" ] || git -C "$ROOT" worktree add --detach "$WT" 30d23da
mkdir -p "$WT/dumptool"
cp "$ROOT/scripts/cost_model/dump_30d23da.cpp" "$WT/dumptool/dump_features.cpp"
grep -q dump_features "$WT/CMakeLists.txt" || cat >> "$WT/CMakeLists.txt" <<'CMAKE'
add_executable(dump_features dumptool/dump_features.cpp)
target_link_libraries(dump_features PRIVATE anvil_core)
set_target_properties(dump_features PROPERTIES BUILD_RPATH ${CUDAToolkit_LIBRARY_DIR})
CMAKE
cmake -S "$WT" -B "$WT/build" -G Ninja -DCUDAToolkit_ROOT=/usr/local/cuda -DBUILD_TESTING=OFF >/dev/null
cmake --build "$WT/build" --target dump_features
OUT=$(mktemp -d)
for m in resnet18 mobilenet_v2 transformer_encoder_f16; do
  for p in anvil per_op; do
    (cd "$WT" && build/dump_features "models/$m.yaml" "$p") > "$OUT/$m-$p.json"
  done
done
/usr/bin/python3 "$ROOT/scripts/cost_model/add_measurements.py" "$OUT" "$ROOT/docs/perf/cost-model"
echo "wrote $ROOT/docs/perf/cost-model/30d23da-*.json (remove the worktree: git worktree remove --force $WT)"
