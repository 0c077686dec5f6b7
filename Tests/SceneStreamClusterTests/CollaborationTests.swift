import Foundation
import SceneStreamCluster
import SceneStreamProtocol
import Testing

/// What fan-out nodes send the owner: batches that read back the same, refusals of what is not one, and the
/// owner's book of who is on which node.
@Suite struct CollaborationTests {
    let encoder = try! MessageEncoder()

    func act(_ session: String, _ message: ClientMessage) -> CollaborationBatch.Act {
        CollaborationBatch.Act(
            session: session, connection: 7, user: "u-\(session)", name: "User \(session)", role: Role.participant.rawValue,
            zones: ["hall-a-line-01"], device: DeviceKind.desktop.rawValue, message: encoder.encode(message))
    }

    @Test func aBatchReadsBackTheSameAndCarriesTheClientsOwnMessage() throws {
        let b = CollaborationBatch(node: "fan-1", acts: [act("s1", .select(nodes: [3, 9])), act("s2", .annotate(requestId: 4, node: 3, offset: QVec3(1, 2, 3), text: "hot", remove: ""))], left: ["s0"], alive: ["s1", "s2"])
        let back = try CollaborationBatch.decode(b.encoded()).get()
        #expect(back == b)
        #expect(try MessageDecoder().decodeClientMessage([UInt8](back.acts[0].message)) == .select(nodes: [3, 9]))
        #expect(!back.isEmpty && CollaborationBatch(node: "fan-1").isEmpty)
    }

    @Test func whatIsNotABatchIsRefusedWithTheReason() {
        #expect(throws: CollaborationError.self) { try CollaborationBatch.decode(Array("garbage".utf8)).get() }
        #expect(throws: CollaborationError.self) { try CollaborationBatch.decode(Array(#"{"node":"","acts":[],"left":[]}"#.utf8)).get() }
        let huge = [UInt8](repeating: 0x20, count: CollaborationBatch.maxBytes + 1)
        #expect(CollaborationBatch.decode(huge) == .failure(.tooLarge(huge.count)))
        if case .failure(let e) = CollaborationBatch.decode(huge) { #expect(e.description.contains("limit")) }
    }

    @Test func answersGoToTheSendingNodesOwnSubject() {
        let s = ClusterSubjects(scene: "demo")
        #expect(CollaborationBatch.answersSubject(s, node: "fan.1 x") == "scenestream.demo.collab.answers.fan_1_x")
        #expect(CollaborationBatch.answersSubject(s, node: "a") != s.collaboration)
    }

    @Test func sessionsGoWhenTheyLeaveAreNotListedAliveOrTheirNodeGoesQuiet() {
        var book = RemoteCollaborators(quietMs: 15_000)
        #expect(book.heard(CollaborationBatch(node: "a", acts: [act("s1", .select(nodes: [])), act("s2", .select(nodes: []))]), nowMs: 1000) == [])
        #expect(book.heard(CollaborationBatch(node: "b", acts: [act("s3", .select(nodes: []))]), nowMs: 1000) == [])
        // A leave from another node than the session's own is not believed.
        #expect(book.heard(CollaborationBatch(node: "b", left: ["s1"]), nowMs: 2000) == [])
        #expect(book.heard(CollaborationBatch(node: "a", left: ["s1"]), nowMs: 2000) == ["s1"])
        // Node a lists its sessions: s2 is no longer among them.
        #expect(book.heard(CollaborationBatch(node: "a", alive: ["s9"]), nowMs: 6000) == ["s2"])
        #expect(book.nodeOf == ["s3": "b"])
        // Node b, last heard at 2 s, says nothing for 15 s: its session goes; node a, heard at 6 s, is not quiet yet.
        #expect(book.expire(nowMs: 16_999) == [])
        #expect(book.expire(nowMs: 17_000) == ["s3"])
        #expect(book.nodeOf.isEmpty)
        // A session that moves from one node to another belongs to the one it came from last.
        _ = book.heard(CollaborationBatch(node: "a", acts: [act("s4", .select(nodes: []))]), nowMs: 20_000)
        _ = book.heard(CollaborationBatch(node: "b", acts: [act("s4", .select(nodes: []))]), nowMs: 20_001)
        #expect(book.heard(CollaborationBatch(node: "a", left: ["s4"]), nowMs: 20_002) == [])
        #expect(book.nodeOf == ["s4": "b"])
    }
}
