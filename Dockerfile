# syntax=docker/dockerfile:1
#
# riftstream in a container:
#
#   docker build -t riftstream .
#   docker run --rm riftstream --help
#   docker run --rm -v "$PWD/topology.toml:/etc/riftstream/topology.toml:ro" \
#     riftstream run --topology /etc/riftstream/topology.toml
#
# A cold build compiles RocksDB (C++), librdkafka, arrow/parquet and candle:
# about 35-40 minutes on 2 cores. The BuildKit cache mounts below keep the
# cargo registry and the target directory between builds, so a rebuild after a
# source change takes a minute or two.
#
# Linking: this builds for x86_64-unknown-linux-gnu (or the host's -gnu target),
# so the binary is NOT fully static. It links dynamically against glibc,
# libstdc++ (RocksDB), libgcc_s, OpenSSL 3 (rdkafka's `ssl` feature) and zlib;
# the runtime stage installs exactly those. A fully static binary would need
# `--target x86_64-unknown-linux-musl` with a musl C/C++ toolchain for RocksDB's
# C++ build and for librdkafka, vendored OpenSSL, and bindgen pointed at musl
# headers. That is not a one-line switch, so it is not offered as a build ARG.

# ---------------------------------------------------------------- builder
FROM rust:1-bookworm AS builder

# What scripts/setup.sh installs for the build (redis-server is only for the
# tests): a C/C++ toolchain for RocksDB and librdkafka (vendored; its own
# configure + make, no cmake), libclang for RocksDB's bindgen, OpenSSL headers
# for rdkafka's TLS, zlib headers for rdkafka's `libz`.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential pkg-config libclang-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /build
# What the crate needs to build: the manifest, the lock file, the sources,
# the Avro schemas and the demo's training CSV (include_str!/include_bytes!),
# and benches/ (Cargo.toml declares a [[bench]] target).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY schemas ./schemas
COPY data ./data
COPY benches ./benches

RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin riftstream \
 && cp target/release/riftstream /usr/local/bin/riftstream

# ---------------------------------------------------------------- runtime
FROM debian:bookworm-slim

# ca-certificates: TLS to Kafka, the Schema Registry and object stores.
# libssl3, libstdc++6, zlib1g: the shared libraries the binary links (above).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libstdc++6 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/riftstream --create-home riftstream

COPY --from=builder /usr/local/bin/riftstream /usr/local/bin/riftstream

USER riftstream
WORKDIR /var/lib/riftstream
# The shipped topology's default state directory is ./state, so state lands in
# /var/lib/riftstream/state unless RIFT_STATE says otherwise: mount a volume
# there to keep checkpoints across container restarts.
ENV RIFT_STATE=/var/lib/riftstream/state
# 9464: the shipped topology's admin endpoint (/metrics, /health); bind it to
# 0.0.0.0 in the topology to reach it from outside the container.
EXPOSE 9464

ENTRYPOINT ["riftstream"]
CMD ["--help"]
