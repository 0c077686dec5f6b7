import Foundation
import GRDB
import Testing

@testable import SceneStreamCore
@testable import SceneStreamServer

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
