import SceneStreamProtocol
import Testing

@testable import SceneStreamSessions

/// Playback transitions: seek, play, pause, live, and rebuilds that come back late or after the client moved on.
@Suite struct PlaybackControllerTests {
    let now: UInt64 = 1_000_000
    func controller() -> PlaybackController { PlaybackController(tickMs: 33) }

    @Test func seekRebuildsThenWatchesPaused() {
        var p = controller()
        guard case .rebuild(let seek) = p.command(.seek, timeMs: now - 60_000, speedMilli: 1000, nowMs: now) else {
            Issue.record("no rebuild")
            return
        }
        #expect(seek.targetMs == now - 60_000 && !seek.playing && p.state == .live)
        #expect(p.rebuilt(serial: seek.serial) == true)
        #expect(p.state == PlaybackState(mode: .paused, cursorMs: now - 60_000, speedMilli: 1000))
    }

    @Test func playWhileRebuildingPlaysWhenItArrives() {
        var p = controller()
        guard case .rebuild(let seek) = p.command(.seek, timeMs: now - 60_000, speedMilli: 1000, nowMs: now) else { return }
        #expect(p.command(.play, timeMs: 0, speedMilli: 4000, nowMs: now) == .none)
        #expect(p.rebuilt(serial: seek.serial) == true)
        #expect(p.state.mode == .playing && p.state.speedMilli == 4000)
    }

    @Test func aSecondSeekDropsTheFirstRebuild() {
        var p = controller()
        guard case .rebuild(let first) = p.command(.seek, timeMs: now - 60_000, speedMilli: 1000, nowMs: now),
            case .rebuild(let second) = p.command(.seek, timeMs: now - 30_000, speedMilli: 1000, nowMs: now)
        else { return }
        #expect(p.rebuilt(serial: first.serial) == false)
        #expect(p.state == .live)
        #expect(p.rebuilt(serial: second.serial) == true)
        #expect(p.state.cursorMs == now - 30_000)
    }

    @Test func liveWhileRebuildingDropsTheRebuild() {
        var p = controller()
        guard case .rebuild(let seek) = p.command(.seek, timeMs: now - 60_000, speedMilli: 1000, nowMs: now) else { return }
        #expect(p.command(.live, timeMs: 0, speedMilli: 0, nowMs: now) == .none)  // it was not watching yet
        #expect(!p.rebuilt(serial: seek.serial) && p.state == .live)
        #expect(p.rebuildFailed(serial: seek.serial) == .none)
    }

    @Test func failedRebuildRefusesOnlyTheCurrentSeek() {
        var p = controller()
        guard case .rebuild(let first) = p.command(.seek, timeMs: now - 60_000, speedMilli: 1000, nowMs: now),
            case .rebuild(let second) = p.command(.seek, timeMs: now - 30_000, speedMilli: 1000, nowMs: now)
        else { return }
        #expect(p.rebuildFailed(serial: first.serial) == .none)
        #expect(p.rebuildFailed(serial: second.serial) == .refuse(targetMs: now - 30_000))
        #expect(p.pending == nil && p.state == .live)
    }

    @Test func seekIntoTheFutureIsLive() {
        var p = controller()
        #expect(p.command(.seek, timeMs: now + 5, speedMilli: 1000, nowMs: now) == .none)
        #expect(p.state == .live)
    }

    @Test func playWhileLiveStaysLive() {
        var p = controller()
        #expect(p.command(.play, timeMs: 0, speedMilli: 1000, nowMs: now) == .none)
        #expect(p.pending == nil && p.state == .live)
    }

    @Test func pauseAndPlayInThePast() {
        var p = watching(at: now - 60_000)
        #expect(p.command(.play, timeMs: 0, speedMilli: 2000, nowMs: now) == .publish)
        #expect(p.state.mode == .playing && p.state.speedMilli == 2000)
        #expect(p.command(.pause, timeMs: 0, speedMilli: 0, nowMs: now) == .publish)
        #expect(p.state.mode == .paused)
        #expect(p.tick(nowMs: now) == nil)  // paused: the cursor stays
    }

    @Test func speedsAreClamped() {
        var p = watching(at: now - 60_000)
        _ = p.command(.play, timeMs: 0, speedMilli: 1, nowMs: now)
        #expect(p.state.speedMilli == 50)
        _ = p.command(.play, timeMs: 0, speedMilli: 1_000_000, nowMs: now)
        #expect(p.state.speedMilli == 32_000)
    }

    @Test func playingAdvancesAtItsSpeedAndTellsEachSecond() {
        var p = watching(at: now - 60_000)
        _ = p.command(.play, timeMs: 0, speedMilli: 2000, nowMs: now)
        #expect(p.tick(nowMs: now) == .advance(fromMs: now - 60_000, toMs: now - 60_000 + 66))
        #expect(p.stepped(to: now - 60_000 + 66) == false)
        var told = 0
        for _ in 0..<30 {
            guard case .advance(_, let to) = p.tick(nowMs: now) else { break }
            if p.stepped(to: to) { told += 1 }
        }
        #expect(told == 2)  // 31 steps of 66 ms from a whole second cross two second boundaries
    }

    @Test func playingCatchesUpAndGoesLive() {
        var p = watching(at: now - 80)
        _ = p.command(.play, timeMs: 0, speedMilli: 1000, nowMs: now)
        #expect(p.tick(nowMs: now) == .advance(fromMs: now - 80, toMs: now - 47))
        _ = p.stepped(to: now - 47)
        // The next step would end within a tick of now: live instead.
        #expect(p.tick(nowMs: now) == .wentLive)
        #expect(p.state == .live && p.watching == nil)
    }

    @Test func liveFromThePastSendsALiveKeyframe() {
        var p = watching(at: now - 60_000)
        #expect(p.command(.live, timeMs: 0, speedMilli: 0, nowMs: now) == .wentLive)
        #expect(p.command(.live, timeMs: 0, speedMilli: 0, nowMs: now) == .none)
    }

    @Test func seekWhileWatchingRebuildsAgain() {
        var p = watching(at: now - 60_000)
        guard case .rebuild(let s) = p.command(.seek, timeMs: now - 10_000, speedMilli: 1000, nowMs: now) else {
            Issue.record("no rebuild")
            return
        }
        // Still showing the old moment until the new one is back.
        #expect(p.state.cursorMs == now - 60_000)
        #expect(p.rebuilt(serial: s.serial) && p.state.cursorMs == now - 10_000)
    }

    func watching(at t: UInt64) -> PlaybackController {
        var p = controller()
        if case .rebuild(let s) = p.command(.seek, timeMs: t, speedMilli: 1000, nowMs: now) { _ = p.rebuilt(serial: s.serial) }
        return p
    }
}
