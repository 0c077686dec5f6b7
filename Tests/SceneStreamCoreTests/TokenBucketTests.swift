import Testing

@testable import SceneStreamCore

/// The one rate limiter: refill with time, a burst of `capacity`, no credit for a clock going back, byte debt.
@Suite struct TokenBucketTests {
    let s: UInt64 = 1_000_000_000

    /// Takes one token at each time and says which were granted.
    func takes(_ b: inout TokenBucket, at times: [UInt64]) -> [Bool] { times.map { b.take(nowNs: $0) } }

    @Test func startsFullAndRefusesPastTheBurst() {
        var b = TokenBucket(capacity: 3, perSecond: 1, nowNs: 0)
        // Three at once, then none; half a second earns half a token (not enough); a second earns one.
        #expect(takes(&b, at: [0, 0, 0, 0, s / 2, s, s]) == [true, true, true, false, false, true, false])
    }

    @Test func refillStopsAtCapacity() {
        var b = TokenBucket(capacity: 2, perSecond: 10, nowNs: 0)
        _ = b.take(2, nowNs: 0)
        b.refill(nowNs: 100 * s)
        #expect(b.tokens == 2)
        #expect(b.isFull(nowNs: 100 * s))
    }

    @Test func aClockGoingBackEarnsNothing() {
        var b = TokenBucket(capacity: 1, perSecond: 1, nowNs: 10 * s)
        #expect(takes(&b, at: [10 * s, 5 * s, 10 * s + s / 2, 11 * s]) == [true, false, false, true])
    }

    @Test func aByteBudgetGoesIntoDebtAndPaysItBack() {
        var b = TokenBucket(capacity: 1000, perSecond: 1000, nowNs: 0)
        b.spend(3000, nowNs: 0)
        #expect(b.tokens == -2000)
        let inDebt = b.has(.leastNonzeroMagnitude, nowNs: 2 * s)
        let paid = b.has(.leastNonzeroMagnitude, nowNs: 2 * s + s / 10)
        #expect(!inDebt && paid)
    }

    @Test func reportsAtMostOnceASecond() {
        var b = TokenBucket(capacity: 1, perSecond: 1, nowNs: 0)
        let said = [0, s / 2, s + 1].map { b.shouldReport(nowNs: $0) }
        #expect(said == [true, false, true])
    }
}

/// The per-tick ingest allowance follows the measured cost and stays within its bounds.
@Suite struct IngestBudgetTests {
    @Test func allowanceFollowsTheCost() {
        var b = IngestBudget(budgetNs: 10_000_000, maxUpdates: 25_000, minUpdates: 500)
        #expect(b.allowance == 500)  // the floor until a cost is measured
        for _ in 0..<30 { b.record(updates: 10_000, ns: 100_000_000) }  // 10 µs each
        #expect((999...1000).contains(b.allowance))  // the average nears 10 µs from above
        for _ in 0..<60 { b.record(updates: 10_000, ns: 1_000_000) }  // 0.1 µs each
        #expect(b.allowance == 25_000)
        for _ in 0..<30 { b.record(updates: 10_000, ns: 10_000_000_000) }  // 1 ms each
        #expect(b.allowance == 500)
    }

    @Test func aSteadyStreamIsNeverThrottledBelowTheFloor() {
        var b = IngestBudget(budgetNs: 10_000_000, maxUpdates: 25_000)
        for _ in 0..<30 { b.record(updates: 10_000, ns: 10_000_000_000) }
        #expect(b.allowance == 2000)
    }

    @Test func smallBatchesAreIgnored() {
        var b = IngestBudget(budgetNs: 10_000_000, maxUpdates: 25_000, minUpdates: 500)
        b.record(updates: 10, ns: 1_000_000_000)
        #expect(b.allowance == 500)
        b.record(updates: 1000, ns: 1_000_000)  // 1 µs each: this one counts
        #expect(b.allowance > 500)
    }
}
