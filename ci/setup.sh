#!/usr/bin/env bash
# Installs what dumn needs to build, only when missing: a Python venv inside the repo
# (.venv, ignored by git) holding torch 2.11.0, the libtorch that tch 0.24 links against,
# unless LIBTORCH already names one (see ci/env.sh).
# Usage: ci/setup.sh [--test-server]
#   --test-server  also build s3s-fs, the S3-compatible server the tests start, and put
#                  Python's deltalake and pyarrow (the tests' independent reader of the
#                  Delta tables) into the venv
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
TEST_SERVER=0
for arg in "$@"; do
  case "$arg" in
    --test-server) TEST_SERVER=1 ;;
    *) echo "setup: unknown argument '$arg' (usage: ci/setup.sh [--test-server])" >&2; exit 2 ;;
  esac
done

command -v cargo >/dev/null || { echo "setup: cargo (the Rust toolchain) is required" >&2; exit 1; }
if [ -n "$DUMN_LIBTORCH_PRESET" ]; then
  echo "setup: using the libtorch in LIBTORCH=$DUMN_LIBTORCH_PRESET"
elif [ -x "$DUMN_VENV/bin/python" ] &&
   "$DUMN_VENV/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION_WANTED' else 1)" 2>/dev/null; then
  echo "setup: torch $TORCH_VERSION_WANTED already in $DUMN_VENV"
else
  command -v python3 >/dev/null || { echo "setup: python3 is required" >&2; exit 1; }
  echo "setup: installing torch==$TORCH_VERSION_WANTED into $DUMN_VENV (about 5 GB, a few minutes)"
  python3 -m venv "$DUMN_VENV"
  "$DUMN_VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION_WANTED"
fi

# s3s-fs: a real S3-compatible server for the S3 tests (127.0.0.1 only), built once per
# machine and cached outside the clone, with ci/s3s-fs-atomic-create.patch applied (see
# ci/env.sh): cargo fetches the published crate, the patch makes its conditional create
# atomic, and cargo installs that source with the crate's own Cargo.lock.
if [ "$TEST_SERVER" = 0 ]; then
  :
elif [ -x "$DUMN_S3S_FS" ]; then
  echo "setup: s3s-fs already at $DUMN_S3S_FS"
else
  echo "setup: building s3s-fs $S3S_FS_VERSION, patched (once per machine, about 4 minutes)"
  src="$(mktemp -d)"
  mkdir -p "$src/fetch/src" && touch "$src/fetch/src/lib.rs"
  printf '[package]\nname = "fetch"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\ns3s-fs = "=%s"\n' \
    "$S3S_FS_VERSION" > "$src/fetch/Cargo.toml"
  cargo fetch --quiet --manifest-path "$src/fetch/Cargo.toml"
  crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"s3s-fs-$S3S_FS_VERSION.crate" | head -1)"
  tar xzf "$crate" -C "$src"
  patch --quiet -p1 -d "$src/s3s-fs-$S3S_FS_VERSION" < "$DUMN_ROOT/ci/s3s-fs-atomic-create.patch"
  cargo install --quiet --locked --root "$DUMN_S3S_FS_ROOT" --path "$src/s3s-fs-$S3S_FS_VERSION" --features binary
  rm -rf "$src"
fi

# deltalake + pyarrow: the independent reader that tests/delta.rs checks the Delta tables
# with, in the project's venv (created for it when LIBTORCH came from elsewhere).
if [ "$TEST_SERVER" = 1 ]; then
  if [ ! -x "$DUMN_VENV/bin/python" ]; then python3 -m venv "$DUMN_VENV"; fi
  if "$DUMN_VENV/bin/python" -c "import deltalake, pyarrow" 2>/dev/null; then
    echo "setup: python deltalake already in $DUMN_VENV"
  else
    echo "setup: installing python deltalake and pyarrow into $DUMN_VENV"
    "$DUMN_VENV/bin/pip" install --quiet --disable-pip-version-check "deltalake==$DELTALAKE_PY_VERSION" pyarrow
  fi
fi
