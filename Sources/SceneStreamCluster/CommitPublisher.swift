import Dispatch
import Foundation
import SceneStreamNATS

/// The owner's side of the commit stream: publishes each committed version (an encoded delta) and periodic
/// keyframes to JetStream, in order, from a queue of its own — the service thread hands over bytes and never
/// waits for NATS. When a publish fails (NATS down, stream full) the rest of the backlog is dropped and the
/// owner is asked for a keyframe, so followers resume from a whole state rather than from a hole.
public final class CommitPublisher: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`; `js` is thread-safe; publishing happens on `queue` only.
    private let js: NATSJetStream
    public let subjects: ClusterSubjects
    private let queue = DispatchQueue(label: "scenestream.commit-publisher")
    private let lock = NSLock()
    private var backlog = 0
    private var wantKeyframe = false
    private var counts = Counts()
    private var lastError: String?
    /// The most frames waiting to be published; beyond it the owner is asked for a keyframe instead.
    public let maxBacklog: Int

    /// Published and failed counts, for `/metrics`.
    public struct Counts: Sendable, Equatable {
        public var commits = 0
        public var keyframes = 0
        public var failures = 0
        public var dropped = 0
        public var bytes = 0
        /// Stream sequence of the last publish acknowledged.
        public var lastSequence: UInt64 = 0
        public init() {}
    }

    /// A publisher on stream `subjects.stream`, which it creates (or updates) with `replicas` copies keeping
    /// `retentionSeconds` of commits.
    public init(connection: NATSConnection, subjects: ClusterSubjects, replicas: Int, retentionSeconds: Int, maxBacklog: Int = 600) throws(NATSError) {
        js = try NATSJetStream(connection)
        self.subjects = subjects
        self.maxBacklog = maxBacklog
        try js.addStream(
            subjects.stream, subjects: [subjects.commits, subjects.keyframes], replicas: replicas,
            maxAgeMs: Int64(retentionSeconds) * 1000)
    }

    /// The last keyframe and the commits after it, as stored (for an owner that starts: it continues the
    /// stream's version sequence).
    public func lastKeyframe() throws(NATSError) -> StreamMessage? {
        try js.lastMessage(stream: subjects.stream, subject: subjects.keyframes)
    }

    /// The last commit stored, if any.
    public func lastCommit() throws(NATSError) -> StreamMessage? {
        try js.lastMessage(stream: subjects.stream, subject: subjects.commits)
    }

    /// Queues the delta that made `version`.
    public func publishCommit(_ bytes: [UInt8], version: UInt64) { enqueue(bytes, subject: subjects.commits, id: "\(subjects.scene)/\(version)/d", keyframe: false) }

    /// Queues a keyframe of `version`.
    public func publishKeyframe(_ bytes: [UInt8], version: UInt64) { enqueue(bytes, subject: subjects.keyframes, id: "\(subjects.scene)/\(version)/k", keyframe: true) }

    /// Whether the next publish should be a keyframe (after a failure or an overflow); reading it clears it.
    public func takeKeyframeRequest() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let w = wantKeyframe
        wantKeyframe = false
        return w
    }

    /// Counts so far.
    public var snapshot: Counts {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    /// The last failure's text, once (for a log line), then nil.
    public func takeError() -> String? {
        lock.lock()
        defer { lock.unlock() }
        let e = lastError
        lastError = nil
        return e
    }

    /// Waits until everything queued so far was published (or failed).
    public func drain() { queue.sync {} }

    private func enqueue(_ bytes: [UInt8], subject: String, id: String, keyframe: Bool) {
        lock.lock()
        if backlog >= maxBacklog && !keyframe {
            counts.dropped += 1
            wantKeyframe = true
            lock.unlock()
            return
        }
        backlog += 1
        lock.unlock()
        queue.async { [self] in
            var failure: String?
            var seq: UInt64 = 0
            // After a failure, deltas are pointless until a keyframe: followers would see a gap anyway.
            lock.lock()
            let skip = wantKeyframe && !keyframe
            lock.unlock()
            if !skip {
                do { seq = try js.publish(subject, bytes, messageId: id) } catch { failure = "\(error)" }
            }
            lock.lock()
            backlog -= 1
            if skip {
                counts.dropped += 1
            } else if let failure {
                counts.failures += 1
                wantKeyframe = true
                if lastError == nil { lastError = failure }
            } else {
                if keyframe { counts.keyframes += 1 } else { counts.commits += 1 }
                counts.bytes += bytes.count
                counts.lastSequence = seq
            }
            lock.unlock()
        }
    }
}
