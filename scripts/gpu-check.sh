#!/usr/bin/env bash
# CPU against GPU for the binary that scripts/build-cuda.sh packs into dist/cuda/, run on the GPU
# machine from the repository root. Needs no Rust toolchain there, only the NVIDIA driver (and
# python3 for the closing table; without it the raw JSON lines are the result).
#   scripts/gpu-check.sh
# Knobs (environment):
#   BIN      binary to run (default dist/cuda/social-reward)
#   LIBDIR   CUDA libraries shipped with it (default: lib/ beside BIN)
#   OUT      if set, results.jsonl (one {"step", "seconds", "ok", "result"} line per step) and
#            log.txt (every command's stderr) are copied there; two files, so the results fit
#            transports that bring back only a few
#   QUICK=1  bench train --quick (a smoke run) instead of the full benchmark
#   STEPS    training steps of the end-to-end comparison (default 300)
#   KEEP=1   keep the scratch folder (its path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${BIN:-dist/cuda/social-reward}"
LIBDIR="${LIBDIR:-$(dirname "$BIN")/lib}"
STEPS="${STEPS:-300}"
[[ -x "$BIN" ]] || { echo "no executable $BIN: build it with scripts/build-cuda.sh and carry dist/cuda/" >&2; exit 1; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")"
if [[ "${KEEP:-0}" == 1 ]]; then
  echo "scratch: $TMP" >&2
else
  trap 'rm -rf "$TMP"' EXIT
  trap 'exit 130' INT TERM # so that EXIT runs
fi
results="$TMP/results.jsonl"
log="$TMP/log.txt"
: >"$results"
: >"$log"

# ---------------------------------------------------------------------------------------------
# Libraries. The shipped ones come first, so the binary gets the CUDA version it was built
# against whatever else the machine has. libcuda is the driver's and is never shipped; where the
# driver or a CUDA library is not on the loader's default path (containers often mount the driver
# under /usr/local/nvidia; dist/ may have been carried without lib/ because the libraries are
# ~850 MB), look in the usual places and in python3's NVIDIA wheels (PyTorch brings them), so
# the check still runs rather than dying on the first `not found`.
if [[ -d "$LIBDIR" ]]; then
  LIBDIR="$(cd "$LIBDIR" && pwd)"
  export LD_LIBRARY_PATH="$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
candidates=(/usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64
  /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
if command -v python3 >/dev/null; then
  while IFS= read -r dir; do candidates+=("$dir"); done < <(python3 - <<'EOF' 2>/dev/null || true
import glob, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for root in roots:
    for d in sorted(glob.glob(root + "/nvidia/*/lib")):
        print(d)
EOF
  )
fi
for _ in 1 2 3; do # a library found in one place can pull in another that is elsewhere
  missing="$(ldd "$BIN" | awk '/not found/ {print $1}')"
  [[ -n "$missing" ]] || break
  for lib in $missing; do
    for dir in "${candidates[@]}"; do
      if [[ -e "$dir/$lib" ]]; then
        echo "found $lib in $dir" >&2
        [[ ":${LD_LIBRARY_PATH:-}:" == *":$dir:"* ]] ||
          export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$dir"
        break
      fi
    done
  done
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" >&2
if ldd "$BIN" | grep -q 'not found'; then
  echo "libraries still missing (this binary cannot start):" >&2
  ldd "$BIN" | grep 'not found' >&2
  exit 1
fi
ldd "$BIN" | grep -E 'libcu|libnvrtc' >&2 || true

if command -v nvidia-smi >/dev/null; then
  nvidia-smi || echo "nvidia-smi failed (exit $?)" >&2
else
  echo "no nvidia-smi on PATH: expect the GPU runs to fail or report device cpu" >&2
fi

# ---------------------------------------------------------------------------------------------
# Each step: one command whose single stdout line is JSON. Its stderr goes to log.txt; a failure
# is recorded and printed, not fatal, so a GPU failure still leaves the CPU figures (and the
# error) in the results. Steps whose inputs are missing are skipped.
failures=0
step() { # step NAME ARGS...
  local name="$1"
  shift
  echo "== $name: $BIN $*" | tee -a "$log" >&2
  local started=$SECONDS status=0
  "$BIN" --quiet "$@" >"$TMP/$name.json" 2>>"$log" || status=$?
  local seconds=$((SECONDS - started))
  local json
  json="$(tail -n 1 "$TMP/$name.json")"
  if ((status == 0)) && [[ "$json" == "["* || "$json" == "{"* ]]; then
    printf '{"step":"%s","seconds":%d,"ok":true,"result":%s}\n' "$name" "$seconds" "$json" >>"$results"
    echo "$json"
  else
    failures=$((failures + 1))
    echo "!! $name failed (exit $status) after ${seconds}s; its last log lines:" >&2
    tail -n 15 "$log" >&2
    printf '{"step":"%s","seconds":%d,"ok":false,"exit":%d}\n' "$name" "$seconds" "$status" >>"$results"
    return 1
  fi
}

quick=()
[[ "${QUICK:-0}" == 1 ]] && quick=(--quick)
step bench-cpu bench train --cpu "${quick[@]}" || true
step bench-gpu bench train "${quick[@]}" || true

# End to end on a small simulated community: the same triplets, model and seed on both devices,
# so speed and accuracy compare like with like.
if step simulate simulate --out "$TMP/sim" --users 1800 --days 2 --image-size 64 --seed 7 &&
  step curate curate --events "$TMP/sim/events.jsonl" --images "$TMP/sim/images" --out "$TMP/cur" --no-catalog; then
  for dev in gpu cpu; do
    flag=()
    [[ "$dev" == cpu ]] && flag=(--cpu)
    step "train-$dev" train --triplets "$TMP/cur" --images "$TMP/sim/images" --out "$TMP/$dev" \
      --steps "$STEPS" --lr 1e-3 --trainable all --seed 1 "${flag[@]}" &&
      step "eval-$dev" eval --model "$TMP/$dev/model" --triplets "$TMP/cur" --images "$TMP/sim/images" \
        "${flag[@]}" ||
      true
  done
fi

# ---------------------------------------------------------------------------------------------
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  cp "$results" "$log" "$OUT/"
fi

echo
echo "== summary"
if command -v python3 >/dev/null; then
  python3 - "$results" <<'EOF'
import json, sys
steps = {}
for line in open(sys.argv[1]):
    rec = json.loads(line)
    steps[rec["step"]] = rec
def fmt(x, spec=".1f"):
    return "-" if x is None else format(x, spec)
for dev in ("cpu", "gpu"):
    rec = steps.get(f"bench-{dev}")
    if not rec:
        continue
    if not rec["ok"]:
        print(f"bench {dev}: FAILED (exit {rec['exit']}), see log")
        continue
    for m in rec["result"]:
        print(f"bench {dev:3} {m['model']:14} on {m['device']:7} train {fmt(m['train_samples_per_second']):>9} samples/s"
              f"  score {fmt(m['score_images_per_second']):>9} images/s")
for dev in ("cpu", "gpu"):
    t, e = steps.get(f"train-{dev}"), steps.get(f"eval-{dev}")
    if not t:
        continue
    if not t["ok"]:
        print(f"train {dev}: FAILED (exit {t['exit']}), see log")
        continue
    r = t["result"]
    line = (f"train {dev:3} on {r['device']:7} {r['steps']} steps in {fmt(r['seconds'])} s"
            f"  {fmt(r['samples_per_second'])} samples/s  loss {fmt(r['first_loss'], '.3f')} -> {fmt(r['final_loss'], '.3f')}"
            f"  val acc {fmt(r['val_accuracy'], '.3f')}")
    if e and e["ok"]:
        er = e["result"]
        ci = er.get("ci95") or [None, None]
        line += (f"  | eval on {er['device']}: test acc {fmt(er['accuracy'], '.3f')}"
                 f" [{fmt(ci[0], '.3f')}, {fmt(ci[1], '.3f')}] baseline {fmt(er['baseline_accuracy'], '.3f')}"
                 f" ({er['pairs']} pairs)")
    elif e:
        line += f"  | eval FAILED (exit {e['exit']})"
    print(line)
gpu_devices = {m["device"] for m in (steps.get("bench-gpu", {}).get("result") or [])}
if gpu_devices and gpu_devices <= {"cpu"}:
    print("note: the GPU runs ran on the CPU")
EOF
else
  cat "$results"
fi
if ((failures)); then
  echo "$failures step(s) failed; stderr of every step is in log.txt${OUT:+ (copied to $OUT)}" >&2
  exit 1
fi
