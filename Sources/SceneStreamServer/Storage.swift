import Foundation
import GRDB
import SceneStreamCore

/// Durable twin state and history in embedded SQLite (GRDB): every ingested update (MQTT, HTTP) is written in one
/// transaction per batch, synchronously, before it is acknowledged. On start the latest value of every property
/// and the history inside the window are read back.
public final class Storage {
    private let db: DatabaseQueue
    public let path: String

    /// Opens (or creates) the database at `path`.
    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var config = Configuration()
        config.prepareDatabase { db in
            // A commit returns once the data is on disk.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        db = try DatabaseQueue(path: path, configuration: config)
        try db.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS updates (
                        id INTEGER PRIMARY KEY,
                        ts INTEGER NOT NULL,
                        twin TEXT NOT NULL,
                        property TEXT NOT NULL,
                        kind INTEGER NOT NULL,
                        num REAL,
                        text TEXT,
                        quality INTEGER NOT NULL
                    );
                    CREATE INDEX IF NOT EXISTS updates_ts ON updates(ts);
                    CREATE INDEX IF NOT EXISTS updates_key ON updates(twin, property, ts);
                    """)
        }
    }

    /// Writes a batch durably (one transaction).
    public func append(_ updates: [PropertyUpdate]) throws {
        guard !updates.isEmpty else { return }
        try db.write { db in
            let stmt = try db.makeStatement(sql: "INSERT INTO updates (ts, twin, property, kind, num, text, quality) VALUES (?, ?, ?, ?, ?, ?, ?)")
            for u in updates {
                var kind = 0
                var num: Double?
                var text: String?
                switch u.value {
                case .number(let d): num = d
                case .bool(let b):
                    kind = 1
                    num = b ? 1 : 0
                case .text(let s):
                    kind = 2
                    text = s
                }
                try stmt.execute(arguments: [Int64(u.timestampMs), u.twin, u.property, kind, num, text, Int(u.quality.rawValue)])
            }
        }
    }

    /// The latest update of every property, then the history since `since`, in time order.
    public func load(since: UInt64) throws -> [PropertyUpdate] {
        try db.read { db in
            func decode(_ row: Row) -> PropertyUpdate {
                let kind: Int = row["kind"]
                let value: TwinValue
                switch kind {
                case 1: value = .bool((row["num"] as Double?) == 1)
                case 2: value = .text(row["text"] ?? "")
                default: value = .number(row["num"] ?? 0)
                }
                return PropertyUpdate(
                    twin: row["twin"], property: row["property"], value: value, timestampMs: UInt64(row["ts"] as Int64),
                    quality: Quality(rawValue: UInt8(row["quality"] as Int)) ?? .good)
            }
            let latest = try Row.fetchAll(
                db,
                sql: """
                    SELECT u.* FROM updates u JOIN (SELECT twin, property, MAX(id) AS id FROM updates WHERE ts < ? GROUP BY twin, property) m
                    ON u.id = m.id ORDER BY u.ts
                    """, arguments: [Int64(since)]
            ).map(decode)
            let recent = try Row.fetchAll(db, sql: "SELECT * FROM updates WHERE ts >= ? ORDER BY ts, id", arguments: [Int64(since)]).map(decode)
            return latest + recent
        }
    }

    /// Deletes history older than `before`, keeping the latest value of every property.
    public func prune(before: UInt64) throws {
        try db.write { db in
            try db.execute(
                sql: """
                    DELETE FROM updates WHERE ts < ? AND id NOT IN (SELECT MAX(id) FROM updates GROUP BY twin, property)
                    """, arguments: [Int64(before)])
        }
    }

    /// Bytes on disk.
    public var sizeBytes: Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }
}
