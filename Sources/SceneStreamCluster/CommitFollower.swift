import Dispatch
import Foundation
import SceneStreamNATS
import SceneStreamProtocol

/// A fan-out node's side of the commit stream: reads the last keyframe and follows the stream from it (commits
/// and keyframes, in stream order), decoding each message with the protocol's own decoder and leaving the frames
/// for the service thread to take. NATS work (subscribing, re-reading after a gap, waiting for a stream that does
/// not exist yet) happens on a queue of its own.
public final class CommitFollower: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`; `js` is thread-safe; subscriptions change on `queue` only.
    private let js: NATSJetStream
    public let subjects: ClusterSubjects
    private let queue = DispatchQueue(label: "scenestream.commit-follower")
    private let lock = NSLock()
    private var inbox: [SceneFrame] = []
    private var refused: [String] = []
    private var subscription: NATSSubscription?
    private var stopped = false
    private var generation = 0
    private var counts = Counts()
    private let decoder: MessageDecoder

    /// Received and refused counts, for `/metrics`.
    public struct Counts: Sendable, Equatable {
        public var received = 0
        public var refused = 0
        public var catchUps = 0
        public var bytes = 0
        public init() {}
    }

    /// A follower of `subjects.stream` (it waits for the stream when it does not exist yet).
    public init(connection: NATSConnection, subjects: ClusterSubjects, maxMessageBytes: Int = 64 << 20) throws(NATSError) {
        js = try NATSJetStream(connection)
        self.subjects = subjects
        do {
            decoder = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: maxMessageBytes, maxInflatedBytes: 4 * maxMessageBytes))
        } catch {
            throw NATSError(text: "frame decoder: \(error)")
        }
    }

    /// Starts following from the last keyframe.
    public func start() { queue.async { [self] in subscribeFromKeyframe() } }

    /// Starts again from the last keyframe (after a gap).
    public func resync() {
        queue.async { [self] in
            lock.lock()
            counts.catchUps += 1
            lock.unlock()
            subscribeFromKeyframe()
        }
    }

    /// Stops following.
    public func stop() {
        queue.sync {
            lock.lock()
            stopped = true
            let s = subscription
            subscription = nil
            lock.unlock()
            s?.cancel()
        }
    }

    /// The frames received since the last call, in stream order, and the messages refused (with why).
    public func take() -> (frames: [SceneFrame], refused: [String]) {
        lock.lock()
        defer { lock.unlock() }
        let r = (inbox, refused)
        inbox.removeAll(keepingCapacity: true)
        refused.removeAll()
        return r
    }

    /// Counts so far.
    public var snapshot: Counts {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    private func subscribeFromKeyframe() {
        lock.lock()
        if stopped {
            lock.unlock()
            return
        }
        let old = subscription
        subscription = nil
        generation += 1
        let gen = generation
        lock.unlock()
        old?.cancel()
        do {
            // From the last keyframe on (it is the first message delivered); with none yet, from the start.
            let start = try js.lastMessage(stream: subjects.stream, subject: subjects.keyframes)?.sequence ?? 1
            let sub = try js.follow("\(subjects.prefix).*", from: start) { [weak self] m in self?.received(m, generation: gen) }
            lock.lock()
            if stopped || gen != generation {
                lock.unlock()
                sub.cancel()
                return
            }
            subscription = sub
            lock.unlock()
        } catch {
            // No stream yet (the owner has not started) or NATS is away: try again in a second.
            lock.lock()
            if refused.count < 100 { refused.append("following \(subjects.stream): \(error)") }
            lock.unlock()
            queue.asyncAfter(deadline: .now() + 1) { [self] in
                lock.lock()
                let current = gen == generation && subscription == nil
                lock.unlock()
                if current { subscribeFromKeyframe() }
            }
        }
    }

    private func received(_ m: StreamMessage, generation gen: Int) {
        lock.lock()
        defer { lock.unlock() }
        guard gen == generation, !stopped else { return }
        counts.received += 1
        counts.bytes += m.payload.count
        do {
            guard case .frame(let f) = try decoder.decodeServerMessage(m.payload) else {
                throw ProtocolError(.invalidValue, "not a frame")
            }
            let isKey = m.subject == subjects.keyframes
            guard f.isKeyframe == isKey, m.subject == subjects.commits || isKey else {
                throw ProtocolError(.invalidValue, "a \(f.isKeyframe ? "keyframe" : "delta") on \(m.subject)")
            }
            inbox.append(f)
        } catch {
            counts.refused += 1
            if refused.count < 100 { refused.append("message \(m.sequence) on \(m.subject): \(error)") }
        }
    }
}
