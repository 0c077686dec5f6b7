import Foundation
import SceneStreamCluster
import SceneStreamNATS
import SceneStreamTestSupport
import Testing

/// The ingest log against a real nats-server with JetStream: what a new owner replays is exactly the batches after
/// the commit stream's last marker.
@Suite(.serialized) struct IngestLogTests {
    @Test func aNewOwnerReplaysOnlyTheBatchesAfterTheLastMarker() throws {
        let nats = try NATSCluster(count: 3, jetStream: true)
        defer { nats.stop() }
        let conn = try NATSConnection(servers: nats.urls, name: "owner")
        let subjects = ClusterSubjects(scene: "demo")
        // The servers elect a JetStream leader after they meet: make the streams once it answers (bounded).
        var made: (CommitPublisher, IngestLog)?
        let deadline = Date().addingTimeInterval(30)
        while made == nil, Date() < deadline {
            made = try? (
                CommitPublisher(connection: conn, subjects: subjects, replicas: 3, retentionSeconds: 60),
                IngestLog(connection: conn, subjects: subjects, replicas: 3, retentionSeconds: 60, maxReplay: 4)
            )
            if made == nil { usleep(200_000) }
        }
        let (publisher, log) = try #require(made, "JetStream never answered")
        #expect(try log.unapplied().isEmpty, "an empty log replays nothing")

        let seqs = try (1...3).map { k in try log.append(Array("batch \(k)".utf8)) }
        #expect(seqs == seqs.sorted() && Set(seqs).count == 3)
        // No marker yet: everything acknowledged may be missing from the scene.
        #expect(try log.unapplied().map(\.payload) == (1...3).map { Array("batch \($0)".utf8) })

        // A marker after the commit that applied the first two.
        publisher.publishPlain(subjects.ingested, IngestLog.marker(through: seqs[1], version: 40))
        publisher.drain()
        // A marker is a plain publish: the stream stores it a moment after it arrives.
        #expect(eventually { (try? log.unapplied().map(\.sequence)) == [seqs[2]] })
        // A foreign or broken message on the marker subject is not a marker: the whole log (bounded) is replayed.
        #expect(IngestLog.markedSequence(Array("nonsense".utf8)) == nil)
        #expect(IngestLog.markedSequence(IngestLog.marker(through: 7, version: 1)) == 7)
        // The newest marker counts; at most `maxReplay` batches are read back, the newest.
        for k in 4...9 { _ = try log.append(Array("batch \(k)".utf8)) }
        publisher.publishPlain(subjects.ingested, Array("{\"through\":\"x\"}".utf8))
        publisher.drain()
        var replay: [StreamMessage] = []
        #expect(eventually {
            replay = (try? log.unapplied()) ?? []
            return replay.map(\.payload) == (6...9).map { Array("batch \($0)".utf8) }
        }, "\(replay.map { String(decoding: $0.payload, as: UTF8.self) })")
        publisher.publishPlain(subjects.ingested, IngestLog.marker(through: try #require(replay.last).sequence, version: 41))
        publisher.drain()
        #expect(eventually { (try? log.unapplied())?.isEmpty == true })
    }
}
