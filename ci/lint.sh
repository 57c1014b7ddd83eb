#!/usr/bin/env bash
# cargo fmt, the module-cycle check and clippy, as the project keeps them: no diff, no
# cycle, no warning.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare
cargo fmt --all -- --check
python3 ci/check-cycles.py
cargo clippy --all-targets -- -D warnings
