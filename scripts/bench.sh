#!/usr/bin/env bash
# The figures quoted in closing notes, measured in one run on one machine (release build).
#   ./scripts/bench.sh [OUT_DIR]
# Picsart scale (1.5M users, one day, >100M events, ~11 GB of JSON) needs ~15 GB free disk.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-/tmp/social-reward-bench}"
mkdir -p "$out"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/social-reward/target-release}"
cargo build --release --locked
bin="$CARGO_TARGET_DIR/release/social-reward"
timed() { /usr/bin/time -f '{"wall_seconds":%e,"peak_rss_kib":%M}' "$@"; }

echo "== parse + validate + dedup + aggregate, one thread"
"$bin" --quiet bench parse --users 20000 --days 2

echo "== near-duplicate index, 1M hashes, d = 9"
"$bin" --quiet bench dedup --hashes 1000000

echo "== reward model: training samples/s and scoring images/s (tiny, ViT-B/32 shape)"
"$bin" --quiet bench train

echo "== Picsart-scale simulation (1.5M users, 1 day, no images)"
timed "$bin" --quiet simulate --out "$out/picsart" --users 1500000 --days 1 --no-images

echo "== Picsart-scale curation (hashes supplied by the simulator, no catalog)"
timed "$bin" --quiet curate --events "$out/picsart/events.jsonl" --hashes "$out/picsart/truth.parquet" \
  --out "$out/picsart-curated" --no-catalog

echo "== the same with the evaluation against the simulator's truth (and the naive baseline)"
timed "$bin" --quiet curate --events "$out/picsart/events.jsonl" --hashes "$out/picsart/truth.parquet" \
  --truth "$out/picsart/truth.parquet" --out "$out/picsart-curated-eval" --no-catalog

echo "== curation beside DuckDB's windowed counting (150k users, 1 day)"
"$bin" --quiet bench curate --users 150000 --days 1

echo "== streaming ingest with PostgreSQL commits beside a bare Kafka loop (mock broker), 10x longer for memory"
"$bin" --quiet bench ingest --users 2000 --days 1 --scale 10 --partitions 64 \
  --db "${SR_CATALOG__URL:-postgres://postgres@127.0.0.1:5432/test}"
