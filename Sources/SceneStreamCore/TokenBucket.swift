/// A token bucket: `capacity` tokens, refilled at `perSecond`. The one rate limiter of the server (messages per
/// connection, new connections per address, handoff claims, annotations, byte budgets). Pure: the caller passes
/// the time (monotonic nanoseconds).
public struct TokenBucket: Sendable, Equatable {
    public let capacity: Double
    public let perSecond: Double
    /// Tokens now (after the last refill); negative while a byte budget is in debt.
    public private(set) var tokens: Double
    private var lastNs: UInt64
    private var lastReportNs: UInt64?

    /// A full bucket at `nowNs`.
    public init(capacity: Double, perSecond: Double, nowNs: UInt64) {
        precondition(capacity > 0 && perSecond >= 0, "a bucket needs a positive capacity and a rate ≥ 0")
        self.capacity = capacity
        self.perSecond = perSecond
        tokens = capacity
        lastNs = nowNs
    }

    /// Adds what the time since the last refill earned (a clock that goes back earns nothing).
    public mutating func refill(nowNs: UInt64) {
        guard nowNs > lastNs else { return }
        tokens = min(capacity, tokens + Double(nowNs - lastNs) / 1e9 * perSecond)
        lastNs = nowNs
    }

    /// Takes `n` tokens if there are that many; returns whether it did.
    public mutating func take(_ n: Double = 1, nowNs: UInt64) -> Bool {
        refill(nowNs: nowNs)
        guard tokens >= n else { return false }
        tokens -= n
        return true
    }

    /// Whether `n` tokens are there now, without taking them.
    public mutating func has(_ n: Double = 1, nowNs: UInt64) -> Bool {
        refill(nowNs: nowNs)
        return tokens >= n
    }

    /// Spends `n` even past zero (a frame larger than what is left of a byte budget goes out, and the debt is
    /// paid back before the next one).
    public mutating func spend(_ n: Double, nowNs: UInt64) {
        refill(nowNs: nowNs)
        tokens -= n
    }

    /// Whether the bucket is full at `nowNs` (an idle one can be forgotten).
    public func isFull(nowNs: UInt64) -> Bool {
        nowNs > lastNs ? tokens + Double(nowNs - lastNs) / 1e9 * perSecond >= capacity : tokens >= capacity
    }

    /// True at most once a second: whether to tell the caller (or the log) that the limit is being hit.
    public mutating func shouldReport(nowNs: UInt64) -> Bool {
        if let last = lastReportNs, nowNs &- last < 1_000_000_000 { return false }
        lastReportNs = nowNs
        return true
    }
}

/// How many queued twin updates one tick applies: as many as fit in `budgetNs` at the cost per update measured so
/// far (a moving average), between `minUpdates` and `maxUpdates`. A burst — a large Sparkplug birth, a broker replaying its
/// queue — is spread over ticks instead of stalling one. Pure: the caller measures.
public struct IngestBudget: Sendable, Equatable {
    public let budgetNs: UInt64
    public let maxUpdates: Int
    /// Taken per tick however slow updates are (60k updates/s at 30 Hz): a steady stream is never throttled below
    /// this. Only slow updates meet it — at 2 µs each the budget alone takes 8k a tick — and then it bounds a tick's
    /// ingest (new properties cost about 7 µs: 2,000 of them are 14 ms, 4,000 overran a 33 ms tick).
    public let minUpdates: Int
    /// Nanoseconds per update, averaged. It starts where the allowance is the floor — a new property (a Sparkplug
    /// birth's metrics) costs several times an update — so a burst before the first measurement is spread, not
    /// applied in one tick that overruns; cheap updates raise the allowance within a few ticks.
    public private(set) var costNs: Double

    public init(budgetNs: UInt64, maxUpdates: Int, minUpdates: Int = 2000) {
        self.budgetNs = budgetNs
        self.maxUpdates = max(minUpdates, maxUpdates)
        self.minUpdates = minUpdates
        costNs = Double(budgetNs) / Double(max(1, minUpdates))
    }

    /// Updates the next tick may take.
    public var allowance: Int { min(maxUpdates, max(minUpdates, Int(Double(budgetNs) / max(costNs, 1)))) }

    /// Records that `updates` took `ns`. Batches under 100 updates say little and are ignored.
    public mutating func record(updates: Int, ns: UInt64) {
        guard updates >= 100 else { return }
        costNs = 0.7 * costNs + 0.3 * Double(ns) / Double(updates)
    }
}
