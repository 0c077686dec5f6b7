import SceneStreamProtocol

/// What a client has: the version its replica is at and the filter that version was computed with.
public struct ClientBaseline: Hashable, Sendable {
    public var version: UInt64
    public var filter: InterestFilter

    /// Creates a baseline.
    public init(version: UInt64, filter: InterestFilter) {
        self.version = version
        self.filter = filter
    }
}

/// Computes and encodes frames for clients, once per distinct (baseline, filter) at each version.
///
/// Work per version grows with the number of changes times the number of distinct groups, never with the number
/// of clients: clients in one group share the same encoded (and compressed) bytes. One owner; no I/O.
public final class DeltaEngine {
    /// The scene it streams.
    public let graph: SceneGraph
    private let encoder: MessageEncoder
    private var membershipCache: [MembershipKey: Bitset] = [:]
    private var lastMembership: [InterestFilter: (version: UInt64, bits: Bitset)] = [:]
    private var frameCache: [FrameKey: EncodedFrame] = [:]
    /// Computed frames of this scene version, kept for a second protocol version's encoding — only while more than
    /// one protocol version is asked for (in this scene version or the one before): a server whose clients all
    /// speak one version stores nothing per group.
    private var sceneFrames: [FrameKey: SceneFrame] = [:]
    private var versionsAskedNow: Set<UInt32> = []
    private var versionsAskedBefore: Set<UInt32> = []
    private var frameCacheVersion: UInt64 = .max
    /// Frames encoded (cache misses) since creation.
    public private(set) var framesEncoded = 0
    /// Frames served from the cache since creation.
    public private(set) var framesShared = 0
    /// Frames computed (before encoding in any protocol version) since creation.
    public private(set) var framesComputed = 0
    /// Computed frames kept for another protocol version's encoding (at the current scene version).
    public var keptFrameCount: Int { sceneFrames.count }

    struct MembershipKey: Hashable {
        var filter: InterestFilter
        var version: UInt64
    }

    struct FrameKey: Hashable {
        var base: ClientBaseline?
        var filter: InterestFilter
        /// The protocol version it is encoded in (0 for the frame itself, before encoding).
        var protocolVersion: UInt32
    }

    /// An encoded keyframe or delta, ready to send.
    public struct EncodedFrame: Sendable {
        /// The complete message (envelope included).
        public var bytes: [UInt8]
        public var isKeyframe: Bool
        /// The version the client is at after applying it.
        public var version: UInt64
        /// Nodes entered, updated and removed.
        public var nodeRecords: Int
    }

    /// Creates an engine over `graph`; `compressionLevel` is zlib's.
    public init(graph: SceneGraph, compressionLevel: Int32 = 6) throws {
        self.graph = graph
        encoder = try MessageEncoder(level: compressionLevel)
    }

    /// The membership of `filter` at the current version, computed at most once per version (and reused while
    /// nothing that could change it happened).
    public func membership(_ filter: InterestFilter) -> Bitset {
        // Uncommitted changes belong to no version yet: answer from the live state without caching it.
        if graph.hasPendingChanges { return graph.membership(filter) }
        let v = graph.version
        if let hit = membershipCache[MembershipKey(filter: filter, version: v)] { return hit }
        var bits: Bitset
        if let last = lastMembership[filter], filter.region == nil, !graph.structureChanged(since: last.version) {
            bits = last.bits
            bits.grow(to: Int(graph.nodeSpace))
        } else {
            bits = graph.membership(filter)
        }
        membershipCache[MembershipKey(filter: filter, version: v)] = bits
        lastMembership[filter] = (v, bits)
        pruneMemberships()
        return bits
    }

    private func pruneMemberships() {
        let oldest = graph.oldestRetainedVersion
        if membershipCache.count > 64 && membershipCache.keys.contains(where: { $0.version < oldest }) {
            membershipCache = membershipCache.filter { $0.key.version >= oldest }
        }
    }

    /// The frame that brings a client at `base` (nil: nothing yet) to the current version under `filter`:
    /// a delta when `base` is retained and its membership known, otherwise a keyframe.
    public func frame(from base: ClientBaseline?, filter: InterestFilter) -> SceneFrame {
        precondition(!graph.hasPendingChanges, "commit the scene graph before computing frames")
        let now = membership(filter)
        guard let base, let old = baseMembership(base, now: now, filter: filter) else { return keyframe(now) }
        var updated: [NodeUpdate] = []
        updated.reserveCapacity(graph.lastChangeCount)
        let graph = self.graph
        let retained = graph.forEachBaseline(since: base.version) { i, oldNode in
            guard let oldNode, now.contains(Int(i)), old.contains(Int(i)), let current = graph[i] else { return }
            if let u = NodeUpdate(index: i, from: oldNode, to: current) { updated.append(u) }
        }
        guard retained else { return keyframe(now) }
        let removed = old.subtracting(now)
        let entered = now.subtracting(old).map { NodeEntry(index: $0, node: graph[$0]!) }
        return SceneFrame(
            kind: .delta(base: base.version), version: graph.version, timeMs: graph.timeMs, nodeSpace: graph.nodeSpace,
            removed: removed, entered: entered, updated: updated)
    }

    /// What `base.filter` let through at `base.version`: as computed then, or — for a baseline this engine never
    /// served (a client resuming here from another node of a cluster, or after a restart) — the same as now when
    /// the filter has no region and nothing that decides membership changed since.
    func baseMembership(_ base: ClientBaseline, now: Bitset, filter: InterestFilter) -> Bitset? {
        if let hit = membershipCache[MembershipKey(filter: base.filter, version: base.version)] { return hit }
        guard base.filter == filter, filter.region == nil, base.version <= graph.version, !graph.structureChanged(since: base.version) else {
            return nil
        }
        return now
    }

    /// A keyframe of the current version for `filter`.
    public func keyframe(for filter: InterestFilter) -> SceneFrame { keyframe(membership(filter)) }

    private func keyframe(_ members: Bitset) -> SceneFrame {
        let entered = members.members.map { NodeEntry(index: $0, node: graph[$0]!) }
        return SceneFrame(
            kind: .keyframe(sceneId: graph.sceneId, quantization: graph.quantization), version: graph.version,
            timeMs: graph.timeMs, nodeSpace: graph.nodeSpace, entered: entered)
    }

    /// The encoded frame for a client at `base` under `filter` in protocol `version`; shared by every client asking
    /// the same at this scene version. The frame itself is computed once for every protocol version (a group with
    /// version-1 and version-2 clients computes it once and encodes it twice; the first time a second protocol
    /// version is asked for, that group's frame is computed again). Returns nil when the client is already
    /// at the current version with the same filter.
    public func encodedFrame(from base: ClientBaseline?, filter: InterestFilter, version: UInt32 = 1) -> EncodedFrame? {
        if let base, base.version == graph.version, base.filter == filter { return nil }
        if frameCacheVersion != graph.version {
            frameCache.removeAll(keepingCapacity: true)
            sceneFrames.removeAll(keepingCapacity: true)
            frameCacheVersion = graph.version
            versionsAskedBefore = versionsAskedNow
            versionsAskedNow.removeAll(keepingCapacity: true)
        }
        let key = FrameKey(base: base, filter: filter, protocolVersion: version)
        if let hit = frameCache[key] {
            framesShared += 1
            return hit
        }
        versionsAskedNow.insert(version)
        let keep = versionsAskedNow.count > 1 || versionsAskedBefore.count > 1
        let frameKey = FrameKey(base: base, filter: filter, protocolVersion: 0)
        let f: SceneFrame
        if keep, let known = sceneFrames[frameKey] {
            f = known
        } else {
            f = frame(from: base, filter: filter)
            if keep { sceneFrames[frameKey] = f }
            framesComputed += 1
        }
        let bytes = encoder.encode(.frame(f), version: version)
        let e = EncodedFrame(
            bytes: bytes, isKeyframe: f.isKeyframe, version: f.version,
            nodeRecords: f.entered.count + f.updated.count + f.removed.count)
        frameCache[key] = e
        framesEncoded += 1
        return e
    }
}

@available(*, unavailable)
extension DeltaEngine: Sendable {}
