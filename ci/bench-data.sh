#!/usr/bin/env bash
# Benchmark of the data plane: `dumn sequences` against DuckDB running the same SQL on the
# same generated files. Builds the release binary, generates 1M impressions / 1M candidates
# (and 4M candidates for the memory check), and prints rows/s, peak memory and the ratio.
# Usage: ci/bench-data.sh            (DUMN_BENCH_DIR to choose the scratch folder)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare
WORK="${DUMN_BENCH_DIR:-/tmp/dumn-bench}"
mkdir -p "$WORK"
cargo build --release --bin dumn
BIN="$CARGO_TARGET_DIR/release/dumn"
"$DUMN_VENV/bin/python" -c "import duckdb" 2>/dev/null ||
  "$DUMN_VENV/bin/pip" install --quiet --disable-pip-version-check duckdb
DUCK="$DUMN_VENV/bin/python benches/duckdb_sequences.py"
DUCK_VERSION=$("$DUMN_VENV/bin/python" -c "import duckdb; print(duckdb.__version__)")

# gen NAME USERS: 100 impressions and 100 candidates per user.
gen() {
  [ -f "$WORK/$1/_SUCCESS" ] || "$BIN" gen "$WORK/$1" --users "$2" --impressions-per-user 100 --candidates-per-user 100
}
gen data-1m 11000
gen data-4m 44000
CUTOFF="2026-11-15T00:00:00"

# measure LABEL CMD...: wall seconds and peak RSS (MB) into $WORK/LABEL.time
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$label.time" "$@" >"$WORK/$label.log" 2>&1 ||
    { cat "$WORK/$label.log"; exit 1; }
  tail -n 1 "$WORK/$label.log"
}
rows_of() { "$DUMN_VENV/bin/python" -c "import duckdb,sys; print(duckdb.sql(\"SELECT count(*) FROM read_parquet('$1/*.parquet')\").fetchall()[0][0])"; }

run_case() { # NAME OUTPUT DATA
  local name=$1 output=$2 data=$3 cut=()
  [ "$output" = scoring ] && cut=(--cutoff "$CUTOFF")
  rm -rf "$WORK/out-$name-dumn" "$WORK/out-$name-duck"
  measure "$name-dumn" "$BIN" sequences "$output" --data "$WORK/$data" --out "$WORK/out-$name-dumn" "${cut[@]}"
  mkdir -p "$WORK/out-$name-duck"
  measure "$name-duck" $DUCK "$output" "$WORK/$data" "$WORK/out-$name-duck/part.parquet" "${cut[@]}"
}
run_case training-1m training data-1m
run_case scoring-1m scoring data-1m
run_case scoring-4m scoring data-4m

echo
echo "data plane benchmark, $(date -u +%F), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB RAM, DuckDB $DUCK_VERSION"
printf "%-12s %9s | %8s %10s %8s | %8s %10s %8s | %s\n" case rows "dumn s" "rows/s" "peak MB" "duckdb s" "rows/s" "peak MB" "dumn/duckdb time"
for name in training-1m scoring-1m scoring-4m; do
  rows=$(rows_of "$WORK/out-$name-dumn")
  read -r ds dm <"$WORK/$name-dumn.time"
  read -r ks km <"$WORK/$name-duck.time"
  awk -v n="$name" -v r="$rows" -v ds="$ds" -v dm="$dm" -v ks="$ks" -v km="$km" 'BEGIN {
    printf "%-12s %9d | %8.2f %10.0f %8.0f | %8.2f %10.0f %8.0f | %.2f\n", n, r, ds, r/ds, dm/1024, ks, r/ks, km/1024, ds/ks }'
done
