#!/usr/bin/env bash
# Benchmark of scoring on a Ballista cluster: the demo job's settings at 1M candidates
# (`dumn gen`, 10,000 users, 100 impressions and 100 candidates each; the model as in
# ci/bench-score.sh) scored by `dumn run` in one process, then by `dumn run --cluster`
# through a scheduler and two executors started on 127.0.0.1 (as tests/cluster.rs does).
# Prints wall time, candidates per second and peak memory (the client's; each executor's).
# Usage: ci/bench-cluster.sh   (DUMN_BENCH_DIR: scratch folder, default /tmp/dumn-bench-cluster)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
WORK="${DUMN_BENCH_DIR:-/tmp/dumn-bench-cluster}"
# Absolute: the job files written below name their paths from their own folder.
mkdir -p "$WORK" && WORK="$(cd "$WORK" && pwd)"
DATE="2026-11-15"
TASKS=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
mkdir -p "$WORK"

[ -f "$WORK/data/_SUCCESS" ] ||
  "$BIN" gen "$WORK/data" --users 10000 --impressions-per-user 100 --candidates-per-user 100
[ -f "$WORK/data-train/_SUCCESS" ] ||
  "$BIN" gen "$WORK/data-train" --users 1000 --impressions-per-user 100 --candidates-per-user 100
[ -f "$WORK/model/latest" ] || { rm -rf "$WORK/model"; "$BIN" train --data "$WORK/data-train" --out "$WORK/model" --epochs 1 --device cpu; }
for mode in single cluster; do
  cat >"$WORK/job-$mode.toml" <<TOML
data = "$WORK/data"
model = "$WORK/model"
out = "$WORK/out-$mode"
date = "$DATE"
device = "cpu"
batch_size = 2048
top_k = 20
TOML
done

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
"$BIN" scheduler --model "$WORK/model" --bind 127.0.0.1:50150 >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
for i in 1 2; do
  DUMN_LOG=info "$BIN" executor --model "$WORK/model" --scheduler 127.0.0.1:50150 \
    --bind "127.0.0.1:501${i}1" --grpc-port "501${i}2" --concurrent-tasks "$TASKS" \
    --device cpu --work-dir "$WORK/executor-$i" >"$WORK/executor-$i.log" 2>&1 &
  PIDS+=($!)
done
for _ in $(seq 1 600); do
  n=$(cat "$WORK"/executor-*.log | grep -c "registration succeed" || true)
  [ "$n" -ge 2 ] && break
  sleep 0.2
done

# run MODE [ARGS...]: `dumn run` of job-MODE, wall seconds and peak RSS (KB) into MODE.time
run() {
  local mode=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$mode.time" "$BIN" run "$WORK/job-$mode.toml" "$@" \
    >"$WORK/$mode.log" 2>&1 || { cat "$WORK/$mode.log"; exit 1; }
  tail -n 3 "$WORK/$mode.log"
}
run single
run cluster --cluster 127.0.0.1:50150
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
e1=$(hwm "${PIDS[1]}"); e2=$(hwm "${PIDS[2]}")

echo
echo "cluster benchmark, $(date -u +%F), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB RAM; 2 executors x $TASKS tasks"
printf "%-8s %10s %9s %12s %16s\n" mode candidates "wall s" "cand/s" "peak MB"
for mode in single cluster; do
  rows=$(grep -o 'wrote [0-9]* score rows' "$WORK/$mode.log" | grep -o '[0-9]*')
  read -r s m <"$WORK/$mode.time"
  extra=""
  [ "$mode" = cluster ] && extra=" + executors $((e1 / 1024)), $((e2 / 1024))"
  awk -v n="$mode" -v r="$rows" -v s="$s" -v m="$m" -v x="$extra" 'BEGIN {
    printf "%-8s %10d %9.2f %12.0f %8.0f%s\n", n, r, s, r/s, m/1024, x }'
done
