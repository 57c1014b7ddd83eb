# Sourced by the ci/ scripts: where libtorch and the build output live.
# Usage: source ci/env.sh   (from anywhere)
DUMN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export DUMN_ROOT
export DUMN_VENV="${DUMN_VENV:-$DUMN_ROOT/.venv}"
export TORCH_VERSION_WANTED="2.11.0"
# One persistent target dir per machine, outside the clone, so that a CI run on a fresh
# clone is still an incremental build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dumn/target}"
# Tools the tests and benchmarks start (s3s-fs), also cached per machine.
export DUMN_TOOLS="${DUMN_TOOLS:-$HOME/.cache/dumn/tools}"
export S3S_FS_VERSION="0.14.1"
# s3s-fs checks `If-None-Match: *` before it writes, not atomically; ci/setup.sh applies
# ci/s3s-fs-atomic-create.patch so that of two concurrent conditional creates one loses, as
# on AWS S3. The folder names the patch's hash: a changed patch builds a new server.
S3S_FS_PATCH_HASH="$(sha256sum "$DUMN_ROOT/ci/s3s-fs-atomic-create.patch" | cut -c1-8)"
export DUMN_S3S_FS_ROOT="$DUMN_TOOLS/s3s-fs-$S3S_FS_VERSION-$S3S_FS_PATCH_HASH"
# The Python reader the Delta tests compare with (ci/setup.sh --test-server).
export DELTALAKE_PY_VERSION="1.6.6"
export DUMN_S3S_FS="${DUMN_S3S_FS:-$DUMN_S3S_FS_ROOT/bin/s3s-fs}"

# A LIBTORCH set before the first ci/ script ran is a libtorch the user already has
# (torch 2.11.0, as tch 0.24 wants): it is kept, and ci/setup.sh installs no torch.
# Recorded once, so that the scripts these call do not take our own export for the user's.
if [ -z "${DUMN_LIBTORCH_PRESET+x}" ]; then
  export DUMN_LIBTORCH_PRESET="${LIBTORCH:-}"
fi

# Points torch-sys at the libtorch to link: the preset one, else the venv's. LIBTORCH is
# one of torch-sys's rerun triggers, so a clone in another folder (another venv) relinks
# against its own libtorch.
dumn_libtorch_env() {
  local torch_dir
  if [ -n "$DUMN_LIBTORCH_PRESET" ]; then
    if [ ! -e "$DUMN_LIBTORCH_PRESET/lib/libtorch_cpu.so" ]; then
      echo "ci: LIBTORCH=$DUMN_LIBTORCH_PRESET holds no lib/libtorch_cpu.so; point it at a libtorch 2.11.0 folder, or unset it to use the venv's" >&2
      return 1
    fi
    export LIBTORCH="$DUMN_LIBTORCH_PRESET"
    export LIBTORCH_CXX11_ABI="${LIBTORCH_CXX11_ABI:-1}"
    unset LIBTORCH_USE_PYTORCH
    return 0
  fi
  torch_dir=$(ls -d "$DUMN_VENV"/lib/python3*/site-packages/torch 2>/dev/null | head -n 1)
  if [ -z "$torch_dir" ]; then
    echo "ci: no torch in $DUMN_VENV; run ci/setup.sh first" >&2
    return 1
  fi
  export LIBTORCH="$torch_dir"
  export LIBTORCH_CXX11_ABI=1
  unset LIBTORCH_USE_PYTORCH
}

# The common start of every ci/ script: install what is missing, point the build at
# libtorch, and move to the repository root. `dumn_prepare --test-server` also builds the
# S3 test server (only the tests need it).
dumn_prepare() {
  bash "$DUMN_ROOT/ci/setup.sh" "$@"
  dumn_libtorch_env
  cd "$DUMN_ROOT"
}

# Sets BIN to the release dumn binary: $DUMN_BIN when given (a prebuilt one, as on a
# borrowed GPU machine, where nothing can be built), else built here after dumn_prepare.
dumn_release_binary() {
  if [ -n "${DUMN_BIN:-}" ]; then
    BIN="$DUMN_BIN"
  else
    dumn_prepare
    cargo build --release --bin dumn
    BIN="$CARGO_TARGET_DIR/release/dumn"
  fi
}
