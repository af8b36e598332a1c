#!/usr/bin/env bash
# Regenerates every generated model of the zoo (models/<name>.yaml and
# models/<name>_small.yaml) from the generators in this folder. The output is
# deterministic: running it twice leaves the files unchanged.
#   scripts/zoo/generate_all.sh           write the files
#   scripts/zoo/generate_all.sh --check   also simulate each small variant in
#                                         numpy (output scale, estimated
#                                         rounding error against its tolerance)
#   scripts/zoo/generate_all.sh --check-full   the full-size ones too (minutes,
#                                         ~10 GB of memory for llama_decode)
set -euo pipefail
cd "$(dirname "$0")"
for gen in lstm_tc resnext29 resnet18 mobilenet_v2 bert_base vit_b16 nerf_mlp llama_decode; do
  /usr/bin/python3 "$gen.py" "$@"
done
