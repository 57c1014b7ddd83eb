#!/usr/bin/env bash
# Runs the main job on the embedded default. Installs libtorch first when it is missing.
# Until the scoring job exists this is the model's demo: train DUMN on generated data with a
# planted signal, show the loss and held-out AUC, save and reload the artifact.
# Usage: ci/demo.sh [extra `dumn demo` flags, e.g. --steps 600 --device cpu]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare
cargo build --bin dumn 2>&1 | tail -n 3
"$CARGO_TARGET_DIR/debug/dumn" demo --out "$DUMN_ROOT/out/demo-model" "$@"
