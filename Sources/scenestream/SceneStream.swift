import ArgumentParser

@main
struct SceneStreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenestream",
        abstract: "Streams live digital-twin state as a 3D scene to many devices.",
        subcommands: [ServeCommand.self, WatchCommand.self, ImportCommand.self, AssetsCommand.self, VectorsCommand.self])
}

import Foundation
import SceneStreamProtocol

struct VectorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vectors", abstract: "Write the protocol test vectors (binary + JSON description).")

    @Option(help: "Output folder.") var out = "Protocol/vectors"

    func run() throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let encoder = try MessageEncoder(level: 6, compressionThreshold: 0)
        for v in ProtocolVectors.all {
            let bytes: [UInt8]
            let description: [String: Any]
            if let m = v.client {
                bytes = encoder.encode(m)
                description = MessageDescription.describe(m)
            } else {
                let m = v.server!
                bytes = encoder.encode(m, compress: v.deflated)
                description = MessageDescription.describe(m)
            }
            try write(v.name, bytes, ["direction": v.direction.rawValue, "deflated": v.deflated, "note": v.note, "message": description])
        }
        for v in ProtocolVectors.invalid {
            try write(v.name, v.bytes, ["direction": v.direction.rawValue, "note": v.note, "error": v.error])
        }
        for v in ProtocolVectors.version2 {
            try write(
                v.name, FrameCodecV2.encodeMessage(v.frame),
                ["direction": "server-to-client", "deflated": false, "protocolVersion": 2, "note": v.note, "message": MessageDescription.describe(.frame(v.frame))])
        }
        print("wrote \(ProtocolVectors.all.count + ProtocolVectors.invalid.count + ProtocolVectors.version2.count) vectors to \(out)")
    }

    func write(_ name: String, _ bytes: [UInt8], _ json: [String: Any]) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: "\(out)/\(name).bin"))
        var j = json
        j["hex"] = bytes.map { String(format: "%02x", $0) }.joined()
        let data = try JSONSerialization.data(withJSONObject: j, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: "\(out)/\(name).json"))
    }
}
