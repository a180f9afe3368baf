#!/usr/bin/env bash
# The benchmark command: builds the release binary (unless --no-build), then
# runs scripts/bench.py, which measures and reports (see its docstring).
#
#   scripts/bench.sh [--no-build] [--runs N] [--json FILE] [--events 1000000,10000000] [MODE ...]
#   modes: reference scaling checkpoint kafka latency growth criterion (default: reference scaling checkpoint kafka)
#
# BENCH_DIR keeps generated inputs between runs; CARGO_TARGET_DIR is where the binary is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/riftstream-target}"
case " $* " in
  *" --no-build "*) ;;
  *) (cd "$root" && cargo build --release --locked) ;;
esac
# Run from the caller's directory, so a relative --json lands where they are.
exec python3 "$root/scripts/bench.py" "$@"
