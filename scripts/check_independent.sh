#!/usr/bin/env bash
# Runs a model on the host backend with --save-io and the race checker, and
# checks the saved outputs with the independent numpy reference
# (scripts/reference_check.py).
#   check_independent.sh ANVIL MODEL.yaml DIR [POLICY]
set -euo pipefail
anvil=$1 model=$2 dir=$3 policy=${4:-anvil}
rm -rf "$dir"
"$anvil" run "$model" --backend host --policy "$policy" --check-races --save-io "$dir"
/usr/bin/python3 "$(dirname "$0")/reference_check.py" "$model" "$dir"
