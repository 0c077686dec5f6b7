import Testing

@testable import SceneStreamProtocol

@Suite struct MessageTests {
    @Test(arguments: ProtocolVectors.all.map(\.name))
    func everyMessageRoundTrips(_ name: String) throws {
        let v = ProtocolVectors.all.first { $0.name == name }!
        let encoder = try MessageEncoder()
        let decoder = try MessageDecoder()
        if let m = v.client {
            let bytes = encoder.encode(m)
            #expect(try decoder.decodeClientMessage(bytes) == m)
        } else {
            let m = v.server!
            for compress in [false, true] {
                let bytes = encoder.encode(m, compress: compress)
                #expect(try decoder.decodeServerMessage(bytes) == m)
            }
        }
    }

    @Test func coversEveryMessageType() {
        let types = Set(ProtocolVectors.all.map { v in v.client.map { $0.encodedBody().0 } ?? v.server!.encodedBody().0 })
        for t in [
            MessageType.hello, .subscribe, .ack, .presence, .select, .annotate, .handoffOffer, .handoffClaim, .playback, .ping,
            .listSessions, .refreshToken, .follow, .welcome, .keyframe, .delta, .alerts, .sessionState, .handoff, .error, .pong,
        ] {
            #expect(types.contains(t), "no vector for \(t)")
        }
    }

    @Test func serverMessageIsNotAClientMessage() throws {
        let bytes = try MessageEncoder().encode(ServerMessage.pong(nonce: 1, serverTimeMs: 2))
        #expect(throws: ProtocolError(.unknownMessageType(0x88), "client message")) {
            try MessageDecoder().decodeClientMessage(bytes)
        }
    }

    @Test func compressionOnlyWhenSmaller() throws {
        let encoder = try MessageEncoder(compressionThreshold: 0)
        let small = encoder.encode(ServerMessage.pong(nonce: 1, serverTimeMs: 2))
        #expect(small[1] == 0, "a tiny body does not shrink, so it is sent plain")
        let frame = ProtocolVectors.all.first { $0.name == "server-keyframe-deflated" }!.server!
        let big = encoder.encode(frame, compress: true)
        #expect(big[1] == EnvelopeFlags.deflated)
        #expect(big.count < encoder.encode(frame, compress: false).count)
    }

    @Test func deltaUpdateAppliesBack() {
        let base = WireNode(parent: 3, name: "n", translation: QVec3(10, 20, 30), rotation: QRotation(largest: 3, 5, 6, 7), label: "a")
        var cur = base
        cur.translation = QVec3(-5, 20, 31)
        cur.rotation = QRotation(largest: 1, 1, 2, 3)
        cur.label = "b"
        cur.visible = false
        let u = NodeUpdate(index: 9, from: base, to: cur)!
        #expect(u.fields == [.translation, .rotation, .label, .visible])
        #expect(!u.rotation.isDelta)
        var applied = base
        u.apply(to: &applied)
        #expect(applied == cur)
        #expect(NodeUpdate(index: 9, from: base, to: base) == nil)
    }
}
