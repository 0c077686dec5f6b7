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
            if c.pendingSeek != nil { c.pendingSeek?.playing = false }
            guard let p = c.playback else { return }
            p.playing = false
        case .seek, .play:
            let target = timeMs == 0 ? (c.playback?.cursorMs ?? now) : timeMs
            if op == .play && timeMs == 0 && c.pendingSeek != nil {
                // Play pressed while the sought moment is still being rebuilt: it starts playing when it arrives.
                c.pendingSeek?.playing = true
                c.pendingSeek?.speed = speed
                return
            }
            if op == .play && target + 2 * tickMs >= now && timeMs == 0 && c.playback == nil {
                return  // "play" while live is live
            }
            if c.playback == nil || op == .seek || timeMs != 0 {
                guard target < now else {
                    goLive(c)
                    return
                }
                c.seekSerial &+= 1
                c.pendingSeek = (playing: op == .play, speed: speed)
                let job = SeekJob(
                    client: c.id, serial: c.seekSerial, target: target, speed: speed, playing: op == .play,
                    startedNs: DispatchTime.now().uptimeNanoseconds, recipe: runtime.recipe, compressionLevel: configuration.compressionLevel)
                // Memory can rebuild the moment when it holds a checkpoint before it and every update after it.
                if runtime.twins.history.canRebuild(at: target) || storage == nil, let state = runtime.pastState(at: target) {
                    rebuildLater(job, state: state, fromDisk: false)
                } else if let storage {
                    // Older than memory holds: read the state at that moment on the storage thread.
                    let server = UncheckedBox(self)
                    let loop = self.loop!
                    storage.stateLater(at: target) { result in
                        loop.post {
                            switch result {
                            case .success(let state?): server.value.rebuildLater(job, state: state, fromDisk: true)
                            case .success(nil): server.value.seekFailed(job, nil)
                            case .failure(let error): server.value.seekFailed(job, "\(error)")
                            }
                        }
                    }
                } else {
                    refuseSeek(c, target)
                }
                return  // the keyframe of the past follows when the rebuild is back
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

    /// What a seek needs off the service thread: plain values only.
    struct SeekJob: Sendable {
        let client: ConnectionID
        let serial: UInt64
        let target: UInt64
        let speed: UInt32
        let playing: Bool
        let startedNs: UInt64
        let recipe: SceneRuntime.Recipe
        let compressionLevel: Int32
    }

    /// Builds the past scene on the rebuild queue (from `job` and `state` only) and hands the new runtime to the
    /// service thread, which owns it from then on. Service thread.
    func rebuildLater(_ job: SeekJob, state: [PropertyUpdate], fromDisk: Bool) {
        let loop = self.loop!
        let server = UncheckedBox(self)
        rebuildQueue.async {
            do {
                let r = try SceneRuntime.rebuilt(recipe: job.recipe, state: state, at: job.target)
                let engine = try DeltaEngine(graph: r.graph, compressionLevel: job.compressionLevel)
                let built = UncheckedBox((r, engine))
                loop.post { server.value.finishSeek(job, built.value.0, built.value.1, fromDisk: fromDisk) }
            } catch {
                loop.post { server.value.seekFailed(job, "\(error)") }
            }
        }
    }

    /// The rebuilt past is back (service thread): the client plays it, unless it has moved on since.
    func finishSeek(_ job: SeekJob, _ r: SceneRuntime, _ engine: DeltaEngine, fromDisk: Bool) {
        guard let c = clients[job.client], c.seekSerial == job.serial, c.subscription != nil else { return }
        let wanted = c.pendingSeek ?? (playing: job.playing, speed: job.speed)
        c.pendingSeek = nil
        metrics.seekSeconds.record(Double(DispatchTime.now().uptimeNanoseconds - job.startedNs) / 1e9)
        metrics.seek(source: fromDisk ? "disk" : "memory")
        c.playback = Playback(runtime: r, engine: engine, cursorMs: job.target, speedMilli: wanted.speed, playing: wanted.playing)
        c.unacked.removeAll()
        c.nextDueTick = 0
        publishPlayback(c)
        loop.requestWrite(c.id)
    }

    func seekFailed(_ job: SeekJob, _ error: String?) {
        guard let c = clients[job.client], c.seekSerial == job.serial else { return }
        c.pendingSeek = nil
        if let error {
            metrics.storageErrors.increment()
            logger.error("seek failed: \(error)")
        }
        refuseSeek(c, job.target)
    }

    func goLive(_ c: Client) {
        c.seekSerial &+= 1  // a seek still being rebuilt is dropped
        c.pendingSeek = nil
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
            // Each step comes from memory when memory holds that stretch, else from disk (a cursor can fall behind
            // memory while paused or slow, and one that started on disk reaches memory).
            if runtime.twins.history.holdsEverything(after: p.cursorMs) || storage == nil {
                _ = p.runtime.ingest(runtime.twins.history.updates(from: p.cursorMs + 1, to: next + 1))
            } else if let storage {
                do {
                    _ = p.runtime.ingest(try storage.updates(from: p.cursorMs + 1, to: next + 1))
                } catch {
                    metrics.storageErrors.increment()
                    logger.error("playback step from disk failed: \(error)")
                }
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
