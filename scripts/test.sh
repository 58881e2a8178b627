#!/usr/bin/env bash
# Runs every test of the workspace, as CI does: the crates' unit, integration and doc tests
# (the conformance suite for every driver, in process and over IPC, among them; --all-features
# builds the driver executables), the out-of-workspace example driver that proves the suite's
# macros work for a third-party crate, and the Python and JavaScript drivers' own protocol tests.
#
# Environment: STORAGEDRIVER_SUITE=full runs the Go sizes (5 GiB stream, 32 writers × 32 MiB);
# STORAGEDRIVER_REQUIRE_SERVERS=1 (set here) turns a skipped server-backed fixture into a failure.
#
# Test servers: scripts/servers.sh start runs Garage (single node and a 3-node cluster), ministack
# (S3) and Azurite (Azure Blob) on 127.0.0.1, and the settings it writes
# (target/servers/servers.env, or under $STORAGEDRIVER_SERVERS_DIR) are sourced; a trap stops them
# by pid on any exit. A server that fails to start fails the run. STORAGEDRIVER_SERVERS=external
# skips this: the servers were started elsewhere and their STORAGEDRIVER_S3_* and
# STORAGEDRIVER_AZURE_* variables are already exported.
set -euo pipefail
cd "$(dirname "$0")/.."

export STORAGEDRIVER_REQUIRE_SERVERS="${STORAGEDRIVER_REQUIRE_SERVERS:-1}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"

if [ "${STORAGEDRIVER_SERVERS:-}" = external ]; then
    echo "== test servers: external (STORAGEDRIVER_SERVERS=external), not started here"
else
    echo "== scripts/servers.sh start"
    trap 'scripts/servers.sh stop' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    scripts/servers.sh start
    # shellcheck source=/dev/null
    source "${STORAGEDRIVER_SERVERS_DIR:-$PWD/target/servers}/servers.env"
fi

echo "== cargo test --workspace --all-features"
cargo test --workspace --all-features --locked

echo "== examples/custom-driver: the suite on a driver outside the workspace"
CARGO_TARGET_DIR="$target_dir" cargo test --manifest-path examples/custom-driver/Cargo.toml --locked

echo "== examples/python-driver: the Python driver's own protocol tests"
python3 examples/python-driver/tests/test_pydir.py

echo "== examples/js-driver: the JavaScript driver's own protocol tests"
node --test examples/js-driver/tests/
