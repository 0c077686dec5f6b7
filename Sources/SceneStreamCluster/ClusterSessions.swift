import Crypto
import Dispatch
import Foundation
import SceneStreamNATS

/// What every node of a cluster sees of sessions and handoff codes: session records in a key-value bucket (keyed
/// by a hash of the session token: the key proves the token, and the bucket holds no token); handoff codes in
/// another, naming the node that offered them; claims decided by that node alone (a request to it), so a code is
/// claimed once across the cluster — nats-server before 2.9.21 may accept two concurrent compare-and-sets on one
/// key in a replicated stream (nats-server#4320), so a claim is not one; and a subject on which a node says it
/// took a session over (the node that had its device tells it and lets it go).
/// NATS work runs on a queue of its own; answers come back through callbacks on that queue.
public final class ClusterSessions: @unchecked Sendable {
    // @unchecked: the buckets and connection are thread-safe; counts are guarded by `lock`.
    private let sessions: NATSKeyValue
    private let codes: NATSKeyValue
    private let connection: NATSConnection
    private let queue = DispatchQueue(label: "scenestream.cluster-sessions")
    /// Claim answers and takeover announcements (core publishes): never behind a key-value write that waits for
    /// JetStream (a bucket electing a leader held a takeover notice back for more than ten seconds).
    private let messages = DispatchQueue(label: "scenestream.cluster-messages")
    /// Requests to other nodes wait here, not in front of the writes.
    private let requests = DispatchQueue(label: "scenestream.cluster-requests", attributes: .concurrent)
    private var claimSubscription: NATSSubscription?
    private let claimPrefix: String
    private let lock = NSLock()
    private var operations = 0
    private var failures = 0
    private var errors: [String] = []
    private var takenSubscription: NATSSubscription?
    /// Where takeovers are announced.
    public let takenSubject: String

    /// Binds (or creates) the buckets: sessions kept `sessionSeconds` after their last write, codes
    /// `codeSeconds`.
    public init(
        connection: NATSConnection, subjects: ClusterSubjects, replicas: Int, sessionSeconds: Int, codeSeconds: Int, domain: String? = nil
    ) throws(NATSError) {
        self.connection = connection
        sessions = try NATSKeyValue(connection, bucket: "scenestream-sessions", replicas: replicas, ttlMs: Int64(sessionSeconds) * 1000, domain: domain)
        codes = try NATSKeyValue(connection, bucket: "scenestream-handoffs", replicas: replicas, ttlMs: Int64(codeSeconds) * 1000, domain: domain)
        takenSubject = "\(subjects.prefix).sessions.taken"
        claimPrefix = "\(subjects.prefix).handoff.claim"
    }

    /// The bucket key of a session token: SHA-256, hex.
    public static func key(token: String) -> String {
        SHA256.hash(data: Array(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Operations and failures so far, for `/metrics`.
    public var counts: (operations: Int, failures: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (operations, failures)
    }

    /// Writes a session record (in the background; tried again for a few seconds while the bucket elects a
    /// leader, then counted as failed).
    public func saveSession(key: String, _ record: [UInt8]) {
        queue.async { [self] in
            for attempt in 0..<8 {
                if case .success = count({ () throws(NATSError) in _ = try sessions.put(key, record) }) { return }
                Thread.sleep(forTimeInterval: 0.25 * Double(attempt + 1))
            }
        }
    }

    /// Removes a session record (an empty value: the bucket forgets it with its lifetime).
    public func deleteSession(key: String) {
        queue.async { [self] in count { () throws(NATSError) in _ = try sessions.put(key, []) } }
    }

    /// Reads a session record; nil when there is none.
    public func loadSession(key: String, then: @escaping @Sendable (Result<[UInt8]?, NATSError>) -> Void) {
        queue.async { [self] in
            then(count { () throws(NATSError) -> [UInt8]? in try sessions.get(key).flatMap { $0.value.isEmpty ? nil : $0.value } })
        }
    }

    /// Offers a handoff code: true when it was free and is now this record, false when the code is taken.
    public func offer(code: String, _ record: [UInt8], then: @escaping @Sendable (Result<Bool, NATSError>) -> Void) {
        queue.async { [self] in then(count { () throws(NATSError) -> Bool in try codes.create(code, record) != nil }) }
    }

    /// Reads a code's record; nil when there is none (never offered, or gone a minute after its expiry).
    public func loadCode(_ code: String, then: @escaping @Sendable (Result<[UInt8]?, NATSError>) -> Void) {
        queue.async { [self] in
            then(count { () throws(NATSError) -> [UInt8]? in try codes.get(code).flatMap { $0.value.isEmpty ? nil : $0.value } })
        }
    }

    /// Asks node `node` to decide a claim (it offered the code); its answer, or an error when it does not answer.
    public func askClaim(node: String, _ request: [UInt8], then: @escaping @Sendable (Result<[UInt8], NATSError>) -> Void) {
        requests.async { [self] in
            then(count { () throws(NATSError) -> [UInt8] in try connection.request(claimSubject(node), request, timeoutMs: 2000).payload })
        }
    }

    /// Decides claims of the codes node `node` offered: `handler` gets each request and its reply subject.
    public func serveClaims(node: String, handler: @escaping @Sendable (_ request: [UInt8], _ reply: String) -> Void) throws(NATSError) {
        let sub = try connection.subscribe(claimSubject(node)) { m in
            if let reply = m.reply { handler(m.payload, reply) }
        }
        lock.lock()
        claimSubscription = sub
        lock.unlock()
    }

    /// Sends an answer to a request.
    public func reply(to subject: String, _ bytes: [UInt8]) {
        messages.async { [self] in count { () throws(NATSError) in try connection.publish(subject, bytes) } }
    }

    private func claimSubject(_ node: String) -> String {
        "\(claimPrefix).\(ClusterSubjects.token(node))"
    }

    /// Announces that this node took a session over.
    public func announceTaken(_ bytes: [UInt8]) {
        messages.async { [self] in count { () throws(NATSError) in try connection.publish(takenSubject, bytes) } }
    }

    /// Delivers other nodes' takeover announcements to `handler` (on a libnats thread).
    public func onTaken(_ handler: @escaping @Sendable ([UInt8]) -> Void) throws(NATSError) {
        let sub = try connection.subscribe(takenSubject) { handler($0.payload) }
        lock.lock()
        takenSubscription = sub
        lock.unlock()
    }

    /// Failures since the last call, for the log.
    public func takeErrors() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        let e = errors
        errors = []
        return e
    }

    /// Waits for queued writes.
    public func drain() {
        queue.sync {}
        messages.sync {}
    }

    @discardableResult
    private func count<T>(_ body: () throws(NATSError) -> T) -> Result<T, NATSError> {
        do {
            let v = try body()
            lock.lock()
            operations += 1
            lock.unlock()
            return .success(v)
        } catch {
            lock.lock()
            operations += 1
            failures += 1
            if errors.count < 20 { errors.append(error.description) }
            lock.unlock()
            return .failure(error)
        }
    }
}
