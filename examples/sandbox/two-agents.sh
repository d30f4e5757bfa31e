#!/usr/bin/env bash
# Two "agents" work on one project at the same time, each in its own fork of a session and
# its own sandbox; the better attempt is committed, the other is refused and kept, and only
# then does the project directory change.
#
# Usage: examples/sandbox/two-agents.sh [path/to/mirage-run]
# (default: target/debug/mirage-run, built with `cargo build -p mirage-run`)
set -euo pipefail
run=$(realpath "${1:-target/debug/mirage-run}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MIRAGE_STORE="$work/store"
mkdir "$work/project" && cd "$work/project"
printf 'def area(r):\n    return 3 * r * r\n' > circle.py

echo "== the project starts as:"; cat circle.py
"$run" --session main -- true 2>/dev/null

# Each agent edits circle.py in its own fork, inside its own sandbox, at the same time.
"$run" --fork main -- sh -c "sed -i 's/3 \* r \* r/3.14159 * r * r/' circle.py" 2>/dev/null &
"$run" --fork main -- sh -c "sed -i '1i import math' circle.py; sed -i 's/3 \* r \* r/math.pi * r ** 2/' circle.py" 2>/dev/null &
wait

echo "== sessions:"; "$run" sessions
for fork in main.1 main.2; do
    echo "== what $fork changed:"; "$run" diff "$fork" --text
done

# Pick the attempt that uses math.pi; the other then loses the race to commit.
if "$run" diff main.1 --text | grep -q math.pi; then best=main.1 other=main.2; else best=main.2 other=main.1; fi
"$run" commit "$best"
if "$run" commit "$other" 2>/dev/null; then echo "unexpected: both commits won" >&2; exit 1; fi
echo "== $other lost the race and keeps its changes:"; "$run" diff "$other"

"$run" commit main
echo "== the project now:"; cat circle.py
grep -q 'math.pi' circle.py
