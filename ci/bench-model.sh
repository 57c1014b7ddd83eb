#!/usr/bin/env bash
# Model-only scoring benchmark (release build): per-row vs. shared user step.
# DUMN_BENCH_DEVICE=cuda runs it on the GPU.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare
cargo bench --bench model_forward
