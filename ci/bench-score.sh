#!/usr/bin/env bash
# Benchmark of scoring. For 1M and 4M candidates (`dumn gen`, 100 candidates and 100
# impressions per user) it measures
#   - end to end: `dumn run`, raw logs to the written score and ranking tables;
#   - model only: the same rows, materialised first, scored by dumn_score alone
#     (`dumn sql` over the Parquet scoring input);
# with wall time, candidates per second and peak memory (RSS), and prints a table. The two
# run alternately, DUMN_BENCH_ROUNDS times, and the table holds each one's median round
# (the first run of a script is often the slowest: a cold page cache).
# The model is DUMN with the paper's hyper-parameters, trained for one epoch on a smaller
# dataset with the same columns (speed does not depend on what it learned).
# Usage: ci/bench-score.sh [cpu|cuda]
#   DUMN_BENCH_DIR: scratch folder (default /tmp/dumn-bench-score)
#   DUMN_BIN: a prebuilt dumn binary (skips the build; ci/gpu-check.sh uses it)
#   DUMN_BENCH_SIZES: which sizes to run (default "1m 4m")
#   DUMN_BENCH_ROUNDS: rounds of end to end and model only, alternated (default 3)
#   DUMN_BENCH_WORKERS: model worker counts to compare end to end, side by side (default
#     "1 2 N" for N cores; see `--workers`), printed as a second table with each count's
#     rate relative to one worker
#   DUMN_BENCH_PRECISION: fp32 (default) or bf16 (`--precision`; the logs are then named
#     with the device and the precision, e.g. run-4m-cuda-bf16.log)
# A third table compares the output formats: the same job with `format = "parquet"`, and
# the seconds each spent publishing (the summary's publish_seconds) within the run.
set -euo pipefail
DEVICE="${1:-cpu}"
PRECISION="${DUMN_BENCH_PRECISION:-fp32}"
TAG="$DEVICE"
[ "$PRECISION" = fp32 ] || TAG="$DEVICE-$PRECISION"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
WORK="${DUMN_BENCH_DIR:-/tmp/dumn-bench-score}"
# Absolute: the job files written below name their paths from their own folder.
mkdir -p "$WORK" && WORK="$(cd "$WORK" && pwd)"
mkdir -p "$WORK"
DATE="2026-11-15"

gen() { # NAME USERS
  [ -f "$WORK/$1/_SUCCESS" ] ||
    "$BIN" gen "$WORK/$1" --users "$2" --impressions-per-user 100 --candidates-per-user 100
}
SIZES="${DUMN_BENCH_SIZES:-1m 4m}"
ROUNDS="${DUMN_BENCH_ROUNDS:-3}"
WORKERS="${DUMN_BENCH_WORKERS:-$(echo 1 2 "$(nproc)" | tr ' ' '\n' | sort -nu | tr '\n' ' ')}"
for size in $SIZES; do gen "data-$size" $((${size%m} * 10000)); done
gen data-train 1000
[ -f "$WORK/model/latest" ] || { rm -rf "$WORK/model"; "$BIN" train --data "$WORK/data-train" --out "$WORK/model" --epochs 1 --device "$DEVICE"; }

# timed OUT CMD...: runs CMD, writes "wall-seconds peak-RSS-KB" to OUT (GNU time, or
# Python's getrusage where GNU time is missing, as on the borrowed GPU machines).
timed() {
  local out=$1; shift
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %M" -o "$out" "$@"
  else
    python3 -c '
import resource, subprocess, sys, time
start = time.time()
rc = subprocess.call(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write("%.2f %d\n" % (time.time() - start, peak))
sys.exit(rc)' "$out" "$@"
  fi
}

# measure LABEL CMD...: wall seconds and peak RSS (KB) into $WORK/LABEL.time
measure() {
  local label=$1; shift
  timed "$WORK/$label.time" "$@" >"$WORK/$label.log" 2>&1 ||
    { cat "$WORK/$label.log"; exit 1; }
  tail -n 2 "$WORK/$label.log"
}

# median LABEL: of the rounds LABEL-r1, LABEL-r2, …, the one of median wall time (the
# lower of the two middle ones for an even count), copied to LABEL.time and LABEL.log.
median() {
  local label=$1 mid
  mid=$(for f in "$WORK/$label"-r*.time; do echo "$(cut -d' ' -f1 "$f") ${f%.time}"; done |
    sort -n | awk '{ a[NR] = $2 } END { print a[int((NR + 1) / 2)] }')
  cp "$mid.time" "$WORK/$label.time"
  cp "$mid.log" "$WORK/$label.log"
}

# rounds LABEL: the wall seconds of LABEL's rounds, in order.
rounds() {
  local r
  for r in $(seq "$ROUNDS"); do cut -d' ' -f1 "$WORK/$1-r$r.time"; done | tr '\n' ' '
}

INPUTS="user_id, age_band, region, device, item_id, category, brand, click_seq, unclick_seq, like_seq, dislike_seq"
for size in $SIZES; do
  # Outputs of an earlier benchmark (perhaps in another format) go.
  rm -rf "$WORK/out-$size" "$WORK/out-$size-parquet"
  cat >"$WORK/job-$size.toml" <<TOML
data = "$WORK/data-$size"
model = "$WORK/model"
out = "$WORK/out-$size"
date = "$DATE"
device = "$DEVICE"
precision = "$PRECISION"
TOML
  [ -f "$WORK/input-$size/_SUCCESS" ] ||
    "$BIN" sequences scoring --data "$WORK/data-$size" --cutoff "$DATE" --out "$WORK/input-$size"
  rm -f "$WORK/run-$size-$TAG"-r*.* "$WORK/model-$size-$TAG"-r*.*
  for r in $(seq "$ROUNDS"); do
    measure "run-$size-$TAG-r$r" "$BIN" run "$WORK/job-$size.toml"
    measure "model-$size-$TAG-r$r" "$BIN" sql --model "$WORK/model" --device "$DEVICE" \
      --precision "$PRECISION" --table "input=$WORK/input-$size" \
      -c "SELECT count(*) AS n, avg(s['ctr']) AS ctr FROM (SELECT dumn_score($INPUTS) AS s FROM input)"
  done
  median "run-$size-$TAG"
  median "model-$size-$TAG"
  measure "run-$size-$TAG-parquet" "$BIN" run "$WORK/job-$size.toml" \
    --set format=parquet --set "out=$WORK/out-$size-parquet"
  for w in $WORKERS; do
    measure "run-$size-$TAG-w$w" "$BIN" run "$WORK/job-$size.toml" --workers "$w"
  done
done

echo
echo "scoring benchmark, $(date -u +%F), device $DEVICE, $PRECISION, $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB RAM"
printf "%-4s %9s | %8s %12s %8s | %8s %12s %8s | %s\n" size candidates "e2e s" "cand/s" "peak MB" "model s" "cand/s" "peak MB" "e2e/model rate"
for size in $SIZES; do
  rows=$(grep -o 'wrote [0-9]* score rows' "$WORK/run-$size-$TAG.log" | grep -o '[0-9]*')
  read -r es em <"$WORK/run-$size-$TAG.time"
  read -r ms mm <"$WORK/model-$size-$TAG.time"
  awk -v n="$size" -v r="$rows" -v es="$es" -v em="$em" -v ms="$ms" -v mm="$mm" 'BEGIN {
    printf "%-4s %9d | %8.2f %12.0f %8.0f | %8.2f %12.0f %8.0f | %.2f\n", n, r, es, r/es, em/1024, ms, r/ms, mm/1024, ms/es }'
done
echo "(the median of $ROUNDS alternated rounds; each round's seconds:)"
for size in $SIZES; do
  echo "$size   end to end: $(rounds "run-$size-$TAG")  model only: $(rounds "model-$size-$TAG")"
done
if [ -f "$WORK/run-1m-$TAG.time" ] && [ -f "$WORK/run-4m-$TAG.time" ]; then
  read -r _ m1 <"$WORK/run-1m-$TAG.time"
  read -r _ m4 <"$WORK/run-4m-$TAG.time"
  awk -v a="$m1" -v b="$m4" 'BEGIN { printf "peak memory end to end, 4M / 1M: %.2f\n", b/a }'
fi
echo
echo "model workers, end to end (dumn run --workers W), $(nproc) cores"
printf "%-4s %7s | %8s %12s %8s | %s\n" size workers "e2e s" "cand/s" "peak MB" "rate vs 1 worker"
for size in $SIZES; do
  rows=$(grep -o 'wrote [0-9]* score rows' "$WORK/run-$size-$TAG.log" | grep -o '[0-9]*')
  base=""
  for w in $WORKERS; do
    read -r es em <"$WORK/run-$size-$TAG-w$w.time"
    [ -n "$base" ] || base=$es
    awk -v n="$size" -v w="$w" -v r="$rows" -v es="$es" -v em="$em" -v b="$base" 'BEGIN {
      printf "%-4s %7d | %8.2f %12.0f %8.0f | %.2f\n", n, w, es, r/es, em/1024, b/es }'
  done
done
echo
echo "publishing, per output format (the same run's summary: publish_seconds of total_seconds)"
printf "%-4s %-8s | %8s %8s %8s\n" size format "e2e s" "publish" "share"
for size in $SIZES; do
  for f in delta parquet; do
    log="$WORK/run-$size-$TAG.log"
    [ "$f" = delta ] || log="$WORK/run-$size-$TAG-parquet.log"
    tail -n 1 "$log" | python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print("%-4s %-8s | %8.2f %8.2f %7.1f%%" % (sys.argv[1], s["format"], s["total_seconds"],
      s["publish_seconds"], 100 * s["publish_seconds"] / s["total_seconds"]))' "$size"
  done
done
