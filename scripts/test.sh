#!/usr/bin/env bash
# Runs floodgate's whole test suite on a fresh Debian machine, installing what it needs first.
#
# The integration tests start everything they use themselves (gateways, mock upstreams, gRPC and WebSocket
# servers, etcd) on 127.0.0.1 with free ports, so nothing has to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the build or the tests need, installed only when missing.
need_packages=()
command -v cc >/dev/null 2>&1 || need_packages+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_packages+=(pkg-config)
# The etcd client's gRPC code is generated at build time; the etcd tests run a real etcd.
command -v protoc >/dev/null 2>&1 || need_packages+=(protobuf-compiler)
command -v etcd >/dev/null 2>&1 || need_packages+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_packages+=(etcd-client)
# The cluster-wide rate limit tests run a real Redis.
command -v redis-server >/dev/null 2>&1 || need_packages+=(redis-server)
# docs/operations.md's cluster walk-through, run by a test, uses curl.
command -v curl >/dev/null 2>&1 || need_packages+=(curl)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing: ${need_packages[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_packages[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install the Rust toolchain (https://rustup.rs) first" >&2
    exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    cargo install --locked cargo-nextest
fi

# A full run builds everything once: incremental-compilation caches would only add gigabytes to the disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Many tests hold hundreds of sockets open at once.
ulimit -n 65536 2>/dev/null || true

# Formatting and lints first: a change that breaks either does not land.
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# The fuzz targets of the HTTP/1.1 codec and of the plugins, for a bounded time each (skipped without a
# nightly toolchain; the same properties also run on stable in the suite below, over the committed
# corpus). 10 s for each of the twenty-one targets keeps this near 3.5 minutes warm and 7 from nothing
# (installing cargo-fuzz and building included), so the whole run stays well under 20 minutes on two
# cores (the last CI run took 20.7 minutes at 15 s a target); longer runs are `./scripts/fuzz.sh 600`
# by hand.
./scripts/fuzz.sh 10

# Doc examples next, so the run ends with nextest's summary of the whole suite.
cargo test --workspace --doc --quiet
cargo nextest run --workspace --profile ci
