#!/usr/bin/env bash
# Model-only scoring benchmark (release build): per-row vs. shared user step.
# DUMN_BENCH_DEVICE=cuda runs it on the GPU.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash "$DUMN_ROOT/ci/setup.sh"
dumn_libtorch_env
cd "$DUMN_ROOT"
cargo bench --bench model_forward
