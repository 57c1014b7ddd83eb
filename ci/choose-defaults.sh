#!/usr/bin/env bash
# How the training defaults were chosen: on VALIDATION AUC only (test is not read). Trains
# one variant (default DUMN) with the current defaults, then with each non-paper setting
# flipped, on the same examples, for a few seeds, and prints one line per setting: the
# mean validation AUC over the seeds and the change from the defaults. A setting stays on
# when turning it off does not raise validation AUC by more than the seeds' spread.
# Usage: ci/choose-defaults.sh DATA_FLAGS...
#   e.g. ci/choose-defaults.sh --adapter kuairand --data ../shared/datasets/kuairand27k_like_hate
#        ci/choose-defaults.sh --data /tmp/dumn-ablate-planted/data
#   DUMN_SWEEP_VARIANT (default DUMN), DUMN_SWEEP_SEEDS (default 2),
#   DUMN_SWEEP_EPOCHS (default 4), DUMN_SWEEP_PATIENCE (default 2),
#   DUMN_SWEEP_ONLY (names of the runs below, comma-separated; default all),
#   DUMN_SWEEP_DIR (default /tmp/dumn-choose-defaults),
#   DUMN_BIN: a prebuilt dumn binary (skips the build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
WORK="${DUMN_SWEEP_DIR:-/tmp/dumn-choose-defaults}"
VARIANT="${DUMN_SWEEP_VARIANT:-DUMN}"
SEEDS="${DUMN_SWEEP_SEEDS:-2}"
EPOCHS="${DUMN_SWEEP_EPOCHS:-4}"
PATIENCE="${DUMN_SWEEP_PATIENCE:-2}"
ONLY="${DUMN_SWEEP_ONLY:-}"
mkdir -p "$WORK"
echo "choosing defaults on validation, $(date -u +%F), $(nproc) cores, $VARIANT, $SEEDS seeds, $EPOCHS epochs"
run() {
  local name="$1"
  shift
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then return 0; fi
  "$BIN" ablate "$@" --variants "$VARIANT" --seeds "$SEEDS" --epochs "$EPOCHS" --patience "$PATIENCE" \
    --device cpu --out "$WORK/$name" "${DATA_FLAGS[@]}" >"$WORK/$name.log" 2>&1 ||
    { tail -5 "$WORK/$name.log"; return 1; }
  # The summary row: `| VARIANT | N | valid AUC [interval] | …`.
  local row
  row="$(grep -E "^\| $VARIANT \| $SEEDS \|" "$WORK/$name/ablation.md" | tail -1)"
  printf '%-28s %s\n' "$name" "$(echo "$row" | cut -d'|' -f4)"
}
DATA_FLAGS=("$@")
run defaults
run no-attention-residual --attention-residual false
run no-count-aware-pooling --count-aware-pooling false
run no-position-buckets --position-buckets false
run no-memory-write --memory-write false
run batch-pool-triplets --triplets-per-user false
run no-dropout --dropout 0
run no-weight-decay --weight-decay 0
run cosine-schedule --lr-schedule cosine
run min-count-1 --min-count 1
