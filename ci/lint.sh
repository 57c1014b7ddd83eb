#!/usr/bin/env bash
# cargo fmt and clippy, as the project keeps them: no diff, no warning.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
