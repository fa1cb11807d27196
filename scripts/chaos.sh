#!/usr/bin/env bash
# Crash check against a real Kafka-protocol broker process: produce a simulated stream to tansu,
# run `social-reward ingest` and SIGKILL it at random moments KILLS times, run it to the end,
# then compare its triplet files with batch `curate` over the same events.
#
#   [RATE=800] scripts/chaos.sh [KILLS] [USERS]   (defaults: 12 kills, 1000 users, 1.5 simulated
#   days produced at RATE events/s while the consumer runs)
#
# Needs tansu (`cargo install tansu --locked --features libsql,dynostore`, or TANSU=/path) and
# builds the release binary unless SOCIAL_REWARD names one. The catalog is SQLite in the work
# folder, where the script watches the committed offset to time its kills.
set -euo pipefail
cd "$(dirname "$0")/.."

kills="${1:-12}"
users="${2:-1000}"
rate="${RATE:-800}"
tansu="${TANSU:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}"
[ -x "$tansu" ] || { echo "tansu not found: cargo install tansu --locked --features libsql,dynostore" >&2; exit 2; }
bin="${SOCIAL_REWARD:-}"
if [ -z "$bin" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/social-reward/target}"
  cargo build --release --locked --quiet
  bin="$CARGO_TARGET_DIR/release/social-reward"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/social-reward-chaos.XXXXXX")"
broker_pid=""
ingest_pid=""
producer_pid=""
cleanup() {
  [ -n "$ingest_pid" ] && kill -9 "$ingest_pid" 2>/dev/null || true
  [ -n "$producer_pid" ] && kill "$producer_pid" 2>/dev/null || true
  [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
echo "work folder: $work"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
brokers="127.0.0.1:$port"
# tansu 0.6 reads a sqlite:// file relative to its working directory.
(cd "$work" && exec "$tansu" broker --storage-engine sqlite://tansu.db \
  --listener-url "tcp://$brokers" --advertised-listener-url "tcp://$brokers" \
  >"$work/tansu.log" 2>&1) &
broker_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
"$tansu" topic create events --partitions 1 --broker "tcp://$brokers" >>"$work/tansu.log" 2>&1

# Short windows so that a small community closes many sessions (the crash test's settings).
cat >"$work/chaos.toml" <<EOF
name = "chaos"
stages = []

[catalog]
url = "sqlite:$work/catalog.db"

[curate]
window_hours = 3.0
session_grace_hours = 1.0
allowed_lateness_hours = 0.5
min_views = 3
min_confidence = 0.6
max_cluster_share = 0.2

[curate.split]
val_share = 0.2
test_share = 0.2
EOF
unset SR_CATALOG__URL

# tansu answers a fetch with everything it holds: produced at once, the stream would be consumed
# before a kill could land. It is produced at a live pace while the consumer works.
echo "== simulate $users users, 1.5 days, to tansu at $brokers, $rate events/s"
"$bin" --quiet simulate --out "$work/sim" --users "$users" --days 1.5 --seed 21 --no-images \
  --to-kafka "$brokers" --topic events --kafka-rate "$rate" >/dev/null &
producer_pid=$!

ingest() {
  "$bin" --quiet ingest --config "$work/chaos.toml" --brokers "$brokers" --topic events \
    --group chaos --out "$work/stream" --no-image-dedup --no-metrics --batch-messages 20 \
    --snapshot-secs 1 --kafka-set session.timeout.ms=6000 "$@"
}

# The partition's next offset in the catalog (0 before the first commit).
committed() {
  python3 - "$work/catalog.db" <<'PY'
import sqlite3, sys
try:
    row = sqlite3.connect(sys.argv[1], timeout=5).execute(
        "SELECT next_offset FROM consumer_offsets WHERE consumer_group='chaos' AND topic='events'"
    ).fetchone()
except sqlite3.Error:
    row = None
print(row[0] if row else 0)
PY
}

killed=0
while [ "$killed" -lt "$kills" ]; do
  before="$(committed)"
  ingest --until-idle 3 >/dev/null 2>>"$work/ingest.log" &
  ingest_pid=$!
  # Joining waits out a killed member's 6 s session: start the clock at the first commit, let
  # the consumer commit a random stretch (up to 1/24 of the stream), then kill it 0-40 ms later,
  # inside or between batches.
  for _ in $(seq 1 600); do
    [ "$(committed)" -gt "$before" ] || ! kill -0 "$ingest_pid" 2>/dev/null && break
    sleep 0.1
  done
  target=$(( $(committed) + 1 + RANDOM % 4000 ))
  while [ "$(committed)" -lt "$target" ] && kill -0 "$ingest_pid" 2>/dev/null; do
    sleep 0.02
  done
  sleep "$(printf '0.%03d' $((RANDOM % 40)))"
  if ! kill -0 "$ingest_pid" 2>/dev/null; then
    wait "$ingest_pid" || true
    ingest_pid=""
    echo "ingest finished the stream before kill $((killed + 1))"
    break
  fi
  kill -9 "$ingest_pid"
  wait "$ingest_pid" 2>/dev/null || true
  ingest_pid=""
  killed=$((killed + 1))
  echo "SIGKILL $killed at committed offset $(committed)"
done

wait "$producer_pid"
lines="$(wc -l <"$work/sim/events.jsonl")"
echo "== batch curate ($lines events)"
"$bin" --quiet curate --config "$work/chaos.toml" --events "$work/sim/events.jsonl" \
  --out "$work/batch" --no-image-dedup --no-catalog >"$work/batch.json"

echo "== ingest to the end"
# tansu's fetches can come back empty for seconds on a SQLite topic: the last run waits longer
# before it takes the stream as ended.
ingest --until-idle 20 >"$work/final.json" 2>>"$work/ingest.log"

python3 - "$work" "$lines" "$killed" <<'EOF'
import hashlib, json, os, sys
work, lines, killed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def files(root):
    out = {}
    base = os.path.join(root, "triplets")
    for folder, _, names in os.walk(base):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, base)] = hashlib.blake2b(f.read()).hexdigest()
    return out

batch, stream = files(os.path.join(work, "batch")), files(os.path.join(work, "stream"))
report = json.load(open(os.path.join(work, "final.json")))
counted = report["valid"] + report["duplicates"] + report["dead_letters"]
problems = []
if batch != stream:
    problems.append(f"triplet files differ: only batch {sorted(set(batch) - set(stream))}, "
                    f"only stream {sorted(set(stream) - set(batch))}, "
                    f"different bytes {sorted(k for k in batch if k in stream and batch[k] != stream[k])}")
if report["lines"] != lines or counted != lines:
    problems.append(f"{lines} events produced, {report['lines']} read, {counted} counted or dead-lettered")
print(f"{killed} SIGKILLs; {len(stream)} triplet files, batch {len(batch)}; "
      f"{report['lines']} of {lines} events read, {counted} counted or dead-lettered")
catalog = os.path.join(work, "catalog.db")
if os.path.exists(catalog):
    import sqlite3
    rows = sqlite3.connect(catalog).execute("SELECT count(*) FROM triplet_files").fetchone()[0]
    print(f"manifest rows: {rows}")
    if rows != len(batch):
        problems.append(f"{rows} manifest rows for {len(batch)} files")
if problems:
    print("FAILED:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("OK: byte-identical triplet files, every event counted once")
EOF
