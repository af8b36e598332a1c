#!/usr/bin/env bash
# The layering check (cmake/check_layers.cmake) passes on the tree as it is
# and fails, naming the file and both stages, when a stage includes a header
# of a stage above it or a non-public header through include/anvil/.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/src" "$root/policies" "$root/cmake" "$root/include" "$tmp/"
cmake -DROOT="$tmp" -P "$tmp/cmake/check_layers.cmake"

expect_refused() {  # FILE LINE EXPECTED-MESSAGE
  cp "$tmp/$1" "$tmp/$1.orig"
  echo "$2" >> "$tmp/$1"
  if out=$(cmake -DROOT="$tmp" -P "$tmp/cmake/check_layers.cmake" 2>&1); then
    echo "FAIL: '$2' in $1 was accepted"; exit 1
  fi
  grep -qF "$3" <<<"$out" || { echo "FAIL: message lacks '$3':"; echo "$out"; exit 1; }
  mv "$tmp/$1.orig" "$tmp/$1"
}
expect_refused src/tile/fusion.h '#include "runtime/host_backend.h"' "stage 'tile' includes runtime/host_backend.h of stage 'runtime'"
expect_refused src/frontend/graph.cpp '#include "schedule/schedule.h"' "stage 'frontend' includes schedule/schedule.h"
expect_refused policies/anvil.cpp '#include "codegen/emit.h"' "stage 'policies' includes codegen/emit.h"
expect_refused src/codegen/emit.cpp '#include "policies/registry.h"' "stage 'codegen' includes policies/registry.h"
expect_refused src/runtime/host_backend.cpp '#include "anvil/pipeline.h"' "stage 'runtime' includes anvil/pipeline.h"
expect_refused src/base/shape.cpp '#include "anvil/graph.h"' "not a public header"
echo "layers: ok"
