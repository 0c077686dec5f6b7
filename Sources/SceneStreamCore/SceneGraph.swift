import DequeModule
import SceneStreamProtocol

/// A node as a scene file or a caller describes it, in full precision.
public struct NodeSpec: Hashable, Sendable {
    /// Full id: the parent's id, "/", the node's name. Roots have no "/".
    public var id: String
    /// For roots: the anchor whose frame the node is in.
    public var anchor: String
    public var translation: (Double, Double, Double)
    public var rotation: Quaternion
    public var scale: (Double, Double, Double)
    public var color: UInt32
    public var visible: Bool
    public var label: String
    public var asset: String
    public var layer: String
    public var zone: String

    /// Creates a node description with defaults for everything but the id.
    public init(
        id: String, anchor: String = "", translation: (Double, Double, Double) = (0, 0, 0),
        rotation: Quaternion = .identity, scale: (Double, Double, Double) = (1, 1, 1), color: UInt32 = 0,
        visible: Bool = true, label: String = "", asset: String = "", layer: String = "", zone: String = ""
    ) {
        self.id = id
        self.anchor = anchor
        self.translation = translation
        self.rotation = rotation
        self.scale = scale
        self.color = color
        self.visible = visible
        self.label = label
        self.asset = asset
        self.layer = layer
        self.zone = zone
    }

    /// The parent's id, or nil for a root.
    public var parentId: String? {
        guard let slash = id.lastIndex(of: "/") else { return nil }
        return String(id[..<slash])
    }

    /// The last path component.
    public var name: String {
        guard let slash = id.lastIndex(of: "/") else { return id }
        return String(id[id.index(after: slash)...])
    }

    public static func == (a: NodeSpec, b: NodeSpec) -> Bool {
        a.id == b.id && a.anchor == b.anchor && a.translation == b.translation && a.rotation == b.rotation
            && a.scale == b.scale && a.color == b.color && a.visible == b.visible && a.label == b.label
            && a.asset == b.asset && a.layer == b.layer && a.zone == b.zone
    }

    public func hash(into h: inout Hasher) { h.combine(id) }
}

/// An error changing the scene graph.
public struct SceneGraphError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// One committed version's changes: each changed node's value before the version (nil if it was added).
public struct VersionLog: Sendable {
    public var version: UInt64
    public var timeMs: UInt64
    public var changes: [(index: UInt32, old: WireNode?)]
    /// Whether anything that decides membership without a region (structure, layer, zone, anchor) changed.
    public var structural: Bool
}

/// The spatially anchored scene graph: quantized nodes with per-version change logs. One owner; no I/O.
///
/// Node indices are assigned on add and never reused. A parent always has a lower index than its children, and
/// structure (parent, name) never changes after add; nodes are removed with their subtree.
public final class SceneGraph {
    /// The scene's id.
    public let sceneId: String
    /// How the scene's values are quantized.
    public let quantization: Quantization
    /// The last committed version; 0 before the first commit.
    public private(set) var version: UInt64 = 0
    /// Scene time of the last commit.
    public private(set) var timeMs: UInt64 = 0
    /// Versions older than this many commits are forgotten; deltas from them become keyframes.
    public let retainedVersions: Int

    private(set) var nodes: [WireNode?] = []
    private(set) var ids: [String] = []
    private var indexById: [String: UInt32] = [:]
    private var children: [[UInt32]] = []
    private var pending: [UInt32: WireNode?] = [:]
    private var pendingOrder: [UInt32] = []
    private var pendingStructural = false
    private(set) var logs = Deque<VersionLog>()
    /// The version of the last commit that changed structure, layers, zones or anchors.
    public private(set) var structureVersion: UInt64 = 0

    /// Creates an empty scene.
    public init(sceneId: String, quantization: Quantization = Quantization(), retainedVersions: Int = 300) {
        self.sceneId = sceneId
        self.quantization = quantization
        self.retainedVersions = max(1, retainedVersions)
    }

    /// One more than the largest index ever used.
    public var nodeSpace: UInt32 { UInt32(nodes.count) }
    /// The number of live nodes.
    public private(set) var liveCount = 0
    /// The oldest version a delta can start from.
    public var oldestRetainedVersion: UInt64 { logs.first.map { $0.version - 1 } ?? version }

    /// The node at `index`, if it exists.
    public subscript(index: UInt32) -> WireNode? { Int(index) < nodes.count ? nodes[Int(index)] : nil }

    /// The index of the node with full id `id`.
    public func index(of id: String) -> UInt32? { indexById[id] }

    /// The full id of node `index`.
    public func id(of index: UInt32) -> String? { Int(index) < ids.count && nodes[Int(index)] != nil ? ids[Int(index)] : nil }

    /// Indices of every live node, ascending.
    public var liveIndices: [UInt32] { (0..<UInt32(nodes.count)).filter { nodes[Int($0)] != nil } }

    /// Quantizes a node description (parent index resolved by the caller).
    public func wireNode(_ s: NodeSpec, parent: UInt32?) -> WireNode {
        let q = quantization
        return WireNode(
            parent: parent, name: s.name, anchor: s.anchor,
            translation: q.position(s.translation.0, s.translation.1, s.translation.2), rotation: q.rotation(s.rotation),
            scale: q.scale(s.scale.0, s.scale.1, s.scale.2), color: s.color, visible: s.visible, label: s.label,
            asset: s.asset, layer: s.layer, zone: s.zone)
    }

    /// Adds a node; its parent must exist and roots must name an anchor.
    @discardableResult
    public func add(_ spec: NodeSpec) throws(SceneGraphError) -> UInt32 {
        guard !spec.id.isEmpty, !spec.name.isEmpty else { throw SceneGraphError(reason: "node id '\(spec.id)' is empty or ends in '/'") }
        guard indexById[spec.id] == nil else { throw SceneGraphError(reason: "node '\(spec.id)' already exists") }
        var parent: UInt32?
        if let pid = spec.parentId {
            guard let p = indexById[pid] else { throw SceneGraphError(reason: "parent '\(pid)' of node '\(spec.id)' does not exist") }
            parent = p
        } else if spec.anchor.isEmpty {
            throw SceneGraphError(reason: "root node '\(spec.id)' names no anchor")
        }
        let index = UInt32(nodes.count)
        nodes.append(wireNode(spec, parent: parent))
        ids.append(spec.id)
        children.append([])
        if let parent { children[Int(parent)].append(index) }
        indexById[spec.id] = index
        liveCount += 1
        noteChange(index, old: nil)
        pendingStructural = true
        return index
    }

    /// Removes a node and its subtree. Returns the removed indices.
    @discardableResult
    public func remove(_ index: UInt32) -> [UInt32] {
        guard let node = self[index] else { return [] }
        var removed: [UInt32] = []
        var stack = [index]
        while let i = stack.popLast() {
            guard let n = nodes[Int(i)] else { continue }
            noteChange(i, old: n)
            nodes[Int(i)] = nil
            indexById[ids[Int(i)]] = nil
            liveCount -= 1
            removed.append(i)
            stack.append(contentsOf: children[Int(i)])
        }
        if let p = node.parent { children[Int(p)].removeAll { $0 == index } }
        pendingStructural = true
        return removed.sorted()
    }

    /// Changes a node's fields (structure excepted). Returns false if the node does not exist.
    @discardableResult
    public func update(_ index: UInt32, _ change: (inout WireNode) -> Void) -> Bool {
        guard Int(index) < nodes.count, var n = nodes[Int(index)] else { return false }
        let before = n
        change(&n)
        n.parent = before.parent
        n.name = before.name
        guard n != before else { return true }
        if n.layer != before.layer || n.zone != before.zone || n.anchor != before.anchor || n.asset != before.asset {
            pendingStructural = true
        }
        noteChange(index, old: before)
        nodes[Int(index)] = n
        return true
    }

    private func noteChange(_ index: UInt32, old: WireNode?) {
        if pending[index] == nil {
            pending[index] = .some(old)
            pendingOrder.append(index)
        }
    }

    /// Whether there are changes since the last commit.
    public var hasPendingChanges: Bool { !pending.isEmpty }

    /// Seals the pending changes as a new version at `timeMs`; returns the version (unchanged if nothing changed).
    @discardableResult
    public func commit(timeMs: UInt64) -> UInt64 {
        self.timeMs = max(self.timeMs, timeMs)
        guard !pending.isEmpty else { return version }
        seal(as: version + 1)
        return version
    }

    /// Seals the pending changes as version `next`. Versions after a gap keep no log: every delta from before the
    /// gap becomes a keyframe, since what a client has then is not known here.
    private func seal(as next: UInt64) {
        let contiguous = next == version + 1
        version = next
        guard contiguous else {
            logs.removeAll()
            structureVersion = version
            pending.removeAll(keepingCapacity: true)
            pendingOrder.removeAll(keepingCapacity: true)
            pendingStructural = false
            return
        }
        var changes: [(index: UInt32, old: WireNode?)] = []
        changes.reserveCapacity(pendingOrder.count)
        for i in pendingOrder {
            let old = pending[i]!
            // A node added and changed in the same version is just added; one changed back is dropped.
            if old == nil && nodes[Int(i)] == nil { continue }
            if let o = old, let n = nodes[Int(i)], o == n { continue }
            changes.append((i, old))
        }
        changes.sort { $0.index < $1.index }
        if pendingStructural { structureVersion = version }
        logs.append(VersionLog(version: version, timeMs: self.timeMs, changes: changes, structural: pendingStructural))
        while logs.count > retainedVersions { logs.removeFirst() }
        pending.removeAll(keepingCapacity: true)
        pendingOrder.removeAll(keepingCapacity: true)
        pendingStructural = false
    }

    // MARK: following another graph

    /// Moves the version sequence on to `next` (an owner that starts after others wrote versions: it continues
    /// their sequence rather than repeat numbers). The next commit is `next + 1`; no log crosses the jump.
    public func continueVersions(after next: UInt64) {
        guard next > version, !hasPendingChanges else { return }
        version = next
        logs.removeAll()
        structureVersion = next
    }

    /// Follows another graph's commits (a fan-out node's copy of the owner's scene): applies one frame of the
    /// owner's unfiltered stream and commits it as the owner's version, so indices and versions are the owner's.
    /// A keyframe replaces everything; a delta must start at this graph's version. On error nothing changes.
    public func follow(_ frame: SceneFrame) throws(SceneGraphError) {
        // Uncommitted changes (a scene file loaded but never committed) are replaced by a keyframe.
        guard frame.isKeyframe || !hasPendingChanges else { throw SceneGraphError(reason: "a followed graph has local changes") }
        guard frame.version > version else { throw SceneGraphError(reason: "version \(frame.version) is not after \(version)") }
        switch frame.kind {
        case .keyframe:
            var fresh: [UInt32: WireNode] = [:]
            for e in frame.entered { fresh[e.index] = e.node }
            for e in frame.entered {
                if let p = e.node.parent, p >= e.index || fresh[p] == nil {
                    throw SceneGraphError(reason: "keyframe \(frame.version): parent \(p) of node \(e.index) is not before it")
                }
            }
            for i in liveIndices where fresh[i] == nil || fresh[i]!.parent != nodes[Int(i)]!.parent || fresh[i]!.name != nodes[Int(i)]!.name {
                drop(i)
            }
            for e in frame.entered.sorted(by: { $0.index < $1.index }) { place(e.index, e.node) }
            pendingStructural = true
        case .delta(let base):
            guard base == version else { throw SceneGraphError(reason: "delta from \(base) does not start at \(version)") }
            var removed = Set<UInt32>()
            for i in frame.removed {
                guard self[i] != nil, removed.insert(i).inserted else { throw SceneGraphError(reason: "delta \(frame.version) removes unknown node \(i)") }
            }
            for e in frame.entered {
                guard Int(e.index) >= nodes.count || nodes[Int(e.index)] == nil else {
                    throw SceneGraphError(reason: "delta \(frame.version) adds node \(e.index) twice")
                }
                if let p = e.node.parent, p >= e.index || (removed.contains(p) || (self[p] == nil && !frame.entered.contains { $0.index == p })) {
                    throw SceneGraphError(reason: "delta \(frame.version): parent \(p) of node \(e.index) is missing")
                }
            }
            for u in frame.updated where self[u.index] == nil || removed.contains(u.index) {
                throw SceneGraphError(reason: "delta \(frame.version) updates unknown node \(u.index)")
            }
            for i in frame.removed.sorted(by: >) { drop(i) }
            for e in frame.entered.sorted(by: { $0.index < $1.index }) { place(e.index, e.node) }
            for u in frame.updated {
                update(u.index) { u.apply(to: &$0) }
            }
            if !removed.isEmpty || !frame.entered.isEmpty { pendingStructural = true }
        }
        self.timeMs = max(self.timeMs, frame.timeMs)
        seal(as: frame.version)
    }

    /// Removes one node (not its subtree) as a change.
    private func drop(_ i: UInt32) {
        guard let n = nodes[Int(i)] else { return }
        noteChange(i, old: n)
        nodes[Int(i)] = nil
        indexById[ids[Int(i)]] = nil
        if let p = n.parent, Int(p) < children.count { children[Int(p)].removeAll { $0 == i } }
        liveCount -= 1
    }

    /// Puts `node` at index `i` (growing the index space), as a change when it differs.
    private func place(_ i: UInt32, _ node: WireNode) {
        while nodes.count <= Int(i) {
            nodes.append(nil)
            ids.append("")
            children.append([])
        }
        if let old = nodes[Int(i)] {
            guard old != node else { return }
            if old.layer != node.layer || old.zone != node.zone || old.anchor != node.anchor || old.asset != node.asset {
                pendingStructural = true
            }
            noteChange(i, old: old)
            nodes[Int(i)] = node
            return
        }
        let id = node.parent.map { "\(ids[Int($0)])/\(node.name)" } ?? node.name
        noteChange(i, old: nil)
        nodes[Int(i)] = node
        ids[Int(i)] = id
        indexById[id] = i
        if let p = node.parent { children[Int(p)].append(i) }
        liveCount += 1
    }

    /// For each node changed after `base`, its value at `base` (nil if it did not exist then);
    /// nil when `base` is outside the retained window or in the future.
    public func baseline(since base: UInt64) -> [UInt32: WireNode?]? {
        guard base <= version, base >= oldestRetainedVersion else { return nil }
        var out: [UInt32: WireNode?] = [:]
        for log in logs where log.version > base {
            for c in log.changes where out[c.index] == nil { out[c.index] = .some(c.old) }
        }
        return out
    }

    /// Calls `body` for each node changed after `base`, in ascending index order, with its value at `base` (nil if it
    /// did not exist then). Returns false, calling nothing, when `base` is outside the retained window.
    public func forEachBaseline(since base: UInt64, _ body: (UInt32, WireNode?) -> Void) -> Bool {
        guard base <= version, base >= oldestRetainedVersion else { return false }
        if base == version { return true }
        let first = logs.count - Int(version - base)
        if first == logs.count - 1 {
            // The common case: one version back. Its changes are sorted and unique already.
            for c in logs[first].changes { body(c.index, c.old) }
            return true
        }
        var merged: [UInt32: WireNode?] = [:]
        for k in first..<logs.count {
            for c in logs[k].changes where merged[c.index] == nil { merged[c.index] = .some(c.old) }
        }
        for i in merged.keys.sorted() { body(i, merged[i]!) }
        return true
    }

    /// Whether any commit after `base` changed structure, layers, zones or anchors (true if unknown).
    public func structureChanged(since base: UInt64) -> Bool { structureVersion > base || base < oldestRetainedVersion }

    /// Whether any commit after `base` changed anything (true if unknown).
    public func anythingChanged(since base: UInt64) -> Bool { version > base || base < oldestRetainedVersion }

    /// The number of changed nodes in the last committed version.
    public var lastChangeCount: Int { logs.last?.changes.count ?? 0 }
}

@available(*, unavailable)
extension SceneGraph: Sendable {}
