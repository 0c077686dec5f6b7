import SceneStreamProtocol
import Testing

@testable import SceneStreamCore

@Suite struct BindingTests {
    func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    func runtime(_ bindings: String) throws -> SceneRuntime {
        let scene = try SceneFile.parse(
            bytes(
                """
                {"id":"t","anchors":[{"id":"hall"}],"nodes":[
                {"id":"line","anchor":"hall"},
                {"id":"line/robot-1","asset":"m.gltf"},{"id":"line/robot-1/j1"},{"id":"line/robot-1/light"},
                {"id":"line/press-1"},{"id":"line/press-1/temp"},
                {"id":"line/agv-1"}]}
                """), file: "scene.json")
        return try SceneRuntime(
            scene: scene, bindings: try BindingSet.parse(bytes(bindings), file: "bindings.json"),
            rules: RuleSet())
    }

    func node(_ r: SceneRuntime, _ id: String) -> WireNode { r.graph[r.graph.index(of: id)!]! }

    func set(_ r: SceneRuntime, _ twin: String, _ p: String, _ v: Double, at t: UInt64 = 1) {
        _ = r.ingest([PropertyUpdate(twin: twin, property: p, value: .number(v), timestampMs: t)])
    }

    @Test func linearRotationAndTranslation() throws {
        let r = try runtime(
            """
            {"bindings":[
             {"twins":"line/robot-*","property":"j1","node":"{twin}/j1","field":"rotation.y","map":{"kind":"linear","scale":0.0174532925}},
             {"twins":"line/robot-*","property":"x","node":"{twin}","field":"translation.x","map":{"kind":"linear","scale":2,"offset":1,"max":10}}]}
            """)
        set(r, "line/robot-1", "j1", 90)
        let q = r.graph.quantization
        #expect(node(r, "line/robot-1/j1").rotation == q.rotation(Quaternion(axis: (0, 1, 0), angle: .pi / 2)))
        set(r, "line/robot-1", "x", 2)
        #expect(node(r, "line/robot-1").translation == QVec3(5000, 0, 0))
        set(r, "line/robot-1", "x", 100, at: 2)
        #expect(node(r, "line/robot-1").translation == QVec3(10000, 0, 0), "clamped to max")
    }

    @Test func rangeColourBlendsAndSteps() throws {
        let r = try runtime(
            """
            {"bindings":[
             {"twins":"line/press-*","property":"t","node":"{twin}","field":"color","map":{"kind":"rangeColor","stops":[[0,"#000000"],[100,"#ff0000"]]}},
             {"twins":"line/press-*","property":"s","node":"{twin}/temp","field":"color","map":{"kind":"rangeColor","stops":[[0,"#00ff00"],[10,"#ff0000"]],"blend":false}}]}
            """)
        set(r, "line/press-1", "t", 50)
        #expect(node(r, "line/press-1").color == 0x80_00_00_FF)
        set(r, "line/press-1", "t", 500, at: 2)
        #expect(node(r, "line/press-1").color == 0xFF_00_00_FF)
        set(r, "line/press-1", "s", 9)
        #expect(node(r, "line/press-1/temp").color == 0x00_FF_00_FF)
        set(r, "line/press-1", "s", 10, at: 2)
        #expect(node(r, "line/press-1/temp").color == 0xFF_00_00_FF)
    }

    @Test func thresholdFormatAndPose() throws {
        let r = try runtime(
            """
            {"bindings":[
             {"twins":"line/robot-*","property":"state","node":"{twin}/light","field":"visible","map":{"kind":"threshold","above":1,"then":true,"else":false}},
             {"twins":"line/press-*","property":"temperature","node":"{twin}/temp","field":"label","map":{"kind":"format","format":"{twin} {value} °C","precision":1}},
             {"twins":"line/agv-*","field":"pose","node":"{twin}","map":{"kind":"pose","x":"x","z":"z","yaw":"heading"}}]}
            """)
        set(r, "line/robot-1", "state", 0)
        #expect(node(r, "line/robot-1/light").visible == false)
        set(r, "line/robot-1", "state", 1, at: 2)
        #expect(node(r, "line/robot-1/light").visible == true)
        set(r, "line/press-1", "temperature", 72.25)
        #expect(node(r, "line/press-1/temp").label == "line/press-1 72.2 °C" || node(r, "line/press-1/temp").label == "line/press-1 72.3 °C")
        set(r, "line/agv-1", "x", 3)
        set(r, "line/agv-1", "z", 4)
        set(r, "line/agv-1", "heading", 90)
        let agv = node(r, "line/agv-1")
        #expect(agv.translation == QVec3(3000, 0, 4000))
        #expect(agv.rotation == r.graph.quantization.rotation(Quaternion(axis: (0, 1, 0), angle: .pi / 2)))
    }

    @Test func bindingsToMissingNodesAreReportedNotApplied() throws {
        let r = try runtime(
            """
            {"bindings":[{"twins":"line/robot-*","property":"j1","node":"{twin}/nope","field":"rotation.y","map":{"kind":"linear"}}]}
            """)
        set(r, "line/robot-1", "j1", 1)
        #expect(!r.graph.hasPendingChanges)
        #expect(r.bindings.unresolved.first?.contains("node 'line/robot-1/nope' not in scene") == true)
    }

    @Test(arguments: [
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"colour\",\"map\":{\"kind\":\"linear\"}}]}",
         "bindings.json: bindings[0].field: unknown field 'colour'"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"color\",\"map\":{\"kind\":\"lineer\"}}]}",
         "bindings.json: bindings[0].map.kind: unknown mapping kind 'lineer'"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"color\",\"map\":{\"kind\":\"linear\"}}]}",
         "bindings.json: bindings[0].map.kind: linear needs a numeric field"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"color\",\"map\":{\"kind\":\"rangeColor\",\"stops\":[[10,\"#ff0000\"],[5,\"#00ff00\"]]}}]}",
         "bindings.json: bindings[0].map.stops[1][0]: stops must ascend"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"color\",\"map\":{\"kind\":\"rangeColor\",\"stops\":[[10,\"red\"]]}}]}",
         "bindings.json: bindings[0].map.stops[0][1]: expected a colour"),
        ("{\"bindings\":[{\"twins\":\"a\",\"node\":\"n\",\"field\":\"label\",\"map\":{\"kind\":\"format\",\"format\":\"x\"}}]}",
         "bindings.json: bindings[0].property: missing"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"visible\",\"map\":{\"kind\":\"threshold\",\"above\":1,\"then\":\"yes\",\"else\":false}}]}",
         "bindings.json: bindings[0].map.then: expected true or false"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"node\":\"n\",\"field\":\"translation.x\",\"map\":{\"kind\":\"linear\",\"scale\":\"2\"}}]}",
         "bindings.json: bindings[0].map.scale: expected a number"),
        ("{\"bindings\":[{\"twins\":\"a\",\"property\":\"p\",\"nod\":\"n\",\"field\":\"label\",\"map\":{\"kind\":\"format\",\"format\":\"x\"}}]}",
         "bindings.json: bindings[0].nod: unknown key"),
        ("{\"bindings\":[ {\"twins\": \"a\",, } ]}", "bindings.json: "),
        ("{\"format\":\"scenestream.bindings/9\",\"bindings\":[]}", "bindings.json: format: unsupported format"),
    ])
    func badBindingFilesNameFileKeyAndReason(_ text: String, _ prefix: String) {
        do {
            _ = try BindingSet.parse(Array(text.utf8), file: "bindings.json")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(prefix), "got: \(error.description)")
            #expect(!error.reason.isEmpty)
        }
    }
}

@Suite struct RuleTests {
    func rules(_ s: String) throws -> AlertEngine { AlertEngine(try RuleSet.parse(Array(s.utf8), file: "rules.json")) }

    func u(_ twin: String, _ v: Double, _ t: UInt64) -> PropertyUpdate {
        PropertyUpdate(twin: twin, property: "temperature", value: .number(v), timestampMs: t)
    }

    @Test func raiseAndClearWithHysteresis() throws {
        let e = try rules(
            """
            {"rules":[{"id":"hot","twins":"*/press-*","property":"temperature","above":90,"clear":85,"severity":"critical","message":"{twin} at {value}","node":"{twin}"}]}
            """)
        #expect(e.evaluate(u("l/press-1", 80, 1)).isEmpty)
        let raised = e.evaluate(u("l/press-1", 91, 2))
        #expect(raised.count == 1)
        #expect(raised.first?.state == .raised)
        #expect(raised.first?.message == "l/press-1 at 91.0")
        #expect(raised.first?.nodeId == "l/press-1")
        #expect(raised.first?.severity == .critical)
        #expect(e.evaluate(u("l/press-1", 95, 3)).isEmpty, "already raised")
        #expect(e.evaluate(u("l/press-1", 88, 4)).isEmpty, "inside the hysteresis band")
        let cleared = e.evaluate(u("l/press-1", 84, 5))
        #expect(cleared.map(\.state) == [.cleared])
        #expect(e.active.isEmpty)
        #expect(e.evaluate(u("other/tank-1", 99, 6)).isEmpty, "pattern does not match")
    }

    @Test func belowRules() throws {
        let e = try rules("{\"rules\":[{\"id\":\"low\",\"twins\":\"t\",\"property\":\"temperature\",\"below\":5,\"clear\":10}]}")
        #expect(e.evaluate(u("t", 4, 1)).first?.severity == .warning)
        #expect(e.evaluate(u("t", 8, 2)).isEmpty)
        #expect(e.evaluate(u("t", 10, 3)).first?.state == .cleared)
    }

    @Test(arguments: [
        ("{\"rules\":[{\"id\":\"a\",\"twins\":\"t\",\"property\":\"p\"}]}", "rules.json: rules[0]: give exactly one of 'above' or 'below'"),
        ("{\"rules\":[{\"id\":\"a\",\"twins\":\"t\",\"property\":\"p\",\"above\":5,\"clear\":6}]}", "rules.json: rules[0].clear: clear 6.0 must be at or below"),
        ("{\"rules\":[{\"id\":\"a\",\"twins\":\"t\",\"property\":\"p\",\"above\":5,\"severity\":\"fatal\"}]}", "rules.json: rules[0].severity: unknown severity 'fatal'"),
        ("{\"rules\":[{\"id\":\"a\",\"twins\":\"t\",\"property\":\"p\",\"above\":5},{\"id\":\"a\",\"twins\":\"t\",\"property\":\"p\",\"above\":5}]}", "rules.json: rules[1].id: duplicate rule id 'a'"),
    ])
    func badRuleFiles(_ text: String, _ prefix: String) {
        #expect(throws: ConfigError.self) { try RuleSet.parse(Array(text.utf8), file: "rules.json") }
        do { _ = try RuleSet.parse(Array(text.utf8), file: "rules.json") } catch {
            #expect(error.description.hasPrefix(prefix), "got: \(error.description)")
        }
    }
}

@Suite struct SceneFileTests {
    @Test(arguments: [
        ("{\"id\":\"s\",\"anchors\":[],\"nodes\":[{\"id\":\"a\"}]}", "scene.json: nodes[0]: root node 'a' needs an anchor"),
        ("{\"id\":\"s\",\"anchors\":[{\"id\":\"h\"}],\"nodes\":[{\"id\":\"a\",\"anchor\":\"x\"}]}", "scene.json: nodes[0].anchor: unknown anchor 'x'"),
        ("{\"id\":\"s\",\"anchors\":[{\"id\":\"h\"}],\"nodes\":[{\"id\":\"a/b\"}]}", "scene.json: nodes[0].id: parent 'a' is not defined before it"),
        ("{\"id\":\"s\",\"anchors\":[{\"id\":\"h\"}],\"nodes\":[{\"id\":\"a\",\"anchor\":\"h\",\"t\":[1,2]}]}", "scene.json: nodes[0].t: expected 3 numbers"),
        ("{\"id\":\"s\",\"anchors\":[{\"id\":\"h\"}],\"nodes\":[{\"id\":\"a\",\"anchor\":\"h\",\"color\":\"blue\"}]}", "scene.json: nodes[0].color: expected a colour"),
        ("{\"id\":\"s\",\"quantization\":{\"rotationBits\":40},\"anchors\":[],\"nodes\":[]}", "scene.json: quantization.rotationBits: expected a whole number 4…16"),
    ])
    func badSceneFiles(_ text: String, _ prefix: String) {
        do {
            _ = try SceneFile.parse(Array(text.utf8), file: "scene.json")
            Issue.record("accepted")
        } catch {
            #expect(error.description.hasPrefix(prefix), "got: \(error.description)")
        }
    }
}
