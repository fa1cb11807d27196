#!/usr/bin/env bash
# Builds `social-reward --features cuda` on a machine with no CUDA install and no GPU, and packs
# the binary with the CUDA libraries it needs into dist/cuda/, to be carried to a GPU machine that
# has only the NVIDIA driver.
#   scripts/build-cuda.sh                 # release build (about an hour on 2 cores)
#   PROFILE=dev scripts/build-cuda.sh     # dev profile: candle and gemm still at opt-level 3
# Then, on the GPU machine: LD_LIBRARY_PATH=dist/cuda/lib dist/cuda/social-reward ...
# (scripts/gpu-check.sh does that and compares CPU with GPU.)
#
# Knobs (environment):
#   CUDA_VENV         venv holding NVIDIA's CUDA wheels   (default ~/.cache/social-reward/cuda-venv)
#   CUDA_COMPUTE_CAP  GPU generation the kernels are built for (default 90: H100/H200)
#   PROFILE           cargo profile (default release)
#   CARGO_TARGET_DIR  (default ~/.cache/social-reward/target-cuda)
#   DIST_LIBS         bundle (default): copy the CUDA libraries into dist/cuda/lib (~850 MB);
#                     none: binary only, for a machine that already has CUDA 13 libraries
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
venv="${CUDA_VENV:-$HOME/.cache/social-reward/cuda-venv}"
profile="${PROFILE:-release}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/social-reward/target-cuda}"
dist_libs="${DIST_LIBS:-bundle}"

# The toolkit comes from PyPI rather than apt or NVIDIA's installer: no root, no repository
# keys, the same bits on every build machine, and it lives in one folder we can throw away.
# 13.0 matches the driver of the GPU machines we target (580.x); a toolkit newer than the driver
# builds kernels that the driver refuses to load. curand versions apart from the toolkit.
pins=(
  'nvidia-cuda-nvcc==13.0.*'
  'nvidia-cuda-runtime==13.0.*'
  'nvidia-cuda-cccl==13.0.*'
  'nvidia-cuda-crt==13.0.*'
  'nvidia-nvvm==13.0.*'
  'nvidia-cublas==13.0.*'
  'nvidia-cuda-nvrtc==13.0.*'
  'nvidia-curand==10.4.0.*'
)

# ---------------------------------------------------------------------------------------------
# 1. The toolkit. A stamp of the pin list lets a rerun skip pip (and the network) entirely; a
#    change to the pins reinstalls.
if [[ ! -x "$venv/bin/python" ]]; then
  echo "== creating venv $venv" >&2
  "$PYTHON" -m venv "$venv"
fi
stamp="$venv/.social-reward-cuda-pins"
if [[ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]]; then
  echo "== installing CUDA wheels into $venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}"
  printf '%s' "${pins[*]}" >"$stamp"
fi

# ---------------------------------------------------------------------------------------------
# 2. Find the pieces. CUDA 13 wheels unpack into one shared tree, site-packages/nvidia/cu13/
#    {bin,include,lib,nvvm}; CUDA 12 wheels used one folder per package (nvidia/cuda_nvcc/bin,
#    nvidia/cuda_runtime/lib, ...). Search rather than hard-code either, so a pin bump that moves
#    things fails here with a clear message instead of deep inside a build script.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
nv="$site/nvidia"
[[ -d "$nv" ]] || { echo "no $nv: the CUDA wheels did not install" >&2; exit 1; }

find_one() { # find_one PATTERN: the single file under $nv whose path matches PATTERN
  local hit
  hit="$(find "$nv" -path "$1" \( -type f -o -type l \) -print -quit)"
  [[ -n "$hit" ]] || { echo "no file matching $1 under $nv" >&2; exit 1; }
  printf '%s\n' "$hit"
}
nvcc_real="$(find_one '*/bin/nvcc')"
cicc="$(find_one '*/nvvm/bin/cicc')"
for h in cuda.h cuda_runtime.h cublas_v2.h curand.h nvrtc.h; do find_one "*/include/$h" >/dev/null; done
find_one '*/include/cccl/cuda/std/*' >/dev/null

# ---------------------------------------------------------------------------------------------
# 3. One CUDA_HOME that looks like a normal install, rebuilt on every run (it is only links).
#    Needed because:
#    - cudarc links with -lcuda -lcublas -lcublasLt -lcurand -lnvrtc and candle-kernels with
#      -lcudart; the linker wants unversioned libX.so, and the wheels ship only libX.so.N.
#      cudarc adds $CUDA_HOME/lib64 and lib64/stubs to the link search path, so that is where
#      they go.
#    - libcuda belongs to the driver and is absent here, so we link against a stub; an empty
#      shared library will not do (the linker needs every cu* symbol defined somewhere).
#    - nvcc finds its headers, cicc and libdevice relative to its own real path (nvcc.profile's
#      TOP, resolved through symlinks), so bin/ is hard-linked, not symlinked: then TOP is this
#      folder and its merged include/ covers headers from every package even in a per-package
#      layout.
home="$venv/cuda-home"
rm -rf "$home"
mkdir -p "$home/bin" "$home/include" "$home/lib64/stubs"
cp -al "$(dirname "$nvcc_real")/." "$home/bin/" 2>/dev/null || cp -a "$(dirname "$nvcc_real")/." "$home/bin/"
ln -s "$(dirname "$(dirname "$cicc")")" "$home/nvvm"
while IFS= read -r inc; do
  for entry in "$inc"/*; do
    [[ -e "$home/include/${entry##*/}" ]] || ln -s "$entry" "$home/include/"
  done
done < <(find "$nv" -mindepth 2 -maxdepth 2 -type d -name include | sort)
while IFS= read -r lib; do
  name="${lib##*/}"
  [[ -e "$home/lib64/$name" ]] || ln -s "$lib" "$home/lib64/$name"
  [[ "$name" == *.so.* ]] || continue
  dev="${name%%.so.*}.so" # libcublas.so.13 -> libcublas.so
  [[ -e "$home/lib64/$dev" ]] || ln -s "$lib" "$home/lib64/$dev"
done < <(find "$nv" -mindepth 3 -maxdepth 3 -path '*/lib/lib*.so*' -type f | sort)

# The libcuda stub: every cu* function the driver API header declares (after the preprocessor, so
# cuMemAlloc is cuMemAlloc_v2 as the real library exports it), each returning
# CUDA_ERROR_STUB_LIBRARY (34). The soname libcuda.so.1 makes the binary ask for the name the
# driver installs. Returning an error rather than crashing means that with this stub on
# LD_LIBRARY_PATH a GPU-less machine can still run the binary (CPU paths, --help); it must never
# be put on LD_LIBRARY_PATH where a driver is, so it stays out of dist/.
printf '#include <cuda.h>\n' | cc -E -P -I"$home/include" -x c - \
  | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | sed -E 's/[[:space:](]+$//' | sort -u \
  | { cat; printf '%s\n' cuProfilerInitialize cuProfilerStart cuProfilerStop; } | sort -u \
  | sed 's/.*/int &(void) { return 34; }/' >"$home/lib64/stubs/cuda_stub.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$home/lib64/stubs/libcuda.so" "$home/lib64/stubs/cuda_stub.c"
ln -s libcuda.so "$home/lib64/stubs/libcuda.so.1"

# ---------------------------------------------------------------------------------------------
# 4. Build.
nvcc_release="$("$home/bin/nvcc" --version | sed -nE 's/.*release ([0-9]+)\.([0-9]+).*/\1 \2/p')"
read -r cuda_major cuda_minor <<<"$nvcc_release"
export CUDA_HOME="$home"
# cudaforge (candle-kernels' build script) takes $NVCC before PATH; PATH is for anything else
# that shells out to nvcc.
export NVCC="$home/bin/nvcc"
export PATH="$home/bin:$PATH"
# No GPU here for nvidia-smi to ask, so say which one we build for. 90 -> sm_90a: the kernels run
# on H100/H200 only (no PTX for other generations); set 80, 89, ... for other cards.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# cudarc picks its API bindings by toolkit version; say it outright rather than let its build
# script parse whichever nvcc --version comes first on PATH.
export CUDARC_CUDA_VERSION="${cuda_major}0${cuda_minor}0"

echo "== cargo build --profile $profile --features cuda (CUDA $cuda_major.$cuda_minor, compute capability $CUDA_COMPUTE_CAP, target $CARGO_TARGET_DIR)" >&2
start=$SECONDS
cargo build --profile "$profile" --features cuda --bin social-reward --locked
echo "== built in $((SECONDS - start)) s" >&2

case "$profile" in dev | test) outdir=debug ;; bench) outdir=release ;; *) outdir="$profile" ;; esac
bin="$CARGO_TARGET_DIR/$outdir/social-reward"

# ---------------------------------------------------------------------------------------------
# 5. dist/cuda: the binary and the CUDA libraries it loads, minus libcuda (the driver's, which
#    must match the kernel module and so always comes from the GPU machine). The list is taken
#    from the binary itself: its NEEDED entries (candle links cudarc with dynamic-linking, so
#    cudarc dlopens nothing), their NEEDED entries in turn (libcublas -> libcublasLt), and the
#    libraries that NVIDIA's own libraries dlopen by name: libnvrtc loads
#    libnvrtc-builtins.so.<major>.<minor>, and libcublasLt loads libnvrtc.so.<major>.
dist=dist/cuda
rm -rf "$dist"
mkdir -p "$dist/lib"
cp "$bin" "$dist/social-reward"

if [[ "$dist_libs" == bundle ]]; then
  needed() { readelf -d "$1" | sed -nE 's/.*\(NEEDED\).*\[(.*)\]/\1/p'; }
  mapfile -t queue < <(needed "$bin")
  queue+=("libnvrtc.so.$cuda_major" "libnvrtc-builtins.so.$cuda_major.$cuda_minor")
  declare -A seen=()
  while ((${#queue[@]})); do
    name="${queue[0]}"
    queue=("${queue[@]:1}")
    [[ -n "${seen[$name]:-}" ]] && continue
    seen[$name]=1
    [[ "$name" == libcuda.so* ]] && continue
    # Only what the wheels provide; libc, libstdc++ and the like come from the GPU machine.
    [[ -e "$home/lib64/$name" ]] || continue
    cp -L "$home/lib64/$name" "$dist/lib/$name"
    mapfile -t -O "${#queue[@]}" queue < <(needed "$dist/lib/$name")
  done
  if [[ -z "${seen[libcuda.so.1]:-}" ]]; then
    echo "warning: the binary does not link libcuda.so.1; was it built without --features cuda?" >&2
  fi
  # Anything the binary links that neither the wheels nor this system provides would fail only
  # on the GPU machine; say so now.
  missing="$(LD_LIBRARY_PATH="$dist/lib:$home/lib64/stubs" ldd "$dist/social-reward" | grep 'not found' || true)"
  [[ -z "$missing" ]] || { echo "unresolved libraries:" >&2; echo "$missing" >&2; exit 1; }
fi

echo "== $dist:" >&2
(cd "$dist" && du -sh social-reward lib/* 2>/dev/null) >&2
echo "run: LD_LIBRARY_PATH=$dist/lib $dist/social-reward --help" >&2
echo "without a GPU driver, add the stub: LD_LIBRARY_PATH=$dist/lib:$home/lib64/stubs" >&2
