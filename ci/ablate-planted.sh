#!/usr/bin/env bash
# The planted-data comparison of README.md ("Training: measured"), in one command: generates
# the data set (seeded) and trains the full DUMN, the DIN-style and the feature-only
# baselines, and any other variants asked for, on the same time split; `dumn ablate` prints
# the table at the end.
# Usage: ci/ablate-planted.sh [VARIANTS [DUMN ABLATE FLAGS...]]
#   VARIANTS: default BASE_DIN,BASE_FEATURES,DUMN,DUMN-UMN; flags after it go to
#             `dumn ablate`, e.g. `ci/ablate-planted.sh DUMN --memory-slots 32`
#   DUMN_ABLATE_DIR: scratch folder (default /tmp/dumn-ablate-planted); the data is kept
#                    there and reused by later runs
#   DUMN_ABLATE_SEED, DUMN_ABLATE_SEEDS, DUMN_ABLATE_EPOCHS, DUMN_ABLATE_PATIENCE: --seed,
#                    --seeds, --epochs and --patience (default 1, 1, 5 and 2); with
#                    --seeds N every variant trains N times and the summary table shows
#                    95% intervals and paired bootstrap differences to DUMN
#   DUMN_BENCH_DEVICE: cpu (default) or cuda
#   DUMN_BIN: a prebuilt dumn binary (skips the build)
set -euo pipefail
WORK="${DUMN_ABLATE_DIR:-/tmp/dumn-ablate-planted}"
VARIANTS="${1:-BASE_DIN,BASE_FEATURES,DUMN,DUMN-UMN}"
shift || true
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_release_binary
[ -f "$WORK/data/_SUCCESS" ] || "$BIN" gen "$WORK/data" --users 5000 \
  --impressions-per-user 100 --candidates-per-user 10 --items-per-topic 40 --seed 7
echo "planted-data ablation, $(date -u +%F), $(nproc) cores, device ${DUMN_BENCH_DEVICE:-cpu}"
"$BIN" ablate --data "$WORK/data" --out "$WORK/models" --variants "$VARIANTS" \
  --epochs "${DUMN_ABLATE_EPOCHS:-5}" --patience "${DUMN_ABLATE_PATIENCE:-2}" \
  --seed "${DUMN_ABLATE_SEED:-1}" --seeds "${DUMN_ABLATE_SEEDS:-1}" --device "${DUMN_BENCH_DEVICE:-cpu}" "$@"
