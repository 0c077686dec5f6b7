import Dispatch
import Foundation
import SceneStreamNATS
import SceneStreamProtocol

/// A fan-out node's side of the commit stream. Live frames come over the scene's core NATS subjects, so a JetStream
/// leader election (a NATS server lost) does not pause them; a catch-up (at start, after a gap) reads the stream's
/// last keyframe and the commits stored after it. Every message is decoded with the protocol's own decoder and
/// left, in arrival order, for the service thread to take. NATS reads happen on a queue of its own.
public final class CommitFollower: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`; `js` and `connection` are thread-safe; catch-ups run on `queue`.
    private let js: NATSJetStream
    private let connection: NATSConnection
    public let subjects: ClusterSubjects
    private let queue = DispatchQueue(label: "scenestream.commit-follower")
    private let lock = NSLock()
    private var inbox: [SceneFrame] = []
    private var alertInbox: [(active: Bool, records: [AlertRecord])] = []
    private var anchorInbox: [AnchorRecord]?
    private var notes: [String] = []
    private var failedCatchUps = 0
    private var subscription: NATSSubscription?
    private var stopped = false
    private var counts = Counts()
    private let decoder: MessageDecoder
    private var frameHandler: (@Sendable () -> Void)?
    /// The most commits a catch-up reads back (beyond them it waits for the next live keyframe).
    public let maxCatchUp: Int

    /// Received and refused counts, for `/metrics`.
    public struct Counts: Sendable, Equatable {
        public var received = 0
        public var refused = 0
        public var catchUps = 0
        public var catchUpFailures = 0
        public var bytes = 0
        public init() {}
    }

    /// A follower of scene `subjects.scene` on `connection`.
    public init(
        connection: NATSConnection, subjects: ClusterSubjects, maxMessageBytes: Int = 64 << 20, maxCatchUp: Int = 3000, domain: String? = nil
    ) throws(NATSError) {
        js = try NATSJetStream(connection, domain: domain)
        self.connection = connection
        self.subjects = subjects
        self.maxCatchUp = maxCatchUp
        do {
            decoder = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: maxMessageBytes, maxInflatedBytes: 4 * maxMessageBytes))
        } catch {
            throw NATSError(text: "frame decoder: \(error)")
        }
    }

    /// Called (on a libnats thread) after each frame is left in the inbox, so the service thread can take it at
    /// once rather than at its next tick.
    public func onFrame(_ handler: @escaping @Sendable () -> Void) {
        lock.lock()
        frameHandler = handler
        lock.unlock()
    }

    /// Subscribes to the live frames and catches up from the stream.
    public func start() throws(NATSError) {
        let sub = try connection.subscribe("\(subjects.prefix).*") { [weak self] m in
            self?.received(m.payload, subject: m.subject, from: "live")
        }
        lock.lock()
        subscription = sub
        lock.unlock()
        catchUp()
    }

    /// Reads the last keyframe and the commits after it (again every second until it can).
    public func catchUp() {
        queue.async { [self] in
            lock.lock()
            let stop = stopped
            counts.catchUps += 1
            lock.unlock()
            if !stop { readBack() }
        }
    }

    /// Stops following.
    public func stop() {
        lock.lock()
        stopped = true
        let s = subscription
        subscription = nil
        lock.unlock()
        s?.cancel()
        queue.sync {}
    }

    /// The frames received since the last call, in arrival order, and what was refused or failed (with why).
    public func take() -> (frames: [SceneFrame], notes: [String]) {
        lock.lock()
        defer { lock.unlock() }
        let r = (inbox, notes)
        inbox.removeAll(keepingCapacity: true)
        notes.removeAll()
        return r
    }

    /// Alerts received since the last call, in order: events, or the owner's whole active set (`active`).
    public func takeAlerts() -> [(active: Bool, records: [AlertRecord])] {
        lock.lock()
        defer { lock.unlock() }
        let r = alertInbox
        alertInbox.removeAll()
        return r
    }

    /// The owner's anchors, if they arrived since the last call (the latest set).
    public func takeAnchors() -> [AnchorRecord]? {
        lock.lock()
        defer { lock.unlock() }
        let r = anchorInbox
        anchorInbox = nil
        return r
    }

    /// Counts so far.
    public var snapshot: Counts {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    private func readBack() {
        // The owner answers with a keyframe of its scene now: no wait for JetStream (which may be electing a
        // leader just when a lost server made this node miss versions). Without an owner, the stream's.
        if let reply = try? connection.request(subjects.sync, [], timeoutMs: 1000) {
            received(reply.payload, subject: subjects.keyframes, from: "the owner")
            return
        }
        do {
            // No keyframe yet (the owner has not started): live frames will bring one.
            guard let key = try js.lastMessage(stream: subjects.stream, subject: subjects.keyframes) else { return }
            received(key.payload, subject: key.subject, from: "stream \(key.sequence)")
            let last = try js.lastMessage(stream: subjects.stream, subject: subjects.commits)?.sequence ?? 0
            guard last > key.sequence else { return }
            for seq in (key.sequence + 1)...min(last, key.sequence + UInt64(maxCatchUp)) {
                guard let m = try js.message(stream: subjects.stream, sequence: seq), m.subject == subjects.commits else { continue }
                received(m.payload, subject: m.subject, from: "stream \(seq)")
            }
        } catch {
            lock.lock()
            counts.catchUpFailures += 1
            if counts.catchUpFailures <= 3 || counts.catchUpFailures % 60 == 0 {
                notes.append("catching up from \(subjects.stream) failed (trying again every second): \(error)")
            }
            let stop = stopped
            lock.unlock()
            if !stop { queue.asyncAfter(deadline: .now() + 1) { [self] in readBack() } }
        }
    }

    private func received(_ payload: [UInt8], subject: String, from: String) {
        lock.lock()
        let before = inbox.count
        received(locked: payload, subject: subject, from: from)
        let handler = inbox.count > before ? frameHandler : nil
        lock.unlock()
        handler?()
    }

    private func received(locked payload: [UInt8], subject: String, from: String) {
        // Other subjects of the scene (collaboration, sync requests) are not for followers.
        let known = [subjects.commits, subjects.keyframes, subjects.alerts, subjects.activeAlerts, subjects.anchors]
        guard !stopped, known.contains(subject) else { return }
        counts.received += 1
        counts.bytes += payload.count
        do {
            if subject == subjects.anchors {
                guard case .anchors(let scene, let records) = try decoder.decodeServerMessage(payload), scene == subjects.scene else {
                    throw ProtocolError(.invalidValue, "not an anchors message of this scene")
                }
                anchorInbox = records
                return
            }
            if subject == subjects.alerts || subject == subjects.activeAlerts {
                guard case .alerts(let records) = try decoder.decodeServerMessage(payload) else {
                    throw ProtocolError(.invalidValue, "not an alerts message")
                }
                alertInbox.append((subject == subjects.activeAlerts, records))
                return
            }
            guard case .frame(let f) = try decoder.decodeServerMessage(payload) else {
                throw ProtocolError(.invalidValue, "not a frame")
            }
            guard f.isKeyframe == (subject == subjects.keyframes) else {
                throw ProtocolError(.invalidValue, "a \(f.isKeyframe ? "keyframe" : "delta") on \(subject)")
            }
            guard f.kind.sceneId.map({ $0 == subjects.scene }) ?? true else {
                throw ProtocolError(.invalidValue, "a keyframe of another scene")
            }
            inbox.append(f)
        } catch {
            counts.refused += 1
            if counts.refused <= 5 || counts.refused % 1000 == 0 { notes.append("refused a message on \(subject) (\(from)): \(error)") }
        }
    }
}

extension SceneFrame.Kind {
    /// A keyframe's scene id (nil for a delta).
    var sceneId: String? {
        if case .keyframe(let id, _) = self { return id }
        return nil
    }
}
