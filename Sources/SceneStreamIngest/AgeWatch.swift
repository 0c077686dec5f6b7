import SceneStreamCore

/// Staleness by age: a source that dies without a death certificate (an edge node whose will never came, a gateway
/// that hangs, a cable pulled) must not leave its last values showing as live. Pure: it is told what arrived and
/// when, and says which values to mark stale.
///
/// Every twin that an outside source feeds is watched as a whole: it is stale when nothing of it arrived for
/// `factor` times its expected period (and at least `minimumMs`). Its period is, first found:
/// 1. one a property was given explicitly (its mapping's `periodMs`, its model) — such a property is also judged
///    on its own, so one dead property of a live twin goes stale;
/// 2. the twin's catalog rate (`twins.json` `rateHz`);
/// 3. learned from its arrivals (when `learn` is on): the longest recent gap between arrivals, decaying slowly
///    towards shorter gaps, so a source that reports by exception is not called dead for a quiet spell it has had
///    before. At least `learnAfter` gaps are seen before a learned period judges anything.
/// A fresh good value clears the mark (the store lets a good value replace a stale one).
public struct AgeWatch: Sendable {
    /// How strict the watch is.
    public struct Configuration: Sendable, Hashable {
        /// A value is stale after this many expected periods without an update.
        public var factor: Double = 3
        /// ... and never before this long (jitter on fast sources).
        public var minimumMs: UInt64 = 5_000
        /// Learn periods from arrivals where none is given.
        public var learn = true
        /// Gaps seen before a learned period is trusted.
        public var learnAfter = 5
        /// Off: nothing is ever stale by age.
        public var enabled = true

        /// The defaults: three periods, at least five seconds, learning on after five gaps.
        public init() {}
    }

    struct PropertyKey: Hashable, Sendable {
        var twin: String
        var property: String
    }

    struct Entry: Sendable {
        /// Arrival time (the server's clock, not the source's: edge clocks drift) of the newest value.
        var lastMs: UInt64
        /// Given period, or 0.
        var givenMs: UInt64 = 0
        /// Learned period (the decaying longest gap), and how many gaps taught it.
        var learnedMs: Double = 0
        var gaps = 0
        /// Marked stale by this watch and not updated since.
        var stale = false
    }

    public let configuration: Configuration
    private var twins: [String: Entry] = [:]
    private var properties: [PropertyKey: Entry] = [:]
    private var givenTwin: [String: UInt64] = [:]
    private var givenProperty: [PropertyKey: UInt64] = [:]
    private var nextSweepMs: UInt64 = 0

    /// A watch with `configuration`.
    public init(configuration: Configuration = Configuration()) { self.configuration = configuration }

    /// Twins watched: those an outside source fed (a period given to a twin that never arrives watches nothing,
    /// so the simulator's twins are not judged).
    public var count: Int { twins.count }

    /// Gives `twin` an expected period (its catalog rate); a property's own period, if shorter, wins.
    public mutating func expect(twin: String, periodMs: UInt64) {
        guard periodMs > 0 else { return }
        givenTwin[twin] = min(periodMs, givenTwin[twin] ?? .max)
        twins[twin]?.givenMs = givenTwin[twin]!
    }

    /// Replaces the twins' given periods (a reloaded catalog); properties' own periods still count for their twin.
    public mutating func setTwinPeriods(_ periods: [String: UInt64]) {
        var given = periods.filter { $0.value > 0 }
        for (k, p) in givenProperty { given[k.twin] = min(p, given[k.twin] ?? .max) }
        givenTwin = given
        for k in twins.keys { twins[k]!.givenMs = given[k] ?? 0 }
    }

    /// Gives one property an expected period (its mapping's or its model's): the property is judged on its own.
    public mutating func expect(twin: String, property: String, periodMs: UInt64) {
        guard periodMs > 0 else { return }
        let key = PropertyKey(twin: twin, property: property)
        guard givenProperty[key] != periodMs else { return }
        givenProperty[key] = periodMs
        properties[key]?.givenMs = periodMs
        expect(twin: twin, periodMs: periodMs)
    }

    /// Notes values that arrived at `nowMs` from an outside source. Marks (values that are not good) do not count
    /// as arrivals.
    public mutating func arrived(_ updates: some Sequence<PropertyUpdate>, nowMs: UInt64) {
        for u in updates where u.quality == .good {
            if twins[u.twin] == nil { twins[u.twin] = Entry(lastMs: nowMs, givenMs: givenTwin[u.twin] ?? 0) }
            note(&twins[u.twin]!, nowMs)
            guard !givenProperty.isEmpty else { continue }
            let key = PropertyKey(twin: u.twin, property: u.property)
            if properties[key] == nil, let p = givenProperty[key] { properties[key] = Entry(lastMs: nowMs, givenMs: p) }
            if properties[key] != nil { note(&properties[key]!, nowMs) }
        }
    }

    private func note(_ e: inout Entry, _ nowMs: UInt64) {
        e.stale = false
        // Values of one message or one tick are one arrival.
        guard nowMs > e.lastMs else { return }
        let gap = Double(nowMs - e.lastMs)
        e.lastMs = nowMs
        e.gaps += 1
        // The longest recent gap, decaying by an eighth of the difference towards shorter ones.
        e.learnedMs = gap >= e.learnedMs ? gap : e.learnedMs - (e.learnedMs - gap) / 8
    }

    /// The period `e` is judged by, or nil when there is none to trust yet.
    private func period(_ e: Entry) -> Double? {
        if e.givenMs > 0 { return Double(e.givenMs) }
        if configuration.learn, e.gaps >= configuration.learnAfter, e.learnedMs > 0 { return e.learnedMs }
        return nil
    }

    private func deadline(_ e: Entry) -> UInt64? {
        guard let p = period(e) else { return nil }
        let wait = min(max(Double(configuration.minimumMs), p * configuration.factor), 1e12)
        return e.lastMs &+ UInt64(wait)
    }

    /// The expected period of `twin` (given or learned), in ms.
    public func periodMs(of twin: String) -> UInt64? { twins[twin].flatMap(period).map { UInt64($0) } }

    /// When the newest value of `twin` arrived (the server's clock).
    public func lastArrivalMs(of twin: String) -> UInt64? { twins[twin]?.lastMs }

    /// Whether `twin` (or a property of it judged on its own) is overdue at `nowMs`.
    public func isOverdue(_ twin: String, nowMs: UInt64) -> Bool {
        guard let e = twins[twin], let d = deadline(e) else { return false }
        return nowMs > d
    }

    /// The stale marks due at `nowMs`, against the values in `store`; at most one look every `everyMs`. Each
    /// overdue twin is marked once (until a value arrives again).
    public mutating func sweep(nowMs: UInt64, store: TwinStore, everyMs: UInt64 = 250) -> [PropertyUpdate] {
        guard configuration.enabled, nowMs >= nextSweepMs else { return [] }
        nextSweepMs = nowMs + everyMs
        var out: [PropertyUpdate] = []
        for (twin, e) in twins where !e.stale {
            guard let d = deadline(e), nowMs > d else { continue }
            twins[twin]!.stale = true
            out.append(contentsOf: store.marks(twin: twin, quality: .stale, atMs: nowMs))
        }
        for (key, e) in properties where !e.stale {
            guard let d = deadline(e), nowMs > d else { continue }
            properties[key]!.stale = true
            guard twins[key.twin]?.stale != true, let s = store.state(key.twin, key.property), s.quality != .stale else { continue }
            out.append(PropertyUpdate(twin: key.twin, property: key.property, value: s.value, timestampMs: max(nowMs, s.timestampMs), quality: .stale))
        }
        return out.sorted { ($0.twin, $0.property) < ($1.twin, $1.property) }
    }
}
