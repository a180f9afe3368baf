#!/usr/bin/env bash
# The benchmark command: end-to-end throughput of the reference windowed job
# (benches/reference-windows.toml) on 1M and 5M generated events, checked
# against DuckDB, then the per-operator criterion benches (events/s).
#
#   ./scripts/bench.sh            # everything
#   ROWS="1000000" ./scripts/bench.sh --no-criterion
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/riftstream-target}"
cargo build --release --locked
bin="$CARGO_TARGET_DIR/release/riftstream"
work="${BENCH_DIR:-$(mktemp -d)}"
echo "working in $work ($(nproc) cores)"
for rows in ${ROWS:-1000000 5000000}; do
  input="$work/rows-$rows.jsonl"
  [ -f "$input" ] || "$bin" produce rows --out "$input" --rows "$rows" --jitter-ms 4000 >/dev/null
  best=""
  for run in 1 2 3; do
    rm -rf "$work/out" "$work/state"
    stats=$( { RIFT_INPUT="$input" RIFT_OUTPUT="$work/out" RIFT_STATE="$work/state" \
      /usr/bin/time -f "%e %M" "$bin" run --topology benches/reference-windows.toml --bounded 2>&1 >/dev/null; } | tail -1)
    secs=${stats% *}; kb=${stats#* }
    echo "  $rows events, run $run: ${secs}s, peak RSS $((kb / 1024)) MiB, $(python3 -c "print(int($rows / $secs))") events/s"
  done
  python3 scripts/check_reference.py "$input" "$work/out"
done
# Checkpoint cost, side by side in one run (this machine's speed drifts):
# the 1M job with checkpoints every 1 h (none happen), 5 s, 1 s and 200 ms,
# interleaved over three rounds.
input="$work/rows-1000000.jsonl"
[ -f "$input" ] || "$bin" produce rows --out "$input" --rows 1000000 --jitter-ms 4000 >/dev/null
echo "checkpoint interval vs wall time, 1M events (3 interleaved rounds):"
for round in 1 2 3; do
  line="  round $round:"
  for interval in 1h 5s 1s 200ms; do
    rm -rf "$work/out" "$work/state"
    secs=$( { RIFT_INPUT="$input" RIFT_OUTPUT="$work/out" RIFT_STATE="$work/state" RIFT_CHECKPOINT_INTERVAL=$interval \
      /usr/bin/time -f "%e" "$bin" run --topology benches/reference-windows.toml --bounded 2>&1 >/dev/null; } | tail -1)
    line="$line $interval ${secs}s"
  done
  echo "$line"
done
# Scaling, side by side: 1 process x 1 worker, 1 x 2, and 2 processes x 1
# worker (a timely cluster on loopback), interleaved over three rounds.
echo "workers and processes vs wall time, 1M events (3 interleaved rounds):"
hosts="$work/hosts"
for round in 1 2 3; do
  line="  round $round:"
  for shape in 1x1 1x2 2x1; do
    rm -rf "$work/out" "$work/state" "$work"/state-*
    start=$(date +%s.%N)
    case $shape in
      1x1|1x2)
        RIFT_INPUT="$input" RIFT_OUTPUT="$work/out" RIFT_STATE="$work/state" \
          "$bin" run --topology benches/reference-windows.toml --bounded --workers "${shape#1x}" >/dev/null 2>&1 ;;
      2x1)
        printf '127.0.0.1:%s\n127.0.0.1:%s\n' $((20000 + RANDOM % 20000)) $((40000 + RANDOM % 20000)) > "$hosts"
        for p in 0 1; do
          RIFT_INPUT="$input" RIFT_OUTPUT="$work/out" RIFT_STATE="$work/state-$p" \
            "$bin" run --topology benches/reference-windows.toml --bounded --workers 1 --process $p --hosts "$hosts" >/dev/null 2>&1 &
        done
        wait ;;
    esac
    line="$line $shape $(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")s"
  done
  echo "$line"
done
if [ "${1:-}" != "--no-criterion" ]; then
  cargo bench --locked --bench operators
fi
