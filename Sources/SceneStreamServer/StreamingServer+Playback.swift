import Foundation
import SceneStreamCore
import SceneStreamProtocol
import SceneStreamTransport

/// A client's view of the past: its own runtime rebuilt from the history, streamed through the same delta path.
final class Playback {
    var runtime: SceneRuntime
    var engine: DeltaEngine
    var cursorMs: UInt64
    var speedMilli: UInt32
    var playing: Bool
    var sent: ClientBaseline?

    init(runtime: SceneRuntime, engine: DeltaEngine, cursorMs: UInt64, speedMilli: UInt32, playing: Bool) {
        self.runtime = runtime
        self.engine = engine
        self.cursorMs = cursorMs
        self.speedMilli = speedMilli
        self.playing = playing
    }
}

extension StreamingServer {
    func playback(_ c: Client, op: PlaybackOp, timeMs: UInt64, speedMilli: UInt32) {
        guard c.subscription != nil else {
            enqueue(c, .error(code: .notSubscribed, requestId: 0, message: "playback before subscribe"))
            return
        }
        let now = Self.wallMs()
        let speed = min(max(speedMilli, 50), 32_000)
        switch op {
        case .live:
            goLive(c)
            return
        case .pause:
            guard let p = c.playback else { return }
            p.playing = false
        case .seek, .play:
            let target = timeMs == 0 ? (c.playback?.cursorMs ?? now) : timeMs
            if op == .play && target + 2 * tickMs >= now && timeMs == 0 && c.playback == nil {
                return  // "play" while live is live
            }
            if c.playback == nil || op == .seek || timeMs != 0 {
                guard target < now else {
                    goLive(c)
                    return
                }
                let t0 = DispatchTime.now().uptimeNanoseconds
                guard let r = try? runtime.rebuilt(at: target), let engine = try? DeltaEngine(graph: r.graph, compressionLevel: configuration.compressionLevel) else {
                    let oldest = runtime.twins.history.checkpoints.first?.timeMs ?? now
                    enqueue(c, .error(code: .playbackUnavailable, requestId: 0, message: "no history at \(target) (kept from \(oldest))"))
                    return
                }
                metrics.seekSeconds.record(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                c.playback = Playback(runtime: r, engine: engine, cursorMs: target, speedMilli: speed, playing: op == .play)
                c.unacked.removeAll()
                c.nextDueTick = 0
            }
            c.playback?.speedMilli = speed
            if op == .play { c.playback?.playing = true }
        }
        publishPlayback(c)
        loop.requestWrite(c.id)
    }

    var tickMs: UInt64 { UInt64(1000 / configuration.tickHz) }

    func goLive(_ c: Client) {
        guard c.playback != nil else { return }
        c.playback = nil
        c.subscription?.sent = nil  // a keyframe of the live scene
        c.unacked.removeAll()
        c.nextDueTick = 0
        publishPlayback(c)
        loop.requestWrite(c.id)
    }

    func publishPlayback(_ c: Client) {
        guard let s = c.session else { return }
        if let p = c.playback {
            s.playback = PlaybackState(mode: p.playing ? .playing : .paused, cursorMs: p.cursorMs, speedMilli: p.speedMilli)
        } else {
            s.playback = .live
        }
        enqueue(c, .sessionState(sessionState(for: s, members: members())))
    }

    /// Advances every playing client's cursor by one tick at its speed; back to live when it catches up.
    func advancePlayback(nowMs: UInt64) {
        for c in clients.values {
            guard let p = c.playback, p.playing else { continue }
            let next = p.cursorMs + tickMs * UInt64(p.speedMilli) / 1000
            if next + tickMs >= nowMs {
                goLive(c)
                continue
            }
            _ = p.runtime.ingest(runtime.twins.history.updates(from: p.cursorMs + 1, to: next + 1))
            p.cursorMs = next
            p.runtime.graph.commit(timeMs: next)
            if c.session.map({ $0.playback.cursorMs / 1000 != next / 1000 }) ?? false { publishPlayback(c) }
        }
    }

    /// The next playback frame for a client in playback (nil: nothing new).
    func playbackFrame(_ c: Client) -> DeltaEngine.EncodedFrame? {
        guard let p = c.playback, let s = c.subscription else { return nil }
        guard let f = p.engine.encodedFrame(from: p.sent, filter: s.filter) else { return nil }
        p.sent = ClientBaseline(version: f.version, filter: s.filter)
        return f
    }
}
