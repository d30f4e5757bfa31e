#!/usr/bin/env bash
# Runs every test of the workspace: the GitHub API server the Rust tests use (`node --test`,
# against GitHub's API description and recorded answers), Rust (fmt, clippy, nextest,
# doctests), the @mirage/vfs package (built as it ships, then `node --test`), and the
# examples. Safe to run again and again on a fresh machine: it installs only what is missing.
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
# Python tools in .venv: zig, and moto, the S3 server the object-store tests run against.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import ziglang' 2>/dev/null || [ ! -x .venv/bin/moto_server ]; then
    step "installing zig (PyPI ziglang) and moto[server] into .venv"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check ziglang "moto[server]"
fi
# Debian packages the tests use: objdump checks the addon's glibc symbols; the FUSE tests run
# real programs (rg, sqlite3, git) on a mount, fusermount3 serves unprivileged users, the
# sandbox tests drive a terminal (vim) with script and an unprivileged user with setpriv, and
# the WebDAV tests run Apache with mod_dav (in /usr/sbin, which may not be on a user's PATH).
missing=()
for pair in objdump:binutils rg:ripgrep sqlite3:sqlite3 git:git fusermount3:fuse3 script:bsdutils setpriv:util-linux vim:vim apache2:apache2; do
    need "${pair%%:*}" || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null ||
        { $sudo apt-get update -qq >/dev/null && $sudo apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi
if [ ! -e /dev/fuse ]; then
    echo "tests/run.sh: /dev/fuse is missing; the FUSE tests need it (modprobe fuse, or run where FUSE is available)" >&2
    exit 1
fi
export PATH="$root/.venv/bin:$PATH"

step "npm install"
npm install --no-audit --no-fund --ignore-scripts

step "GitHub API server (node --test)"
npm test --workspace mirage-github-server

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

# The Rust examples ran as tests of mirage-examples above; mirage-run was built for its tests.
step "examples"
npm run example --silent --workspace mirage-examples-ts >/dev/null
npm run http --silent --workspace mirage-examples-ts >/dev/null
examples/sandbox/two-agents.sh target/debug/mirage-run >/dev/null
echo
echo "all tests passed"
