import SceneStreamProtocol
import Testing

@testable import SceneStreamCore

/// Rules and bindings over relationships: a line's light shows the worst of its machines; a line alert fires when
/// any press overheats — data in files, no code.
@Suite struct AggregateTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func runtime(relationships: [RelationshipEdge]? = nil) throws -> SceneRuntime {
        let scene = try SceneFile.parse(
            bytes(#"{"id":"t","anchors":[{"id":"hall"}],"nodes":[{"id":"line","anchor":"hall"},{"id":"line/light"},{"id":"line/p1"},{"id":"line/p2"}]}"#),
            file: "scene.json")
        let bindings = try BindingSet.parse(
            bytes(##"{"bindings":[{"twins":"line","property":"max(contains.status)","node":"{twin}/light","field":"color","map":{"kind":"rangeColor","blend":false,"stops":[[0,"#00ff00"],[1,"#ffaa00"],[2,"#ff0000"]]}}]}"##),
            file: "bindings.json")
        let rules = try RuleSet.parse(
            bytes(#"{"rules":[{"id":"line-hot","twins":"line","property":"any(contains.hot)","above":0.5,"severity":"critical","message":"{twin}: a press overheats"},{"id":"line-avg","twins":"line","property":"avg(contains.temperature)","above":80,"clear":70}]}"#),
            file: "rules.json")
        let edges = relationships ?? ["p1", "p2"].map { RelationshipEdge(source: "line", name: "contains", target: "line/\($0)") }
        return try SceneRuntime(scene: scene, bindings: bindings, rules: rules, relationships: edges)
    }

    func set(_ r: SceneRuntime, _ twin: String, _ p: String, _ v: TwinValue, at t: UInt64, _ q: Quality = .good) -> [AlertEvent] {
        r.ingest([PropertyUpdate(twin: twin, property: p, value: v, timestampMs: t, quality: q)])
    }

    func light(_ r: SceneRuntime) -> UInt32 { r.graph[r.graph.index(of: "line/light")!]!.color }

    @Test func namesParseAndComputeEachKind() {
        #expect(Aggregate.parse("max(contains.status)") == Aggregate(kind: .max, relationship: "contains", property: "status"))
        for bad in ["max(contains)", "sum(a.b)", "max(.b)", "max(a.)", "status", "max(a.b"] { #expect(Aggregate.parse(bad) == nil, "\(bad)") }
        let inputs = [1.0, 0, 4].map { PropertyState(value: .number($0), timestampMs: 0, quality: .good) }
        func v(_ k: Aggregate.Kind) -> TwinValue? { Aggregate(kind: k, relationship: "r", property: "p").value(of: inputs)?.0 }
        #expect(v(.any) == .number(1) && v(.all) == .number(0) && v(.count) == .number(2))
        #expect(v(.min) == .number(0) && v(.max) == .number(4) && v(.avg) == .number(5.0 / 3))
        #expect(Aggregate(kind: .max, relationship: "r", property: "p").value(of: []) == nil)
        let stale = inputs + [PropertyState(value: .bool(true), timestampMs: 0, quality: .stale)]
        #expect(Aggregate(kind: .max, relationship: "r", property: "p").value(of: stale)?.1 == .stale)
    }

    @Test func aBindingOverARelationshipShowsTheWorstOfItsMachines() throws {
        let r = try runtime()
        _ = set(r, "line/p1", "status", .number(0), at: 1)
        _ = set(r, "line/p2", "status", .number(0), at: 1)
        #expect(light(r) == 0x00FF00FF)
        _ = set(r, "line/p2", "status", .number(2), at: 2)
        #expect(light(r) == 0xFF0000FF && r.twins.number("line", "max(contains.status)") == 2)
        _ = set(r, "line/p2", "status", .number(1), at: 3)
        #expect(light(r) == 0xFFAA00FF)
        // A machine outside the relationship changes nothing.
        _ = set(r, "line/p9", "status", .number(2), at: 4)
        #expect(light(r) == 0xFFAA00FF)
    }

    @Test func aRuleOverARelationshipFiresAndClears() throws {
        let r = try runtime()
        #expect(set(r, "line/p1", "hot", .bool(false), at: 1).isEmpty)
        let raised = set(r, "line/p2", "hot", .bool(true), at: 2)
        #expect(raised.map(\.id) == ["line-hot@line"] && raised.first?.state == .raised && raised.first?.message == "line: a press overheats")
        let cleared = set(r, "line/p2", "hot", .bool(false), at: 3)
        #expect(cleared.map(\.state) == [.cleared])
        // avg (over the related twins that have the property) with hysteresis: 70 alone is below 80; (70 + 100) / 2
        // = 85 raises; (70 + 80) / 2 = 75 is above the clear level; (70 + 60) / 2 = 65 clears.
        #expect(set(r, "line/p1", "temperature", .number(70), at: 4).isEmpty)
        #expect(set(r, "line/p2", "temperature", .number(100), at: 5).map(\.state) == [.raised])
        #expect(set(r, "line/p2", "temperature", .number(80), at: 6).isEmpty)
        #expect(set(r, "line/p2", "temperature", .number(60), at: 7).map(\.state) == [.cleared])
    }

    @Test func withoutTheRelationshipNothingIsDerivedAndPlaybackKeepsIt() throws {
        let none = try runtime(relationships: [])
        _ = set(none, "line/p1", "status", .number(2), at: 1)
        #expect(none.twins.state("line", "max(contains.status)") == nil)
        // A rebuilt (past) runtime has the relationships too.
        let r = try runtime()
        _ = set(r, "line/p1", "status", .number(2), at: 1)
        let past = try SceneRuntime.rebuilt(recipe: r.recipe, state: [PropertyUpdate(twin: "line/p1", property: "status", value: .number(1), timestampMs: 1)], at: 1)
        #expect(past.twins.number("line", "max(contains.status)") == 1 && light(past) == 0xFFAA00FF)
    }
}
