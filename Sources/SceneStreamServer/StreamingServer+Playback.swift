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
    /// Play steps from disk: updates read ahead on the storage queue, up to (excluding) `bufferedToMs`.
    var diskBuffer: [PropertyUpdate] = []
    var bufferedToMs: UInt64?
    var reading = false
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
        let memory = runtime.twins.history.checkpoints.first?.timeMs ?? Self.wallMs()
        guard let storage else { return sayNoHistory(c.id, target, oldest: memory) }
        // Where disk history starts is read on the storage queue, not here.
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let id = c.id
        storage.oldestCheckpointLater { oldest in loop.post { me.value.sayNoHistory(id, target, oldest: oldest ?? memory) } }
    }

    func sayNoHistory(_ id: ConnectionID, _ target: UInt64, oldest: UInt64) {
        guard let c = clients[id] else { return }
        enqueue(c, .error(code: .playbackUnavailable, requestId: 0, message: "no history at \(target) (kept from \(oldest))"))
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
            BackgroundPriority.lower()
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
                p.diskBuffer = []
                p.bufferedToMs = nil
                _ = p.runtime.ingest(runtime.twins.history.updates(from: p.cursorMs + 1, to: next + 1))
            } else {
                // From disk: steps take what was read ahead on the storage queue; the cursor waits (the client
                // sees a pause, everyone else nothing) until the stretch it needs has arrived.
                readAhead(c, p, through: next + 1)
                guard let end = p.bufferedToMs, end >= next + 1 else { continue }
                let cut = p.diskBuffer.firstIndex { $0.timestampMs > next } ?? p.diskBuffer.count
                _ = p.runtime.ingest(p.diskBuffer.filter { $0.timestampMs > p.cursorMs && $0.timestampMs <= next })
                p.diskBuffer.removeFirst(cut)
            }
            p.cursorMs = next
            p.runtime.graph.commit(timeMs: next)
            if c.session.map({ $0.playback.cursorMs / 1000 != next / 1000 }) ?? false { publishPlayback(c) }
        }
    }

    /// Asks the storage queue for about two seconds of play (at the client's speed) past what is buffered, when less
    /// than a second's worth is left. Service thread.
    func readAhead(_ c: Client, _ p: Playback, through needed: UInt64) {
        guard let storage, !p.reading else { return }
        let perSecond = UInt64(max(1, p.speedMilli))  // ms of history per second of play
        let from = p.bufferedToMs ?? (p.cursorMs + 1)
        guard from < needed + perSecond else { return }
        let to = max(needed, from) + 2 * perSecond
        p.reading = true
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let (id, serial) = (c.id, c.seekSerial)
        storage.updatesLater(from: from, to: to) { result in
            let ups = UncheckedBox(result)
            loop.post {
                let s = me.value
                guard let c = s.clients[id], c.seekSerial == serial, let p = c.playback else { return }
                p.reading = false
                switch ups.value {
                case .success(let list):
                    p.diskBuffer.append(contentsOf: list)
                    p.bufferedToMs = to
                case .failure(let error):
                    s.metrics.storageErrors.increment()
                    s.logger.error("playback read from disk failed: \(error)")
                }
            }
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
