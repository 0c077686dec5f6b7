// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "SceneStream",
    platforms: [.macOS(.v14), .iOS(.v17), .visionOS(.v1)],
    products: [
        .executable(name: "scenestream", targets: ["scenestream"]),
        .executable(name: "scenestream-bench", targets: ["scenestream-bench"]),
        .library(name: "SceneStreamTestSupport", targets: ["SceneStreamTestSupport"]),
        .library(name: "SceneStreamProtocol", targets: ["SceneStreamProtocol"]),
        .library(name: "SceneStreamReplica", targets: ["SceneStreamReplica"]),
        .library(name: "SceneStreamCore", targets: ["SceneStreamCore"]),
        .library(name: "SceneStreamClient", targets: ["SceneStreamClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.0.0"..<"5.0.0"),
    ],
    targets: [
        // zlib, wrapped once: no C pointer leaves SceneStreamDeflate.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(name: "SceneStreamDeflate", dependencies: ["CZlib"], swiftSettings: strict),
        // libwebsockets, wrapped once: a small C layer and Swift types; no C pointer leaves SceneStreamTransport.
        .systemLibrary(name: "CLibWebSockets", pkgConfig: "libwebsockets", providers: [.apt(["libwebsockets-dev"])]),
        .target(name: "CSceneStreamLWS", dependencies: ["CLibWebSockets"]),
        .target(
            name: "SceneStreamTransport",
            dependencies: ["CSceneStreamLWS", .product(name: "HTTPTypes", package: "swift-http-types"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // HTTP routes with their access rules, and files served only from inside their folders.
        .target(name: "SceneStreamHTTP", dependencies: [.product(name: "HTTPTypes", package: "swift-http-types")], swiftSettings: strict),
        // The wire format: messages, quantization, frame codec. Pure, no I/O.
        .target(name: "SceneStreamProtocol", dependencies: ["SceneStreamDeflate"], swiftSettings: strict),
        // A client's copy of the scene, built from keyframes and deltas. Pure, no I/O.
        .target(name: "SceneStreamReplica", dependencies: ["SceneStreamProtocol"], swiftSettings: strict),
        // Twin store, history, scene graph, bindings, rules, interest, delta engine. Pure, no I/O.
        .target(
            name: "SceneStreamCore",
            dependencies: ["SceneStreamProtocol", .product(name: "DequeModule", package: "swift-collections")],
            swiftSettings: strict),
        // glTF 2.0 scenes (.gltf, .glb) → plant folders: nodes, deduplicated model files, colours, a report. Pure.
        .target(name: "SceneStreamImport", dependencies: ["SceneStreamCore"], swiftSettings: strict),
        // Twin models in DTDL v3: interfaces, twins and relationships from the plant folder; values checked against them. Pure.
        .target(name: "SceneStreamTwinModels", dependencies: ["SceneStreamCore"], swiftSettings: strict),
        // Plant layouts (asset generation) and the deterministic plant simulator. Pure, no I/O.
        .target(name: "SceneStreamSimulation", dependencies: ["SceneStreamCore"], swiftSettings: strict),
        // The Swift client: a protocol state machine over a replica, and transports (libwebsockets on Linux).
        .target(
            name: "SceneStreamClient",
            dependencies: [
                "SceneStreamProtocol", "SceneStreamReplica",
                .target(name: "SceneStreamTransport", condition: .when(platforms: [.linux])),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // MQTT through libmosquitto, wrapped once.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .target(
            name: "SceneStreamMQTT", dependencies: ["CMosquitto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // NATS (libnats), wrapped once: the cluster's transport between nodes (issue 12).
        .systemLibrary(name: "CNATS", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        .target(name: "SceneStreamNATS", dependencies: ["CNATS"], swiftSettings: strict),
        // Sparkplug B host application: births, aliases, sequence numbers, deaths → twin updates. Pure, no I/O.
        // The protobuf code is generated once (scripts/generate-protobuf.sh) and committed.
        .target(
            name: "SceneStreamSparkplug",
            dependencies: ["SceneStreamCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            exclude: ["sparkplug_b.proto"],
            swiftSettings: strict),
        // OPC UA PubSub, JSON over MQTT (OPC 10000-14): network messages, metadata, sequence numbers → twin updates. Pure.
        .target(name: "SceneStreamOPCUA", dependencies: ["SceneStreamCore"], swiftSettings: strict),
        // Ingest rules: the queue a tick drains (ordered, budgeted), dedupe and stale marks, HTTP ingest bodies. Pure.
        .target(name: "SceneStreamIngest", dependencies: ["SceneStreamCore"], swiftSettings: strict),
        // Durable twin state, history, checkpoints and sessions in embedded SQLite (GRDB), on its own queue.
        .target(
            name: "SceneStreamStorage",
            dependencies: ["SceneStreamCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        // Connections, sessions, handoff codes, rooms, presence and annotation limits, playback: state machines
        // that take the time and return what to do. Pure, no I/O.
        .target(name: "SceneStreamSessions", dependencies: ["SceneStreamProtocol", "SceneStreamCore"], swiftSettings: strict),
        // The cluster over NATS: the owner's commit stream (the protocol's own frames), fan-out nodes following it,
        // the owner lease. Decisions are pure (FollowState); NATS work runs on queues of its own.
        .target(
            name: "SceneStreamCluster", dependencies: ["SceneStreamNATS", "SceneStreamProtocol", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // The server: ingest, commits, per-client streaming, HTTP endpoints, metrics.
        .target(
            name: "SceneStreamServer",
            dependencies: [
                "SceneStreamCore", "SceneStreamIngest", "SceneStreamSessions", "SceneStreamStorage", "SceneStreamSimulation", "SceneStreamTransport", "SceneStreamHTTP", "SceneStreamMQTT", "SceneStreamSparkplug",
                "SceneStreamOPCUA", "SceneStreamTwinModels", "SceneStreamCluster",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // The server's command line: serve, watch, assets, vectors.
        .executableTarget(
            name: "scenestream",
            dependencies: [
                "SceneStreamCore", "SceneStreamReplica", "SceneStreamSimulation", "SceneStreamServer", "SceneStreamTransport", "SceneStreamClient", "SceneStreamCluster",
                "SceneStreamImport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // Benchmarks that print numbers, out of the shipping executable: codec, fanout, handoff, playback, ingest, cluster.
        .executableTarget(
            name: "scenestream-bench",
            dependencies: [
                "SceneStreamCore", "SceneStreamDeflate", "SceneStreamReplica", "SceneStreamSimulation", "SceneStreamServer", "SceneStreamStorage", "SceneStreamClient",
                "SceneStreamMQTT", "SceneStreamSparkplug", "SceneStreamTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
        // For tests: a manual clock for the pure parts, the real server binary started on a free port, a nats-server
        // cluster on loopback.
        .target(name: "SceneStreamTestSupport", swiftSettings: strict),
        .testTarget(name: "SceneStreamNATSTests", dependencies: ["SceneStreamNATS", "SceneStreamTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "SceneStreamClusterTests",
            dependencies: ["SceneStreamCluster", "SceneStreamNATS", "SceneStreamCore", "SceneStreamProtocol", "SceneStreamTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "SceneStreamProtocolTests",
            dependencies: ["SceneStreamProtocol", "SceneStreamReplica"],
            swiftSettings: strict),
        .testTarget(
            name: "SceneStreamCoreTests",
            dependencies: [
                "SceneStreamCore", "SceneStreamReplica", "SceneStreamSimulation", "SceneStreamSparkplug",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict),
        .testTarget(
            name: "SceneStreamHTTPTests",
            dependencies: ["SceneStreamHTTP", "SceneStreamTransport", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: strict),
        .testTarget(name: "SceneStreamSessionsTests", dependencies: ["SceneStreamSessions", "SceneStreamCore", "SceneStreamProtocol", "SceneStreamTestSupport"], swiftSettings: strict),
        .testTarget(name: "SceneStreamTwinModelsTests", dependencies: ["SceneStreamTwinModels", "SceneStreamCore"], swiftSettings: strict),
        .testTarget(name: "SceneStreamImportTests", dependencies: ["SceneStreamImport", "SceneStreamCore"], swiftSettings: strict),
        .testTarget(name: "SceneStreamIngestTests", dependencies: ["SceneStreamIngest", "SceneStreamCore", "SceneStreamOPCUA"], swiftSettings: strict),
        .testTarget(
            name: "SceneStreamStorageTests", dependencies: ["SceneStreamStorage", "SceneStreamCore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        .testTarget(
            name: "SceneStreamServerTests",
            dependencies: ["SceneStreamServer", "SceneStreamCore", "SceneStreamIngest"],
            swiftSettings: strict),
        .testTarget(
            name: "SceneStreamE2ETests",
            dependencies: [
                "SceneStreamClient", "SceneStreamTestSupport", "SceneStreamProtocol", "SceneStreamReplica", "SceneStreamTransport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)

// libFuzzer targets for every decoder that takes bytes from outside. Built only on request, with the fuzzer
// instrumenting everything: SCENESTREAM_FUZZ=1 swift build -c release --scratch-path .build-fuzz \
//   --product fuzz-client-messages -Xswiftc -sanitize=fuzzer   (see Fuzz/README.md)
// SCENESTREAM_FUZZ=fast leaves AddressSanitizer out (Swift's own checks still trap): several times the inputs a
// second, for long runs; any other value builds with it.
if let fuzz = Context.environment["SCENESTREAM_FUZZ"] {
    let sanitize = fuzz == "fast" ? "-sanitize=fuzzer" : "-sanitize=fuzzer,address"
    let fuzzers: [(String, [String])] = [
        ("fuzz-client-messages", ["SceneStreamProtocol"]),
        ("fuzz-server-frames", ["SceneStreamProtocol", "SceneStreamReplica"]),
        ("fuzz-frames-v2", ["SceneStreamProtocol", "SceneStreamReplica"]),
        ("fuzz-plant-files", ["SceneStreamCore"]),
        ("fuzz-mqtt-payloads", ["SceneStreamCore"]),
        ("fuzz-sparkplug-payloads", ["SceneStreamSparkplug"]),
        ("fuzz-opcua-json", ["SceneStreamOPCUA"]),
        ("fuzz-token-claims", ["SceneStreamServer"]),
    ]
    package.targets.append(
        .target(name: "FuzzDriver", path: "Fuzz/Sources/FuzzDriver", swiftSettings: [.unsafeFlags([sanitize])]))
    for (name, deps) in fuzzers {
        package.targets.append(
            .executableTarget(
                name: name, dependencies: ["FuzzDriver"] + deps.map { .target(name: $0) }, path: "Fuzz/Sources/\(name)",
                swiftSettings: [.unsafeFlags(["-parse-as-library", sanitize])],
                linkerSettings: [.unsafeFlags([sanitize])]))
        package.products.append(.executable(name: name, targets: [name]))
    }
}
