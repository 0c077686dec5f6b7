import Dispatch
import Foundation
import SceneStreamNATS

/// The owner's side of the commit stream: each committed version (an encoded delta) and periodic keyframes, on
/// the scene's subjects, which the JetStream stream stores. Deltas go out as plain publishes from a queue of their
/// own, so followers get them live even while JetStream elects a new leader; keyframes are published with the
/// stream's acknowledgement from another queue, so the owner knows the stream holds a whole state to catch up
/// from. The service thread hands over bytes and never waits for NATS. After a failure (NATS down, a keyframe not
/// stored) the owner is asked for a keyframe.
public final class CommitPublisher: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`; `js` and `connection` are thread-safe.
    private let js: NATSJetStream
    private let connection: NATSConnection
    public let subjects: ClusterSubjects
    private let deltas = DispatchQueue(label: "scenestream.commit-publisher")
    private let keyframes = DispatchQueue(label: "scenestream.keyframe-publisher")
    private let lock = NSLock()
    private var backlog = 0
    private var keyframeInFlight = false
    private var wantKeyframe = false
    private var counts = Counts()
    private var lastError: String?
    /// The most deltas waiting to be published; beyond it the owner is asked for a keyframe instead.
    public let maxBacklog: Int

    /// Published and failed counts, for `/metrics`.
    public struct Counts: Sendable, Equatable {
        public var commits = 0
        public var keyframes = 0
        public var failures = 0
        public var dropped = 0
        public var bytes = 0
        /// Stream sequence of the last keyframe stored.
        public var lastKeyframeSequence: UInt64 = 0
        public init() {}
    }

    /// A publisher on stream `subjects.stream`, which it creates (or updates) with `replicas` copies keeping
    /// `retentionSeconds` of commits.
    public init(
        connection: NATSConnection, subjects: ClusterSubjects, replicas: Int, retentionSeconds: Int, maxBacklog: Int = 600, domain: String? = nil
    ) throws(NATSError) {
        js = try NATSJetStream(connection, domain: domain)
        self.connection = connection
        self.subjects = subjects
        self.maxBacklog = maxBacklog
        try js.addStream(
            subjects.stream, subjects: [subjects.commits, subjects.keyframes, subjects.ingested], replicas: replicas,
            maxAgeMs: Int64(retentionSeconds) * 1000)
    }

    /// The stream's last keyframe, if any.
    public func lastKeyframe() throws(NATSError) -> StreamMessage? {
        try js.lastMessage(stream: subjects.stream, subject: subjects.keyframes)
    }

    /// The stream's last commit, if any.
    public func lastCommit() throws(NATSError) -> StreamMessage? {
        try js.lastMessage(stream: subjects.stream, subject: subjects.commits)
    }

    /// Queues the delta that made `version`.
    public func publishCommit(_ bytes: [UInt8], version: UInt64) {
        lock.lock()
        if backlog >= maxBacklog {
            counts.dropped += 1
            wantKeyframe = true
            lock.unlock()
            return
        }
        backlog += 1
        lock.unlock()
        deltas.async { [self] in
            var failure: String?
            do { try connection.publish(subjects.commits, bytes) } catch { failure = "\(error)" }
            lock.lock()
            backlog -= 1
            if let failure {
                counts.failures += 1
                wantKeyframe = true
                if lastError == nil { lastError = failure }
            } else {
                counts.commits += 1
                counts.bytes += bytes.count
            }
            lock.unlock()
        }
    }

    /// Queues a keyframe of `version`, unless one is still being stored (returns false then: ask again later).
    @discardableResult
    public func publishKeyframe(_ bytes: [UInt8], version: UInt64) -> Bool {
        lock.lock()
        if keyframeInFlight {
            lock.unlock()
            return false
        }
        keyframeInFlight = true
        lock.unlock()
        // After the deltas queued before it, so that a follower never sees the keyframe before older deltas.
        deltas.async { [self] in
            keyframes.async { [self] in
                var failure: String?
                var seq: UInt64 = 0
                do { seq = try js.publish(subjects.keyframes, bytes, messageId: "\(subjects.scene)/\(version)/k") } catch { failure = "\(error)" }
                lock.lock()
                keyframeInFlight = false
                if let failure {
                    counts.failures += 1
                    wantKeyframe = true
                    if lastError == nil { lastError = failure }
                } else {
                    counts.keyframes += 1
                    counts.bytes += bytes.count
                    counts.lastKeyframeSequence = seq
                }
                lock.unlock()
            }
        }
        return true
    }

    /// Publishes `bytes` on `subject`, in order with the deltas (alerts after the commit they came with).
    public func publishPlain(_ subject: String, _ bytes: [UInt8]) {
        deltas.async { [self] in try? connection.publish(subject, bytes) }
    }

    /// Sends `bytes` (a keyframe) to `reply` (a follower's sync request), after the deltas queued before it.
    public func reply(_ bytes: [UInt8], to reply: String) {
        deltas.async { [self] in try? connection.publish(reply, bytes) }
    }

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

    /// Waits until everything queued so far was published (or failed), and NATS has it.
    public func drain() {
        deltas.sync {}
        keyframes.sync {}
        try? connection.flush(timeoutMs: 2000)
    }
}
