import SceneStreamCore
import Testing

@testable import SceneStreamIngest

/// The ingest pipeline: order kept across budgeted drains, redeliveries dropped, stale marks placed after the
/// tick's earlier updates and dropped when a later update replaces them, bad keys refused.
@Suite struct IngestPipelineTests {
    func u(_ twin: String, _ p: String, _ v: Double, at t: UInt64, _ q: Quality = .good) -> PropertyUpdate {
        PropertyUpdate(twin: twin, property: p, value: .number(v), timestampMs: t, quality: q)
    }

    @Test func drainsInOrderWithinABudget() {
        var q = IngestQueue()
        q.append(contentsOf: (0..<10).map { u("t", "p", Double($0), at: UInt64($0)) })
        q.append(.stale(["t"]))
        q.append(.update(u("t", "p", 99, at: 99)))
        #expect(q.backlog == 12)
        let first = q.drain(maxItems: 4)
        let rest = q.drain(maxItems: 100)
        #expect(first.count == 4 && rest.count == 8 && q.backlog == 0)
        #expect(first + rest == (0..<10).map { IngestItem.update(u("t", "p", Double($0), at: UInt64($0))) } + [.stale(["t"]), .update(u("t", "p", 99, at: 99))])
    }

    @Test func redeliveryIsDropped() {
        let store = TwinStore()
        _ = store.apply(u("t", "p", 1, at: 10))
        var sourced: Set<String> = []
        let b = IngestPipeline.assemble(
            [.update(u("t", "p", 1, at: 10)), .update(u("t", "p", 2, at: 11))], twins: store, sourced: &sourced, brokerLost: false, nowMs: 20)
        #expect(b.duplicates == 1 && b.updates == [u("t", "p", 2, at: 11)] && sourced == ["t"])
    }

    @Test func staleMarkFollowsEarlierUpdatesKeepingTheirValues() {
        let store = TwinStore()
        _ = store.apply(u("t", "p", 1, at: 10))
        var sourced: Set<String> = []
        let b = IngestPipeline.assemble(
            [.update(u("t", "q", 5, at: 11)), .stale(["t"])], twins: store, sourced: &sourced, brokerLost: false, nowMs: 20)
        // q's new value, then both properties marked stale at the mark's time with the values they have by then.
        #expect(b.updates.first == u("t", "q", 5, at: 11))
        let marks = b.updates.dropFirst()
        #expect(Set(marks.map(\.property)) == ["p", "q"] && marks.allSatisfy { $0.quality == .stale && $0.timestampMs == 20 })
        #expect(marks.first { $0.property == "q" }?.value == .number(5))
    }

    @Test func deathThenBirthInOneTickKeepsTheBirth() {
        let store = TwinStore()
        _ = store.apply(u("t", "p", 1, at: 10))
        var sourced: Set<String> = []
        // The birth's value is stamped by the edge before the mark's time: without care the mark would win.
        let b = IngestPipeline.assemble(
            [.stale(["t"]), .update(u("t", "p", 7, at: 15))], twins: store, sourced: &sourced, brokerLost: false, nowMs: 20)
        #expect(b.updates == [u("t", "p", 7, at: 15)])
    }

    @Test func brokerLossMarksEveryTwinThisSourceFed() {
        let store = TwinStore()
        _ = store.apply(u("a", "p", 1, at: 10))
        _ = store.apply(u("b", "p", 2, at: 10))
        _ = store.apply(u("c", "p", 3, at: 10))
        var sourced: Set<String> = ["a"]
        let b = IngestPipeline.assemble([.update(u("b", "p", 4, at: 12))], twins: store, sourced: &sourced, brokerLost: true, nowMs: 30)
        #expect(sourced == ["a", "b"])
        #expect(b.updates.first == u("b", "p", 4, at: 12))
        #expect(b.updates.dropFirst().map(\.twin) == ["a", "b"] && b.updates.dropFirst().allSatisfy { $0.quality == .stale })
    }

    @Test func badKeysAreRefusedOnEveryPath() {
        let store = TwinStore()
        var sourced: Set<String> = []
        let long = String(repeating: "x", count: 300)
        let b = IngestPipeline.assemble(
            [.update(u(long, "p", 1, at: 1)), .update(u("t", "a\u{0}b", 1, at: 1)), .update(u("t", "p", 1, at: 1))],
            twins: store, sourced: &sourced, brokerLost: false, nowMs: 5)
        #expect(b.badKeys == 2 && b.updates == [u("t", "p", 1, at: 1)] && sourced == ["t"])
    }

    @Test func rejectLogSaysOncePerTopicAndStaysBounded() {
        var log = RejectLog(maxTopics: 3)
        for k in 0..<10 { log.note(topic: "t\(k % 5)", reason: "bad") }
        #expect(log.take().map(\.topic) == ["t0", "t1", "t2"])
        log.note(topic: "t0", reason: "bad")
        #expect(log.take().isEmpty)
    }

    @Test func httpBodyRefusalNamesTheEntry() {
        guard case .failure(let e) = HTTPIngest.parse(Array(#"{"updates":[{"twin":"a","property":"p","value":1},{"twin":"b"}]}"#.utf8), nowMs: 1) else {
            Issue.record("accepted")
            return
        }
        #expect(e.code == "bad_payload" && e.message.hasPrefix("updates[1]"))
        #expect((try? HTTPIngest.parse(Array(#"{"updates":[{"twin":"a","property":"p","value":1,"timestamp":5}]}"#.utf8), nowMs: 1).get()) == [u("a", "p", 1, at: 5)])
    }

    @Test func encodedBatchReadsBackToTheSameUpdates() throws {
        let batch = [
            u("line-01/press-01", "temperature", 71.234567890123, at: 1_780_000_000_123),
            u("a", "p", -0.000001, at: 5, .stale),
            PropertyUpdate(twin: "a", property: "running", value: .bool(false), timestampMs: 6, quality: .bad),
            PropertyUpdate(twin: "a", property: "note", value: .text("say \"hi\" \\ tab\t line\n é 🏭"), timestampMs: 7),
            u("a", "big", 1e300, at: 8), u("a", "whole", 42, at: 9),
        ]
        let body = HTTPIngest.encode(batch)
        #expect(try HTTPIngest.parse(body, nowMs: 1).get() == batch)
        // Every timestamp and quality is written, so the time a replay reads it back does not matter.
        #expect(try HTTPIngest.parse(body, nowMs: 999_999).get() == batch)
        #expect(try HTTPIngest.parse(HTTPIngest.encode([]), nowMs: 1).get() == [])
    }
}
