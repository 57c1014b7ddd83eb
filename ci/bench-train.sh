#!/usr/bin/env bash
# Training throughput benchmark, in one run:
#   1. examples per second of `dumn train` (paper-size DUMN and the baselines, batch 256)
#      on generated data, one epoch each, from the report.json every run writes;
#   2. DUMN again with 1, 2 and all cores (the process pinned to that many cores with
#      `taskset`, libtorch's threads set to match), with each rate relative to one core;
#   3. when built here (not with DUMN_BIN), `benches/train_step.rs`: one training step of
#      the model alone, by phase (batch, user step, rest of the forward, backward,
#      optimizer), at KuaiRand-like sequence lengths.
# DUMN_BENCH_DEVICE=cuda runs 1 and 3 on the GPU and leaves out 2 (a CPU table).
# Usage: ci/bench-train.sh
#   DUMN_BENCH_DIR: scratch folder (default /tmp/dumn-bench-train)
#   DUMN_BENCH_CORES: core counts of table 2 (default "1 2 N" for N cores)
#   DUMN_BIN: a prebuilt dumn binary (skips the build and table 3; ci/gpu-check.sh uses it)
set -euo pipefail
WORK="${DUMN_BENCH_DIR:-/tmp/dumn-bench-train}"
DEVICE="${DUMN_BENCH_DEVICE:-cpu}"
PREBUILT="${DUMN_BIN:-}"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
PYTHON="$DUMN_VENV/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
CORES="${DUMN_BENCH_CORES:-$(echo 1 2 "$(nproc)" | tr ' ' '\n' | sort -nu | tr '\n' ' ')}"
[ -f "$WORK/data/_SUCCESS" ] || "$BIN" gen "$WORK/data" --users 2000 --impressions-per-user 80

# train NAME VARIANT DEVICE [PREFIX...]: one epoch; prints its examples/s.
train() {
  local name=$1 variant=$2 device=$3
  shift 3
  rm -rf "$WORK/model-$name"
  "$@" "$BIN" train --data "$WORK/data" --out "$WORK/model-$name" --variant "$variant" \
    --epochs 1 --device "$device" --work "$WORK/work" >"$WORK/$name.log" 2>&1 ||
    { cat "$WORK/$name.log"; exit 1; }
  "$PYTHON" - "$WORK/model-$name" <<'PY'
import json, os, sys
version = json.load(open(os.path.join(sys.argv[1], "latest")))["version"]
r = json.load(open(os.path.join(sys.argv[1], version, "report.json")))
print(f"{r['result']['epochs'][0]['examples_per_second']:.0f}")
PY
}

echo "training throughput, $(date -u +%F), $(nproc) cores, device $DEVICE"
printf "%-14s %12s\n" variant "examples/s"
for v in DUMN BASE_DIN BASE_DIN4 BASE_DFN BASE_FEATURES; do
  printf "%-14s %12s\n" "$v" "$(train "$v" "$v" "$DEVICE")"
done

[ "$DEVICE" = cpu ] || CORES=""
[ -z "$CORES" ] || echo
[ -z "$CORES" ] || echo "DUMN on 1, 2 and all cores (taskset, OMP_NUM_THREADS)"
[ -z "$CORES" ] || printf "%-6s %12s %10s\n" cores "examples/s" "vs 1 core"
base=""
for c in $CORES; do
  rate=$(train "DUMN-cores$c" DUMN cpu taskset -c "0-$((c - 1))" env OMP_NUM_THREADS="$c")
  [ -n "$base" ] || base=$rate
  awk -v c="$c" -v r="$rate" -v b="$base" 'BEGIN { printf "%-6d %12.0f %9.2fx\n", c, r, r / b }'
done

if [ -z "$PREBUILT" ]; then
  echo
  DUMN_BENCH_DEVICE="$DEVICE" cargo bench --bench train_step
fi
