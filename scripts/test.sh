#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds (our own code must build without warnings), runs every
# Swift test, then smoke-runs the benchmarks so they cannot rot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift build --build-tests 2>&1 | tee "$log"
if grep -E "^$(pwd)/(Sources|Tests)/.*warning:" "$log"; then
    echo "our code has compiler warnings (above); CI treats them as errors" >&2
    exit 1
fi

swift test --skip-build 2>&1 | tee "$log"
grep -qE "Test run with [0-9]+ tests? .* passed" "$log"

# The browser's decoder against every protocol vector (node's built-in test runner; no npm needed).
node --test Tests/web/

# The release build: tests that watch a healthy client's frame timing run it (the debug build cannot stream the
# reference plant at 30 Hz), and the benchmarks below.
swift build -c release --product scenestream
swift build -c release --product scenestream-bench

# End-to-end against the built binary with an independent client (Python websockets + a decoder written from
# Protocol/SPEC.md).
SCENESTREAM_BIN="$(pwd)/.build/debug/scenestream" SCENESTREAM_RELEASE_BIN="$(pwd)/.build/release/scenestream" \
    python3 -m pytest -q -p no:cacheprovider Tests/e2e

# Benchmarks must still run (numbers are not checked here; they go in closing notes).
.build/release/scenestream-bench codec --scenario plant --seconds 2 --json >/dev/null
.build/release/scenestream-bench codec --scenario cubes --seconds 2 --protocol 2 --json >/dev/null
.build/release/scenestream-bench playback --hours 0.01 --seeks 5 --json >/dev/null
.build/release/scenestream-bench playback --hours 0.01 --seeks 5 --source disk --json >/dev/null
.build/release/scenestream-bench ingest --updates 20000 --json >/dev/null
.build/release/scenestream-bench ingest --updates 50000 --format sparkplug --json >/dev/null
.build/release/scenestream-bench ingest --updates 50000 --format opcua --json >/dev/null
.build/release/scenestream-bench import --nodes 2000 --meshes 100 --json >/dev/null
.build/release/scenestream-bench aggregate --ticks 60 --json >/dev/null
.build/release/scenestream-bench cluster --seconds 1 --clients 20 --probes 2 --handoffs 3 --json >/dev/null
.build/release/scenestream assets --check >/dev/null
echo "all tests passed"
