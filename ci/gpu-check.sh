#!/usr/bin/env bash
# CUDA checks and the scoring benchmark on CUDA, for a session that has a borrowed GPU
# machine. Nothing can be built there (see ../shared/notes/libtorch.md), so the release
# binary is built here, packed, carried, and run against that machine's own libtorch.
#
#   ci/gpu-check.sh pack      here: builds the release binary, packs it into gpu/dumn.xz
#                             (gpu/ is ignored by git; the device tool carries it)
#   ci/gpu-check.sh device    there, from the repository root (device tool: carry ["gpu"]):
#     1. CUDA is really available in the binary: a model trains with --device cuda, which
#        is an error when libtorch sees no GPU;
#     2. the same candidates scored on CPU and on CUDA agree within 1e-4 (both
#        probabilities), and CUDA in bf16 (`--precision bf16`) within 2e-2 of CPU fp32;
#     3. ci/bench-train.sh on cuda (training throughput);
#     4. ci/bench-score.sh on cuda (1M, 4M), in bf16 on cuda (4M), then on cpu (1M, for
#        the speed-up), one round each (DUMN_BENCH_ROUNDS=1: the lent time is short);
#     5. a short table at the end. Exit status 1 when a check fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

pack() {
  source ci/env.sh
  dumn_prepare
  cargo build --release --bin dumn
  mkdir -p gpu
  strip -o gpu/dumn "$CARGO_TARGET_DIR/release/dumn"
  xz -T0 -6 -f gpu/dumn
  ls -la gpu/
}

# first_table FILE: the throughput table of a ci/bench-score.sh output (its first table).
first_table() {
  sed -n '/^scoring benchmark/,/^$/p' "$1"
}

device() {
  local W=/tmp/dumn-gpu BIN
  mkdir -p "$W"
  TORCH_LIB=$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
  export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
  BIN="$W/dumn"
  xz -dc gpu/dumn.xz >"$BIN"
  chmod +x "$BIN"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

  echo "== $(date -u +%T) cuda check"
  # 1. CUDA in the binary: training on cuda fails when libtorch sees no GPU.
  "$BIN" gen "$W/small" --users 1000 --candidates-per-user 100 >/dev/null
  local cuda=FAIL
  if "$BIN" train --data "$W/small" --out "$W/model" --epochs 1 --device cuda | tail -n 2; then
    cuda=PASS
  fi

  # 2. The same rows on CPU and on CUDA.
  local agree=FAIL bf16=FAIL
  if [ "$cuda" = PASS ]; then
    local inputs="user_id, age_band, region, device, item_id, category, brand, click_seq, unclick_seq, like_seq, dislike_seq"
    "$BIN" sequences scoring --data "$W/small" --cutoff 2026-11-15 --out "$W/input" >/dev/null
    for d in cpu cuda cuda-bf16; do
      rm -f "$W/scores-$d.parquet"
      local precision=fp32
      [ "$d" = cuda-bf16 ] && precision=bf16
      "$BIN" sql --model "$W/model" --device "${d%-bf16}" --precision "$precision" \
        --table "input=$W/input" -c \
        "COPY (SELECT user_id, item_id, max(s['ctr']) AS ctr, max(s['p_dislike']) AS pd
               FROM (SELECT user_id, item_id, dumn_score($inputs) AS s FROM input)
               GROUP BY user_id, item_id) TO '$W/scores-$d.parquet'" >/dev/null
    done
    "$BIN" sql --table "a=$W/scores-cpu.parquet" --table "b=$W/scores-cuda.parquet" -c \
      "SELECT count(*) AS rows, max(abs(a.ctr - b.ctr)) AS max_ctr_diff,
              max(abs(a.pd - b.pd)) AS max_dislike_diff,
              CASE WHEN max(abs(a.ctr - b.ctr)) < 1e-4 AND max(abs(a.pd - b.pd)) < 1e-4
                   THEN 'PASS' ELSE 'FAIL' END AS within_1e4
       FROM a JOIN b USING (user_id, item_id)" | tee "$W/agree.txt"
    grep -q PASS "$W/agree.txt" && agree=PASS
    "$BIN" sql --table "a=$W/scores-cpu.parquet" --table "b=$W/scores-cuda-bf16.parquet" -c \
      "SELECT count(*) AS rows, max(abs(a.ctr - b.ctr)) AS max_ctr_diff,
              max(abs(a.pd - b.pd)) AS max_dislike_diff,
              CASE WHEN max(abs(a.ctr - b.ctr)) < 2e-2 AND max(abs(a.pd - b.pd)) < 2e-2
                   THEN 'PASS' ELSE 'FAIL' END AS within_2e2
       FROM a JOIN b USING (user_id, item_id)" | tee "$W/agree-bf16.txt"
    grep -q PASS "$W/agree-bf16.txt" && bf16=PASS
  fi

  # 3. Training throughput on CUDA (paper-size DUMN and the baselines, one epoch each).
  if [ "$cuda" = PASS ]; then
    echo "== $(date -u +%T) training benchmark, cuda"
    DUMN_BIN="$BIN" DUMN_BENCH_DIR="$W/bench-train" DUMN_BENCH_DEVICE=cuda bash ci/bench-train.sh |
      tee "$W/train-cuda.txt"
  fi

  # 4. The scoring benchmark: 1M and 4M on CUDA, 1M on CPU for the speed-up.
  if [ "$cuda" = PASS ]; then
    echo "== $(date -u +%T) scoring benchmark, cuda"
    DUMN_BIN="$BIN" DUMN_BENCH_DIR="$W/bench" DUMN_BENCH_ROUNDS=1 bash ci/bench-score.sh cuda >"$W/bench-cuda.full"
    first_table "$W/bench-cuda.full" | tee "$W/bench-cuda.txt"
    echo "== $(date -u +%T) scoring benchmark, cuda, bf16"
    DUMN_BIN="$BIN" DUMN_BENCH_DIR="$W/bench" DUMN_BENCH_SIZES=4m DUMN_BENCH_WORKERS=1 DUMN_BENCH_ROUNDS=1 \
      DUMN_BENCH_PRECISION=bf16 bash ci/bench-score.sh cuda >"$W/bench-cuda-bf16.full"
    first_table "$W/bench-cuda-bf16.full" | tee "$W/bench-cuda-bf16.txt"
  fi
  echo "== $(date -u +%T) scoring benchmark, cpu"
  DUMN_BIN="$BIN" DUMN_BENCH_DIR="$W/bench" DUMN_BENCH_SIZES=1m DUMN_BENCH_ROUNDS=1 bash ci/bench-score.sh cpu >"$W/bench-cpu.full"
  first_table "$W/bench-cpu.full" | tee "$W/bench-cpu.txt"

  echo
  echo "gpu check, $(date -u +%F), $(nproc) cores"
  echo "| check | result |"
  echo "| --- | --- |"
  echo "| CUDA available in the binary (train --device cuda) | $cuda |"
  echo "| CPU and CUDA scores agree within 1e-4 | $agree |"
  echo "| CUDA bf16 scores within 2e-2 of CPU fp32 | $bf16 |"
  [ -f "$W/train-cuda.txt" ] &&
    awk '$1=="DUMN" || $1=="BASE_DIN" || $1=="BASE_FEATURES" { printf "| cuda training %s | %s examples/s |\n", $1, $2 }' "$W/train-cuda.txt"
  for d in cuda cuda-bf16 cpu; do
    [ -f "$W/bench-$d.txt" ] || continue
    awk -v d="$d" '$1=="1m" || $1=="4m" { printf "| %s %s end to end | %s candidates/s, peak %s MB |\n| %s %s model only | %s candidates/s |\n", d, $1, $5, $6, d, $1, $9 }' "$W/bench-$d.txt"
  done
  [ "$cuda" = PASS ] && [ "$agree" = PASS ] && [ "$bf16" = PASS ]
}

case "${1:-}" in
  pack) pack ;;
  device) device ;;
  *) echo "usage: ci/gpu-check.sh pack|device" >&2; exit 2 ;;
esac
