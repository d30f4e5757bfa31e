#!/usr/bin/env bash
# Runs every test of the workspace: Rust (fmt, clippy, nextest, doctests), the @mirage/vfs
# package (built as it ships, then `node --test`), and the examples. Safe to run again and
# again on a fresh machine: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

need() { command -v "$1" >/dev/null 2>&1; }
step() { printf '\n==> %s\n' "$*"; }

if ! need cargo; then
    echo "tests/run.sh: cargo is required (install Rust from https://rustup.rs)" >&2
    exit 1
fi
if ! need node || ! need npm; then
    echo "tests/run.sh: Node.js 20 or newer with npm is required" >&2
    exit 1
fi
if ! need cargo-nextest; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi
# The addon is linked against glibc 2.17 with zig, so that it loads on old distributions.
if ! need cargo-zigbuild; then
    step "installing cargo-zigbuild"
    cargo install --locked cargo-zigbuild
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import ziglang' 2>/dev/null; then
    step "installing zig (PyPI ziglang) into .venv"
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check ziglang
fi
if ! need objdump; then
    step "installing binutils"
    apt-get install -y binutils >/dev/null
fi
export PATH="$root/.venv/bin:$PATH"

step "npm install"
npm install --no-audit --no-fund --ignore-scripts

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast
step "doctests and docs"
cargo test --workspace --doc --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "build @mirage/vfs"
npm run build --workspace @mirage/vfs
step "node --test"
npm test --workspace @mirage/vfs

step "examples"
cargo run --quiet --locked -p mirage-examples --bin kv_resource >/dev/null
cargo run --quiet --locked -p mirage-examples --bin agents >/dev/null
npm run example --silent --workspace mirage-examples-ts >/dev/null
npm run http --silent --workspace mirage-examples-ts >/dev/null
echo
echo "all tests passed"
