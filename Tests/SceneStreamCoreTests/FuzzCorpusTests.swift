import Foundation
import SceneStreamProtocol
import SceneStreamReplica
import Testing

@testable import SceneStreamCore
import SceneStreamSparkplug

/// Replays the inputs the libFuzzer runs kept (Tests/Fuzz/corpus/TARGET/*) through the same decoders, so that
/// whatever they found stays fixed.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")

    static func inputs(_ target: String) -> [[UInt8]] {
        let dir = root.appendingPathComponent(target)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.sorted().compactMap { try? [UInt8](Data(contentsOf: dir.appendingPathComponent($0))) }
    }

    @Test func clientMessages() throws {
        let inputs = Self.inputs("fuzz-client-messages")
        let decoder = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: 1 << 16, maxInflatedBytes: 1 << 20))
        var decoded = 0
        for b in inputs {
            if let m = try? decoder.decodeClientMessage(b) {
                decoded += 1
                #expect(try MessageDecoder().decodeClientMessage(try MessageEncoder().encode(m)) == m)
            }
        }
        #expect(inputs.count >= 50, "the committed corpus is there")
        #expect(decoded > 0, "some inputs are valid messages, so the round trip above ran")
    }

    @Test func theIndexGapOverflowFoundByTheFuzzerIsAnError() throws {
        let crash = try [UInt8](Data(contentsOf: Self.root.appendingPathComponent("fuzz-server-frames/crash-index-gap-overflow")))
        #expect(throws: ProtocolError.self) { try MessageDecoder().decodeServerMessage(crash) }
    }

    @Test func serverFrames() throws {
        let decoder = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: 1 << 16, maxInflatedBytes: 1 << 20))
        #expect(Self.inputs("fuzz-server-frames").count >= 50)
        for b in Self.inputs("fuzz-server-frames") {
            if case .frame(let f)? = try? decoder.decodeServerMessage(b) {
                var r = Replica()
                _ = try? r.apply(f)
                _ = try? r.apply(f)
            }
        }
    }

    @Test func framesV2() throws {
        #expect(Self.inputs("fuzz-frames-v2").count >= 50)
        var decoded = 0
        for b in Self.inputs("fuzz-frames-v2") {
            guard let f = try? FrameCodecV2.decodeMessage(b) else { continue }
            decoded += 1
            #expect(try FrameCodecV2.decodeMessage(FrameCodecV2.encodeMessage(f)) == f)
            var r = Replica()
            _ = try? r.apply(f)
        }
        #expect(decoded > 0)
    }

    @Test func plantFiles() {
        #expect(Self.inputs("fuzz-plant-files").count >= 50)
        for b in Self.inputs("fuzz-plant-files") {
            if let s = try? SceneFile.parse(b, file: "fuzz") { _ = try? s.makeGraph() }
            _ = try? BindingSet.parse(b, file: "fuzz")
            _ = try? RuleSet.parse(b, file: "fuzz")
        }
    }

    @Test func mqttPayloads() throws {
        let mappings = [try TopicMapping(pattern: "scenestream/{twin...}/{property}", twin: "{twin}", property: "{property}")]
        for b in Self.inputs("fuzz-mqtt-payloads") {
            let cut = b.firstIndex(of: 0) ?? b.count
            _ = TopicMapping.update(
                topic: String(decoding: b[..<cut], as: UTF8.self), payload: cut < b.count ? Array(b[(cut + 1)...]) : [],
                mappings: mappings, nowMs: 1)
        }
    }

    @Test func sparkplugPayloads() {
        let inputs = Self.inputs("fuzz-sparkplug-payloads")
        #expect(inputs.count >= 5)
        var actions = 0
        for b in inputs { actions += SparkplugFuzz.run(b) }
        #expect(actions > 0, "the seeds are real births and data, so the host acted on them")
    }
}
