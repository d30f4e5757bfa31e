#!/usr/bin/env bash
# Builds the addon as it ships: linked against glibc 2.17 with zig (cargo-zigbuild), so that it
# loads on old distributions. Without zig it builds for this machine only, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(cd ../.. && pwd)
if [ -x "$root/.venv/bin/python" ]; then
    export PATH="$root/.venv/bin:$PATH"
fi
args=(--platform --release --strip --manifest-path ../../crates/mirage-node/Cargo.toml
      --package-json-path package.json --output-dir native --js binding.js --dts binding.d.ts)
if command -v cargo-zigbuild >/dev/null && { command -v zig >/dev/null || python3 -c 'import ziglang' 2>/dev/null; }; then
    napi build "${args[@]}" --cross-compile --target x86_64-unknown-linux-gnu.2.17
else
    echo "build-native: zig or cargo-zigbuild not found; building for this machine's glibc only" >&2
    echo "build-native: (tests/run.sh installs both; see docs/DEVELOPMENT.md)" >&2
    napi build "${args[@]}"
fi
cp native/mirage.linux-x64-gnu.node ../vfs-linux-x64-gnu/
