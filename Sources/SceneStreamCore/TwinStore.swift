import DequeModule

/// A twin property's value.
public enum TwinValue: Hashable, Sendable, CustomStringConvertible {
    case number(Double)
    case bool(Bool)
    case text(String)

    /// The value as a number: booleans are 0/1, text that parses as a number is that number.
    public var number: Double? {
        switch self {
        case .number(let d): return d
        case .bool(let b): return b ? 1 : 0
        case .text(let s): return Double(s)
        }
    }

    public var description: String {
        switch self {
        case .number(let d): return String(d)
        case .bool(let b): return String(b)
        case .text(let s): return s
        }
    }
}

/// How far a value can be trusted.
public enum Quality: UInt8, Hashable, Sendable, CaseIterable {
    /// Fresh from the source.
    case good = 0
    /// The source went away; the value is the last one known.
    case stale = 1
    /// The source says the value is wrong.
    case bad = 2
    /// The source says the value may be wrong (OPC UA Uncertain): shown like a stale one.
    case uncertain = 3
}

/// One property write from the plant.
public struct PropertyUpdate: Hashable, Sendable {
    public var twin: String
    public var property: String
    public var value: TwinValue
    /// Source time, ms since the Unix epoch.
    public var timestampMs: UInt64
    public var quality: Quality

    /// Creates an update.
    public init(twin: String, property: String, value: TwinValue, timestampMs: UInt64, quality: Quality = .good) {
        self.twin = twin
        self.property = property
        self.value = value
        self.timestampMs = timestampMs
        self.quality = quality
    }
}

/// A property's current state.
public struct PropertyState: Hashable, Sendable {
    public var value: TwinValue
    public var timestampMs: UInt64
    public var quality: Quality
}

/// A named, directed link between twins (e.g. "feeds", "partOf").
public struct Relationship: Hashable, Sendable {
    public var name: String
    public var target: String

    /// Creates a relationship.
    public init(name: String, target: String) {
        self.name = name
        self.target = target
    }
}

/// A bounded, time-ordered record of property updates: at most `capacity` entries and `windowMs` of time.
public struct TwinHistory: Sendable {
    public private(set) var entries = Deque<PropertyUpdate>()
    public let capacity: Int
    public let windowMs: UInt64

    /// Creates an empty history.
    public init(capacity: Int = 1_000_000, windowMs: UInt64 = 3_600_000) {
        self.capacity = max(1, capacity)
        self.windowMs = windowMs
    }

    /// Records an update and drops what falls out of the bounds.
    public mutating func append(_ u: PropertyUpdate) {
        if let last = entries.last, last.timestampMs > u.timestampMs {
            // Sources stamp their own times: keep the entries in time order (ranges are found by binary search).
            entries.insert(u, at: firstIndex(atOrAfter: u.timestampMs + 1))
        } else {
            entries.append(u)
        }
        while entries.count > capacity { dropped(entries.removeFirst()) }
        if let last = entries.last?.timestampMs, last > windowMs {
            let cutoff = last - windowMs
            while let first = entries.first, first.timestampMs < cutoff { dropped(entries.removeFirst()) }
        }
    }

    /// The newest timestamp among the entries dropped so far (nil: none dropped).
    public private(set) var newestDroppedMs: UInt64?

    private mutating func dropped(_ u: PropertyUpdate) {
        newestDroppedMs = max(newestDroppedMs ?? 0, u.timestampMs)
    }

    /// Memory does not know what happened up to `t` (a restart: only the values restored then are held).
    public mutating func markUnknown(through t: UInt64) {
        newestDroppedMs = max(newestDroppedMs ?? 0, t)
    }

    /// Whether every update stamped after `t` is still held.
    public func holdsEverything(after t: UInt64) -> Bool { newestDroppedMs.map { $0 <= t } ?? true }

    /// Whether ``SceneRuntime/rebuilt(at:)`` gives the exact scene at `t`: a checkpoint at or before it and every
    /// update after that checkpoint still held.
    public func canRebuild(at t: UInt64) -> Bool {
        guard let cp = checkpoint(atOrBefore: t) else { return false }
        return holdsEverything(after: cp.timeMs)
    }

    /// Updates with `from <= timestamp < to`, in order. Entries are kept in time order (ingest sorts each batch),
    /// so both ends are found by binary search.
    public func updates(from: UInt64, to: UInt64) -> [PropertyUpdate] {
        let lo = firstIndex(atOrAfter: from), hi = firstIndex(atOrAfter: to)
        guard lo < hi else { return [] }
        return Array(entries[lo..<hi])
    }

    /// How many updates (of every property) have `from <= timestamp < to`.
    public func count(from: UInt64, to: UInt64) -> Int { max(0, firstIndex(atOrAfter: to) - firstIndex(atOrAfter: from)) }

    /// Hands one property's updates with `from <= timestamp < to` to `body`, in order, without copying them, and
    /// returns its last update before `from` looked for among at most `lookBehind` older entries (where a chart's
    /// line enters the range).
    public func series(
        twin: String, property: String, from: UInt64, to: UInt64, lookBehind: Int = 200_000, _ body: (PropertyUpdate) -> Void
    ) -> PropertyUpdate? {
        let lo = firstIndex(atOrAfter: from), hi = firstIndex(atOrAfter: to)
        if lo < hi {
            for u in entries[lo..<hi] where u.property == property && u.twin == twin { body(u) }
        }
        var i = lo
        while i > max(0, lo - lookBehind) {
            i -= 1
            if entries[i].property == property && entries[i].twin == twin { return entries[i] }
        }
        return nil
    }

    /// The last update of each (twin, property) with `from <= timestamp < to`, oldest first: what a replay of the
    /// range leaves behind, without replaying every step.
    public func latestPerProperty(from: UInt64, to: UInt64) -> [PropertyUpdate] {
        let lo = firstIndex(atOrAfter: from), hi = firstIndex(atOrAfter: to)
        guard lo < hi else { return [] }
        var seen: [String: Set<String>] = [:]
        var out: [PropertyUpdate] = []
        var i = hi
        while i > lo {
            i -= 1
            let u = entries[i]
            if seen[u.twin, default: []].insert(u.property).inserted { out.append(u) }
        }
        return out.reversed()
    }

    func firstIndex(atOrAfter t: UInt64) -> Int {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].timestampMs < t { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// Twin state snapshots taken every `checkpointIntervalMs`, so a seek replays at most one interval.
    public private(set) var checkpoints = Deque<(timeMs: UInt64, state: [PropertyUpdate])>()
    /// How often ``checkpoint(at:store:)`` keeps a snapshot.
    public var checkpointIntervalMs: UInt64 = 2_000

    /// Keeps a snapshot of every property's current value if the last one is older than the interval.
    public mutating func checkpoint(at timeMs: UInt64, state: @autoclosure () -> [PropertyUpdate]) {
        if let last = checkpoints.last, timeMs < last.timeMs + checkpointIntervalMs { return }
        checkpoints.append((timeMs, state()))
        let oldest = entries.first?.timestampMs ?? timeMs
        // Keep one checkpoint at or before the oldest update so every retained moment can be rebuilt.
        while checkpoints.count > 1, checkpoints[1].timeMs <= oldest { checkpoints.removeFirst() }
    }

    /// The latest checkpoint at or before `t`.
    public func checkpoint(atOrBefore t: UInt64) -> (timeMs: UInt64, state: [PropertyUpdate])? {
        checkpoints.last { $0.timeMs <= t }
    }

    /// The time of the oldest retained update.
    public var oldestMs: UInt64? { entries.first?.timestampMs }
}

/// The plant's working memory: each twin's current property values, quality and relationships, plus a bounded
/// history. Written only by ingest; clients never write it. One owner; no I/O.
public final class TwinStore {
    struct Twin {
        var properties: [String: PropertyState] = [:]
        var relationships: [Relationship] = []
    }

    private var twins: [String: Twin] = [:]
    /// Recent updates, for playback.
    public var history: TwinHistory
    /// Updates rejected because they were older than the value held.
    public private(set) var outOfOrder = 0
    /// Updates dropped as exact copies of the value held (redeliveries).
    public private(set) var duplicates = 0

    /// Creates an empty store.
    public init(history: TwinHistory = TwinHistory()) {
        self.history = history
    }

    /// Applies an update. Returns false (and changes nothing) when it is older than the value held, or an exact
    /// copy of it (a QoS 1 redelivery). A good value from the source always replaces a stale or bad mark, even if
    /// its timestamp is older (the source's clock may lag ours).
    @discardableResult
    public func apply(_ u: PropertyUpdate) -> Bool {
        if let cur = twins[u.twin]?.properties[u.property] {
            if cur.timestampMs == u.timestampMs, cur.value == u.value, cur.quality == u.quality {
                duplicates += 1
                return false
            }
            if cur.timestampMs > u.timestampMs, !(cur.quality != .good && u.quality == .good) {
                outOfOrder += 1
                return false
            }
        }
        twins[u.twin, default: Twin()].properties[u.property] = PropertyState(
            value: u.value, timestampMs: u.timestampMs, quality: u.quality)
        history.append(u)
        return true
    }

    /// Whether `u` is an exact copy of the state held (same value, time and quality).
    public func isDuplicate(_ u: PropertyUpdate) -> Bool {
        guard let cur = twins[u.twin]?.properties[u.property] else { return false }
        return cur.timestampMs == u.timestampMs && cur.value == u.value && cur.quality == u.quality
    }

    /// Updates that mark every property of `twin` with `quality`, keeping the values (nothing changes until they
    /// are applied). `pending` holds updates not yet applied that come first.
    public func marks(twin: String, quality: Quality, atMs: UInt64, after pending: [PropertyUpdate] = []) -> [PropertyUpdate] {
        var props = twins[twin]?.properties ?? [:]
        for u in pending where u.twin == twin {
            props[u.property] = PropertyState(value: u.value, timestampMs: u.timestampMs, quality: u.quality)
        }
        return props.filter { $0.value.quality != quality }.sorted { $0.key < $1.key }.map { name, state in
            PropertyUpdate(twin: twin, property: name, value: state.value, timestampMs: max(atMs, state.timestampMs), quality: quality)
        }
    }

    /// The current state of a property.
    public func state(_ twin: String, _ property: String) -> PropertyState? { twins[twin]?.properties[property] }

    /// The current numeric value of a property.
    public func number(_ twin: String, _ property: String) -> Double? { twins[twin]?.properties[property]?.value.number }

    /// Every property's current state, as updates (for checkpoints).
    public func snapshot() -> [PropertyUpdate] {
        var out: [PropertyUpdate] = []
        for (id, twin) in twins {
            for (p, st) in twin.properties {
                out.append(PropertyUpdate(twin: id, property: p, value: st.value, timestampMs: st.timestampMs, quality: st.quality))
            }
        }
        return out.sorted { $0.timestampMs < $1.timestampMs }
    }

    /// Every property of a twin.
    public func properties(of twin: String) -> [String: PropertyState] { twins[twin]?.properties ?? [:] }

    /// The ids of every twin seen.
    public var twinIds: [String] { twins.keys.sorted() }

    /// Adds a relationship from `twin`.
    public func relate(_ twin: String, _ r: Relationship) {
        if twins[twin]?.relationships.contains(r) != true { twins[twin, default: Twin()].relationships.append(r) }
    }

    /// Forgets every relationship (a reload gives them again).
    public func clearRelationships() {
        for k in twins.keys { twins[k]!.relationships.removeAll() }
    }

    /// The relationships from `twin`.
    public func relationships(of twin: String) -> [Relationship] { twins[twin]?.relationships ?? [] }
}

@available(*, unavailable)
extension TwinStore: Sendable {}

/// What a twin id and a property name may be, from any source (MQTT, Sparkplug, HTTP): at most 256 and 128 bytes
/// of UTF-8 with no control characters (NUL included). Pure.
public enum TwinKeyRules {
    public static let maxTwinBytes = 256
    public static let maxPropertyBytes = 128

    /// Why `twin`/`property` are not acceptable, or nil.
    public static func problem(twin: String, property: String) -> String? {
        if twin.isEmpty { return "empty twin id" }
        if property.isEmpty { return "empty property name" }
        if twin.utf8.count > maxTwinBytes { return "twin id longer than \(maxTwinBytes) bytes" }
        if property.utf8.count > maxPropertyBytes { return "property name longer than \(maxPropertyBytes) bytes" }
        if twin.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "control character in twin id" }
        if property.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) { return "control character in property name" }
        return nil
    }
}
