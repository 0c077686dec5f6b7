import Foundation
import GRDB
import SceneStreamCore

/// Durable twin state and history in embedded SQLite (GRDB, WAL, `synchronous = FULL`).
///
/// Layout: `keys` interns each (twin, property) to an integer; `history` holds one small row per update
/// (time, key, value, kind + quality in one byte); `latest` holds each key's value as of the last prune. Pruning
/// folds rows older than the window into `latest` and deletes them, so the file stays bounded by the window.
///
/// Writes run on the storage's own serial queue: ``appendLater(_:)`` returns at once (MQTT and simulator batches:
/// the service thread never waits for the disk), ``append(_:)`` returns once the batch is committed (HTTP ingest is
/// answered only then). Both keep their order.
public final class Storage: @unchecked Sendable {
    private let db: DatabaseQueue
    public let path: String
    private let queue = DispatchQueue(label: "scenestream.storage")
    /// Only touched on `queue`.
    private var keyIds: [Key: Int64] = [:]
    private var failures: [any Error] = []
    private let failureLock = NSLock()

    struct Key: Hashable {
        var twin: String
        var property: String
    }

    /// Opens (or creates, or upgrades) the database at `path`.
    public init(path: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var config = Configuration()
        config.prepareDatabase { db in
            // A commit returns once the data is on disk.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        db = try DatabaseQueue(path: path, configuration: config)
        try db.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE IF NOT EXISTS updates (
                        id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, twin TEXT NOT NULL, property TEXT NOT NULL,
                        kind INTEGER NOT NULL, num REAL, text TEXT, quality INTEGER NOT NULL);
                    """)
        }
        migrator.registerMigration("v2-interned") { db in
            try db.execute(
                sql: """
                    CREATE TABLE keys (id INTEGER PRIMARY KEY, twin TEXT NOT NULL, property TEXT NOT NULL, UNIQUE (twin, property));
                    CREATE TABLE history (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, key INTEGER NOT NULL, v, f INTEGER NOT NULL);
                    CREATE INDEX history_ts ON history (ts);
                    CREATE TABLE latest (key INTEGER PRIMARY KEY, ts INTEGER NOT NULL, v, f INTEGER NOT NULL);
                    INSERT INTO keys (twin, property) SELECT DISTINCT twin, property FROM updates;
                    INSERT INTO history (ts, key, v, f)
                        SELECT u.ts, k.id, CASE u.kind WHEN 2 THEN u.text ELSE u.num END, u.kind * 4 + u.quality
                        FROM updates u JOIN keys k ON k.twin = u.twin AND k.property = u.property ORDER BY u.id;
                    DROP TABLE updates;
                    """)
        }
        migrator.registerMigration("v3-sessions") { db in
            try db.execute(sql: "CREATE TABLE sessions (id TEXT PRIMARY KEY, data BLOB NOT NULL)")
        }
        try migrator.migrate(db)
        keyIds = try db.read { db in
            var m: [Key: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, twin, property FROM keys") { m[Key(twin: row["twin"], property: row["property"])] = row["id"] }
            return m
        }
    }

    /// Writes a batch durably (one transaction) and returns once it is committed.
    public func append(_ updates: [PropertyUpdate]) throws {
        guard !updates.isEmpty else { return }
        try queue.sync { try write(updates) }
    }

    /// Queues a batch to be written in order; failures are kept for ``takeFailures()``.
    public func appendLater(_ updates: [PropertyUpdate]) {
        guard !updates.isEmpty else { return }
        queue.async { [self] in
            do { try write(updates) } catch {
                failureLock.lock()
                failures.append(error)
                failureLock.unlock()
            }
        }
    }

    /// Write failures of ``appendLater(_:)`` since the last call.
    public func takeFailures() -> [any Error] {
        failureLock.lock()
        defer { failureLock.unlock() }
        let f = failures
        failures.removeAll()
        return f
    }

    /// Waits until every queued write is done.
    public func flush() { queue.sync {} }

    /// The value column and the flags byte (kind × 4 + quality) of a value.
    static func encode(_ u: PropertyUpdate) -> (any DatabaseValueConvertible, Int) {
        switch u.value {
        case .number(let d): (d, Int(u.quality.rawValue))
        case .bool(let b): (b ? 1 : 0, 4 + Int(u.quality.rawValue))
        case .text(let s): (s, 8 + Int(u.quality.rawValue))
        }
    }

    static func decode(_ row: Row, key: Key) -> PropertyUpdate {
        let f: Int = row["f"]
        let value: TwinValue
        switch f / 4 {
        case 1: value = .bool((row["v"] as Int64?) == 1)
        case 2: value = .text(row["v"] ?? "")
        default: value = .number(row["v"] ?? 0)
        }
        return PropertyUpdate(
            twin: key.twin, property: key.property, value: value, timestampMs: UInt64(row["ts"] as Int64),
            quality: Quality(rawValue: UInt8(f % 4)) ?? .good)
    }

    /// On `queue`.
    private func write(_ updates: [PropertyUpdate]) throws {
        try db.write { db in
            let newKey = try db.makeStatement(sql: "INSERT INTO keys (twin, property) VALUES (?, ?)")
            let insert = try db.makeStatement(sql: "INSERT INTO history (ts, key, v, f) VALUES (?, ?, ?, ?)")
            var added: [Key] = []
            do {
                for u in updates {
                    let k = Key(twin: u.twin, property: u.property)
                    let id: Int64
                    if let known = keyIds[k] {
                        id = known
                    } else {
                        try newKey.execute(arguments: [u.twin, u.property])
                        id = db.lastInsertedRowID
                        keyIds[k] = id
                        added.append(k)
                    }
                    let (v, f) = Self.encode(u)
                    try insert.execute(arguments: [Int64(u.timestampMs), id, v, f])
                }
            } catch {
                for k in added { keyIds[k] = nil }  // rolled back with the transaction
                throw error
            }
        }
    }

    /// Every property's value as of the last prune, then the history after it, in time order: applied in this
    /// order they give the current state and the retained history.
    public func load() throws -> [PropertyUpdate] {
        try queue.sync {
            try db.read { db in
                var keys: [Int64: Key] = [:]
                for (k, id) in keyIds { keys[id] = k }
                var out: [PropertyUpdate] = []
                for row in try Row.fetchAll(db, sql: "SELECT key, ts, v, f FROM latest ORDER BY ts") {
                    if let k = keys[row["key"]] { out.append(Self.decode(row, key: k)) }
                }
                let cursor = try Row.fetchCursor(db, sql: "SELECT key, ts, v, f FROM history ORDER BY ts, id")
                while let row = try cursor.next() {
                    if let k = keys[row["key"]] { out.append(Self.decode(row, key: k)) }
                }
                return out
            }
        }
    }

    /// Prunes in the background, after the writes queued so far; failures go to ``takeFailures()``.
    public func pruneLater(before: UInt64) {
        queue.async { [self] in
            do { try prune(onQueue: before) } catch {
                failureLock.lock()
                failures.append(error)
                failureLock.unlock()
            }
        }
    }

    /// Folds history older than `before` into `latest` and deletes it (in order with the writes).
    public func prune(before: UInt64) throws {
        try queue.sync { try prune(onQueue: before) }
    }

    private func prune(onQueue before: UInt64) throws {
        do {
            try db.write { db in
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO latest (key, ts, v, f)
                            SELECT h.key, h.ts, h.v, h.f FROM history h
                            JOIN (SELECT key, MAX(id) AS id FROM history WHERE ts < ? GROUP BY key) m ON h.id = m.id;
                        DELETE FROM history WHERE ts < ?;
                        """, arguments: [Int64(before), Int64(before)])
            }
        }
    }

    // MARK: sessions

    /// Saves (or replaces) a session record after the writes queued so far; durable like every write here.
    public func saveSessionLater(id: String, data: [UInt8]) {
        queue.async { [self] in
            do {
                try db.write { try $0.execute(sql: "INSERT OR REPLACE INTO sessions (id, data) VALUES (?, ?)", arguments: [id, Data(data)]) }
            } catch {
                failureLock.lock()
                failures.append(error)
                failureLock.unlock()
            }
        }
    }

    /// Deletes a session record.
    public func deleteSessionLater(id: String) {
        queue.async { [self] in
            do {
                try db.write { try $0.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [id]) }
            } catch {
                failureLock.lock()
                failures.append(error)
                failureLock.unlock()
            }
        }
    }

    /// Every saved session record.
    public func loadSessions() throws -> [(id: String, data: [UInt8])] {
        try queue.sync {
            try db.read { db in
                try Row.fetchAll(db, sql: "SELECT id, data FROM sessions").map { ($0["id"], [UInt8]($0["data"] as Data)) }
            }
        }
    }

    /// Bytes on disk (database and write-ahead log).
    public var sizeBytes: Int {
        [path, path + "-wal"].reduce(0) { $0 + ((try? FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0) }
    }

    /// Rows of history held.
    public func historyRows() throws -> Int {
        try queue.sync { try db.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM history") ?? 0 } }
    }
}
