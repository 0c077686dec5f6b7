import Testing

@testable import SceneStreamCore

@Suite struct TopicMappingTests {
    let mappings = [
        try! TopicMapping(pattern: "legacy/{line}/{machine}/temperature", twin: "hall-a/{line}/{machine}", property: "temperature", scale: 0.1),
        try! TopicMapping(pattern: "scenestream/{twin...}/{property}", twin: "{twin}", property: "{property}"),
    ]

    func update(_ topic: String, _ payload: String) -> Result<PropertyUpdate, TopicMapping.Rejection> {
        TopicMapping.update(topic: topic, payload: Array(payload.utf8), mappings: mappings, nowMs: 1000)
    }

    @Test func filters() {
        #expect(mappings[0].filter == "legacy/+/+/temperature")
        #expect(mappings[1].filter == "scenestream/#")
    }

    @Test func capturesAndScaling() throws {
        let u = try update("legacy/line-01/press-02/temperature", "915").get()
        #expect(u.twin == "hall-a/line-01/press-02" && u.property == "temperature" && u.value == .number(91.5))
        let v = try update("scenestream/hall-a/line-01/robot-03/j2", "{\"value\": 0.5, \"timestamp\": 42, \"quality\": \"stale\"}").get()
        #expect(v.twin == "hall-a/line-01/robot-03" && v.property == "j2" && v.value == .number(0.5))
        #expect(v.timestampMs == 42 && v.quality == .stale)
        #expect(try update("scenestream/a/on", "true").get().value == .bool(true))
        #expect(try update("scenestream/a/name", "\"Press 2\"").get().value == .text("Press 2"))
    }

    @Test func rejections() {
        #expect(throws: TopicMapping.Rejection.noMapping) { try update("other/x", "1").get() }
        #expect(throws: TopicMapping.Rejection.noMapping) { try update("scenestream/onlyone", "1").get() }
        #expect(throws: TopicMapping.Rejection.self) { try update("scenestream/a/b", "{oops").get() }
        #expect(throws: TopicMapping.Rejection.self) { try update("scenestream/a/b", "{\"v\": 1}").get() }
        #expect(throws: TopicMapping.Rejection.self) { try update("scenestream/a/b", "{\"value\": 1, \"quality\": \"meh\"}").get() }
        #expect(throws: TopicMapping.Rejection.self) { try update("scenestream/a/b", "").get() }
    }

    @Test func typesAndRanges() throws {
        let typed = [
            try TopicMapping(pattern: "plc/{m}/temp", twin: "{m}", property: "temperature", scale: 0.1, kind: .number, range: -40...200),
            try TopicMapping(pattern: "plc/{m}/on", twin: "{m}", property: "running", kind: .bool),
        ]
        func u(_ t: String, _ p: String) -> Result<PropertyUpdate, TopicMapping.Rejection> {
            TopicMapping.update(topic: t, payload: Array(p.utf8), mappings: typed, nowMs: 1)
        }
        #expect(try u("plc/p1/temp", "1999").get().value == .number(199.9))
        // The range applies after scaling: 2001 × 0.1 = 200.1 is out.
        guard case .failure(.outOfRange) = u("plc/p1/temp", "2001") else { Issue.record("expected out of range"); return }
        guard case .failure(.wrongType) = u("plc/p1/temp", "true") else { Issue.record("expected wrong type"); return }
        guard case .failure(.wrongType) = u("plc/p1/on", "3") else { Issue.record("expected wrong type"); return }
        #expect(try u("plc/p1/on", "{\"value\": false}").get().value == .bool(false))
        #expect(TopicMapping.Rejection.outOfRange("x").code == "out_of_range")
    }

    @Test func badPatterns() {
        #expect(throws: ConfigError.self) { try TopicMapping(pattern: "a/+/b", twin: "x", property: "y") }
        #expect(throws: ConfigError.self) { try TopicMapping(pattern: "a/{x...}/{y...}", twin: "x", property: "y") }
    }
}
