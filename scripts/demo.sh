#!/usr/bin/env bash
# Installs what SceneStream needs, builds it, and starts the server on its embedded default: the demo plant with
# the built-in simulator. It prints the viewer URL; stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product scenestream
exec .build/release/scenestream serve "$@"
