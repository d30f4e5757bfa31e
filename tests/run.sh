#!/usr/bin/env bash
# Runs every test of the workspace. Safe to run again and again on a fresh machine: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }

if ! need cargo; then
    echo "tests/run.sh: cargo is required (install Rust from https://rustup.rs)" >&2
    exit 1
fi
if ! need cargo-nextest; then
    echo "==> installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
if [ -n "$(find npm -name package.json -print -quit 2>/dev/null)" ]; then
    echo "==> npm install"
    npm install --no-audit --no-fund
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast
echo "==> doctests"
cargo test --workspace --doc --locked
echo "==> examples"
cargo run --quiet --locked -p mirage-examples --bin kv_resource >/dev/null
cargo run --quiet --locked -p mirage-examples --bin agents >/dev/null
echo "all tests passed"
