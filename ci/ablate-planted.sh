#!/usr/bin/env bash
# The comparisons of docs/training.md ("Measured"), in one command: generates the data
# set (seeded), or reads the KuaiRand subset, and trains the full DUMN, two of its
# ablations and the four baselines (or the variants asked for) on the same time split;
# `dumn ablate` prints the table at the end.
# Usage: ci/ablate-planted.sh [VARIANTS [DUMN ABLATE FLAGS...]]
#   VARIANTS: default DUMN,DUMN-FP,DUMN-UMN and the four baselines; flags after it go to
#             `dumn ablate`, e.g. `ci/ablate-planted.sh DUMN --memory-slots 32`
#   DUMN_ABLATE_DATA: planted (default: generated data) or kuairand (the KuaiRand subset in
#                    ../shared/datasets, through its adapter)
#   DUMN_ABLATE_USERS: users of the generated data (default 5000; the tables in docs/training.md use
#                    2000 and 5000)
#   DUMN_ABLATE_DIR: scratch folder (default /tmp/dumn-ablate-planted-USERS); the data is
#                    kept there and reused by later runs
#   DUMN_ABLATE_SEED, DUMN_ABLATE_SEEDS, DUMN_ABLATE_EPOCHS, DUMN_ABLATE_PATIENCE: --seed,
#                    --seeds, --epochs and --patience (default 1, 1, 5 and 2); with
#                    --seeds N every variant trains N times and the summary table shows
#                    95% intervals and paired bootstrap differences to DUMN
#   DUMN_BENCH_DEVICE: cpu (default) or cuda
#   DUMN_BIN: a prebuilt dumn binary (skips the build)
set -euo pipefail
USERS="${DUMN_ABLATE_USERS:-5000}"
WORK="${DUMN_ABLATE_DIR:-/tmp/dumn-ablate-planted-$USERS}"
VARIANTS="${1:-DUMN,DUMN-FP,DUMN-UMN,BASE_DIN,BASE_DIN4,BASE_DFN,BASE_FEATURES}"
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
if [ "${DUMN_ABLATE_DATA:-planted}" = kuairand ]; then
  WORK="${DUMN_ABLATE_DIR:-/tmp/dumn-ablate-kuairand}"
  DATA=(--adapter kuairand --data "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/shared/datasets/kuairand27k_like_hate")
  echo "KuaiRand ablation, $(date -u +%F), $(nproc) cores, device ${DUMN_BENCH_DEVICE:-cpu}"
else
  [ -f "$WORK/data/_SUCCESS" ] || "$BIN" gen "$WORK/data" --users "$USERS" \
    --impressions-per-user 100 --candidates-per-user 10 --items-per-topic 40 --seed 7
  DATA=(--data "$WORK/data")
  echo "planted-data ablation, $USERS users, $(date -u +%F), $(nproc) cores, device ${DUMN_BENCH_DEVICE:-cpu}"
fi
"$BIN" ablate "${DATA[@]}" --out "$WORK/models" --variants "$VARIANTS" \
  --epochs "${DUMN_ABLATE_EPOCHS:-5}" --patience "${DUMN_ABLATE_PATIENCE:-2}" \
  --seed "${DUMN_ABLATE_SEED:-1}" --seeds "${DUMN_ABLATE_SEEDS:-1}" --device "${DUMN_BENCH_DEVICE:-cpu}" "$@"
