import SceneStreamProtocol
import SceneStreamTestSupport
import Testing

@testable import SceneStreamSessions

/// Hello rules and token deadlines, with the time passed in (no clock, no sockets).
@Suite struct ConnectionMachineTests {
    let second: UInt64 = 1_000_000_000

    @Test func onlyHelloBeforeTheSession() {
        var m = ConnectionMachine(openedNs: 0)
        #expect(m.admit(isHello: true) == .pass)
        // Anything else first: error 5, then close 1008 (§4.1); nothing after it is read.
        #expect(m.admit(isHello: false) == .refuse(.unauthenticated, message: "hello must be the first message", closeCode: 1008))
        #expect(m.state == .closing && m.admit(isHello: true) == .drop)
    }

    @Test func openModeEstablishesAtOnce() {
        var m = ConnectionMachine(openedNs: 0)
        #expect(m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: false) == .establish)
        #expect(m.isEstablished && m.admit(isHello: false) == .pass)
        // A second hello is an error, not a new session.
        #expect(m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: false) == .alreadyEstablished)
    }

    @Test func noCommonVersionCloses1002() {
        var m = ConnectionMachine(openedNs: 0)
        #expect(
            m.hello(minVersion: 2, maxVersion: 3, supported: 1...1, authRequired: false)
                == .refuse(.unsupportedVersion, message: "no common protocol version: the client offers 2…3, this server speaks 1", closeCode: 1002))
        #expect(m.state == .closing)
        #expect(m.admit(isHello: false) == .drop)
    }

    @Test func theHighestVersionInCommonIsChosen() {
        var a = ConnectionMachine(openedNs: 0)
        #expect(a.hello(minVersion: 1, maxVersion: 2, supported: 1...2, authRequired: false) == .establish && a.version == 2)
        var b = ConnectionMachine(openedNs: 0)
        #expect(b.hello(minVersion: 1, maxVersion: 1, supported: 1...2, authRequired: false) == .establish && b.version == 1)
        var c = ConnectionMachine(openedNs: 0)
        #expect(c.hello(minVersion: 2, maxVersion: 9, supported: 1...2, authRequired: false) == .establish && c.version == 2)
        var d = ConnectionMachine(openedNs: 0)
        guard case .refuse(.unsupportedVersion, let why, 1002) = d.hello(minVersion: 3, maxVersion: 4, supported: 1...2, authRequired: false) else {
            Issue.record("3…4 accepted by a 1…2 server")
            return
        }
        #expect(why.contains("1…2"))
    }

    @Test func whatFollowsHelloIsHeldWhileTheTokenIsChecked() {
        var m = ConnectionMachine(openedNs: 0)
        #expect(m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: true) == .verify)
        #expect(m.admit(isHello: false) == .hold)
        #expect(m.admit(isHello: true) == .hold)  // a second hello, answered in its turn
        m.verified(expiresMs: 5_000)
        #expect(m.state == .established(expiresMs: 5_000))
        #expect(m.admit(isHello: false) == .pass)
    }


    @Test func refusedTokenClosesAndDropsLaterMessages() {
        var m = ConnectionMachine(openedNs: 0)
        _ = m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: true)
        m.refused()
        m.verified(expiresMs: 1)  // a late verification cannot revive it
        #expect(m.state == .closing && m.admit(isHello: false) == .drop)
    }

    @Test func noHelloWithinTheHandshakeTime() {
        var m = ConnectionMachine(openedNs: 10 * second)
        #expect(m.deadline(nowNs: 14 * second, nowMs: 0, handshakeNs: 5 * second) == nil)
        #expect(m.deadline(nowNs: 15 * second + 1, nowMs: 0, handshakeNs: 5 * second) == .noHello)
        // Reported once.
        #expect(m.deadline(nowNs: 20 * second, nowMs: 0, handshakeNs: 5 * second) == nil)
    }

    @Test func verifyingIsNotAMissingHello() {
        var m = ConnectionMachine(openedNs: 0)
        _ = m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: true)
        #expect(m.deadline(nowNs: 60 * second, nowMs: 0, handshakeNs: 5 * second) == nil)
    }

    @Test func tokenExpiresWithoutRefresh() {
        var m = ConnectionMachine(openedNs: 0)
        _ = m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: true)
        m.verified(expiresMs: 10_000)
        #expect(m.deadline(nowNs: 0, nowMs: 9_999, handshakeNs: second) == nil)
        #expect(m.deadline(nowNs: 0, nowMs: 10_000, handshakeNs: second) == .tokenExpired)
        #expect(m.state == .closing)
    }

    @Test func refreshMovesTheExpiry() {
        var m = ConnectionMachine(openedNs: 0)
        _ = m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: true)
        m.verified(expiresMs: 10_000)
        m.refreshed(expiresMs: 70_000)
        #expect(m.deadline(nowNs: 0, nowMs: 10_000, handshakeNs: second) == nil)
        #expect(m.deadline(nowNs: 0, nowMs: 69_999, handshakeNs: second) == nil)
        #expect(m.deadline(nowNs: 0, nowMs: 70_000, handshakeNs: second) == .tokenExpired)
    }

    @Test func openModeNeverExpires() {
        var m = ConnectionMachine(openedNs: 0)
        _ = m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: false)
        #expect(m.deadline(nowNs: .max, nowMs: .max, handshakeNs: second) == nil)
    }

    @Test func aRefreshJustInTimeKeepsTheConnectionOnTheClock() {
        var clock = ManualClock()
        var m = ConnectionMachine(openedNs: clock.nowNs)
        _ = m.hello(minVersion: 1, maxVersion: 1, supported: 1...1, authRequired: true)
        clock.advance(ms: 40)  // the token check
        #expect(m.deadline(nowNs: clock.nowNs, nowMs: clock.nowMs, handshakeNs: 10 * second) == nil)
        m.verified(expiresMs: clock.nowMs + 60_000)
        clock.advance(seconds: 59.999)
        m.refreshed(expiresMs: clock.nowMs + 60_000)
        clock.advance(seconds: 30)
        #expect(m.deadline(nowNs: clock.nowNs, nowMs: clock.nowMs, handshakeNs: 10 * second) == nil)
        clock.advance(seconds: 30)
        #expect(m.deadline(nowNs: clock.nowNs, nowMs: clock.nowMs, handshakeNs: 10 * second) == .tokenExpired)
    }
}
