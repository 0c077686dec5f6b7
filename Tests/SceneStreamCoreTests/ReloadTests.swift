import SceneStreamProtocol
import Testing

@testable import SceneStreamCore

/// Plant files changed while clients stream: the running scene takes them as changes of its next version, with the
/// current values through the new bindings and rules; what cannot be taken live is refused and nothing changes.
@Suite struct ReloadTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    let sceneText = ##"{"id":"t","anchors":[{"id":"hall"}],"nodes":[{"id":"line","anchor":"hall"},{"id":"line/p1","color":"#ffffff","label":"p1"},{"id":"line/p2"}]}"##

    func scene(_ s: String? = nil) throws -> SceneFile { try SceneFile.parse(bytes(s ?? sceneText), file: "scene.json") }

    func bindings(_ field: String = "color") throws -> BindingSet {
        let map = field == "color"
            ? ##"{"kind":"rangeColor","blend":false,"stops":[[0,"#00ff00"],[80,"#ff0000"]]}"##
            : #"{"kind":"format","format":"{value} °C","precision":0}"#
        return try BindingSet.parse(bytes(#"{"bindings":[{"twins":"line/*","property":"temperature","node":"{twin}","field":"\#(field)","map":\#(map)}]}"#), file: "bindings.json")
    }

    func rules(above: Double) throws -> RuleSet {
        try RuleSet.parse(bytes(#"{"rules":[{"id":"hot","twins":"line/*","property":"temperature","above":\#(above)}]}"#), file: "rules.json")
    }

    func runtime() throws -> SceneRuntime {
        let r = try SceneRuntime(scene: try scene(), bindings: try bindings(), rules: try rules(above: 90), relationships: [])
        _ = r.ingest([PropertyUpdate(twin: "line/p1", property: "temperature", value: .number(85), timestampMs: 1)])
        _ = r.graph.commit(timeMs: 1)
        return r
    }

    func node(_ r: SceneRuntime, _ id: String) -> WireNode? { r.graph.index(of: id).flatMap { r.graph[$0] } }

    @Test func newBindingsApplyToCurrentValuesAsAnUpdateNotAKeyframe() throws {
        let r = try runtime()
        #expect(node(r, "line/p1")?.color == 0xFF0000FF && node(r, "line/p1")?.label == "p1")
        let v = r.graph.version
        let events = try r.reload(scene: try scene(), bindings: try bindings("label"), rules: try rules(above: 90), relationships: [], timeMs: 2)
        #expect(events.isEmpty)
        // The label now shows the value; the colour the old binding wrote is back to the file's.
        #expect(node(r, "line/p1")?.label == "85 °C" && node(r, "line/p1")?.color == 0xFFFFFFFF)
        let next = r.graph.commit(timeMs: 2)
        #expect(next == v + 1)
        #expect(r.graph.logs.last?.changes.map { r.graph.id(of: $0.index) } == ["line/p1"])
        // New values go through the new binding.
        _ = r.ingest([PropertyUpdate(twin: "line/p1", property: "temperature", value: .number(60), timestampMs: 3)])
        #expect(node(r, "line/p1")?.label == "60 °C")
    }

    @Test func sceneChangesBecomeAddsRemovesAndUpdates() throws {
        let r = try runtime()
        let p2 = try #require(r.graph.index(of: "line/p2"))
        let edited = ##"{"id":"t","anchors":[{"id":"hall"}],"nodes":[{"id":"line","anchor":"hall","t":[1,0,0]},{"id":"line/p1","color":"#ffffff","label":"p1"},{"id":"line/p3"}]}"##
        _ = try r.reload(scene: try scene(edited), bindings: try bindings(), rules: try rules(above: 90), relationships: [], timeMs: 2)
        #expect(r.graph[p2] == nil && r.graph.index(of: "line/p3") != nil)
        #expect(node(r, "line")?.translation == r.graph.quantization.position(1, 0, 0))
        // The bound colour stays (the binding did not change) and the new node takes bindings at once.
        #expect(node(r, "line/p1")?.color == 0xFF0000FF)
        _ = r.ingest([PropertyUpdate(twin: "line/p3", property: "temperature", value: .number(10), timestampMs: 3)])
        #expect(node(r, "line/p3")?.color == 0x00FF00FF)
        #expect(r.scene.nodes.map(\.id) == ["line", "line/p1", "line/p3"])
    }

    @Test func changedRulesRaiseAndClearOnCurrentValues() throws {
        let r = try runtime()
        let raised = try r.reload(scene: try scene(), bindings: try bindings(), rules: try rules(above: 80), relationships: [], timeMs: 2)
        #expect(raised.map(\.id) == ["hot@line/p1"] && raised.map(\.state) == [.raised])
        // The same rule again: the alert stays as it was, nothing new is said.
        #expect(try r.reload(scene: try scene(), bindings: try bindings(), rules: try rules(above: 80), relationships: [], timeMs: 3).isEmpty)
        #expect(r.alerts.active["hot@line/p1"]?.timeMs == raised.first?.timeMs)
        let cleared = try r.reload(scene: try scene(), bindings: try bindings(), rules: try rules(above: 95), relationships: [], timeMs: 4)
        #expect(cleared.map(\.state) == [.cleared] && cleared.first?.timeMs == 4 && r.alerts.active.isEmpty)
    }

    @Test func anAlertInsideItsHysteresisBandStaysThroughAReload() throws {
        let r = try runtime()
        let band = try RuleSet.parse(bytes(#"{"rules":[{"id":"hot","twins":"line/*","property":"temperature","above":80,"clear":70,"severity":"warning"}]}"#), file: "rules.json")
        let raised = try r.reload(scene: try scene(), bindings: try bindings(), rules: band, relationships: [], timeMs: 2)
        #expect(raised.map(\.state) == [.raised] && raised.first?.timeMs == 2)  // raised by the new rule, at the reload
        _ = r.ingest([PropertyUpdate(twin: "line/p1", property: "temperature", value: .number(75), timestampMs: 3)])
        #expect(r.alerts.active["hot@line/p1"] != nil)  // 75: above the clear level, still active
        // Any reload (here the bindings only) keeps it: 75 would not raise it, but it does not clear it either.
        #expect(try r.reload(scene: try scene(), bindings: try bindings("label"), rules: band, relationships: [], timeMs: 4).isEmpty)
        #expect(r.alerts.active["hot@line/p1"]?.timeMs == 2)
        // A new severity is said; a rule removed clears it.
        let critical = try RuleSet.parse(bytes(#"{"rules":[{"id":"hot","twins":"line/*","property":"temperature","above":80,"clear":70,"severity":"critical"}]}"#), file: "rules.json")
        let changed = try r.reload(scene: try scene(), bindings: try bindings(), rules: critical, relationships: [], timeMs: 5)
        #expect(changed.map(\.state) == [.raised] && changed.first?.severity == .critical)
        let gone = try r.reload(scene: try scene(), bindings: try bindings(), rules: RuleSet(), relationships: [], timeMs: 6)
        #expect(gone.map(\.state) == [.cleared] && gone.first?.timeMs == 6)
    }

    @Test func anchorsAlonePassAndAggregatesFollowRelationshipsThatGo() throws {
        let r = try SceneRuntime(
            scene: try scene(), bindings: try BindingSet.parse(bytes(#"{"bindings":[]}"#), file: "b.json"),
            rules: try RuleSet.parse(bytes(#"{"rules":[{"id":"any","twins":"line","property":"max(has.temperature)","above":1}]}"#), file: "r.json"),
            relationships: [RelationshipEdge(source: "line", name: "has", target: "line/p1")])
        _ = r.ingest([PropertyUpdate(twin: "line/p1", property: "temperature", value: .number(85), timestampMs: 1)])
        #expect(r.twins.state("line", "max(has.temperature)")?.quality == .good)
        let moreAnchors = ##"{"id":"t","anchors":[{"id":"hall"},{"id":"yard"}],"nodes":[{"id":"line","anchor":"hall"},{"id":"line/p1","color":"#ffffff","label":"p1"},{"id":"line/p2"}]}"##
        _ = try r.reload(scene: try scene(moreAnchors), bindings: r.bindings.set, rules: r.alerts.set, relationships: [], timeMs: 2)
        #expect(r.scene.anchors.map(\.id) == ["hall", "yard"])
        // Its relationship is gone: the aggregate is no longer current.
        #expect(r.twins.state("line", "max(has.temperature)")?.quality == .stale)
    }

    @Test func aNewNodeWithTheIdOfASessionsNodeIsRefusedBeforeAnythingChanges() throws {
        let r = try runtime()
        try r.graph.add(NodeSpec(id: "line/~note-1", label: "a note"))
        _ = r.graph.commit(timeMs: 2)
        let v = r.graph.version
        let clash = ##"{"id":"t","anchors":[{"id":"hall"}],"nodes":[{"id":"line","anchor":"hall"},{"id":"line/~note-1"}]}"##
        #expect(throws: SceneRuntime.ReloadError.self) {
            try r.reload(scene: try scene(clash), bindings: try bindings(), rules: try rules(above: 90), relationships: [], timeMs: 3)
        }
        #expect(r.graph.index(of: "line/p2") != nil && !r.graph.hasPendingChanges && r.graph.commit(timeMs: 4) == v)
    }

    @Test func whatNeedsARestartIsRefusedAndNothingChanges() throws {
        let r = try runtime()
        let v = r.graph.version
        #expect(throws: SceneRuntime.ReloadError.self) {
            try r.reload(scene: try scene(#"{"id":"other","anchors":[{"id":"hall"}],"nodes":[{"id":"line","anchor":"hall"}]}"#),
                         bindings: try bindings("label"), rules: try rules(above: 80), relationships: [], timeMs: 2)
        }
        #expect(throws: SceneRuntime.ReloadError.self) {
            try r.reload(scene: try scene(#"{"id":"t","quantization":{"positionUnitsPerMetre":100},"anchors":[{"id":"hall"}],"nodes":[{"id":"line","anchor":"hall"}]}"#),
                         bindings: try bindings("label"), rules: try rules(above: 80), relationships: [], timeMs: 2)
        }
        #expect(!r.graph.hasPendingChanges && r.graph.commit(timeMs: 3) == v)
        #expect(node(r, "line/p1")?.label == "p1" && r.alerts.active.isEmpty && r.scene.nodes.count == 3)
    }
}
