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
    /// `keyIds` the other way round (on `queue`): rows name keys by id.
    private var keyNames: [Int64: Key] = [:]
    private var failures: [any Error] = []
    private let failureLock = NSLock()

    struct Key: Hashable {
        var twin: String
        var property: String
    }

    /// Opens (or creates, or upgrades) the database at `path`.
    /// Runs first on each job of the storage queue (the server lowers the thread's priority there).
    private let prepareThread: @Sendable () -> Void

    /// Opens (or creates) the database at `path`; `prepareThread` runs on the storage queue before each job.
    public init(path: String, prepareThread: @escaping @Sendable () -> Void = {}) throws {
        self.path = path
        self.prepareThread = prepareThread
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
        migrator.registerMigration("v4-checkpoints") { db in
            // lastRow: the last history row the checkpoint reflects (rows after it were written after it).
            try db.execute(sql: "CREATE TABLE checkpoints (ts INTEGER PRIMARY KEY, lastRow INTEGER NOT NULL, data BLOB NOT NULL)")
        }
        migrator.registerMigration("v5-history-by-key") { db in
            // One property's trend (`/api/history`) reads its own rows, not every row of the range.
            try db.execute(sql: "CREATE INDEX history_key_ts ON history (key, ts)")
        }
        try migrator.migrate(db)
        keyIds = try db.read { db in
            var m: [Key: Int64] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT id, twin, property FROM keys") { m[Key(twin: row["twin"], property: row["property"])] = row["id"] }
            return m
        }
        for (k, id) in keyIds { keyNames[id] = k }
    }

    /// Writes a batch durably (one transaction) and returns once it is committed.
    public func append(_ updates: [PropertyUpdate]) throws {
        guard !updates.isEmpty else { return }
        try queue.sync { try write(updates) }
    }

    /// Queues a batch to be written in order; failures are kept for ``takeFailures()``.
    public func appendLater(_ updates: [PropertyUpdate]) {
        guard !updates.isEmpty else { return }
        later { try self.write(updates) }
    }

    /// Runs `work` on the storage queue after what is queued; a failure is kept for ``takeFailures()``.
    private func later(_ work: @escaping @Sendable () throws -> Void) {
        queue.async { [self] in
            self.prepareThread()
            do { try work() } catch {
                failureLock.lock()
                failures.append(error)
                failureLock.unlock()
            }
        }
    }

    /// The id of a (twin, property), added to `keys` if new (on `queue`, inside a write; `added` lists the new
    /// ones so that a rolled-back transaction can forget them).
    private func keyId(_ twin: String, _ property: String, _ db: Database, added: inout [Key]) throws -> Int64 {
        let k = Key(twin: twin, property: property)
        if let known = keyIds[k] { return known }
        try db.execute(sql: "INSERT INTO keys (twin, property) VALUES (?, ?)", arguments: [twin, property])
        let id = db.lastInsertedRowID
        keyIds[k] = id
        keyNames[id] = k
        added.append(k)
        return id
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

    /// A row of `key, ts, v, f` (in that column order).
    static func decode(_ row: Row, key: Key) -> PropertyUpdate {
        let f: Int = row[3]
        let value: TwinValue
        switch f / 4 {
        case 1: value = .bool((row[2] as Int64?) == 1)
        case 2: value = .text(row[2] ?? "")
        default: value = .number(row[2] ?? 0)
        }
        return PropertyUpdate(
            twin: key.twin, property: key.property, value: value, timestampMs: UInt64(row[1] as Int64),
            quality: Quality(rawValue: UInt8(f % 4)) ?? .good)
    }

    /// On `queue`.
    private func write(_ updates: [PropertyUpdate]) throws {
        try writeKeepingKeys { db, added in
            let insert = try db.makeStatement(sql: "INSERT INTO history (ts, key, v, f) VALUES (?, ?, ?, ?)")
            for u in updates {
                let id = try keyId(u.twin, u.property, db, added: &added)
                let (v, f) = Self.encode(u)
                try insert.execute(arguments: [Int64(u.timestampMs), id, v, f])
            }
        }
    }

    /// A write transaction that may add keys; if it rolls back, the cached ids of the keys it added are forgotten.
    private func writeKeepingKeys(_ body: (Database, inout [Key]) throws -> Void) throws {
        var added: [Key] = []
        do {
            try db.write { db in try body(db, &added) }
        } catch {
            for k in added { keyIds.removeValue(forKey: k).map { keyNames[$0] = nil } }
            throw error
        }
    }

    /// Every property's value as of the last prune, then the history after it, in time order: applied in this
    /// order they give the current state and the retained history.
    public func load() throws -> [PropertyUpdate] {
        try queue.sync {
            try db.read { db in
                let keys = keyNames
                var out: [PropertyUpdate] = []
                for row in try Row.fetchAll(db, sql: "SELECT key, ts, v, f FROM latest ORDER BY ts") {
                    if let k = keys[row[0]] { out.append(Self.decode(row, key: k)) }
                }
                let cursor = try Row.fetchCursor(db, sql: "SELECT key, ts, v, f FROM history ORDER BY ts, id")
                while let row = try cursor.next() {
                    if let k = keys[row[0]] { out.append(Self.decode(row, key: k)) }
                }
                return out
            }
        }
    }

    /// Prunes in the background, after the writes queued so far; failures go to ``takeFailures()``.
    public func pruneLater(before: UInt64) {
        later { try self.prune(onQueue: before) }
    }

    /// Folds history older than `before` into `latest` and deletes it (in order with the writes).
    public func prune(before: UInt64) throws {
        try queue.sync { try prune(onQueue: before) }
    }

    private func prune(onQueue before: UInt64) throws {
        try db.write { db in
            // Keep the last checkpoint at or before the cut, and the rows a seek after it reads: every retained
            // moment can still be rebuilt exactly.
            var cut = Int64(before)
            if let kept = try Int64.fetchOne(db, sql: "SELECT MAX(ts) FROM checkpoints WHERE ts <= ?", arguments: [cut]) {
                try db.execute(sql: "DELETE FROM checkpoints WHERE ts < ?", arguments: [kept])
                cut = max(0, kept - Int64(Self.lateArrivalMs))
            }
            try db.execute(
                sql: """
                    INSERT INTO latest (key, ts, v, f)
                        SELECT key, ts, v, f FROM (SELECT key, ts, v, f, MAX(ts) FROM history WHERE ts < ? GROUP BY key) WHERE true
                        ON CONFLICT (key) DO UPDATE SET ts = excluded.ts, v = excluded.v, f = excluded.f WHERE excluded.ts >= latest.ts;
                    DELETE FROM history WHERE ts < ?;
                    """, arguments: [cut, cut])
        }
    }

    // MARK: checkpoints and seeking on disk

    /// Saves every property's value at `timeMs` (a checkpoint: a seek on disk replays at most one interval after
    /// one), after the writes queued so far.
    public func checkpointLater(at timeMs: UInt64, state: [PropertyUpdate]) {
        later {
            try self.writeKeepingKeys { db, added in
                var blob: [UInt8] = []
                blob.reserveCapacity(state.count * 16)
                for u in state { CheckpointCodec.append(u, key: try self.keyId(u.twin, u.property, db, added: &added), checkpointMs: timeMs, to: &blob) }
                let lastRow = try Int64.fetchOne(db, sql: "SELECT MAX(id) FROM history") ?? 0
                try db.execute(
                    sql: "INSERT OR REPLACE INTO checkpoints (ts, lastRow, data) VALUES (?, ?, ?)", arguments: [Int64(timeMs), lastRow, Data(blob)])
            }
        }
    }

    /// How often the server writes a checkpoint: a seek on disk reads one checkpoint and at most this much history.
    public static let checkpointIntervalMs: UInt64 = 5000

    /// How late (by its own timestamp) an update may reach storage after a checkpoint and still be seen by seeks.
    static let lateArrivalMs: UInt64 = 1000

    /// The time of the oldest checkpoint: the earliest moment a seek on disk can rebuild.
    public func oldestCheckpointMs() throws -> UInt64? {
        try queue.sync { try db.read { try Int64.fetchOne($0, sql: "SELECT MIN(ts) FROM checkpoints").map { UInt64($0) } } }
    }

    /// Every property's last value at `timeMs` (the checkpoint before it and the rows after that), or nil when the
    /// disk holds no checkpoint at or before it. Runs on the storage queue, in order with the writes.
    public func state(at timeMs: UInt64) throws -> [PropertyUpdate]? {
        try queue.sync { try readState(at: timeMs) }
    }

    /// On `queue`.
    private func readState(at timeMs: UInt64) throws -> [PropertyUpdate]? {
        try db.read { db -> [PropertyUpdate]? in
            guard let row = try Row.fetchOne(db, sql: "SELECT ts, data FROM checkpoints WHERE ts <= ? ORDER BY ts DESC LIMIT 1", arguments: [Int64(timeMs)])
            else { return nil }
            let cpMs = UInt64(row[0] as Int64)
            // Rows from a little before the checkpoint too: a value stamped before it may have arrived after it.
            // The newest timestamp wins, so rows the checkpoint already holds change nothing.
            let from = cpMs > Self.lateArrivalMs ? cpMs - Self.lateArrivalMs : 0
            return try fold(
                checkpoint: [UInt8](row[1] as Data), at: cpMs, db,
                rows: "SELECT key, ts, v, f FROM history WHERE ts > ? AND ts <= ? ORDER BY ts, id", [Int64(from), Int64(timeMs)])
        }
    }

    /// A checkpoint's values, then `rows` (key, ts, v, f) over them, the newest timestamp of each property winning;
    /// in time order. On `queue`, inside a read.
    private func fold(checkpoint: [UInt8], at cpMs: UInt64, _ db: Database, rows sql: String, _ arguments: StatementArguments) throws
        -> [PropertyUpdate]
    {
        var byKey: [Int64: PropertyUpdate] = [:]
        for (id, u) in try CheckpointCodec.decode(checkpoint, checkpointMs: cpMs, names: keyNames) { byKey[id] = u }
        let cursor = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let r = try cursor.next() {
            let id: Int64 = r[0]
            guard let k = keyNames[id] else { continue }
            if let held = byKey[id], held.timestampMs > UInt64(r[1] as Int64) { continue }
            byKey[id] = Self.decode(r, key: k)
        }
        return byKey.values.sorted { $0.timestampMs < $1.timestampMs }
    }

    /// ``state(at:)`` on the storage queue, answered through `done` (on that queue): a seek that does not hold up
    /// the caller's thread.
    public func stateLater(at timeMs: UInt64, done: @escaping @Sendable (Result<[PropertyUpdate]?, any Error>) -> Void) {
        queue.async { [self] in
            self.prepareThread()
            done(Result { try readState(at: timeMs) })
        }
    }

    /// Every property's value now: the last checkpoint and every row written after it (whatever its timestamp);
    /// without a checkpoint, the latest values and every row folded. The newest timestamp of each property wins.
    public func currentState() throws -> [PropertyUpdate] {
        let fromCheckpoint = try queue.sync {
            try db.read { db -> [PropertyUpdate]? in
                guard let row = try Row.fetchOne(db, sql: "SELECT ts, lastRow, data FROM checkpoints ORDER BY ts DESC LIMIT 1") else { return nil }
                return try fold(
                    checkpoint: [UInt8](row[2] as Data), at: UInt64(row[0] as Int64), db,
                    rows: "SELECT key, ts, v, f FROM history WHERE id > ? ORDER BY id", [row[1] as Int64])
            }
        }
        if let fromCheckpoint { return fromCheckpoint }
        var byKey: [String: [String: PropertyUpdate]] = [:]
        for u in try load() where (byKey[u.twin]?[u.property]?.timestampMs ?? 0) <= u.timestampMs { byKey[u.twin, default: [:]][u.property] = u }
        return byKey.values.flatMap(\.values).sorted { $0.timestampMs < $1.timestampMs }
    }

    /// ``updates(from:to:)`` on the storage queue, in order with the writes; `done` runs there.
    public func updatesLater(from: UInt64, to: UInt64, done: @escaping @Sendable (Result<[PropertyUpdate], any Error>) -> Void) {
        queue.async { [self] in self.prepareThread(); done(Result { try readUpdates(from: from, to: to) }) }
    }

    /// ``oldestCheckpointMs()`` on the storage queue; `done` runs there.
    public func oldestCheckpointLater(done: @escaping @Sendable (UInt64?) -> Void) {
        queue.async { [self] in
            self.prepareThread()
            done(try? db.read { try Int64.fetchOne($0, sql: "SELECT MIN(ts) FROM checkpoints").map { UInt64($0) } })
        }
    }

    /// Fills `series` with one property's history over its range, row by row (memory stays the size of its
    /// buckets however long the range), and its last value before the range (where a chart's line enters); on the
    /// storage queue, in order with the writes; `done` runs there.
    public func seriesLater(
        twin: String, property: String, into series: HistorySeries,
        done: @escaping @Sendable (Result<HistorySeries, any Error>) -> Void
    ) {
        queue.async { [self] in
            self.prepareThread()
            var series = series
            let key = Key(twin: twin, property: property)
            guard let id = keyIds[key] else {
                series.finish()
                return done(.success(series))
            }
            let from = Int64(clamping: series.fromMs), to = Int64(clamping: series.toMs)
            done(
                Result {
                    try db.read { db in
                        if let row = try Row.fetchOne(
                            db, sql: "SELECT key, ts, v, f FROM history WHERE key = ? AND ts < ? ORDER BY ts DESC LIMIT 1", arguments: [id, from]),
                            let v = Self.decode(row, key: key).value.number
                        {
                            series.before = .init(timeMs: UInt64(row[1] as Int64), value: v)
                        }
                        let cursor = try Row.fetchCursor(
                            db, sql: "SELECT key, ts, v, f FROM history WHERE key = ? AND ts >= ? AND ts < ? ORDER BY ts, id", arguments: [id, from, to])
                        while let r = try cursor.next() {
                            let u = Self.decode(r, key: key)
                            if let v = u.value.number { series.add(.init(timeMs: u.timestampMs, value: v)) }
                        }
                        series.finish()
                        return series
                    }
                })
        }
    }

    /// History rows with `from <= ts < to`, in order (playback from disk).
    public func updates(from: UInt64, to: UInt64) throws -> [PropertyUpdate] {
        try queue.sync { try readUpdates(from: from, to: to) }
    }

    /// On `queue`.
    private func readUpdates(from: UInt64, to: UInt64) throws -> [PropertyUpdate] {
        try db.read { db in
                let names = keyNames
                var out: [PropertyUpdate] = []
                let cursor = try Row.fetchCursor(
                    db, sql: "SELECT key, ts, v, f FROM history WHERE ts >= ? AND ts < ? ORDER BY ts, id", arguments: [Int64(from), Int64(to)])
                while let r = try cursor.next() {
                    if let k = names[r[0]] { out.append(Self.decode(r, key: k)) }
                }
                return out
        }
    }

    // MARK: sessions

    /// Saves (or replaces) a session record after the writes queued so far; durable like every write here.
    public func saveSessionLater(id: String, data: [UInt8]) {
        later { try self.db.write { try $0.execute(sql: "INSERT OR REPLACE INTO sessions (id, data) VALUES (?, ?)", arguments: [id, Data(data)]) } }
    }

    /// Deletes a session record.
    public func deleteSessionLater(id: String) {
        later { try self.db.write { try $0.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [id]) } }
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

/// A checkpoint's bytes: per property, key (varint), flags (kind × 4 + quality), age before the checkpoint in ms
/// (varint), then the value: 8-byte little-endian double, 1 byte for a boolean, or varint length + UTF-8.
enum CheckpointCodec {
    static func varint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    static func append(_ u: PropertyUpdate, key: Int64, checkpointMs: UInt64, to out: inout [UInt8]) {
        varint(UInt64(key), &out)
        let q = UInt8(u.quality.rawValue)
        switch u.value {
        case .number(let d):
            out.append(q)
            varint(checkpointMs &- min(u.timestampMs, checkpointMs), &out)
            withUnsafeBytes(of: d.bitPattern.littleEndian) { out.append(contentsOf: $0) }
        case .bool(let b):
            out.append(4 + q)
            varint(checkpointMs &- min(u.timestampMs, checkpointMs), &out)
            out.append(b ? 1 : 0)
        case .text(let s):
            out.append(8 + q)
            varint(checkpointMs &- min(u.timestampMs, checkpointMs), &out)
            varint(UInt64(s.utf8.count), &out)
            out.append(contentsOf: s.utf8)
        }
    }

    struct Truncated: Error, CustomStringConvertible {
        var description: String { "checkpoint record truncated" }
    }

    static func decode(_ b: [UInt8], checkpointMs: UInt64, names n: [Int64: Storage.Key]) throws
        -> [(Int64, PropertyUpdate)]
    {
        var i = 0
        func next() throws -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard i < b.count, shift < 64 else { throw Truncated() }
                let c = b[i]
                i += 1
                v |= UInt64(c & 0x7F) << shift
                if c < 0x80 { return v }
                shift += 7
            }
        }
        var out: [(Int64, PropertyUpdate)] = []
        while i < b.count {
            let key = Int64(try next())
            guard i < b.count else { throw Truncated() }
            let f = b[i]
            i += 1
            let age = try next()
            let value: TwinValue
            switch f / 4 {
            case 1:
                guard i < b.count else { throw Truncated() }
                value = .bool(b[i] == 1)
                i += 1
            case 2:
                let n = Int(try next())
                guard n <= b.count - i else { throw Truncated() }
                value = .text(String(decoding: b[i..<(i + n)], as: UTF8.self))
                i += n
            default:
                guard b.count - i >= 8 else { throw Truncated() }
                var bits: UInt64 = 0
                for k in 0..<8 { bits |= UInt64(b[i + k]) << (8 * UInt64(k)) }
                value = .number(Double(bitPattern: bits))
                i += 8
            }
            guard let name = n[key] else { continue }
            out.append(
                (key, PropertyUpdate(twin: name.twin, property: name.property, value: value, timestampMs: checkpointMs &- age,
                                     quality: Quality(rawValue: f % 4) ?? .good)))
        }
        return out
    }
}
