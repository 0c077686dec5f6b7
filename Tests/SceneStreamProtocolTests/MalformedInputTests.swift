import Testing

@testable import SceneStreamProtocol
@testable import SceneStreamReplica

/// Bad input never crashes or hangs a decoder: it gives a typed error.
@Suite struct MalformedInputTests {
    static func allEncoded() throws -> [(ProtocolVectors.Direction, [UInt8])] {
        let e = try MessageEncoder(compressionThreshold: 0)
        return ProtocolVectors.all.flatMap { v -> [(ProtocolVectors.Direction, [UInt8])] in
            if let m = v.client { return [(v.direction, e.encode(m))] }
            return [(v.direction, e.encode(v.server!, compress: false)), (v.direction, e.encode(v.server!, compress: true))]
        }
    }

    func decode(_ d: MessageDecoder, _ dir: ProtocolVectors.Direction, _ bytes: [UInt8]) throws(ProtocolError) {
        if dir == .clientToServer { _ = try d.decodeClientMessage(bytes) } else { _ = try d.decodeServerMessage(bytes) }
    }

    @Test func everyTruncationIsATypedError() throws {
        let d = try MessageDecoder()
        var checked = 0
        for (dir, bytes) in try Self.allEncoded() {
            for cut in 0..<bytes.count {
                // Some prefixes are themselves valid messages (an empty trailing list); all others must throw.
                do {
                    try decode(d, dir, Array(bytes[0..<cut]))
                } catch {
                    checked += 1
                }
            }
        }
        #expect(checked > 1000)
    }

    @Test func byteSplitMessagesDoNotDecodeHalfway() throws {
        let d = try MessageDecoder()
        for (dir, bytes) in try Self.allEncoded() where bytes.count > 4 {
            let mid = bytes.count / 2
            #expect(throws: ProtocolError.self) {
                try decode(d, dir, Array(bytes[0..<mid]))
                // If the first half happens to parse, the second half alone must not be the same message.
                try decode(d, dir, Array(bytes[mid...]))
                throw ProtocolError(.truncated, "both halves parsed")
            }
        }
    }

    @Test func randomCorruptionNeverCrashes() throws {
        let d = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: 1 << 16, maxInflatedBytes: 1 << 20))
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        var errors = 0
        var replica = Replica()
        for (dir, bytes) in try Self.allEncoded() {
            for _ in 0..<300 {
                var b = bytes
                let flips = 1 + Int(next() % 4)
                for _ in 0..<flips where b.count > 2 {
                    let at = 2 + Int(next() % UInt64(b.count - 2))
                    b[at] = UInt8(truncatingIfNeeded: next())
                }
                do {
                    if dir == .serverToClient, case .frame(let f) = try d.decodeServerMessage(b) {
                        _ = try? replica.apply(f)
                    } else {
                        try decode(d, dir, b)
                    }
                } catch {
                    errors += 1
                }
            }
        }
        #expect(errors > 0)
    }

    @Test func oversizeMessagesAreRefusedBeforeDecoding() throws {
        let d = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: 64, maxInflatedBytes: 1024))
        let big = try MessageEncoder().encode(ClientMessage.refreshToken(token: String(repeating: "x", count: 100)))
        #expect(throws: ProtocolError(.tooLarge(limit: 64), "message")) { try d.decodeClientMessage(big) }
    }

    @Test func deflateBombIsRefused() throws {
        // 1 MiB of zeros deflates to about a kilobyte; the inflate limit stops it.
        let e = try MessageEncoder()
        let bomb = e.envelope(.refreshToken, body: [0x80, 0x80, 0x40] + [UInt8](repeating: 0x61, count: 1 << 20), compress: true)
        #expect(bomb.count < 4096)
        let d = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: 1 << 20, maxInflatedBytes: 64 * 1024))
        #expect(throws: ProtocolError(.tooLarge(limit: 64 * 1024), "refreshToken body")) { try d.decodeClientMessage(bomb) }
    }

    @Test func deltaWithIndexBeyondNodeSpaceIsRefused() throws {
        var u = NodeUpdate(index: 3, fields: [.visible])
        u.visible = false
        let f = SceneFrame(kind: .delta(base: 1), version: 2, timeMs: 0, nodeSpace: 4, updated: [u])
        var bytes = try MessageEncoder().encode(.frame(f), compress: false)
        // nodeSpace is the 5th byte: version(1) baseDistance(1) timeMs(1) nodeSpace.
        #expect(bytes[5] == 4)
        bytes[5] = 2
        #expect(throws: ProtocolError.self) { try MessageDecoder().decodeServerMessage(bytes) }
    }
}

@Suite struct ReplicaTests {
    let key = ProtocolVectors.all.first { $0.name == "server-keyframe" }!.server!

    func keyframe() -> SceneFrame {
        guard case .frame(let f) = key else { fatalError() }
        return f
    }

    @Test func keyframeThenDelta() throws {
        var r = Replica()
        try r.apply(keyframe())
        #expect(r.version == 42)
        #expect(r.path(of: 2) == "hall-a/robot-01/j1")
        var u = NodeUpdate(index: 2, fields: [.translation])
        u.translation = QVec3(0, 10, 0)
        try r.apply(SceneFrame(kind: .delta(base: 42), version: 43, timeMs: 1, nodeSpace: 3, updated: [u]))
        #expect(r.nodes[2]?.translation == QVec3(0, 510, 0))
        #expect(r.version == 43)
    }

    @Test func deltaOnTheWrongBaseLeavesTheReplicaAlone() throws {
        var r = Replica()
        try r.apply(keyframe())
        let before = r
        let bad = SceneFrame(kind: .delta(base: 41), version: 43, timeMs: 1, nodeSpace: 3, removed: [2])
        #expect(throws: ProtocolError(.baseMismatch(expected: 42, got: 41), "delta")) { try r.apply(bad) }
        #expect(r == before)
    }

    @Test func unknownNodesAreRefusedAtomically() throws {
        var r = Replica()
        try r.apply(keyframe())
        let before = r
        var u = NodeUpdate(index: 9, fields: [.visible])
        u.visible = false
        let bad = SceneFrame(kind: .delta(base: 42), version: 43, timeMs: 1, nodeSpace: 10, removed: [2], updated: [u])
        #expect(throws: ProtocolError(.unknownNode(9), "delta.updated")) { try r.apply(bad) }
        #expect(r == before)
        let orphan = SceneFrame(kind: .delta(base: 42), version: 43, timeMs: 1, nodeSpace: 10, entered: [NodeEntry(index: 8, node: WireNode(parent: 7, name: "x"))])
        #expect(throws: ProtocolError(.unknownNode(7), "parent of node 8")) { try r.apply(orphan) }
        #expect(r == before)
    }
}
