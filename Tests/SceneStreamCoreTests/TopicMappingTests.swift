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

    @Test func badPatterns() {
        #expect(throws: ConfigError.self) { try TopicMapping(pattern: "a/+/b", twin: "x", property: "y") }
        #expect(throws: ConfigError.self) { try TopicMapping(pattern: "a/{x...}/{y...}", twin: "x", property: "y") }
    }
}
