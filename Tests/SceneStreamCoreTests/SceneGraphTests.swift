import SceneStreamProtocol
import Testing

@testable import SceneStreamCore

@Suite struct SceneGraphTests {
    func small() throws -> SceneGraph {
        let g = SceneGraph(sceneId: "t", retainedVersions: 4)
        try g.add(NodeSpec(id: "a", anchor: "hall", layer: "structure", zone: "z1"))
        try g.add(NodeSpec(id: "a/b", translation: (1, 0, 0), asset: "m.gltf", layer: "equipment"))
        try g.add(NodeSpec(id: "a/b/c", asset: "m.gltf"))
        try g.add(NodeSpec(id: "a/d", translation: (10, 0, 0), asset: "m.gltf", zone: "z2"))
        g.commit(timeMs: 1)
        return g
    }

    @Test func addingNeedsAParentAndRootsNeedAnAnchor() throws {
        let g = SceneGraph(sceneId: "t")
        #expect(throws: SceneGraphError(reason: "root node 'x' names no anchor")) { try g.add(NodeSpec(id: "x")) }
        #expect(throws: SceneGraphError(reason: "parent 'y' of node 'y/z' does not exist")) { try g.add(NodeSpec(id: "y/z")) }
        try g.add(NodeSpec(id: "x", anchor: "a"))
        #expect(throws: SceneGraphError(reason: "node 'x' already exists")) { try g.add(NodeSpec(id: "x", anchor: "a")) }
    }

    @Test func versionsAdvanceOnlyOnChange() throws {
        let g = try small()
        #expect(g.version == 1)
        g.commit(timeMs: 2)
        #expect(g.version == 1)
        g.update(1) { $0.label = "x" }
        g.commit(timeMs: 3)
        #expect(g.version == 2)
        // A change undone within the same version is no change in the log.
        g.update(1) { $0.label = "y" }
        g.update(1) { $0.label = "x" }
        g.commit(timeMs: 4)
        #expect(g.logs.last?.changes.isEmpty == true)
    }

    @Test func baselineGivesValuesAtTheBase() throws {
        let g = try small()
        let before = g[1]!
        g.update(1) { $0.label = "one" }
        g.commit(timeMs: 2)
        g.update(1) { $0.label = "two" }
        g.update(2) { $0.visible = false }
        g.commit(timeMs: 3)
        var seen: [UInt32: WireNode?] = [:]
        #expect(g.forEachBaseline(since: 1) { seen[$0] = $1 })
        #expect(seen[1]! == before)
        #expect(seen[2]!?.visible == true)
        #expect(g.baseline(since: 2)?[1]!?.label == "one")
    }

    @Test func oldVersionsFallOutOfTheWindow() throws {
        let g = try small()
        for k in 0..<6 {
            g.update(1) { $0.label = "v\(k)" }
            g.commit(timeMs: UInt64(k + 2))
        }
        #expect(g.version == 7)
        #expect(g.oldestRetainedVersion == 3)
        #expect(g.baseline(since: 2) == nil)
        #expect(g.baseline(since: 3) != nil)
    }

    @Test func removingANodeRemovesItsSubtree() throws {
        let g = try small()
        #expect(g.remove(1) == [1, 2])
        g.commit(timeMs: 2)
        #expect(g.liveCount == 2)
        #expect(g.index(of: "a/b/c") == nil)
        // Indices are never reused.
        #expect(try g.add(NodeSpec(id: "a/b", anchor: "")) == 4)
    }

    @Test func membershipInheritsLayersAndZones() throws {
        let g = try small()
        #expect(g.membership(.everything).members == [0, 1, 2, 3])
        #expect(g.membership(InterestFilter(layers: ["equipment"])).members == [])  // the root is on "structure"
        #expect(g.membership(InterestFilter(layers: ["structure", "equipment"])).members == [0, 1, 2, 3])
        #expect(g.membership(InterestFilter(zones: ["z1"])).members == [0, 1, 2])
        #expect(g.membership(InterestFilter(zones: ["z2"])).members == [])  // z2 is under z1's root
    }

    @Test func regionCullsAssetsByAnchorFramePosition() throws {
        let g = try small()
        let near = Region(anchor: "hall", min: QVec3(0, -100, -100), max: QVec3(5000, 100, 100))
        #expect(g.membership(InterestFilter(region: near)).members == [0, 1, 2])
        let elsewhere = Region(anchor: "other", min: QVec3(-100_000, -100_000, -100_000), max: QVec3(100_000, 100_000, 100_000))
        #expect(g.membership(InterestFilter(region: elsewhere)).members == [0])
        // Moving a node moves its children's anchor-frame positions too.
        g.update(1) { $0.translation = QVec3(20000, 0, 0) }
        g.commit(timeMs: 2)
        #expect(g.membership(InterestFilter(region: near)).members == [0])
    }
}

@Suite struct GlobTests {
    @Test(arguments: [
        ("*/*/robot-*", "hall-a/line-01/robot-03", true),
        ("*/*/robot-*", "hall-a/robot-03", false),
        ("*/*/robot-*", "hall-a/line-01/robot-03/j1", false),
        ("*/agv-*", "hall-b/agv-07", true),
        ("press", "press", true),
        ("press", "press-1", false),
        ("*", "a", true),
        ("*", "a/b", false),
        ("a*c", "abbbc", true),
        ("a*c", "ab/c", false),
    ])
    func matches(_ pattern: String, _ s: String, _ expected: Bool) {
        #expect(Glob(pattern).matches(s) == expected)
    }
}

@Suite struct TwinStoreTests {
    @Test func olderUpdatesDoNotOverwrite() {
        let s = TwinStore()
        #expect(s.apply(PropertyUpdate(twin: "t", property: "p", value: .number(2), timestampMs: 20)))
        #expect(!s.apply(PropertyUpdate(twin: "t", property: "p", value: .number(1), timestampMs: 10)))
        #expect(s.number("t", "p") == 2)
        #expect(s.outOfOrder == 1)
    }

    @Test func historyIsBoundedByCountAndTime() {
        var h = TwinHistory(capacity: 5, windowMs: 1000)
        for k in 0..<10 { h.append(PropertyUpdate(twin: "t", property: "p", value: .number(Double(k)), timestampMs: UInt64(k) * 100)) }
        #expect(h.entries.count == 5)
        h.append(PropertyUpdate(twin: "t", property: "p", value: .number(0), timestampMs: 5000))
        #expect(h.entries.count == 1)
        #expect(h.updates(from: 0, to: 6000).count == 1)
        #expect(h.newestDroppedMs == 900 && h.holdsEverything(after: 900) && !h.holdsEverything(after: 899))
        // A source's late stamp goes in its place in time, so ranges stay right.
        var o = TwinHistory()
        for t: UInt64 in [10, 30, 20, 40, 5] { o.append(PropertyUpdate(twin: "t", property: "p", value: .number(Double(t)), timestampMs: t)) }
        #expect(o.entries.map(\.timestampMs) == [5, 10, 20, 30, 40])
        #expect(o.updates(from: 15, to: 35).map(\.timestampMs) == [20, 30])
        // After a restart memory knows nothing before it.
        o.markUnknown(through: 25)
        #expect(!o.holdsEverything(after: 20) && o.holdsEverything(after: 25))
    }

    @Test func markingStaleKeepsValues() {
        let s = TwinStore()
        s.apply(PropertyUpdate(twin: "edge1/t", property: "p", value: .number(3), timestampMs: 10))
        s.apply(PropertyUpdate(twin: "edge2/t", property: "p", value: .number(4), timestampMs: 10))
        // A pending (not yet applied) update comes first; nothing changes until the marks are applied.
        let pending = [PropertyUpdate(twin: "edge1/t", property: "q", value: .bool(true), timestampMs: 20)]
        let marked = s.marks(twin: "edge1/t", quality: .stale, atMs: 50, after: pending)
        #expect(marked.map(\.property) == ["p", "q"] && marked.allSatisfy { $0.quality == .stale && $0.timestampMs == 50 })
        #expect(s.state("edge1/t", "p")?.quality == .good)
        for u in pending + marked { s.apply(u) }
        #expect(s.state("edge1/t", "p")?.quality == .stale)
        #expect(s.state("edge1/t", "p")?.value == .number(3))
        #expect(s.state("edge1/t", "q")?.value == .bool(true))
        #expect(s.state("edge2/t", "p")?.quality == .good)
        // The source comes back with a reading stamped before our mark (its clock lags): it still wins.
        #expect(s.apply(PropertyUpdate(twin: "edge1/t", property: "p", value: .number(5), timestampMs: 40)))
        #expect(s.state("edge1/t", "p")?.quality == .good && s.state("edge1/t", "p")?.value == .number(5))
        // An older good value over a good one is out of order; an exact copy is a duplicate.
        #expect(!s.apply(PropertyUpdate(twin: "edge1/t", property: "p", value: .number(6), timestampMs: 30)))
        #expect(!s.apply(PropertyUpdate(twin: "edge1/t", property: "p", value: .number(5), timestampMs: 40)))
        #expect(s.duplicates == 1 && s.outOfOrder == 1)
    }

    @Test func relationships() {
        let s = TwinStore()
        s.relate("conveyor-1", Relationship(name: "feeds", target: "press-1"))
        s.relate("conveyor-1", Relationship(name: "feeds", target: "press-1"))
        #expect(s.relationships(of: "conveyor-1") == [Relationship(name: "feeds", target: "press-1")])
    }
}

@Suite struct ZoneFilterTests {
    @Test func zoneFiltersKeepUnzonedAncestorsOnly() throws {
        let g = SceneGraph(sceneId: "t")
        try g.add(NodeSpec(id: "hall", anchor: "h"))  // 0: unzoned structure
        try g.add(NodeSpec(id: "hall/floor", asset: "f"))  // 1: unzoned, above no zone
        try g.add(NodeSpec(id: "hall/line1", zone: "L1"))  // 2
        try g.add(NodeSpec(id: "hall/line1/robot", asset: "r"))  // 3
        try g.add(NodeSpec(id: "hall/line2", zone: "L2"))  // 4
        try g.add(NodeSpec(id: "hall/line2/robot", asset: "r"))  // 5
        g.commit(timeMs: 1)
        #expect(g.membership(InterestFilter(zones: ["L1"])).members == [0, 2, 3])
        #expect(g.membership(InterestFilter(zones: ["L2"])).members == [0, 4, 5])
        #expect(g.membership(InterestFilter(layers: ["x"], zones: ["L1"])).members == [0])
        #expect(g.membership(InterestFilter(zones: ["nope"])).members == [])
    }
}
