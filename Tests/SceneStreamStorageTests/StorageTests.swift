import Foundation
import GRDB
import Testing

@testable import SceneStreamCore
@testable import SceneStreamStorage

@Suite struct StorageTests {
    func tempPath() -> String {
        NSTemporaryDirectory() + "scenestream-storage-\(UUID().uuidString)/twins.sqlite"
    }

    let sample: [PropertyUpdate] = [
        PropertyUpdate(twin: "a/p1", property: "temperature", value: .number(71.25), timestampMs: 1000, quality: .good),
        PropertyUpdate(twin: "a/p1", property: "running", value: .bool(true), timestampMs: 1001, quality: .good),
        PropertyUpdate(twin: "a/p1", property: "mode", value: .text("auto"), timestampMs: 1002, quality: .stale),
        PropertyUpdate(twin: "a/p2", property: "temperature", value: .number(1), timestampMs: 1003, quality: .bad),
        PropertyUpdate(twin: "a/p2", property: "running", value: .bool(false), timestampMs: 1004, quality: .good),
    ]

    @Test func roundTripOfEveryKindAndQualityAcrossReopen() throws {
        let path = tempPath()
        do {
            let s = try Storage(path: path)
            try s.append(Array(sample.prefix(2)))
            s.appendLater(Array(sample.dropFirst(2)))
            s.flush()
            #expect(s.takeFailures().isEmpty)
        }
        let again = try Storage(path: path)
        #expect(try again.load() == sample)
        // New keys after reopening get their own ids.
        let extra = PropertyUpdate(twin: "b", property: "x", value: .number(2), timestampMs: 2000)
        try again.append([extra])
        #expect(try again.load() == sample + [extra])
    }

    @Test func pruneFoldsOldRowsIntoLatestValues() throws {
        let s = try Storage(path: tempPath())
        var all: [PropertyUpdate] = []
        for k in 0..<100 {
            all.append(PropertyUpdate(twin: "t\(k % 5)", property: "v", value: .number(Double(k)), timestampMs: UInt64(k) * 10))
        }
        try s.append(all)
        try s.prune(before: 800)
        #expect(try s.historyRows() == 20)
        let loaded = try s.load()
        // The latest value of each key before 800, then the 20 rows from 800 on.
        #expect(loaded.count == 25)
        #expect(Array(loaded.suffix(20)) == Array(all.suffix(20)))
        #expect(Set(loaded.prefix(5).map(\.value)) == Set((75..<80).map { TwinValue.number(Double($0)) }))
        // Applied in order, they give the same current state as the whole history.
        let full = TwinStore(), restored = TwinStore()
        for u in all { full.apply(u) }
        for u in loaded { restored.apply(u) }
        for k in 0..<5 { #expect(full.state("t\(k)", "v") == restored.state("t\(k)", "v")) }
    }

    /// A seek on disk (checkpoint + rows after it) gives each property's value at that moment; a restore gives the
    /// values now, rows stamped before the last checkpoint but written after it included.
    @Test func seeksOnDiskAndRestore() throws {
        let s = try Storage(path: tempPath())
        let store = TwinStore()
        var expected: [UInt64: [String: PropertyUpdate]] = [:]
        var all: [PropertyUpdate] = []
        for tick in 1...200 {
            let t = UInt64(tick) * 100
            let batch = (0..<5).filter { (tick + $0) % 3 != 0 }.map {
                PropertyUpdate(twin: "t\($0)", property: "v", value: $0 == 4 ? .text("s\(tick)") : .number(Double(tick * 10 + $0)), timestampMs: t)
            }
            s.appendLater(batch)
            all += batch
            for u in batch { store.apply(u) }
            if tick % 20 == 0 { s.checkpointLater(at: t, state: store.snapshot()) }
            if [25, 99, 150, 199].contains(tick) {
                expected[t] = Dictionary(uniqueKeysWithValues: (0..<5).compactMap { k in store.state("t\(k)", "v").map { ("t\(k)", PropertyUpdate(twin: "t\(k)", property: "v", value: $0.value, timestampMs: $0.timestampMs, quality: $0.quality)) } })
            }
        }
        #expect(try s.state(at: 1_000) == nil, "before the first checkpoint")
        #expect(try s.oldestCheckpointMs() == 2_000)
        for (t, want) in expected {
            let got = try #require(try s.state(at: t))
            #expect(Dictionary(uniqueKeysWithValues: got.map { ($0.twin, $0) }) == want, "at \(t)")
        }
        // Written after the last checkpoint with an old stamp: a restore still sees it; a newer value is not undone.
        let late = PropertyUpdate(twin: "gw", property: "late", value: .bool(true), timestampMs: 50)
        try s.append([late, PropertyUpdate(twin: "t0", property: "v", value: .number(-1), timestampMs: 60)])
        let now = try s.currentState()
        #expect(now.contains(late))
        #expect(now.first { $0.twin == "t0" }?.value == store.state("t0", "v")?.value)
        #expect(now.count == 6)
        // Pruning keeps the last checkpoint at or before the cut, so seeks after it still work.
        try s.prune(before: 15_000)
        #expect(try s.oldestCheckpointMs() == 14_000)
        for t: UInt64 in [14_000, 14_500, 19_900] {
            let fresh = TwinStore()
            for u in all where u.timestampMs <= t { fresh.apply(u) }
            let got = try #require(try s.state(at: t))
            for u in got where u.twin.hasPrefix("t") { #expect(fresh.state(u.twin, "v")?.value == u.value, "\(u.twin) at \(t)") }
        }
    }

    @Test func pruneKeepsTheNewestStampNotTheLastWritten() throws {
        let s = try Storage(path: tempPath())
        try s.append([
            PropertyUpdate(twin: "t", property: "v", value: .number(5), timestampMs: 500),
            PropertyUpdate(twin: "t", property: "v", value: .number(4), timestampMs: 400),  // late, older
        ])
        try s.prune(before: 1000)
        #expect(try s.historyRows() == 0)
        #expect(try s.currentState().map(\.value) == [.number(5)])
    }

    @Test func upgradesTheFirstSchema() throws {
        let path = tempPath()
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        do {
            let q = try DatabaseQueue(path: path)
            try q.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE updates (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, twin TEXT NOT NULL, property TEXT NOT NULL,
                            kind INTEGER NOT NULL, num REAL, text TEXT, quality INTEGER NOT NULL);
                        INSERT INTO updates (ts, twin, property, kind, num, text, quality) VALUES
                            (1000, 'a/p1', 'temperature', 0, 71.25, NULL, 0), (1001, 'a/p1', 'running', 1, 1, NULL, 0),
                            (1002, 'a/p1', 'mode', 2, NULL, 'auto', 1);
                        CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
                        INSERT INTO grdb_migrations VALUES ('v1');
                        """)
            }
        }
        let s = try Storage(path: path)
        #expect(try s.load() == Array(sample.prefix(3)))
    }
}
