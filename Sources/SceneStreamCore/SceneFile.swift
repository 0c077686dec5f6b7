import Foundation
import SceneStreamProtocol

/// A named coordinate frame that a device resolves locally (e.g. an OpenXR spatial anchor).
public struct AnchorSpec: Hashable, Sendable {
    public var id: String
    public var description: String
}

/// A parsed scene file (`Assets/plants/*/scene.json`).
public struct SceneFile: Sendable {
    public var id: String
    public var name: String
    public var quantization: Quantization
    public var anchors: [AnchorSpec]
    public var nodes: [NodeSpec]

    /// Creates a scene description.
    public init(id: String, name: String, quantization: Quantization, anchors: [AnchorSpec], nodes: [NodeSpec]) {
        self.id = id
        self.name = name
        self.quantization = quantization
        self.anchors = anchors
        self.nodes = nodes
    }

    /// Parses a scene file; errors name the file, key path and reason.
    public static func parse(_ data: [UInt8], file: String) throws(ConfigError) -> SceneFile {
        let root = try JSONNode.parse(data, file: file).object()
        try root.checkKeys(["format", "id", "name", "quantization", "anchors", "nodes"])
        let format = try root["format"].string(default: "scenestream.scene/1")
        guard format == "scenestream.scene/1" else { throw root["format"].error("unsupported format '\(format)'") }
        var q = Quantization()
        if root["quantization"].exists {
            let qn = try root["quantization"].object()
            try qn.checkKeys(["positionUnitsPerMetre", "rotationBits"])
            let units = try qn["positionUnitsPerMetre"].number(default: 1000)
            guard units >= 1, units <= 1_000_000, units == units.rounded() else {
                throw qn["positionUnitsPerMetre"].error("expected a whole number 1…1000000")
            }
            let bits = try qn["rotationBits"].number(default: 12)
            guard bits >= 4, bits <= 16, bits == bits.rounded() else { throw qn["rotationBits"].error("expected a whole number 4…16") }
            q = Quantization(positionUnitsPerMetre: UInt32(units), rotationBits: UInt8(bits))
        }
        var anchors: [AnchorSpec] = []
        for a in try root["anchors"].array() {
            _ = try a.object()
            try a.checkKeys(["id", "description"])
            anchors.append(AnchorSpec(id: try a["id"].string(), description: try a["description"].string(default: "")))
        }
        let anchorIds = Set(anchors.map(\.id))
        var nodes: [NodeSpec] = []
        var ids: Set<String> = []
        for n in try root["nodes"].array() {
            _ = try n.object()
            try n.checkKeys(["id", "anchor", "t", "r", "ry", "s", "color", "visible", "label", "asset", "layer", "zone"])
            var spec = NodeSpec(id: try n["id"].string())
            guard !spec.name.isEmpty else { throw n["id"].error("empty name") }
            if let p = spec.parentId, !ids.contains(p) { throw n["id"].error("parent '\(p)' is not defined before it") }
            guard ids.insert(spec.id).inserted else { throw n["id"].error("duplicate node id '\(spec.id)'") }
            spec.anchor = try n["anchor"].string(default: "")
            if spec.parentId == nil {
                guard !spec.anchor.isEmpty else { throw n.error("root node '\(spec.id)' needs an anchor") }
                guard anchorIds.contains(spec.anchor) else { throw n["anchor"].error("unknown anchor '\(spec.anchor)'") }
            } else if !spec.anchor.isEmpty {
                throw n["anchor"].error("only root nodes name an anchor")
            }
            spec.translation = try n["t"].vector3(default: (0, 0, 0))
            if n["r"].exists {
                let r = try n["r"].array()
                guard r.count == 4 else { throw n["r"].error("expected a quaternion [x, y, z, w]") }
                spec.rotation = Quaternion(x: try r[0].number(), y: try r[1].number(), z: try r[2].number(), w: try r[3].number()).normalized
            } else if n["ry"].exists {
                spec.rotation = Quaternion(axis: (0, 1, 0), angle: try n["ry"].number() * .pi / 180)
            }
            spec.scale = try n["s"].vector3(default: (1, 1, 1))
            if n["color"].exists {
                let c = try n["color"].string()
                guard let v = parseColor(c) else { throw n["color"].error("expected a colour like #rrggbb, got '\(c)'") }
                spec.color = v
            }
            spec.visible = try n["visible"].bool(default: true)
            spec.label = try n["label"].string(default: "")
            spec.asset = try n["asset"].string(default: "")
            spec.layer = try n["layer"].string(default: "")
            spec.zone = try n["zone"].string(default: "")
            nodes.append(spec)
        }
        return SceneFile(
            id: try root["id"].string(), name: try root["name"].string(default: ""), quantization: q, anchors: anchors,
            nodes: nodes)
    }

    /// Builds a scene graph holding every node, committed as version 1.
    public func makeGraph(retainedVersions: Int = 300, timeMs: UInt64 = 0) throws(SceneGraphError) -> SceneGraph {
        let g = SceneGraph(sceneId: id, quantization: quantization, retainedVersions: retainedVersions)
        for n in nodes { try g.add(n) }
        g.commit(timeMs: timeMs)
        return g
    }
}

/// Twin store, scene graph, bindings and rules of one scene, wired together. One owner; no I/O.
public final class SceneRuntime {
    public private(set) var scene: SceneFile
    public let graph: SceneGraph
    public let twins: TwinStore
    public private(set) var bindings: BindingEngine
    public private(set) var alerts: AlertEngine
    /// Aggregates the bindings and rules name; their indices by the property they read.
    private var aggregates: [Aggregate] = []
    private var aggregatesOf: [String: [Int]] = [:]
    /// Relationships by target: who relates to a twin, and how (what to recompute when its values change).
    private var relatedFrom: [String: [(source: String, name: String)]] = [:]
    /// Targets by source and relationship name (what an aggregate reads).
    private var targets: [String: [String: [String]]] = [:]
    /// Every relationship, in the order given.
    public private(set) var edges: [RelationshipEdge] = []

    /// Creates a runtime for a scene with its bindings, rules and the twins' relationships.
    public init(
        scene: SceneFile, bindings: BindingSet, rules: RuleSet, relationships: [RelationshipEdge] = [], history: TwinHistory = TwinHistory(),
        retainedVersions: Int = 300
    ) throws(SceneGraphError) {
        self.scene = scene
        graph = try scene.makeGraph(retainedVersions: retainedVersions)
        twins = TwinStore(history: history)
        self.bindings = BindingEngine(bindings)
        alerts = AlertEngine(rules)
        noteAggregates()
        for e in relationships { relate(e) }
    }

    private func noteAggregates() {
        aggregates = []
        aggregatesOf = [:]
        var seen: Set<String> = []
        for p in bindings.set.bindings.flatMap(\.triggers) + alerts.set.rules.map(\.property) {
            guard let a = Aggregate.parse(p), seen.insert(a.name).inserted else { continue }
            aggregatesOf[a.property, default: []].append(aggregates.count)
            aggregates.append(a)
        }
    }

    /// Why a reload was refused (the running plant is kept).
    public struct ReloadError: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
        public init(reason: String) { self.reason = reason }
    }

    /// Takes changed plant files while clients stream: nodes the new scene adds, removes or changes become changes
    /// of the next commit (deltas, no keyframe); new bindings and rules are applied to every current value; alerts
    /// the new rules no longer raise are cleared, ones they raise now are raised; aggregates follow the new
    /// relationships. Refused (nothing changed) when the scene's id or quantization differ — that needs a restart —
    /// or a node cannot be added.
    public func reload(scene new: SceneFile, bindings: BindingSet, rules: RuleSet, relationships: [RelationshipEdge], timeMs: UInt64) throws(ReloadError) -> [AlertEvent] {
        guard new.id == scene.id else { throw ReloadError(reason: "the scene id changed (\(scene.id) → \(new.id)): restart to serve another scene") }
        guard new.quantization == scene.quantization else { throw ReloadError(reason: "the quantization changed: restart to apply it") }
        // Check the new nodes can all be placed (ids unique, parents before children, roots anchored) first, and
        // that none takes the id of a node the running scene added itself (presence, notes): nothing changes
        // unless everything can.
        do { _ = try new.makeGraph(retainedVersions: 1) } catch { throw ReloadError(reason: "\(error)") }
        let old = Dictionary(scene.nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        if let taken = new.nodes.first(where: { old[$0.id] == nil && graph.index(of: $0.id) != nil }) {
            throw ReloadError(reason: "node '\(taken.id)' is already in the running scene (added by a session): rename it")
        }
        // Nodes the old bindings wrote go back to their file values, so a binding removed leaves no trace.
        let state = twins.snapshot()
        var written: Set<String> = []
        for twin in Set(state.map(\.twin)) {
            for i in self.bindings.nodes(boundTo: twin, graph: graph) { if let id = graph.id(of: i) { written.insert(id) } }
        }
        if new.nodes != scene.nodes {
            // A node's parent is its id's prefix, so a node that moved has another id: removed here, added below.
            let fresh = Set(new.nodes.map(\.id))
            for n in scene.nodes.reversed() where !fresh.contains(n.id) {
                if let i = graph.index(of: n.id) { graph.remove(i) }
            }
            for n in new.nodes {
                if let i = graph.index(of: n.id) {
                    if old[n.id] != n { graph.update(i) { $0 = graph.wireNode(n, parent: $0.parent) } }
                } else {
                    do { try graph.add(n) } catch { throw ReloadError(reason: "\(error)") }
                }
            }
        }
        scene = new
        for n in new.nodes where written.contains(n.id) {
            if let i = graph.index(of: n.id) { graph.update(i) { $0 = graph.wireNode(n, parent: $0.parent) } }
        }
        self.bindings = BindingEngine(bindings)
        // Alerts whose rule is still there stay active as they were (a value inside a rule's hysteresis band keeps
        // its alert); the new rules then see every current value.
        let before = alerts.active
        alerts = AlertEngine(rules)
        let carried = alerts.carry(before)
        let oldSources = Set(edges.map(\.source))
        noteAggregates()
        relatedFrom = [:]
        targets = [:]
        edges = []
        twins.clearRelationships()
        for e in relationships { relate(e) }
        // Aggregates first (every one, on every twin related before or now, through aggregates of aggregates), so
        // that the values below are current.
        var dirty: [Dirty: UInt64] = [:]
        for source in oldSources.union(edges.map(\.source)) {
            for k in aggregates.indices { dirty[Dirty(source: source, aggregate: k)] = timeMs }
        }
        propagate(&dirty) { _ in }
        var events: [AlertEvent] = carried.changed
        for u in twins.snapshot() {
            self.bindings.apply(u, store: twins, graph: graph)
            events += alerts.evaluate(u, at: timeMs)
        }
        for (_, e) in before where !carried.kept.contains(e.id) {
            var cleared = e
            cleared.state = .cleared
            cleared.timeMs = timeMs
            events.append(cleared)
        }
        return events
    }

    /// Adds a relationship (to the twin store, and for the aggregates over it).
    public func relate(_ e: RelationshipEdge) {
        guard !twins.relationships(of: e.source).contains(Relationship(name: e.name, target: e.target)) else { return }
        twins.relate(e.source, Relationship(name: e.name, target: e.target))
        relatedFrom[e.target, default: []].append((e.source, e.name))
        targets[e.source, default: [:]][e.name, default: []].append(e.target)
        edges.append(e)
    }

    /// An aggregate of one twin waiting to be recomputed.
    struct Dirty: Hashable {
        var source: String
        var aggregate: Int
    }

    /// Notes the aggregates an applied update changes: each aggregate over its property, on each twin related to
    /// its twin by that aggregate's relationship (recomputed once per batch, not once per input).
    func noteInputs(_ u: PropertyUpdate, _ dirty: inout [Dirty: UInt64]) {
        guard let list = aggregatesOf[u.property], let sources = relatedFrom[u.twin] else { return }
        for k in list {
            let rel = aggregates[k].relationship
            for (s, name) in sources where name == rel {
                let key = Dirty(source: s, aggregate: k)
                dirty[key] = max(dirty[key] ?? 0, u.timestampMs)
            }
        }
    }

    /// The new value of a noted aggregate, when it changed.
    func recompute(_ d: Dirty, at timeMs: UInt64) -> PropertyUpdate? {
        let a = aggregates[d.aggregate]
        var inputs: [PropertyState] = []
        for t in targets[d.source]?[a.relationship] ?? [] {
            if let s = twins.state(t, a.property) { inputs.append(s) }
        }
        let cur = twins.state(d.source, a.name)
        guard let (v, q) = a.value(of: inputs) else {
            // Nothing to aggregate any more (its relationships went away): the last value is no longer current.
            guard let cur, cur.quality == .good else { return nil }
            return PropertyUpdate(twin: d.source, property: a.name, value: cur.value, timestampMs: max(timeMs, cur.timestampMs), quality: .stale)
        }
        if let cur, cur.value == v, cur.quality == q { return nil }
        return PropertyUpdate(twin: d.source, property: a.name, value: v, timestampMs: max(timeMs, cur?.timestampMs ?? 0), quality: q)
    }

    /// Applies updates to the twin store and, through bindings, to the scene graph (uncommitted).
    /// Returns alerts raised or cleared.
    public func ingest(_ updates: [PropertyUpdate]) -> [AlertEvent] {
        var events: [AlertEvent] = []
        // History stays in time order (playback finds ranges by binary search).
        let ordered = updates.count > 1 ? updates.sorted { $0.timestampMs < $1.timestampMs } : updates
        var dirty: [Dirty: UInt64] = [:]
        for u in ordered where twins.apply(u) {
            bindings.apply(u, store: twins, graph: graph)
            events.append(contentsOf: alerts.evaluate(u))
            if !aggregates.isEmpty { noteInputs(u, &dirty) }
        }
        // Aggregates over relationships follow their inputs, once per batch (and may feed aggregates of their own,
        // a few levels deep at most).
        propagate(&dirty) { u in
            bindings.apply(u, store: twins, graph: graph)
            events.append(contentsOf: alerts.evaluate(u))
        }
        return events
    }

    /// Recomputes the noted aggregates, and the aggregates they feed (a few levels deep at most); each value that
    /// changed is in the store before `applied` sees it.
    func propagate(_ dirty: inout [Dirty: UInt64], _ applied: (PropertyUpdate) -> Void) {
        var depth = 0
        while !dirty.isEmpty, depth < 8 {
            let now = dirty.sorted { ($0.key.source, $0.key.aggregate) < ($1.key.source, $1.key.aggregate) }
            dirty.removeAll(keepingCapacity: true)
            for (d, t) in now {
                guard let u = recompute(d, at: t), twins.apply(u) else { continue }
                applied(u)
                noteInputs(u, &dirty)
            }
            depth += 1
        }
    }

    /// Commits the scene graph's pending changes as a version at `timeMs`, and checkpoints the twin state now and
    /// then for playback.
    @discardableResult
    public func commit(timeMs: UInt64) -> UInt64 {
        let v = graph.commit(timeMs: timeMs)
        twins.history.checkpoint(at: timeMs, state: twins.snapshot())
        return v
    }

    /// A new runtime showing the scene as it was at `timeMs`, rebuilt from the nearest checkpoint and the history
    /// after it; nil when `timeMs` is outside the retained history.
    public func rebuilt(at timeMs: UInt64) throws(SceneGraphError) -> SceneRuntime? {
        guard let state = pastState(at: timeMs) else { return nil }
        return try rebuilt(state: state, at: timeMs)
    }

    /// Every property's value at `timeMs` from the in-memory history: the nearest checkpoint before it and the last
    /// value of each property after that (bindings depend only on current values, so replaying every step is not
    /// needed). Nil when no checkpoint is that old.
    public func pastState(at timeMs: UInt64) -> [PropertyUpdate]? {
        let h = twins.history
        guard let cp = h.checkpoint(atOrBefore: timeMs) else { return nil }
        let after = h.latestPerProperty(from: cp.timeMs + 1, to: timeMs + 1)
        var changed: [String: Set<String>] = [:]
        for u in after { changed[u.twin, default: []].insert(u.property) }
        return cp.state.filter { $0.timestampMs <= timeMs && changed[$0.twin]?.contains($0.property) != true } + after
    }

    /// A new runtime showing the scene with the twin `state` (each property's value at `timeMs`, e.g. read back
    /// from disk).
    public func rebuilt(state: [PropertyUpdate], at timeMs: UInt64) throws(SceneGraphError) -> SceneRuntime {
        try Self.rebuilt(recipe: recipe, state: state, at: timeMs)
    }

    /// What a past scene is built from: plain values, so the rebuild can run on another thread.
    public struct Recipe: Sendable {
        public let scene: SceneFile
        public let bindings: BindingSet
        public let relationships: [RelationshipEdge]
        public let retainedVersions: Int
    }

    /// This runtime's recipe.
    public var recipe: Recipe { Recipe(scene: scene, bindings: bindings.set, relationships: edges, retainedVersions: graph.retainedVersions) }

    /// A new runtime (rules off: alerts of the past are not raised again) with `state` applied and committed at
    /// `timeMs`. Touches nothing shared: any thread may call it, and the caller owns the result.
    public static func rebuilt(recipe: Recipe, state: [PropertyUpdate], at timeMs: UInt64) throws(SceneGraphError) -> SceneRuntime {
        let r = try SceneRuntime(
            scene: recipe.scene, bindings: recipe.bindings, rules: RuleSet(), relationships: recipe.relationships, history: TwinHistory(capacity: 1, windowMs: 0),
            retainedVersions: recipe.retainedVersions)
        _ = r.ingest(state)
        r.graph.commit(timeMs: timeMs)
        return r
    }
}

@available(*, unavailable)
extension SceneRuntime: Sendable {}
