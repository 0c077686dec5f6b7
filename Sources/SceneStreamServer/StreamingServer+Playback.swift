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
    /// Played from the history on disk (older than what memory holds).
    let fromDisk: Bool

    init(runtime: SceneRuntime, engine: DeltaEngine, cursorMs: UInt64, speedMilli: UInt32, playing: Bool, fromDisk: Bool = false) {
        self.fromDisk = fromDisk
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
                // Memory can rebuild the moment when it holds a checkpoint before it and every update after that
                // checkpoint (the history drops its oldest entries first).
                if runtime.twins.history.canRebuild(at: target) || storage == nil, let r = try? runtime.rebuilt(at: target) {
                    startPlayback(c, r, target: target, speed: speed, playing: op == .play, fromDisk: false, startedNs: t0)
                } else if let storage {
                    // Older than memory holds: read the state at that moment from disk on the storage queue, then
                    // come back to the service thread (other clients keep streaming meanwhile).
                    let server = UncheckedBox(self)
                    let id = c.id
                    let playing = op == .play
                    storage.stateLater(at: target) { result in
                        server.value.loop.post {
                            server.value.finishDiskSeek(id, result, target: target, speed: speed, playing: playing, startedNs: t0)
                        }
                    }
                    return
                } else {
                    refuseSeek(c, target)
                    return
                }
            }
            c.playback?.speedMilli = speed
            if op == .play { c.playback?.playing = true }
        }
        publishPlayback(c)
        loop.requestWrite(c.id)
    }

    var tickMs: UInt64 { UInt64(1000 / configuration.tickHz) }

    func refuseSeek(_ c: Client, _ target: UInt64) {
        let now = Self.wallMs()
        let oldest = (try? storage?.oldestCheckpointMs()) ?? runtime.twins.history.checkpoints.first?.timeMs ?? now
        enqueue(c, .error(code: .playbackUnavailable, requestId: 0, message: "no history at \(target) (kept from \(oldest))"))
        loop.requestWrite(c.id)
    }

    func startPlayback(_ c: Client, _ r: SceneRuntime, target: UInt64, speed: UInt32, playing: Bool, fromDisk: Bool, startedNs: UInt64) {
        guard let engine = try? DeltaEngine(graph: r.graph, compressionLevel: configuration.compressionLevel) else { return refuseSeek(c, target) }
        metrics.seekSeconds.record(Double(DispatchTime.now().uptimeNanoseconds - startedNs) / 1e9)
        metrics.seek(source: fromDisk ? "disk" : "memory")
        c.playback = Playback(runtime: r, engine: engine, cursorMs: target, speedMilli: speed, playing: playing, fromDisk: fromDisk)
        c.unacked.removeAll()
        c.nextDueTick = 0
    }

    /// The disk read of a seek is back (service thread).
    func finishDiskSeek(_ id: ConnectionID, _ result: Result<[PropertyUpdate]?, any Error>, target: UInt64, speed: UInt32, playing: Bool, startedNs: UInt64) {
        guard let c = clients[id], c.subscription != nil else { return }
        switch result {
        case .success(let state?):
            guard let r = try? runtime.rebuilt(state: state, at: target) else { return refuseSeek(c, target) }
            startPlayback(c, r, target: target, speed: speed, playing: playing, fromDisk: true, startedNs: startedNs)
            publishPlayback(c)
            loop.requestWrite(c.id)
        case .success(nil):
            refuseSeek(c, target)
        case .failure(let error):
            metrics.storageErrors.increment()
            logger.error("seek on disk failed: \(error)")
            refuseSeek(c, target)
        }
    }

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
            if p.fromDisk, let storage {
                // Until the cursor reaches what memory holds, the steps come from disk.
                if runtime.twins.history.holdsEverything(after: p.cursorMs) {
                    _ = p.runtime.ingest(runtime.twins.history.updates(from: p.cursorMs + 1, to: next + 1))
                } else {
                    _ = p.runtime.ingest((try? storage.updates(from: p.cursorMs + 1, to: next + 1)) ?? [])
                }
            } else {
                _ = p.runtime.ingest(runtime.twins.history.updates(from: p.cursorMs + 1, to: next + 1))
            }
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
