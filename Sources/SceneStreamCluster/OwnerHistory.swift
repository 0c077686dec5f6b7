import Dispatch
import Foundation
import SceneStreamNATS

/// A fan-out node's question to the owner about the twin history (for playback): the state at a moment, the
/// updates in a stretch, or where history starts.
public struct HistoryRequest: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// Every property's value at `atMs`.
        case state
        /// The updates with `fromMs <= time < toMs`, oldest first.
        case updates
        /// The oldest moment the history can rebuild.
        case oldest
    }

    public var kind: Kind
    public var atMs: UInt64
    public var fromMs: UInt64
    public var toMs: UInt64

    public init(kind: Kind, atMs: UInt64 = 0, fromMs: UInt64 = 0, toMs: UInt64 = 0) {
        self.kind = kind
        self.atMs = atMs
        self.fromMs = fromMs
        self.toMs = toMs
    }
}

/// The owner's answer.
public struct HistoryAnswer: Codable, Sendable, Equatable {
    /// An HTTP ingest body holding the updates (a state or a stretch); nil: no state that old.
    public var batch: Data?
    /// For a stretch: the answer covers `fromMs ..< throughMs` (less than asked when it was long).
    public var throughMs: UInt64?
    /// For `oldest`.
    public var oldestMs: UInt64?
    /// Why the owner could not answer.
    public var error: String?

    public init(batch: [UInt8]? = nil, throughMs: UInt64? = nil, oldestMs: UInt64? = nil, error: String? = nil) {
        self.batch = batch.map { Data($0) }
        self.throughMs = throughMs
        self.oldestMs = oldestMs
        self.error = error
    }

    /// The most bytes an answer may have: NATS's default payload limit is 1 MB.
    public static let maxBytes = 900_000

    public func encoded() -> [UInt8] { Array((try? JSONEncoder().encode(self)) ?? Data()) }
}

/// Asks the scene's owner about its history, off the caller's thread (each question waits up to `timeoutMs` for
/// its answer on a queue of its own); answers come back through callbacks on that queue.
public final class OwnerHistory: @unchecked Sendable {
    // @unchecked: immutable; the connection is thread-safe.
    private let connection: NATSConnection
    private let subject: String
    private let timeoutMs: Int64
    private let queue = DispatchQueue(label: "scenestream.owner-history", attributes: .concurrent)

    public init(connection: NATSConnection, subjects: ClusterSubjects, timeoutMs: Int64 = 5000) {
        self.connection = connection
        subject = subjects.history
        self.timeoutMs = timeoutMs
    }

    /// Asks `request`; `done` gets the answer, or why there is none (no owner answering, a malformed answer).
    public func ask(_ request: HistoryRequest, done: @escaping @Sendable (Result<HistoryAnswer, ClusterError>) -> Void) {
        let body = Array((try? JSONEncoder().encode(request)) ?? Data())
        queue.async { [self] in
            let reply: NATSMessage
            do { reply = try connection.request(subject, body, timeoutMs: timeoutMs) } catch {
                return done(.failure(ClusterError("the scene's owner did not answer a history request: \(error)")))
            }
            guard let a = try? JSONDecoder().decode(HistoryAnswer.self, from: Data(reply.payload)) else {
                return done(.failure(ClusterError("the owner's history answer is malformed")))
            }
            if let e = a.error { return done(.failure(ClusterError("the owner: \(e)"))) }
            done(.success(a))
        }
    }
}
