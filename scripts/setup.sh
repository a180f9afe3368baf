#!/usr/bin/env bash
# Installs the system packages riftstream's build needs (Debian/Ubuntu):
# a C/C++ toolchain for RocksDB and librdkafka, libclang for bindgen, OpenSSL
# for TLS to Kafka; and redis-server, the real Redis the tests run against.
# Runs apt only as root; otherwise says what is missing.
set -euo pipefail
packages=(build-essential pkg-config libclang-dev libssl-dev redis-server)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
elif [ ${#missing[@]} -gt 0 ]; then
  echo "riftstream needs these packages; install them (as root) and rerun: ${missing[*]}" >&2
  exit 1
fi
