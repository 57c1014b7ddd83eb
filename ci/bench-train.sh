#!/usr/bin/env bash
# Training throughput benchmark: examples per second of `dumn train` (paper-size DUMN and
# the two baselines, batch 256) on generated data, one epoch each, from the report.json
# every run writes. DUMN_BENCH_DEVICE=cuda runs it on the GPU.
# Usage: ci/bench-train.sh
#   DUMN_BENCH_DIR: scratch folder (default /tmp/dumn-bench-train)
#   DUMN_BIN: a prebuilt dumn binary (skips the build; ci/gpu-check.sh uses it)
set -euo pipefail
WORK="${DUMN_BENCH_DIR:-/tmp/dumn-bench-train}"
DEVICE="${DUMN_BENCH_DEVICE:-cpu}"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
PYTHON="$DUMN_VENV/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
[ -f "$WORK/data/_SUCCESS" ] || "$BIN" gen "$WORK/data" --users 2000 --impressions-per-user 80
echo "training throughput, $(date -u +%F), $(nproc) cores, device $DEVICE"
printf "%-14s %12s\n" variant "examples/s"
for v in DUMN BASE_DIN BASE_FEATURES; do
  rm -rf "$WORK/model-$v"
  "$BIN" train --data "$WORK/data" --out "$WORK/model-$v" --variant "$v" --epochs 1 \
    --device "$DEVICE" --work "$WORK/work" >"$WORK/$v.log" 2>&1 || { cat "$WORK/$v.log"; exit 1; }
  "$PYTHON" - "$WORK/model-$v" "$v" <<'PY'
import json, os, sys
version = json.load(open(os.path.join(sys.argv[1], "latest")))["version"]
r = json.load(open(os.path.join(sys.argv[1], version, "report.json")))
print(f"{sys.argv[2]:<14} {r['result']['epochs'][0]['examples_per_second']:12.0f}")
PY
done
