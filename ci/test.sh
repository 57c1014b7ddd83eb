#!/usr/bin/env bash
# Runs the whole test suite: formatting, module cycles, clippy, then every test. Installs
# libtorch and the S3 test server first when they are missing (ci/setup.sh).
# Usage: ci/test.sh [extra cargo test args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
dumn_prepare --test-server
echo "ci: cargo fmt --check"
cargo fmt --all -- --check
echo "ci: module cycles (ci/check-cycles.py)"
python3 ci/check-cycles.py
echo "ci: cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings 2>&1
echo "ci: building and running the tests (target dir $CARGO_TARGET_DIR)"
cargo test "$@" 2>&1
