import Foundation
import SceneStreamNATS

/// The owner's log of acknowledged HTTP ingest batches, so that a batch answered 200 is never lost with the owner.
///
/// An HTTP batch has no source to send it again (MQTT has retained messages and Sparkplug rebirths), so the owner
/// stores each one in a JetStream stream of its own (R = the cluster's replicas) before it answers; after the
/// commit that applied batches it puts a marker in the commit stream ("the log up to sequence S is in the scene",
/// in order with the commits). The next owner — a standby taking over, or the owner restarted — applies the
/// batches after the last marker ("acknowledged, maybe not committed"). A batch can be applied twice (the marker
/// after its commit was lost with the owner); the twin store drops such copies, so delivery is at least once and
/// the effect exactly once. Publishes wait for JetStream: call them off the service thread.
public final class IngestLog: @unchecked Sendable {
    // @unchecked: immutable; `js` is thread-safe.
    private let js: NATSJetStream
    public let subjects: ClusterSubjects
    /// The most batches a replay reads back (the newest ones).
    public let maxReplay: Int

    /// The log of scene `subjects.scene`, which it creates (or updates) with `replicas` copies keeping
    /// `retentionSeconds` of batches.
    public init(
        connection: NATSConnection, subjects: ClusterSubjects, replicas: Int, retentionSeconds: Int, maxReplay: Int = 10_000, domain: String? = nil
    ) throws(NATSError) {
        js = try NATSJetStream(connection, domain: domain)
        self.subjects = subjects
        self.maxReplay = maxReplay
        try js.addStream(subjects.ingestStream, subjects: [subjects.ingest], replicas: replicas, maxAgeMs: Int64(retentionSeconds) * 1000)
    }

    /// Stores `batch` (an ingest body) and waits until JetStream holds it; returns its sequence in the log.
    public func append(_ batch: [UInt8]) throws(NATSError) -> UInt64 {
        try js.publish(subjects.ingest, batch)
    }

    /// The marker that says the log up to `sequence` is applied in `version`.
    public static func marker(through sequence: UInt64, version: UInt64) -> [UInt8] {
        Array(#"{"through":\#(sequence),"version":\#(version)}"#.utf8)
    }

    /// The sequence a marker names, or nil for a payload that is not one.
    public static func markedSequence(_ payload: [UInt8]) -> UInt64? {
        guard let o = try? JSONSerialization.jsonObject(with: Data(payload)) as? [String: Any], let n = o["through"] as? NSNumber,
            n.doubleValue >= 0, n.doubleValue < 1.8e19, n.doubleValue == n.doubleValue.rounded()
        else { return nil }
        return n.uint64Value
    }

    /// The batches after the commit stream's last marker, oldest first: what an owner acknowledged that may not be
    /// in the scene. At most the newest `maxReplay`; none when the log is empty.
    public func unapplied() throws(NATSError) -> [StreamMessage] {
        let marker = try js.lastMessage(stream: subjects.stream, subject: subjects.ingested)
        let through = marker.flatMap { Self.markedSequence($0.payload) } ?? 0
        let (first, last) = try js.sequences(stream: subjects.ingestStream)
        let newestAllowed = last >= UInt64(maxReplay) ? last - UInt64(maxReplay) + 1 : 1
        let from = max(first, through + 1, newestAllowed)
        guard last >= from else { return [] }
        var out: [StreamMessage] = []
        for seq in from...last {
            if let m = try js.message(stream: subjects.ingestStream, sequence: seq), m.subject == subjects.ingest { out.append(m) }
        }
        return out
    }
}
