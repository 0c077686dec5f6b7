#!/usr/bin/env bash
# Regenerates Sources/SceneStreamSparkplug/sparkplug_b.pb.swift from sparkplug_b.proto. Run by hand when the .proto
# changes; the output is committed, so neither protoc nor the plugin is needed to build.
# Needs: protoc (Debian protobuf-compiler) and protoc-gen-swift built from apple/swift-protobuf at the version in
# Package.swift (swift build -c release --product protoc-gen-swift in a checkout), on PATH or in $PROTOC_GEN_SWIFT.
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}"
protoc --plugin=protoc-gen-swift="$plugin" \
    --proto_path=Sources/SceneStreamSparkplug --swift_out=Sources/SceneStreamSparkplug sparkplug_b.proto
