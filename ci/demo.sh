#!/usr/bin/env bash
# The main job on the embedded default: generate raw logs, train DUMN on them, run the
# nightly scoring job (jobs/demo.toml) and print the first rows of the ranking.
# Installs libtorch first when it is missing. Everything goes under out/.
# Usage: ci/demo.sh [extra `dumn run` flags, e.g. --device cpu --batch-size 8192]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare
cargo build --bin dumn 2>&1 | tail -n 3
dumn() { "$CARGO_TARGET_DIR/debug/dumn" "$@"; }

# 1. Raw logs: 600 users, two weeks of impressions and actions, 100 candidates each.
dumn gen out/data --users 600
# out/model is a folder of model versions; an artifact there from an older dumn goes.
if [ -e out/model/manifest.json ]; then rm -rf out/model; fi
# 2. The model (a debug build trains at ~1,500 examples/s on 2 cores: about 2 minutes).
dumn train --job jobs/train-demo.toml --epochs 3
# 3. The nightly job for the day after the logs: day 2026-11-15 of the Delta tables
#    out/scores and out/ranking. Plain Parquet tables that an older dumn left there go.
for t in scores ranking; do
  if [ -d "out/$t" ] && [ ! -d "out/$t/_delta_log" ]; then rm -rf "out/$t"; fi
done
dumn run jobs/demo.toml "$@"
# 4. The start of the ranking.
dumn sql --table ranking=out/ranking \
  -c "SELECT * FROM ranking WHERE dt = '2026-11-15' ORDER BY user_id, rank LIMIT 10"
