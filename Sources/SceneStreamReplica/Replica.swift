import SceneStreamProtocol

/// A client's copy of the scene view, built only from keyframes and deltas (`SPEC.md` §6.6).
///
/// Shared by the Swift client library and the tests; it checks every frame against its own state and refuses a
/// delta whose base is not its version, so a replica is either exact or says why not.
public struct Replica: Sendable, Equatable {
    /// The scene streamed, from the last keyframe.
    public private(set) var sceneId: String = ""
    /// The quantization of the last keyframe.
    public private(set) var quantization = Quantization()
    /// The scene version the replica is at; nil before the first keyframe.
    public private(set) var version: UInt64?
    /// Scene time of the last frame, in ms since the Unix epoch.
    public private(set) var timeMs: UInt64 = 0
    /// The nodes in view, by index.
    public private(set) var nodes: [UInt32: WireNode] = [:]

    /// Creates an empty replica.
    public init() {}

    /// What a frame changed, for callers that react to changes.
    public struct Change: Sendable, Equatable {
        public var keyframe: Bool
        public var removed: [UInt32]
        public var entered: [UInt32]
        public var updated: [UInt32]
    }

    /// Applies a keyframe or delta. On error the replica is unchanged.
    @discardableResult
    public mutating func apply(_ frame: SceneFrame) throws(ProtocolError) -> Change {
        switch frame.kind {
        case .keyframe(let scene, let q):
            var fresh: [UInt32: WireNode] = [:]
            fresh.reserveCapacity(frame.entered.count)
            for e in frame.entered { fresh[e.index] = e.node }
            try Self.checkParents(fresh, entered: frame.entered.map(\.index))
            sceneId = scene
            quantization = q
            nodes = fresh
            version = frame.version
            timeMs = frame.timeMs
            return Change(keyframe: true, removed: [], entered: frame.entered.map(\.index), updated: [])
        case .delta(let base):
            guard let v = version else { throw ProtocolError(.baseMismatch(expected: 0, got: base), "delta before keyframe") }
            guard v == base else { throw ProtocolError(.baseMismatch(expected: v, got: base), "delta") }
            // Validate everything first, so that a bad frame leaves the replica untouched; then apply in place.
            var removed = Set<UInt32>()
            for i in frame.removed {
                guard nodes[i] != nil, removed.insert(i).inserted else { throw ProtocolError(.unknownNode(i), "delta.removed") }
            }
            var entered = Set<UInt32>()
            for e in frame.entered {
                guard nodes[e.index] == nil || removed.contains(e.index), entered.insert(e.index).inserted else {
                    throw ProtocolError(.invalidValue, "delta.entered (node \(e.index) already present)")
                }
            }
            for u in frame.updated where nodes[u.index] == nil || removed.contains(u.index) {
                throw ProtocolError(.unknownNode(u.index), "delta.updated")
            }
            for u in frame.updated where u.fields.contains(.anchor) && nodes[u.index]?.parent != nil {
                throw ProtocolError(.invalidValue, "delta.updated (node \(u.index) is not a root: only roots name an anchor)")
            }
            for e in frame.entered {
                if let p = e.node.parent, entered.contains(p) || (nodes[p] != nil && !removed.contains(p)) { continue }
                if e.node.parent == nil { continue }
                throw ProtocolError(.unknownNode(e.node.parent!), "parent of node \(e.index)")
            }
            for i in frame.removed { nodes[i] = nil }
            for e in frame.entered { nodes[e.index] = e.node }
            for u in frame.updated { u.apply(to: &nodes[u.index]!) }
            version = frame.version
            timeMs = frame.timeMs
            return Change(keyframe: false, removed: frame.removed, entered: frame.entered.map(\.index), updated: frame.updated.map(\.index))
        }
    }

    /// Every entered node's parent must be in view.
    static func checkParents(_ nodes: [UInt32: WireNode], entered: [UInt32]) throws(ProtocolError) {
        for i in entered {
            if let p = nodes[i]?.parent, nodes[p] == nil {
                throw ProtocolError(.unknownNode(p), "parent of node \(i)")
            }
        }
    }

    /// The node's full id: its ancestors' names and its own, joined by "/".
    public func path(of index: UInt32) -> String? {
        guard var n = nodes[index] else { return nil }
        var parts = [n.name]
        var guardCount = 0
        while let p = n.parent, let pn = nodes[p], guardCount < 1024 {
            parts.append(pn.name)
            n = pn
            guardCount += 1
        }
        return parts.reversed().joined(separator: "/")
    }

    /// The index of the node with full id `path`, if it is in view.
    public func index(ofPath path: String) -> UInt32? {
        nodes.keys.first { self.path(of: $0) == path }
    }
}
