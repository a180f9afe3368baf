#!/usr/bin/env bash
# The README's first command: install build dependencies, build riftstream
# (release), and run the embedded demo. Extra arguments go to `riftstream demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/riftstream-target}"
exec cargo run --release --locked -- demo "$@"
