import SceneStreamClient
import SceneStreamProtocol
import SceneStreamReplica
import Testing

/// The client state machine on its own (no socket): a delta that does not apply makes it ask for a keyframe
/// (§7.4), drop the deltas already on their way, and carry on from the keyframe.
@Suite struct ClientSessionTests {
    let encoder = try! MessageEncoder()
    let decoder = try! MessageDecoder()

    func keyframe(_ version: UInt64, label: String) -> [UInt8] {
        encoder.encode(
            .frame(
                SceneFrame(
                    kind: .keyframe(sceneId: "demo", quantization: Quantization()), version: version, timeMs: 1, nodeSpace: 1,
                    entered: [NodeEntry(index: 0, node: WireNode(name: "root", label: label))])))
    }

    func delta(base: UInt64, version: UInt64, label: String) -> [UInt8] {
        var u = NodeUpdate(index: 0, fields: [.label])
        u.label = label
        return encoder.encode(.frame(SceneFrame(kind: .delta(base: base), version: version, timeMs: 2, nodeSpace: 1, updated: [u])))
    }

    @Test func aDeltaThatDoesNotApplyAsksForAKeyframeAndDropsDeltasUntilItComes() throws {
        let s = try ClientSession(options: ClientOptions(interest: InterestSpec(sceneId: "demo")))
        var (out, _) = try s.receive(keyframe(10, label: "a"))
        #expect(try out.map { try decoder.decodeClientMessage($0) } == [.ack(version: 10)])
        // Base 11 is not the replica's version (10): the frame is refused whole and a keyframe is asked for.
        let events: [ClientEvent]
        (out, events) = try s.receive(delta(base: 11, version: 12, label: "b"))
        guard out.count == 1, case .requestKeyframe = try decoder.decodeClientMessage(out[0]) else {
            Issue.record("no requestKeyframe sent: \(out)")
            return
        }
        guard case .resyncing = events.first else {
            Issue.record("no resyncing event: \(events)")
            return
        }
        #expect(s.awaitingKeyframe && s.replica.version == 10 && s.replica.nodes[0]?.label == "a")
        // A delta that would apply to version 10 is still dropped (and not acked): it was sent before the request.
        (out, _) = try s.receive(delta(base: 10, version: 13, label: "c"))
        #expect(out.isEmpty && s.replica.version == 10 && s.replica.nodes[0]?.label == "a")
        // The keyframe replaces the replica; deltas apply again after it.
        (out, _) = try s.receive(keyframe(14, label: "d"))
        #expect(try out.map { try decoder.decodeClientMessage($0) } == [.ack(version: 14)])
        #expect(!s.awaitingKeyframe && s.replica.nodes[0]?.label == "d")
        (out, _) = try s.receive(delta(base: 14, version: 15, label: "e"))
        #expect(try out.map { try decoder.decodeClientMessage($0) } == [.ack(version: 15)])
        #expect(s.replica.version == 15 && s.replica.nodes[0]?.label == "e")
    }

    @Test func aVersion3SessionKeepsTheSitesAnchors() throws {
        let s = try ClientSession(options: ClientOptions(interest: InterestSpec(sceneId: "demo")))
        #expect(s.options.maxProtocolVersion == 3)
        _ = try s.receive(encoder.encode(.welcome(version: 3, sessionId: "s", sessionToken: "t", serverName: "x", heartbeatMs: 1000, maxMessageBytes: 65536, scenes: ["demo"], ackWindow: 8)))
        #expect(s.protocolVersion == 3)
        let yard = AnchorRecord(id: "yard", position: QVec3(12_500, 0, -3_250), rotation: SIMD4(0, 707_107, 0, 707_107), handles: [AnchorHandle(platform: "openxr", value: "6f1c")], updatedMs: 5)
        var (_, events) = try s.receive(encoder.encode(.anchors(sceneId: "demo", anchors: [yard])))
        guard case .anchors(let got) = events.first, got == [yard] else {
            Issue.record("no anchors event: \(events)")
            return
        }
        #expect(s.anchors == ["yard": yard])
        // The next message replaces the set.
        (_, events) = try s.receive(encoder.encode(.anchors(sceneId: "demo", anchors: [])))
        #expect(s.anchors.isEmpty && events.count == 1)
        // Version 3 frames are version 2's.
        let f = SceneFrame(kind: .keyframe(sceneId: "demo", quantization: Quantization()), version: 4, timeMs: 1, nodeSpace: 1, entered: [NodeEntry(index: 0, node: WireNode(name: "root", label: "v3"))])
        _ = try s.receive(encoder.encode(.frame(f), version: 2))
        #expect(s.replica.version == 4)
    }

    @Test func aKeyframeThatDoesNotApplyIsAnError() throws {
        let s = try ClientSession(options: ClientOptions(interest: InterestSpec(sceneId: "demo")))
        // A child whose parent is not in the keyframe breaks §6.7: nothing to ask for, the client stops.
        let bad = encoder.encode(
            .frame(
                SceneFrame(
                    kind: .keyframe(sceneId: "demo", quantization: Quantization()), version: 3, timeMs: 1, nodeSpace: 3,
                    entered: [NodeEntry(index: 2, node: WireNode(parent: 1, name: "orphan"))])))
        #expect(throws: ProtocolError.self) { try s.receive(bad) }
        #expect(s.replica.version == nil)
    }
}
