import Foundation

/// What a fan-out node sends the scene's owner on `scenestream.SCENE.collab`, at most once a tick: what its users
/// did (presence, selection, annotations — the client's own protocol messages, as they came), who left, and now
/// and then which of its sessions are still there. The owner applies the acts to its scene (its rules: zones,
/// roles, limits) and they come back to every node through the commit stream. JSON; nothing in it is twin state.
public struct CollaborationBatch: Codable, Sendable, Equatable {
    /// One user's message, with the user as the fan-out node authenticated them.
    public struct Act: Codable, Sendable, Equatable {
        public var session: String
        /// The connection on the sending node (where a refusal goes back).
        public var connection: UInt64
        public var user: String
        public var name: String
        /// The protocol's role code.
        public var role: UInt8
        /// Zones the user may see; nil: all.
        public var zones: [String]?
        /// The protocol's device code.
        public var device: UInt8
        /// The client message (an encoded protocol message: presence, select or annotate).
        public var message: Data

        public init(session: String, connection: UInt64, user: String, name: String, role: UInt8, zones: [String]?, device: UInt8, message: [UInt8]) {
            self.session = session
            self.connection = connection
            self.user = user
            self.name = name
            self.role = role
            self.zones = zones
            self.device = device
            self.message = Data(message)
        }
    }

    /// The sending node's name (answers go to ``CollaborationBatch/answersSubject(_:node:)``).
    public var node: String
    public var acts: [Act]
    /// Sessions whose users left this node (their presence and selection go at once).
    public var left: [String]
    /// Every session of the node that collaborates, when set (every few seconds): the owner forgets the others.
    public var alive: [String]?

    public init(node: String, acts: [Act] = [], left: [String] = [], alive: [String]? = nil) {
        self.node = node
        self.acts = acts
        self.left = left
        self.alive = alive
    }

    /// Whether there is anything to send.
    public var isEmpty: Bool { acts.isEmpty && left.isEmpty && alive == nil }

    /// The most bytes a batch may have (a larger one is refused unread).
    public static let maxBytes = 512 * 1024

    /// The batch in `bytes`, or why it is not one.
    public static func decode(_ bytes: [UInt8]) -> Result<CollaborationBatch, CollaborationError> {
        guard bytes.count <= maxBytes else { return .failure(.tooLarge(bytes.count)) }
        do {
            let b = try JSONDecoder().decode(CollaborationBatch.self, from: Data(bytes))
            guard !b.node.isEmpty else { return .failure(.malformed("no node")) }
            return .success(b)
        } catch {
            return .failure(.malformed("\(error)"))
        }
    }

    /// The batch as JSON.
    public func encoded() -> [UInt8] { Array((try? JSONEncoder().encode(self)) ?? Data()) }

    /// Where the owner answers node `node`'s refused acts.
    public static func answersSubject(_ subjects: ClusterSubjects, node: String) -> String {
        "\(subjects.collaboration).answers.\(ClusterSubjects.token(node))"
    }
}

/// The owner's refusal of one act, sent back to the node it came from, for its client.
public struct CollaborationAnswer: Codable, Sendable, Equatable {
    public var connection: UInt64
    public var session: String
    public var requestId: UInt32
    /// The protocol's error code.
    public var code: UInt16
    public var message: String

    public init(connection: UInt64, session: String, requestId: UInt32, code: UInt16, message: String) {
        self.connection = connection
        self.session = session
        self.requestId = requestId
        self.code = code
        self.message = message
    }
}

/// Why a collaboration message was not taken.
public enum CollaborationError: Error, Equatable, CustomStringConvertible {
    case tooLarge(Int)
    case malformed(String)

    public var description: String {
        switch self {
        case .tooLarge(let n): "a collaboration batch of \(n) bytes is over the \(CollaborationBatch.maxBytes)-byte limit"
        case .malformed(let why): "not a collaboration batch: \(why)"
        }
    }
}

/// The owner's book of collaborators on other nodes: which node each remote session is on and when each node was
/// last heard. A node that says which sessions it still has, or that goes quiet, tells the owner whose presence
/// and selection to take out of the scene. Pure: `now` comes in.
public struct RemoteCollaborators: Sendable, Equatable {
    /// How long a node may be quiet before its sessions are gone (it sends `alive` every few seconds).
    public let quietMs: UInt64
    public private(set) var nodeOf: [String: String] = [:]
    private var heardMs: [String: UInt64] = [:]

    public init(quietMs: UInt64 = 15_000) { self.quietMs = quietMs }

    /// Takes in a batch from `batch.node` at `nowMs`; returns the sessions that are gone (left, or not in `alive`).
    public mutating func heard(_ batch: CollaborationBatch, nowMs: UInt64) -> [String] {
        heardMs[batch.node] = nowMs
        var gone: [String] = []
        for s in batch.left where nodeOf[s] == batch.node {
            nodeOf[s] = nil
            gone.append(s)
        }
        for a in batch.acts { nodeOf[a.session] = batch.node }
        if let alive = batch.alive.map(Set.init) {
            for (s, n) in nodeOf where n == batch.node && !alive.contains(s) {
                nodeOf[s] = nil
                gone.append(s)
            }
        }
        return gone.sorted()
    }

    /// Sessions of nodes not heard from for `quietMs` (the node died or lost NATS): gone.
    public mutating func expire(nowMs: UInt64) -> [String] {
        let quiet = Set(heardMs.filter { nowMs >= $0.value + quietMs }.map(\.key))
        guard !quiet.isEmpty else { return [] }
        for n in quiet { heardMs[n] = nil }
        let gone = nodeOf.filter { quiet.contains($0.value) }.map(\.key)
        for s in gone { nodeOf[s] = nil }
        return gone.sorted()
    }
}
