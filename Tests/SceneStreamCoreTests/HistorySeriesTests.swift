import Testing

@testable import SceneStreamCore

@Suite struct HistorySeriesTests {
    typealias S = HistorySeries.Sample

    @Test func bucketsKeepMinMaxFirstLastAndMean() throws {
        // 0…999 ms, one sample every 10 ms, value = t; a spike of 500 at 505 ms.
        var samples = stride(from: UInt64(0), to: 1000, by: 10).map { S(timeMs: $0, value: Double($0)) }
        samples.append(S(timeMs: 505, value: 500_000))
        let s = try HistorySeries(fromMs: 0, toMs: 1000, points: 4, samples: samples.shuffled())
        #expect(s.bucketMs == 250)
        #expect(s.samples == 101)
        #expect(s.buckets.map(\.startMs) == [0, 250, 500, 750])
        let third = s.buckets[2]
        #expect(third.min == 500 && third.max == 500_000, "the spike survives downsampling")
        #expect(third.first == 500 && third.last == 740 && third.lastMs == 740)
        #expect(third.count == 26)
        let first = s.buckets[0]
        #expect(first.mean == (0 + 240) / 2.0)
    }

    @Test func samplesOutsideTheRangeAndNonFiniteValuesAreLeftOut() throws {
        let samples = [S(timeMs: 99, value: 1), S(timeMs: 100, value: 2), S(timeMs: 150, value: .nan), S(timeMs: 200, value: 3)]
        let s = try HistorySeries(fromMs: 100, toMs: 200, points: 500, samples: samples)
        #expect(s.samples == 1)
        #expect(s.bucketMs == 1)
        #expect(s.buckets.count == 1 && s.buckets[0].startMs == 100 && s.buckets[0].last == 2)
    }

    @Test func neverMoreBucketsThanAskedFor() throws {
        let samples = (0..<10_000).map { S(timeMs: UInt64($0) * 7, value: Double($0 % 13)) }
        for points in [1, 3, 17, 500, 4999] {
            let s = try HistorySeries(fromMs: 0, toMs: 70_000, points: points, samples: samples)
            #expect(s.buckets.count <= points)
            #expect(s.buckets.reduce(0) { $0 + $1.count } == 10_000)
        }
    }

    @Test func theWidestRangesDoNotOverflowAndLongOnesAreRefused() throws {
        // The largest span allowed, in the fewest and the most buckets: bucket widths are whole and cover it.
        let top = UInt64.max - 1
        for points in [1, 7, HistorySeries.maxPoints] {
            let s = try HistorySeries(fromMs: top - HistorySeries.maxSpanMs, toMs: top, points: points, samples: [S(timeMs: top - 1, value: 1)])
            #expect(s.bucketMs * UInt64(points) >= HistorySeries.maxSpanMs)
            #expect(s.buckets.count == 1 && s.samples == 1)
        }
        #expect(throws: HistorySeries.Problem.tooLong(spanMs: UInt64.max)) { try HistorySeries(fromMs: 0, toMs: .max, points: 10) }
    }

    @Test func samplesAddedOneByOneGiveTheSameSeries() throws {
        let samples = (0..<1000).map { S(timeMs: UInt64($0 * 13 % 10_000), value: Double($0 % 37)) }
        var byOne = try HistorySeries(fromMs: 0, toMs: 10_000, points: 50)
        for s in samples { byOne.add(s) }
        byOne.finish()
        #expect(byOne == (try HistorySeries(fromMs: 0, toMs: 10_000, points: 50, samples: samples)))
    }

    @Test func badRangesAndPointCountsAreRefusedWithTheirReason() {
        #expect(throws: HistorySeries.Problem.emptyRange(fromMs: 5, toMs: 5)) { try HistorySeries(fromMs: 5, toMs: 5, points: 10, samples: []) }
        #expect(throws: HistorySeries.Problem.points(0)) { try HistorySeries(fromMs: 0, toMs: 5, points: 0, samples: []) }
        #expect(throws: HistorySeries.Problem.points(5001)) { try HistorySeries(fromMs: 0, toMs: 5, points: 5001, samples: []) }
        #expect("\(HistorySeries.Problem.points(0))".contains("1…5000"))
    }

    @Test func aTwinsSeriesInMemoryIsItsOwnUpdatesAndTheOneBefore() {
        var h = TwinHistory()
        for t in UInt64(0)..<100 {
            h.append(PropertyUpdate(twin: "p\(t % 3)", property: t % 2 == 0 ? "a" : "b", value: .number(Double(t)), timestampMs: t * 10))
        }
        var updates: [PropertyUpdate] = []
        let before = h.series(twin: "p1", property: "a", from: 500, to: 800) { updates.append($0) }
        // p1 and a: t ≡ 1 (mod 3) and even: t ≡ 4 (mod 6).
        #expect(updates.map(\.timestampMs) == [520, 580, 640, 700, 760])
        #expect(before?.timestampMs == 460)
        #expect(h.series(twin: "p1", property: "a", from: 0, to: 30) { _ in } == nil)
    }

    @Test func theCatalogReadsModelsRatesAndUnits() throws {
        let json = Array(#"{"units":{"press":{"temperature":"°C","ram":""}},"twins":[{"id":"p1","model":"press","rateHz":2},{"id":"x"}]}"#.utf8)
        let c = try TwinCatalog(json: json, file: "twins.json")
        #expect(c.entries["p1"] == .init(model: "press", rateHz: 2))
        #expect(c.unit(twin: "p1", property: "temperature") == "°C")
        #expect(c.unit(twin: "p1", property: "ram") == nil, "an empty unit is no unit")
        #expect(c.unit(twin: "x", property: "temperature") == nil)
        #expect(throws: ConfigError.self) { try TwinCatalog(json: Array(#"{"twins":{}}"#.utf8), file: "t.json") }
    }
}
