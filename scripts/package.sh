#!/usr/bin/env bash
# Packages every crate as it would be published, then builds each package on its own from its
# .crate, against the other packaged crates and crates.io (what `cargo package` verifies).
#
# `cargo package --workspace` does verify by itself, but in cargo 1.95 its verification reuses a
# dependency built for an earlier package of the same run with that package's features: the
# trait crate built for `storagedriver-ipc` (without `object-store`) is taken as fresh when
# `driver-s3`, which needs `object-store`, is verified, and the build fails. So this packages
# with --no-verify and builds each unpacked package separately in a scratch workspace whose
# [patch.crates-io] points at the unpacked crates. Uncommitted changes (a local run) are
# packaged as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

dirty=()
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    echo "(uncommitted changes in the working tree: packaging with --allow-dirty)"
    dirty=(--allow-dirty)
fi
cargo package --workspace --all-features --locked --no-verify "${dirty[@]}"

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
check="$target_dir/package-check"
rm -rf "$check"
mkdir -p "$check"
members=()
patches=()
for crate in "$target_dir"/package/*.crate; do
    tar -xzf "$crate" -C "$check"
    dir=$(basename "$crate" .crate)
    name=${dir%-*}
    members+=("\"$dir\"")
    patches+=("$name = { path = \"$dir\" }")
done
{
    echo "[workspace]"
    echo "resolver = \"3\""
    echo "members = [$(IFS=,; echo "${members[*]}")]"
    echo
    echo "[patch.crates-io]"
    printf '%s\n' "${patches[@]}"
} > "$check/Cargo.toml"
cp Cargo.lock "$check/Cargo.lock"
for dir in "$check"/*/; do
    name=$(basename "$dir")
    name=${name%-*}
    echo "== verify $name (built on its own from its .crate, all features)"
    (cd "$check" && CARGO_TARGET_DIR="$target_dir/package-check-target" cargo build -p "$name" --all-features)
done
# Only built to be checked, never run: its gigabytes go (CI's disk is shared with the test build).
rm -rf "$target_dir/package-check-target"
