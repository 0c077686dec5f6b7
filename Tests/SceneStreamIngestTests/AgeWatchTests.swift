import SceneStreamCore
import Testing

@testable import SceneStreamIngest

/// Staleness by age: a source that stops without a death certificate leaves no value showing as live.
@Suite struct AgeWatchTests {
    func u(_ twin: String, _ p: String, _ v: Double, at t: UInt64, _ q: Quality = .good) -> PropertyUpdate {
        PropertyUpdate(twin: twin, property: p, value: .number(v), timestampMs: t, quality: q)
    }

    /// A watch judging after 2 s at least, learning from 3 gaps (the defaults are 5 s and 5).
    func watch() -> AgeWatch {
        var c = AgeWatch.Configuration()
        c.minimumMs = 2_000
        c.learnAfter = 3
        return AgeWatch(configuration: c)
    }

    /// Feeds `updates` to both the store and the watch at `t`.
    func arrive(_ w: inout AgeWatch, _ store: TwinStore, _ updates: [PropertyUpdate], at t: UInt64) {
        for x in updates { _ = store.apply(x) }
        w.arrived(updates, nowMs: t)
    }

    @Test func aGivenPeriodMarksTheWholeTwinAfterFactorPeriodsKeepingItsValues() {
        var w = watch()
        let store = TwinStore()
        w.expect(twin: "press", periodMs: 1_000)
        arrive(&w, store, [u("press", "temp", 80, at: 0), u("press", "ram", 1, at: 0)], at: 0)
        arrive(&w, store, [u("press", "temp", 81, at: 1_000)], at: 1_000)
        // Three periods after the newest arrival, not before.
        #expect(w.sweep(nowMs: 4_000, store: store, everyMs: 0).isEmpty)
        #expect(!w.isOverdue("press", nowMs: 4_000))
        let marks = w.sweep(nowMs: 4_001, store: store, everyMs: 0)
        #expect(marks == [u("press", "ram", 1, at: 4_001, .stale), u("press", "temp", 81, at: 4_001, .stale)])
        #expect(w.isOverdue("press", nowMs: 4_001) && w.lastArrivalMs(of: "press") == 1_000)
        // Marked once, not on every sweep after.
        for x in marks { _ = store.apply(x) }
        #expect(w.sweep(nowMs: 9_000, store: store, everyMs: 0).isEmpty)
        // A fresh value clears the mark; the next silence marks again.
        arrive(&w, store, [u("press", "temp", 82, at: 9_500)], at: 9_500)
        #expect(!w.isOverdue("press", nowMs: 9_600))
        // (ram got no fresh value: it stays marked; only temp is marked again.)
        #expect(store.state("press", "ram")?.quality == .stale)
        #expect(w.sweep(nowMs: 12_501, store: store, everyMs: 0).map(\.property) == ["temp"])
    }

    @Test func aTwinNoOutsideSourceFedIsNeverJudged() {
        // The simulator's twins have catalog rates but never arrive through the watch.
        var w = watch()
        let store = TwinStore()
        w.expect(twin: "sim", periodMs: 100)
        _ = store.apply(u("sim", "temp", 1, at: 0))
        #expect(w.sweep(nowMs: 1_000_000, store: store, everyMs: 0).isEmpty && w.count == 0)
    }

    @Test func aLearnedPeriodNeedsAFewGapsAndRespectsTheMinimum() {
        var w = watch()
        let store = TwinStore()
        arrive(&w, store, [u("t", "p", 0, at: 0)], at: 0)
        arrive(&w, store, [u("t", "p", 1, at: 100)], at: 100)
        arrive(&w, store, [u("t", "p", 2, at: 200)], at: 200)
        // Two gaps: not trusted yet, however long the silence.
        #expect(w.sweep(nowMs: 60_000, store: store, everyMs: 0).isEmpty && w.periodMs(of: "t") == nil)
        var w2 = watch()
        for k in UInt64(0)...10 { arrive(&w2, store, [u("t", "p", Double(k), at: k * 100)], at: k * 100) }
        #expect(w2.periodMs(of: "t") == 100)
        // 3 × 100 ms is under the 2 s minimum: the minimum decides.
        #expect(w2.sweep(nowMs: 1_000 + 2_000, store: store, everyMs: 0).isEmpty)
        #expect(w2.sweep(nowMs: 1_000 + 2_001, store: store, everyMs: 0).count == 1)
    }

    @Test func aQuietSpellTheSourceHadBeforeIsNotCalledDeath() {
        // A source reporting by exception: a 5 s gap once teaches the watch that 5 s is normal.
        var w = watch()
        let store = TwinStore()
        var t: UInt64 = 0
        for _ in 0..<4 { arrive(&w, store, [u("t", "p", Double(t), at: t)], at: t); t += 100 }
        t += 4_900
        arrive(&w, store, [u("t", "p", Double(t), at: t)], at: t)
        #expect(w.periodMs(of: "t") == 5_000)
        #expect(w.sweep(nowMs: t + 12_000, store: store, everyMs: 0).isEmpty)
        // Short gaps bring the period down slowly (an eighth of the difference each).
        arrive(&w, store, [u("t", "p", 1, at: t + 100)], at: t + 100)
        #expect(w.periodMs(of: "t") == 4_387)  // 5,000 − 4,900 / 8, in whole ms
        #expect(w.sweep(nowMs: t + 100 + 15_001, store: store, everyMs: 0).count == 1)
    }

    @Test func aPropertyWithItsOwnPeriodGoesStaleAloneWhileItsTwinLives() {
        var w = watch()
        let store = TwinStore()
        w.expect(twin: "t", property: "slow", periodMs: 500)
        for k in UInt64(0)...40 {
            var ups = [u("t", "fast", Double(k), at: k * 100)]
            if k <= 5 { ups.append(u("t", "slow", Double(k), at: k * 100)) }
            arrive(&w, store, ups, at: k * 100)
        }
        // slow last came at 500: stale after 500 + max(2 s, 3 × 500 ms) = 2,500; the twin itself keeps arriving.
        let marks = w.sweep(nowMs: 4_000, store: store, everyMs: 0)
        #expect(marks == [u("t", "slow", 5, at: 4_000, .stale)])
    }

    @Test func marksAndSweepsAreBoundedAndTheWatchCanBeOff() {
        var off = watch().configuration
        off.enabled = false
        var w = AgeWatch(configuration: off)
        let store = TwinStore()
        w.expect(twin: "t", periodMs: 10)
        arrive(&w, store, [u("t", "p", 1, at: 0)], at: 0)
        #expect(w.sweep(nowMs: 1_000_000, store: store, everyMs: 0).isEmpty)
        // Stale marks from elsewhere are not arrivals.
        var on = watch()
        on.expect(twin: "t", periodMs: 1_000)
        on.arrived([u("t", "p", 1, at: 0, .stale)], nowMs: 0)
        #expect(on.count == 0)
        // One look per `everyMs` at most.
        on.arrived([u("t", "p", 1, at: 0)], nowMs: 0)
        _ = store.apply(u("t", "p", 1, at: 0))
        #expect(on.sweep(nowMs: 2_900, store: store).isEmpty)
        #expect(on.sweep(nowMs: 3_100, store: store).isEmpty)  // due, but within 250 ms of the last look
        #expect(on.sweep(nowMs: 3_150, store: store).count == 1)
    }
}
