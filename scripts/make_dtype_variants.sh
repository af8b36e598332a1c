#!/usr/bin/env bash
# The f16 and bf16 variants of every models/*_f32.yaml differ only in their
# name and default dtype: generate them so the three never drift apart.
set -euo pipefail
cd "$(dirname "$0")/../models"
for f in *_f32.yaml; do
  base=${f%_f32.yaml}
  for t in f16 bf16; do
    { echo "# Generated from $f by scripts/make_dtype_variants.sh: edit that file instead."
      sed -e "s/^name: ${base}_f32\$/name: ${base}_${t}/" -e "s/^dtype: f32\$/dtype: ${t}/" "$f"; } > "${base}_${t}.yaml"
  done
done
