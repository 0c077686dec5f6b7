import Foundation
import SceneStreamCore
import SceneStreamStorage
import SceneStreamProtocol
import SceneStreamTransport

/// Who a connection speaks for. In the open demo mode the hello token may be `demo:USER[:ROLE]`; an empty token
/// is a guest. (Signed tokens come with authentication.)
struct Identity: Hashable, Sendable {
    var userId: String
    var displayName: String
    var role: Role
    /// Zones this identity may see; nil: all.
    var zones: Set<String>?
    /// Scenes this identity may see; nil: all.
    var scenes: Set<String>?
    /// When the token expires (ms since the epoch); nil: never (open mode).
    var expiresMs: UInt64?

    static func fromDemoToken(_ token: String) -> Identity? {
        if token.isEmpty {
            let id = "guest-" + StreamingServer.randomHex(3)
            return Identity(userId: id, displayName: id, role: .participant)
        }
        let parts = token.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts[0] == "demo", !parts[1].isEmpty, parts[1].count <= 64,
            parts[1].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." })
        else { return nil }
        var role = Role.participant
        if parts.count >= 3 {
            switch parts[2] {
            case "host": role = .host
            case "participant", "": role = .participant
            case "viewer": role = .viewer
            default: return nil
            }
        }
        return Identity(userId: parts[1], displayName: parts.count >= 4 && !parts[3].isEmpty ? parts[3] : parts[1], role: role)
    }
}

/// A user's session: survives devices coming and going (handoff, resume).
final class Session {
    let id: String
    var token: String
    var identity: Identity
    /// The user's colour in everyone's view (presence, selection, member list).
    var color: UInt32
    /// The device that streams the session now.
    var primary: ConnectionID?
    /// Devices that stay attached after a handoff that kept them.
    var companions: Set<ConnectionID> = []
    var device: DeviceKind
    var interest: InterestSpec?
    /// Frames the primary was sent and not yet acknowledged, and the last acknowledged one: where a resume starts.
    var acked: ClientBaseline?
    /// Frames sent to a device that dropped, not acknowledged by it.
    var pendingUnacked: [ClientBaseline] = []
    var viewpoint: Pose?
    var selection: [UInt32] = []
    var playback = PlaybackState.live
    var followUserId = ""
    var presenceAnchor: String?
    var lastSeenMs: UInt64
    var detachedAtMs: UInt64?

    init(id: String, token: String, identity: Identity, device: DeviceKind, nowMs: UInt64) {
        self.id = id
        self.token = token
        self.identity = identity
        self.device = device
        lastSeenMs = nowMs
        color = Self.palette[Self.paletteStart(identity.userId)]
    }

    /// Colours far apart, for up to twelve users at once.
    static let palette: [UInt32] = [
        0x3A7BD5FF, 0xEB3B2FFF, 0x27AE60FF, 0xF2994AFF, 0x9B51E0FF, 0x2D9CDBFF,
        0xF2C94CFF, 0x6FCF97FF, 0xE056FDFF, 0x8D6E63FF, 0x00BFA5FF, 0xFF80ABFF,
    ]

    /// Where a user's colour is looked for first (the same user gets the same colour on every node).
    static func paletteStart(_ userId: String) -> Int { Int(truncatingIfNeeded: fnvHash(userId) % UInt64(palette.count)) }

    /// The first colour from the user's own start that no other user in `taken` has (the user's own when all are).
    static func distinctColor(for userId: String, taken: [String: UInt32]) -> UInt32 {
        if let mine = taken[userId] { return mine }
        let used = Set(taken.values)
        let start = paletteStart(userId)
        for k in 0..<palette.count where !used.contains(palette[(start + k) % palette.count]) { return palette[(start + k) % palette.count] }
        return palette[start]
    }
}

/// What of a session is kept on disk (`sessions` in the storage database), so that after a restart — or a
/// `kill -9` — its device can resume it with its session token, and another device of the user can pull it with
/// the same interest. Connections, unacknowledged frames and presence are not kept: a resumed session starts with a
/// keyframe.
struct SessionRecord: Codable, Hashable {
    struct Box: Codable, Hashable {
        var anchor: String
        var min: [Int32]
        var max: [Int32]
    }

    struct Interest: Codable, Hashable {
        var sceneId: String
        var region: Box?
        var layers: [String]
        var zones: [String]
        var rateHz: UInt32
        var byteBudget: UInt32
    }

    var id: String
    var token: String
    var userId: String
    var displayName: String
    var role: UInt8
    var zones: [String]?
    var scenes: [String]?
    var expiresMs: UInt64?
    var device: UInt8
    var interest: Interest?
    var selection: [String]
    var followUserId: String
    var lastSeenMs: UInt64
    var detachedAtMs: UInt64?

    init(_ s: Session, nodeId: (UInt32) -> String?) {
        id = s.id
        token = s.token
        userId = s.identity.userId
        displayName = s.identity.displayName
        role = s.identity.role.rawValue
        zones = s.identity.zones.map { $0.sorted() }
        scenes = s.identity.scenes.map { $0.sorted() }
        expiresMs = s.identity.expiresMs
        device = s.device.rawValue
        interest = s.interest.map {
            Interest(
                sceneId: $0.sceneId,
                region: $0.region.map { Box(anchor: $0.anchor, min: [$0.min.x, $0.min.y, $0.min.z], max: [$0.max.x, $0.max.y, $0.max.z]) },
                layers: $0.layers, zones: $0.zones, rateHz: $0.rateHz, byteBudget: $0.byteBudget)
        }
        selection = s.selection.compactMap(nodeId)
        followUserId = s.followUserId
        lastSeenMs = s.lastSeenMs
        detachedAtMs = s.detachedAtMs
    }

    /// The session again, detached (no device until one resumes or pulls it).
    func session(nodeIndex: (String) -> UInt32?, nowMs: UInt64) -> Session? {
        guard let role = Role(rawValue: role) else { return nil }
        let identity = Identity(
            userId: userId, displayName: displayName, role: role, zones: zones.map(Set.init), scenes: scenes.map(Set.init), expiresMs: expiresMs)
        let s = Session(id: id, token: token, identity: identity, device: DeviceKind(rawValue: device) ?? .unknown, nowMs: lastSeenMs)
        s.interest = interest.map {
            InterestSpec(
                sceneId: $0.sceneId,
                region: $0.region.flatMap { b in
                    b.min.count == 3 && b.max.count == 3
                        ? Region(anchor: b.anchor, min: QVec3(b.min[0], b.min[1], b.min[2]), max: QVec3(b.max[0], b.max[1], b.max[2])) : nil
                },
                layers: $0.layers, zones: $0.zones, rateHz: $0.rateHz, byteBudget: $0.byteBudget)
        }
        s.selection = selection.compactMap(nodeIndex)
        s.followUserId = followUserId
        s.detachedAtMs = detachedAtMs ?? nowMs
        return s
    }
}

struct PresenceUpdate: Sendable {
    var head: Pose?
    var left: Pose?
    var right: Pose?
    var pointer: Pose?
}

/// An annotation pinned to a node, kept across restarts.
struct Annotation: Codable, Hashable {
    var id: String
    var sceneId: String
    var nodeId: String
    /// Offset from the node's origin in millimetres.
    var offset: [Int32]
    var text: String
    var author: String
    var timeMs: UInt64
}

/// Annotations in memory, with counts per author; written to one JSON file by an ``AnnotationWriter`` off the
/// service thread.
struct AnnotationStore {
    let path: String?
    private(set) var items: [Annotation] = []
    private(set) var countByAuthor: [String: Int] = [:]

    init(path: String?) throws {
        self.path = path
        guard let path, FileManager.default.fileExists(atPath: path) else { return }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, location: "", reason: "cannot read the annotations file")
        }
        do {
            items = try JSONDecoder().decode([Annotation].self, from: data)
        } catch {
            throw ConfigError(file: path, location: "", reason: "not a valid annotations file (\(error))")
        }
        for a in items { countByAuthor[a.author, default: 0] += 1 }
    }

    mutating func add(_ a: Annotation) {
        items.append(a)
        countByAuthor[a.author, default: 0] += 1
    }

    mutating func remove(_ id: String) -> Annotation? {
        guard let k = items.firstIndex(where: { $0.id == id }) else { return nil }
        let a = items.remove(at: k)
        countByAuthor[a.author, default: 1] -= 1
        return a
    }
}

/// Writes the annotations file on its own queue: the newest list wins, one write at a time (a burst of changes
/// costs one or two writes, not one each), fsynced before the atomic rename.
final class AnnotationWriter: @unchecked Sendable {
    private let path: String
    private let queue = DispatchQueue(label: "scenestream.annotations")
    private let lock = NSLock()
    private var latest: [Annotation]?
    private var scheduled = false
    private var failures: [String] = []

    init(path: String) { self.path = path }

    /// Saves `items` soon (replacing any list not yet written).
    func save(_ items: [Annotation]) {
        lock.lock()
        latest = items
        let start = !scheduled
        scheduled = true
        lock.unlock()
        if start { queue.async { BackgroundPriority.lower(); self.drain() } }
    }

    /// Waits for pending writes.
    func flush() { queue.sync {} }

    /// Write errors since the last call.
    func takeFailures() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        let f = failures
        failures = []
        return f
    }

    private func drain() {
        while true {
            lock.lock()
            guard let items = latest else {
                scheduled = false
                lock.unlock()
                return
            }
            latest = nil
            lock.unlock()
            do {
                try Self.write(items, to: path)
            } catch {
                lock.lock()
                failures.append("\(error)")
                lock.unlock()
            }
        }
    }

    static func write(_ items: [Annotation], to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try DurableFile.write(try enc.encode(items), to: path)
    }
}

func fnvHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 {
        h ^= UInt64(b)
        h = h &* 0x100_0000_01b3
    }
    return h
}
