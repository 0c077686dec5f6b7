import Foundation
import SceneStreamReplica
import Testing

@testable import SceneStreamProtocol

/// The files in `Protocol/vectors/` are the contract for every client: each decodes to its definition and
/// re-encodes to the same bytes; each invalid one is refused with its error.
@Suite struct VectorTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Protocol/vectors")

    func load(_ name: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: Self.folder.appendingPathComponent("\(name).bin")))
    }

    @Test(arguments: ProtocolVectors.all.map(\.name))
    func vectorDecodesAndReencodesExactly(_ name: String) throws {
        let v = ProtocolVectors.all.first { $0.name == name }!
        let bytes = try load(name)
        let decoder = try MessageDecoder()
        let encoder = try MessageEncoder(level: 6, compressionThreshold: 0)
        if let m = v.client {
            #expect(try decoder.decodeClientMessage(bytes) == m)
            #expect(encoder.encode(m) == bytes)
        } else {
            let m = v.server!
            #expect(try decoder.decodeServerMessage(bytes) == m)
            #expect((bytes[1] & EnvelopeFlags.deflated != 0) == v.deflated)
            if v.deflated {
                // Deflate output is not canonical across zlib versions: compare the inflated body.
                let (_, body) = try decoder.open(bytes)
                #expect(body == m.encodedBody().1)
            } else {
                #expect(encoder.encode(m, compress: false) == bytes)
            }
        }
        // The JSON description names the same hex.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.folder.appendingPathComponent("\(name).json"))) as! [String: Any]
        #expect(json["hex"] as? String == bytes.map { String(format: "%02x", $0) }.joined())
    }

    @Test(arguments: ProtocolVectors.invalid.map(\.name))
    func invalidVectorIsRefused(_ name: String) throws {
        let v = ProtocolVectors.invalid.first { $0.name == name }!
        let bytes = try load(name)
        #expect(bytes == v.bytes)
        let decoder = try MessageDecoder()
        do {
            if v.direction == .clientToServer {
                _ = try decoder.decodeClientMessage(bytes)
            } else {
                _ = try decoder.decodeServerMessage(bytes)
            }
            Issue.record("\(name) decoded")
        } catch {
            #expect(String(describing: error.kind).hasPrefix(v.error), "\(name): got \(error)")
        }
    }

    @Test func theSequenceAppliedInOrderGivesItsReplica() throws {
        let decoder = try MessageDecoder()
        func frame(_ name: String) throws -> SceneFrame {
            guard case .frame(let f) = try decoder.decodeServerMessage(try load(name)) else { throw ProtocolError(.invalidValue, name) }
            return f
        }
        var replica = Replica()
        for k in 1...3 { _ = try replica.apply(try frame("server-sequence-\(k)")) }
        var want = Replica()
        _ = try want.apply(try frame("server-sequence-replica"))
        #expect(replica.version == 12 && replica.nodes == want.nodes)
        // Out of order, the second delta does not apply, and the replica stays as it was.
        var early = Replica()
        _ = try early.apply(try frame("server-sequence-1"))
        #expect(throws: ProtocolError.self) { try early.apply(try frame("server-sequence-3")) }
        #expect(early.version == 10 && early.nodes.count == 4)
    }

    @Test(arguments: ProtocolVectors.version2.map(\.name))
    func version2VectorDecodesAndReencodesExactly(_ name: String) throws {
        let v = ProtocolVectors.version2.first { $0.name == name }!
        let bytes = try load(name)
        #expect(try FrameCodecV2.decodeMessage(bytes) == v.frame)
        #expect(FrameCodecV2.encodeMessage(v.frame) == bytes)
    }

    @Test func noStrayFiles() throws {
        let names = Set(ProtocolVectors.all.map(\.name) + ProtocolVectors.invalid.map(\.name) + ProtocolVectors.version2.map(\.name))
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.folder.path)
        for f in files where f.hasSuffix(".bin") || f.hasSuffix(".json") {
            let stem = String(f.prefix { $0 != "." })
            #expect(names.contains(stem), "\(f) has no definition")
        }
        #expect(files.count == names.count * 2)
    }
}
