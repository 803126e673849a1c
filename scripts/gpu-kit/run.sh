#!/usr/bin/env bash
# The scenewright GPU kit's only entry point (written by `npm run gpu:kit`; bench/GPU.md has the calls).
#
#   bash call-<n>/run.sh            stash this call's part under $KIT_HOME; once every part is there, unpack the kit
#                                   and run bench/gpu.ts's stages (figures on stdout, $OUT/results.json)
#   KIT_PROVIDER=cpu bash run.sh    the same stages on the CPU at tiny size (the dry run CI runs)
#
# Environment: KIT_HOME (default /tmp/scenewright-kit), OUT (results folder, default $KIT_HOME/out),
# KIT_PROVIDER (cuda | webgpu | cpu, default cuda), KIT_CUDA_LIBS (extra folders to search, ':'-separated),
# KIT_STAGES (e.g. "1 2": run only those stages).
# Needs only bash and coreutils, tar, gzip and sha256sum: the kit carries its own Node.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KIT_HOME=${KIT_HOME:-/tmp/scenewright-kit}
PROVIDER=${KIT_PROVIDER:-cuda}
say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit "${2:-1}"; }

[ -f "$HERE/MANIFEST" ] || die "no MANIFEST beside $0: this is not a kit folder (build one with npm run gpu:kit -- --out <dir>)"
read -r _ KIT_ID NPARTS < <(grep '^kit ' "$HERE/MANIFEST")
[ -n "${KIT_ID:-}" ] || die "$HERE/MANIFEST has no 'kit' line: the folder is damaged; copy it again from the kit"
case "$PROVIDER" in cuda | webgpu | cpu) ;; *) die "KIT_PROVIDER=$PROVIDER: use cuda, webgpu or cpu" ;; esac

PARTS=$KIT_HOME/parts/$KIT_ID
mkdir -p "$PARTS" || die "cannot create $PARTS"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# 1. Stash every part of this kit found beside this script (and in sibling call-* folders that a warm machine kept).
damaged=()
while read -r _ file sum bytes call; do
  [ -f "$PARTS/$file" ] && [ "$(sha_of "$PARTS/$file")" = "$sum" ] && continue
  for dir in "$HERE" "$HERE"/../call-*; do
    [ "$dir" != "$HERE" ] && [ "$(cd "$dir" 2>/dev/null && pwd)" = "$HERE" ] && continue
    src="$dir/$file"
    [ -f "$src" ] || continue
    if [ "$(sha_of "$src")" = "$sum" ]; then
      cp "$src" "$PARTS/$file.tmp" && mv "$PARTS/$file.tmp" "$PARTS/$file"
      say "stashed $file (call $call, $bytes bytes) in $PARTS"
      break
    else
      damaged+=("$file (carried by call $call): $src has $(stat -c %s "$src") bytes, sha256 differs from the MANIFEST's; carry call $call again")
    fi
  done
done < <(grep '^part ' "$HERE/MANIFEST")

# 2. Which parts are still missing or damaged under $PARTS?
missing=()
while read -r _ file sum bytes call; do
  if [ ! -f "$PARTS/$file" ]; then
    missing+=("$file: carried by call $call (call-$call/)")
  elif [ "$(sha_of "$PARTS/$file")" != "$sum" ]; then
    rm -f "$PARTS/$file"
    missing+=("$file: damaged in $PARTS (sha256 differs; removed): carry call $call (call-$call/) again")
  fi
done < <(grep '^part ' "$HERE/MANIFEST")
for d in "${damaged[@]}"; do say "damaged: $d" >&2; done
if [ ${#missing[@]} -gt 0 ]; then
  say "kit $KIT_ID: $((NPARTS - ${#missing[@]})) of $NPARTS parts present in $PARTS; missing:"
  for m in "${missing[@]}"; do say "  $m"; done
  say "Make the calls that carry them (bench/GPU.md), each running its call-N/run.sh; the last one runs the stages."
  exit 3
fi

# 3. Unpack once per kit.
TREE=$KIT_HOME/tree/$KIT_ID
if [ ! -f "$TREE/.complete" ]; then
  rm -rf "$TREE" && mkdir -p "$TREE" || die "cannot create $TREE"
  t0=$(date +%s)
  files=$(grep '^part ' "$HERE/MANIFEST" | cut -d' ' -f2 | sed "s|^|$PARTS/|")
  # shellcheck disable=SC2086
  cat $files | tar -xzf - -C "$TREE" || die "unpacking the kit into $TREE failed (disk full? df -h $KIT_HOME)"
  touch "$TREE/.complete"
  say "kit $KIT_ID unpacked into $TREE in $(($(date +%s) - t0)) s"
fi
KIT=$TREE/scenewright-kit
NODE=$KIT/node/bin/node
"$NODE" --version >/dev/null 2>&1 || die "the kit's Node ($NODE) does not run on this machine ($(uname -m))"

# 4. The CUDA libraries: the loader's own path first, then the NVIDIA wheels of a Python environment.
find_lib() { # soname → folder holding it, or nothing
  local so=$1 d
  if command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q "[[:space:]]$so "; then
    echo "(loader cache)"
    return
  fi
  local IFS=:
  for d in ${LD_LIBRARY_PATH:-} ${KIT_CUDA_LIBS:-} /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu; do
    [ -n "$d" ] && [ -e "$d/$so" ] && { echo "$d"; return; }
  done
  unset IFS
  local roots f
  roots=$(ls -d /opt/*/.venv/lib/python3*/site-packages/nvidia /opt/*/lib/python3*/site-packages/nvidia \
    /usr/local/lib/python3*/dist-packages/nvidia /usr/local/lib/python3*/site-packages/nvidia \
    /usr/lib/python3/dist-packages/nvidia /root/.local/lib/python3*/site-packages/nvidia \
    /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib 2>/dev/null)
  for d in $roots; do
    f=$(find "$d" -maxdepth 4 -name "$so" 2>/dev/null | head -n1)
    [ -n "$f" ] && { dirname "$f"; return; }
  done
}

if [ "$PROVIDER" = cuda ]; then
  say "CUDA libraries (the kit's provider is ONNX Runtime 1.29.0 built for CUDA 13):"
  extra=()
  miss=()
  for so in libcuda.so.1 libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libcudnn.so.9; do
    where=$(find_lib "$so")
    if [ -z "$where" ]; then
      miss+=("$so")
      say "  $so: NOT FOUND"
    else
      say "  $so: $where"
      [ "$where" != "(loader cache)" ] && extra+=("$where")
    fi
  done
  if [ ${#miss[@]} -gt 0 ]; then
    say "Missing: ${miss[*]}."
    say "Searched: the loader cache (ldconfig -p), LD_LIBRARY_PATH, KIT_CUDA_LIBS, /usr/local/nvidia/lib64, /usr/local/cuda*/lib64,"
    say "  and the NVIDIA wheels of Python environments (/opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib, /usr/local/lib/python3*/*-packages/nvidia)."
    say "Fix: install the NVIDIA driver (libcuda.so.1) and the CUDA 13 runtime, cuBLAS 13, cuRAND and cuDNN 9 (e.g. pip install"
    say "  nvidia-cuda-runtime nvidia-cublas nvidia-curand nvidia-cudnn-cu13), or name their lib folders in KIT_CUDA_LIBS."
    say "  Or run the same stages on the CPU: KIT_PROVIDER=cpu bash $0"
    exit 4
  fi
  LD_LIBRARY_PATH=$(printf '%s:' "${extra[@]}" | awk -v RS=: '!s[$0]++ && $0 != "" {printf "%s:", $0}')${LD_LIBRARY_PATH:-}
  export LD_LIBRARY_PATH
  if command -v nvidia-smi >/dev/null 2>&1; then
    drv=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9.]*\).*/\1/p' | head -n1)
    ver=$(nvidia-smi --query-gpu=driver_version,name --format=csv,noheader 2>/dev/null | head -n1)
    say "GPU: $ver; the driver supports CUDA ${drv:-?}"
    if [ -n "$drv" ] && [ "${drv%%.*}" -lt 13 ]; then
      say "The driver supports CUDA $drv but this kit's provider needs CUDA 13 (driver 580 or newer)."
      say "Fix: update the driver, or on a host that reaches NuGet use setup:cuda's CUDA 12 choice (npm run setup:cuda -- --cuda 12)."
      exit 5
    fi
  else
    say "nvidia-smi not found: no NVIDIA driver on this machine (peak GPU memory will not be sampled)."
  fi
fi

OUT=${OUT:-$KIT_HOME/out}
mkdir -p "$OUT"
say "running the stages on $PROVIDER; results in $OUT/results.json"
cd "$KIT/app" || die "the kit has no app/ folder: rebuild it"
export KIT_PROVIDER=$PROVIDER OUT KIT_MODELS=${KIT_MODELS:-$KIT_HOME/models} LOG_LEVEL=${LOG_LEVEL:-warn}
exec "$NODE" --import tsx bench/gpu.ts
