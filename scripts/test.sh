#!/usr/bin/env bash
# The whole check a newcomer or CI runs: installs what the build and tests need, makes sure
# PostgreSQL is up, then fmt, clippy and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/social-reward/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

# librdkafka is compiled by rdkafka-sys's own configure script (a C compiler and make: no cmake,
# no curl): the build needs nothing beyond a Rust toolchain and the usual C build tools.
if ! command -v cc >/dev/null || ! command -v make >/dev/null; then
  echo "installing build-essential (a C compiler and make, for librdkafka)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq build-essential
fi

# The object-store tests talk S3 to moto's server (python3 -m moto.server) on a free loopback port.
if ! python3 -c "import moto.server, flask" 2>/dev/null; then
  echo "installing moto[server]"
  python3 -m pip install -q "moto[server]"
fi

# The crash test also runs against tansu, a Kafka-protocol broker in a process of its own
# (crates.io; ~25 min to build on 2 cores, once: it stays in ~/.cargo/bin).
if [ -z "${SOCIAL_REWARD_TANSU:-}" ] && ! command -v tansu >/dev/null && [ ! -x "$HOME/.cargo/bin/tansu" ]; then
  echo "installing tansu 0.6.0"
  CARGO_TARGET_DIR="$HOME/.cache/social-reward/tansu-target" \
    cargo install tansu --version 0.6.0 --locked --features libsql,dynostore
fi

# The catalog tests run against a real PostgreSQL at 127.0.0.1:5432.
export SOCIAL_REWARD_TEST_POSTGRES_URL="${SOCIAL_REWARD_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

echo "== cargo fmt --check"
cargo fmt -- --check
echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
echo "== docker-compose.yml parses"
python3 scripts/check_compose.py docker-compose.yml
echo "== layers: no upward import, no import circle"
python3 scripts/check_layers.py
echo "== cargo build"
cargo build --locked
# Hugging Face transformers opens the exported reward model and scores as `score` does. torch and
# transformers (~3 min, ~5.6 GB the first time) live in a venv kept beside the build directory.
echo "== transformers loads the exported reward model"
venv="${SOCIAL_REWARD_HF_VENV:-$HOME/.cache/social-reward/hf-venv}"
if ! "$venv/bin/python" -c "import torch, transformers, PIL" 2>/dev/null; then
  echo "installing torch, transformers and pillow into $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    # Debian's python3 keeps venv's pip bootstrap in a package of its own.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q torch transformers pillow numpy
fi
bin="$CARGO_TARGET_DIR/debug/social-reward"
work="$(mktemp -d)"
# Kept when the check fails, to look at.
trap 'rc=$?; if [ $rc -eq 0 ]; then rm -rf "$work"; else echo "kept $work" >&2; fi' EXIT
# A throwaway model: not recorded in whatever catalog the environment names.
unset SR_CATALOG__URL
"$bin" --quiet simulate --out "$work/sim" --users 300 --days 1 --image-size 64 >/dev/null
"$bin" --quiet curate --events "$work/sim/events.jsonl" --images "$work/sim/images" \
  --out "$work/curated" --db "sqlite:$work/catalog.db" >/dev/null
"$bin" --quiet train --triplets "$work/curated" --images "$work/sim/images" --out "$work/reward" \
  --steps 20 --lr 1e-3 --trainable all --batch-size 8 --cpu >/dev/null
mapfile -t pictures < <(find "$work/sim/images" -name '*.png' | sort | head -n 60)
[ ${#pictures[@]} -gt 0 ] || { echo "the simulation drew no pictures" >&2; exit 1; }
"$venv/bin/python" scripts/check_transformers.py "$work/reward" --binary "$bin" "${pictures[@]}"

# Analysts open the curated folder with the usual clients, and run sql/ with `query` and DuckDB.
echo "== pandas, pyarrow, DuckDB and polars read the triplets; sql/ agrees in query and DuckDB"
if ! "$venv/bin/python" -c "import pandas, pyarrow, duckdb, polars, selenium" 2>/dev/null; then
  echo "installing pandas, pyarrow, duckdb, polars and selenium into $venv"
  "$venv/bin/python" -m pip install -q pandas pyarrow duckdb polars selenium
fi
"$venv/bin/python" scripts/check_analysts.py --bin "$bin" --data "$work/curated" \
  --db "sqlite:$work/catalog.db"

# The report is looked at as a person would: in headless Chromium (Debian's, driven by selenium).
echo "== the report opens in Chromium with its plots and pictures"
if ! command -v chromedriver >/dev/null || [ ! -x /usr/lib/chromium/chromium ]; then
  echo "installing chromium and chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver
fi
"$bin" --quiet report --out "$work/report" --data "$work/curated" --images "$work/sim/images" \
  --db "sqlite:$work/catalog.db" >/dev/null
"$venv/bin/python" scripts/check_report.py "$work/report/index.html" \
  --screenshot "$work/report.png" --min-plots 7
rm -rf "$work"
trap - EXIT

echo "== cargo test"
cargo test --locked --all-targets -- --test-threads=2

