import SceneStreamCore

/// One thing that arrived from the plant, in arrival order.
public enum IngestItem: Sendable, Equatable {
    /// A new value.
    case update(PropertyUpdate)
    /// These twins lost their source (a Sparkplug death): their properties are marked stale where they stand.
    case stale([String])
    /// One property's quality changed without a new value (an OPC UA Bad status with no value): marked where it stands.
    case mark(twin: String, property: String, quality: Quality, atMs: UInt64)
}

/// Updates and stale marks waiting for the next tick, in order. A drain takes at most a budget of items (the
/// rest wait, still in order), so a burst is spread over ticks. Pure; the server keeps one behind a lock for the
/// MQTT thread.
public struct IngestQueue: Sendable {
    private var items: [IngestItem] = []
    private var head = 0

    /// An empty queue.
    public init() {}

    /// Items waiting.
    public var backlog: Int { items.count - head }

    /// Appends one item.
    public mutating func append(_ item: IngestItem) { items.append(item) }

    /// Appends updates in order.
    public mutating func append(contentsOf updates: [PropertyUpdate]) {
        items.reserveCapacity(items.count + updates.count)
        for u in updates { items.append(.update(u)) }
    }

    /// The oldest `maxItems` items (all, if fewer wait), in order.
    public mutating func drain(maxItems: Int = .max) -> [IngestItem] {
        let n = min(maxItems, backlog)
        let out = Array(items[head..<(head + n)])
        head += n
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 65_536, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        return out
    }
}

/// Refusals worth a log line: the first per topic, for at most `maxTopics` topics (a flood of bad topics costs
/// one line each, never unbounded memory). Pure.
public struct RejectLog: Sendable {
    public let maxTopics: Int
    private var seen: Set<String> = []
    private var fresh: [(topic: String, reason: String)] = []

    /// A log that remembers up to `maxTopics` topics.
    public init(maxTopics: Int = 1000) { self.maxTopics = maxTopics }

    /// Notes a refusal of a message on `topic`.
    public mutating func note(topic: String, reason: String) {
        if seen.count < maxTopics, seen.insert(topic).inserted { fresh.append((topic, reason)) }
    }

    /// Refusals not yet logged.
    public mutating func take() -> [(topic: String, reason: String)] {
        defer { fresh.removeAll() }
        return fresh
    }
}

/// Turns what a tick drained into the updates it applies, in order. Pure (it reads the twin store, never writes it).
public enum IngestPipeline {
    /// The tick's batch and what was dropped.
    public struct Batch: Sendable, Equatable {
        public var updates: [PropertyUpdate]
        /// Exact copies of the stored value (a QoS 1 redelivery).
        public var duplicates: Int
        /// Updates whose twin id or property name breaks ``TwinKeyRules``.
        public var badKeys: Int
    }

    /// Assembles `items`:
    /// - an update that repeats the stored value exactly is dropped (a redelivery);
    /// - a stale mark applies after the tick's earlier updates, keeping their values;
    /// - a mark that a later update of the same property replaces is dropped (a death then a birth in one tick:
    ///   the birth's values were stamped by the edge before the mark's time);
    /// - when `brokerLost`, every twin in `sourced` (the twins this source fed) is marked stale after all that.
    /// Twins that updates name are added to `sourced`.
    public static func assemble(_ items: [IngestItem], twins: TwinStore, sourced: inout Set<String>, brokerLost: Bool, nowMs: UInt64) -> Batch {
        var out: [PropertyUpdate] = []
        out.reserveCapacity(items.count)
        var duplicates = 0
        var badKeys = 0
        var marked = false
        for item in items {
            switch item {
            case .update(let u):
                if TwinKeyRules.problem(twin: u.twin, property: u.property) != nil {
                    badKeys += 1
                    continue
                }
                if twins.isDuplicate(u) {
                    duplicates += 1
                    continue
                }
                sourced.insert(u.twin)
                out.append(u)
            case .stale(let list):
                let before = out
                for t in list { out.append(contentsOf: twins.marks(twin: t, quality: .stale, atMs: nowMs, after: before)) }
                marked = true
            case .mark(let twin, let property, let quality, let at):
                // The value it has by now: this tick's latest, else the stored one; nothing stored, nothing to mark.
                let value = out.last { $0.twin == twin && $0.property == property }?.value ?? twins.state(twin, property)?.value
                guard let value else { continue }
                out.append(PropertyUpdate(twin: twin, property: property, value: value, timestampMs: at, quality: quality))
            }
        }
        if marked {
            var later: Set<String> = []
            var kept: [PropertyUpdate] = []
            for u in out.reversed() {
                let key = u.twin + "\u{0}" + u.property
                if u.quality == .stale, later.contains(key) { continue }
                later.insert(key)
                kept.append(u)
            }
            out = kept.reversed()
        }
        if brokerLost {
            // The values are the last known ones; say so instead of showing them as live.
            let before = out
            for twin in sourced.sorted() { out.append(contentsOf: twins.marks(twin: twin, quality: .stale, atMs: nowMs, after: before)) }
        }
        return Batch(updates: out, duplicates: duplicates, badKeys: badKeys)
    }
}
