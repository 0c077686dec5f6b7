import SceneStreamCore
import SceneStreamProtocol
import Testing

@testable import SceneStreamSessions

/// Annotation rate and caps, presence at most presenceHz, and where a resume starts.
@Suite struct LimitsTests {
    let s: UInt64 = 1_000_000_000

    @Test func annotationRateAllowsABurstThenItsRate() {
        var l = AnnotationLimits(perSecond: 5, maxPerUser: 1000, maxPerScene: 1000)
        var added = 0
        for k in 0..<50 where l.admit(user: "ana", userCount: k, sceneCount: k, nowNs: s) == nil { added += 1 }
        #expect(added == 20)  // four seconds' worth
        #expect(l.admit(user: "ana", userCount: 20, sceneCount: 20, nowNs: s) == .rate(perSecond: 5))
        // Another user has their own bucket.
        #expect(l.admit(user: "bob", userCount: 0, sceneCount: 20, nowNs: s) == nil)
        // A second later, five more.
        added = 0
        for _ in 0..<10 where l.admit(user: "ana", userCount: 20, sceneCount: 21, nowNs: 2 * s) == nil { added += 1 }
        #expect(added == 5)
    }

    @Test func annotationCapsPerUserAndScene() {
        var l = AnnotationLimits(perSecond: 100, maxPerUser: 3, maxPerScene: 5)
        #expect(l.admit(user: "ana", userCount: 3, sceneCount: 3, nowNs: s) == .userCap(3))
        #expect(l.admit(user: "bob", userCount: 0, sceneCount: 5, nowNs: s) == .sceneCap(5))
        #expect(l.admit(user: "bob", userCount: 0, sceneCount: 4, nowNs: s) == nil)
        // A refusal by cap costs no rate token.
        var tight = AnnotationLimits(perSecond: 1, maxPerUser: 0, maxPerScene: 10)
        for _ in 0..<10 { #expect(tight.admit(user: "ana", userCount: 0, sceneCount: 0, nowNs: s) == .userCap(0)) }
    }

    @Test func presenceLatestWinsAtMostEveryNTicks() {
        var r = PresenceRelay<Int>(everyTicks: 3)
        r.submit("s-1", 1)
        r.submit("s-1", 2)
        r.submit("s-2", 7)
        #expect(r.release(tick: 1).isEmpty && r.release(tick: 2).isEmpty)
        let out = r.release(tick: 3)
        #expect(out.map(\.0) == ["s-1", "s-2"] && out.map(\.1) == [2, 7])
        #expect(r.release(tick: 6).isEmpty && r.waiting == 0)
        r.submit("s-1", 3)
        r.drop("s-1")
        #expect(r.release(tick: 9).isEmpty)
    }

    @Test func resumeInsideTheWindowIsADelta() {
        let f = InterestFilter(InterestSpec(sceneId: "demo"))
        let acked = ClientBaseline(version: 10, filter: f)
        let sent = [ClientBaseline(version: 11, filter: f), ClientBaseline(version: 12, filter: f)]
        #expect(ResumePoint.choose(acked: acked, inFlight: sent, resumeVersion: 10) == acked)
        #expect(ResumePoint.choose(acked: acked, inFlight: sent, resumeVersion: 12) == sent[1])
    }

    @Test func resumeOutsideTheWindowIsAKeyframe() {
        let f = InterestFilter(InterestSpec(sceneId: "demo"))
        let acked = ClientBaseline(version: 10, filter: f)
        #expect(ResumePoint.choose(acked: acked, inFlight: [], resumeVersion: 9) == nil)
        #expect(ResumePoint.choose(acked: nil, inFlight: [], resumeVersion: 10) == nil)
        #expect(ResumePoint.choose(acked: acked, inFlight: [ClientBaseline(version: 11, filter: f)], resumeVersion: 13) == nil)
    }
}
