import SceneStreamCore
import SceneStreamTestSupport
import Testing

@testable import SceneStreamSessions

/// Handoff codes: claimed once, by their own user, before they expire; guessing is rate-limited.
@Suite struct HandoffBookTests {
    func book() -> HandoffBook {
        var b = HandoffBook(lifetimeMs: 60_000)
        _ = b.offer(code: "ABCD-EFGH", sessionId: "s-1", userId: "ana", keepOldDevice: false, nowMs: 1_000)
        return b
    }

    @Test func claimedOnceByItsUser() throws {
        var b = book()
        let c = try b.claim("abcd efgh", userId: "ana", nowMs: 2_000, sessionExists: { $0 == "s-1" }).get()
        #expect(c.sessionId == "s-1" && c.expiresMs == 61_000 && !c.keepOldDevice)
        #expect(b.claim("ABCD-EFGH", userId: "ana", nowMs: 3_000, sessionExists: { _ in true }) == .failure(.used))
    }

    @Test func anotherUsersCodeIsUnknown() {
        var b = book()
        #expect(b.claim("ABCD-EFGH", userId: "bob", nowMs: 2_000, sessionExists: { _ in true }) == .failure(.unknown))
        // Refused claims leave the code for its owner.
        #expect((try? b.claim("ABCD-EFGH", userId: "ana", nowMs: 2_000, sessionExists: { _ in true }).get()) != nil)
    }

    @Test func expiredCodeSaysSo() {
        var b = book()
        #expect(b.claim("ABCD-EFGH", userId: "ana", nowMs: 61_000, sessionExists: { _ in true }) == .failure(.expired))
        // A minute after expiry it is forgotten.
        b.expire(nowMs: 121_000)
        #expect(b.codes.isEmpty)
        #expect(b.claim("ABCD-EFGH", userId: "ana", nowMs: 121_000, sessionExists: { _ in true }) == .failure(.unknown))
    }

    @Test func codeOfAGoneSessionIsUnknown() {
        var b = book()
        #expect(b.claim("ABCD-EFGH", userId: "ana", nowMs: 2_000, sessionExists: { _ in false }) == .failure(.unknown))
    }

    @Test func takenCodeIsNotOfferedTwice() {
        var b = book()
        #expect(b.offer(code: "ABCD-EFGH", sessionId: "s-2", userId: "bob", keepOldDevice: true, nowMs: 1_000) == nil)
        #expect(b.codes["ABCD-EFGH"]?.sessionId == "s-1")
    }

    @Test func codesAreFortyBitsOfTheAlphabet() {
        var g = SystemRandomNumberGenerator()
        var seen: Set<String> = []
        for _ in 0..<1000 {
            let c = HandoffBook.make(using: &g)
            #expect(c.count == 9 && c[c.index(c.startIndex, offsetBy: 4)] == "-")
            #expect(c.filter { $0 != "-" }.allSatisfy(HandoffBook.alphabet.contains))
            seen.insert(c)
        }
        #expect(seen.count > 990)
        #expect(HandoffBook.normalize("abcdefgh") == "ABCD-EFGH" && HandoffBook.normalize("ab cd-efgh") == "ABCD-EFGH")
    }

    @Test func guessingIsLimitedPerConnectionAndServerWide() {
        let s: UInt64 = 1_000_000_000
        var limiter = ClaimLimiter(nowNs: 0)
        var own = ClaimLimiter.connectionBucket(nowNs: 0)
        for _ in 0..<10 { #expect(limiter.allow(&own, nowNs: s) == true) }
        #expect(limiter.allow(&own, nowNs: s) == false)
        // Six seconds later this connection has one more (10 a minute).
        #expect(limiter.allow(&own, nowNs: 7 * s) == true)
        // 100 a minute across connections: the server-wide bucket refilled to 100 by 7 s and gave one, so fresh
        // connections get 99 more between them, however many they are.
        var allowed = 0
        for _ in 0..<20 {
            var fresh = ClaimLimiter.connectionBucket(nowNs: 7 * s)
            for _ in 0..<10 where limiter.allow(&fresh, nowNs: 7 * s) { allowed += 1 }
        }
        #expect(allowed == 99)
    }

    @Test func aCodeLivesItsLifetimeOnTheClock() {
        var clock = ManualClock()
        var b = HandoffBook(lifetimeMs: 60_000)
        _ = b.offer(code: "WXYZ-2345", sessionId: "s-1", userId: "ana", keepOldDevice: true, nowMs: clock.nowMs)
        clock.advance(seconds: 59.9)
        var probe = b
        #expect((try? probe.claim("WXYZ2345", userId: "ana", nowMs: clock.nowMs, sessionExists: { _ in true }).get())?.keepOldDevice == true)
        clock.advance(seconds: 0.1)
        #expect(b.claim("WXYZ2345", userId: "ana", nowMs: clock.nowMs, sessionExists: { _ in true }) == .failure(.expired))
    }
}
