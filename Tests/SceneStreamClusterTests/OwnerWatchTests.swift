import SceneStreamCluster
import Testing

/// A fan-out node's scene turns stale when NATS is gone or the owner goes quiet, once, and fresh when it is heard.
@Suite struct OwnerWatchTests {
    @Test func losingNATSMakesTheSceneStaleAtOnceSinceTheOwnerWasLastHeard() {
        var w = OwnerWatch(quietMs: 10_000, nowMs: 0)
        #expect(w.heard(nowMs: 1000) == nil)
        #expect(w.check(connected: true, nowMs: 2000) == nil)
        #expect(w.check(connected: false, nowMs: 2500) == .stale(sinceMs: 1000))
        #expect(w.staleSinceMs == 1000)
        // Said once.
        #expect(w.check(connected: false, nowMs: 3000) == nil)
        // Connected again is not enough: the owner must be heard.
        #expect(w.check(connected: true, nowMs: 4000) == nil)
        #expect(w.staleSinceMs == 1000)
        #expect(w.heard(nowMs: 5000) == .fresh)
        #expect(w.staleSinceMs == nil)
        #expect(w.heard(nowMs: 5100) == nil)
    }

    @Test func anOwnerQuietForTooLongMakesTheSceneStale() {
        var w = OwnerWatch(quietMs: 10_000, nowMs: 0)
        _ = w.heard(nowMs: 3000)
        #expect(w.check(connected: true, nowMs: 12_999) == nil)
        #expect(w.check(connected: true, nowMs: 13_000) == .stale(sinceMs: 3000))
        // A late, older time does not move it back.
        #expect(w.heard(nowMs: 2000) == .fresh)
        #expect(w.lastHeardMs == 3000)
    }
}
