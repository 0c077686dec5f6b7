import Foundation
import SceneStreamCore
import SceneStreamStorage
import SceneStreamProtocol
import SceneStreamSessions
import SceneStreamTransport

/// A client's view of the past: its own runtime rebuilt from the history, streamed through the same delta path.
/// Where its cursor is and whether it plays is the client's ``PlaybackController``; this holds the scene.
final class Playback {
    var runtime: SceneRuntime
    var engine: DeltaEngine
    var sent: ClientBaseline?
    /// Play steps from disk: updates read ahead on the storage queue, up to (excluding) `bufferedToMs`.
    var diskBuffer: [PropertyUpdate] = []
    var bufferedToMs: UInt64?
    var reading = false
    init(runtime: SceneRuntime, engine: DeltaEngine) {
        self.runtime = runtime
        self.engine = engine
    }
}

extension StreamingServer {
    /// A playback command: the controller decides, this carries it out.
    func playback(_ c: Client, op: PlaybackOp, timeMs: UInt64, speedMilli: UInt32) {
        guard c.subscription != nil else {
            enqueue(c, .error(code: .notSubscribed, requestId: 0, message: "playback before subscribe"))
            return
        }
        let now = Self.wallMs()
        perform(c.playbackControl.command(op, timeMs: timeMs, speedMilli: speedMilli, nowMs: now), for: c)
        // Shared playback: whoever follows this user watches the same moment (through their own interest and
        // zones). Only the device that streams the leader's session leads.
        guard let s = c.session, s.primary == c.id else { return }
        let cursor = c.playbackControl.pending?.targetMs ?? c.playbackControl.watching?.cursorMs
        for f in followers(of: s.identity.userId) where f.id != c.id {
            let watching = f.playbackControl.watching != nil || f.playbackControl.pending != nil
            switch op {
            case .live:
                perform(f.playbackControl.command(.live, timeMs: 0, speedMilli: speedMilli, nowMs: now), for: f)
            case .pause:
                // Paused at the leader's moment, not at the follower's (cursors drift a tick or two apart).
                if let cursor, f.playbackControl.watching?.cursorMs != cursor {
                    perform(f.playbackControl.command(.seek, timeMs: cursor, speedMilli: speedMilli, nowMs: now), for: f)
                }
                perform(f.playbackControl.command(.pause, timeMs: 0, speedMilli: speedMilli, nowMs: now), for: f)
            case .play where timeMs == 0 && watching:
                // Resume or change speed where the follower is: no rebuild, no keyframe.
                perform(f.playbackControl.command(.play, timeMs: 0, speedMilli: speedMilli, nowMs: now), for: f)
            case .seek, .play:
                let t = timeMs != 0 ? timeMs : (cursor ?? 0)
                guard t != 0 else { continue }
                perform(f.playbackControl.command(op, timeMs: t, speedMilli: speedMilli, nowMs: now), for: f)
            }
        }
    }

    /// The subscribed devices here whose sessions follow `userId`.
    func followers(of userId: String) -> [Client] {
        clients.values.filter { f in
            guard let s = f.session, s.followUserId == userId, s.identity.userId != userId, f.subscription != nil else { return false }
            return s.primary == f.id
        }
    }

    /// A user starts following `leader`: their playback joins the leader's (the past the leader watches, or live).
    func joinPlayback(_ c: Client, leader: String) {
        guard c.subscription != nil,
            let l = clients.values.first(where: { $0.session?.identity.userId == leader && $0.session?.primary == $0.id && $0.subscription != nil })
        else { return }
        let now = Self.wallMs()
        if let w = l.playbackControl.watching {
            perform(c.playbackControl.command(w.playing ? .play : .seek, timeMs: w.cursorMs, speedMilli: w.speedMilli, nowMs: now), for: c)
        } else if let p = l.playbackControl.pending {
            perform(c.playbackControl.command(p.playing ? .play : .seek, timeMs: p.targetMs, speedMilli: p.speedMilli, nowMs: now), for: c)
        } else {
            perform(c.playbackControl.goLive(), for: c)
        }
    }

    /// Carries out what the playback controller said.
    func perform(_ action: PlaybackController.Action, for c: Client) {
        switch action {
        case .none:
            return
        case .publish:
            publishPlayback(c)
            loop.requestWrite(c.id)
        case .wentLive:
            wentLive(c)
        case .refuse(let target):
            refuseSeek(c, target)
        case .rebuild(let seek):
            let target = seek.targetMs
            let job = SeekJob(
                client: c.id, serial: seek.serial, target: target,
                startedNs: DispatchTime.now().uptimeNanoseconds, recipe: runtime.recipe, compressionLevel: configuration.compressionLevel)
            // Memory can rebuild the moment when it holds a checkpoint before it and every update after it.
            if memoryHoldsHistory, runtime.twins.history.canRebuild(at: target) || storage == nil, let state = runtime.pastState(at: target) {
                rebuildLater(job, state: state, source: "memory")
            } else if let past = pastSource {
                // Older than memory holds (or a fan-out node, which holds none): read the state at that moment on the
                // storage thread, or ask the owner.
                let server = LoopBound(self, loop: loop)
                let loop = self.loop!
                let source = isFollower ? "owner" : "disk"
                past.stateLater(at: target) { result in
                    let r = UncheckedSendable(result)
                    loop.post {
                        switch r.value {
                        case .success(let state?): server.value.rebuildLater(job, state: state, source: source)
                        case .success(nil): server.value.seekFailed(job, nil)
                        case .failure(let error): server.value.seekFailed(job, "\(error)")
                        }
                    }
                }
            } else {
                perform(c.playbackControl.rebuildFailed(serial: seek.serial), for: c)
            }
        }
    }

    var tickMs: UInt64 { UInt64(1000 / configuration.tickHz) }

    func refuseSeek(_ c: Client, _ target: UInt64) {
        let memory = runtime.twins.history.checkpoints.first?.timeMs ?? Self.wallMs()
        guard let past = pastSource else { return sayNoHistory(c.id, target, oldest: memory) }
        // Where disk history starts is read on the storage queue (or asked of the owner), not here.
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let id = c.id
        past.oldestCheckpointLater { oldest in loop.post { me.value.sayNoHistory(id, target, oldest: oldest ?? memory) } }
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
        let startedNs: UInt64
        let recipe: SceneRuntime.Recipe
        let compressionLevel: Int32
    }

    /// Builds the past scene on the rebuild queue (from `job` and `state` only) and hands the new runtime to the
    /// service thread, which owns it from then on. Service thread.
    func rebuildLater(_ job: SeekJob, state: [PropertyUpdate], source: String) {
        let loop = self.loop!
        let server = LoopBound(self, loop: loop)
        let state = UncheckedSendable(state)
        rebuildQueue.async {
            BackgroundPriority.lower()
            do {
                let r = try SceneRuntime.rebuilt(recipe: job.recipe, state: state.value, at: job.target)
                let engine = try DeltaEngine(graph: r.graph, compressionLevel: job.compressionLevel)
                // Built here, owned by the service thread from the moment it is posted (nothing here keeps it).
                let built = UncheckedSendable((r, engine))
                loop.post { server.value.finishSeek(job, built.value.0, built.value.1, source: source) }
            } catch {
                loop.post { server.value.seekFailed(job, "\(error)") }
            }
        }
    }

    /// The rebuilt past is back (service thread): the client plays it, unless it has moved on since.
    func finishSeek(_ job: SeekJob, _ r: SceneRuntime, _ engine: DeltaEngine, source: String) {
        guard let c = clients[job.client], c.subscription != nil, c.playbackControl.rebuilt(serial: job.serial) else { return }
        metrics.seekDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - job.startedNs))
        metrics.seek(source: source)
        c.playback = Playback(runtime: r, engine: engine)
        c.unacked.removeAll()
        c.nextDueTick = 0
        publishPlayback(c)
        loop.requestWrite(c.id)
    }

    func seekFailed(_ job: SeekJob, _ error: String?) {
        guard let c = clients[job.client] else { return }
        let action = c.playbackControl.rebuildFailed(serial: job.serial)
        if let error, action != .none {
            metrics.storageErrors.increment()
            logger.error("seek failed", metadata: ["conn": "\(job.client)", "error": "\(error)"])
        }
        perform(action, for: c)
    }

    /// The controller went live: drop the past scene, send a keyframe of the live one, tell the client.
    func wentLive(_ c: Client) {
        c.playback = nil
        c.subscription?.sent = nil  // a keyframe of the live scene
        c.unacked.removeAll()
        c.nextDueTick = 0
        publishPlayback(c)
        loop.requestWrite(c.id)
    }

    func publishPlayback(_ c: Client) {
        guard let s = c.session else { return }
        s.playback = c.playbackControl.state
        enqueue(c, .sessionState(sessionState(for: s, members: members())))
    }

    /// Advances every playing client's cursor by one tick at its speed; back to live when it catches up.
    func advancePlayback(nowMs: UInt64) {
        for c in clients.values {
            guard let p = c.playback, let step = c.playbackControl.tick(nowMs: nowMs) else { continue }
            guard case .advance(let from, let next) = step else {
                wentLive(c)
                continue
            }
            // Each step comes from memory when memory holds that stretch, else from disk (a cursor can fall behind
            // memory while paused or slow, and one that started on disk reaches memory).
            if memoryHoldsHistory, runtime.twins.history.holdsEverything(after: from) || storage == nil {
                p.diskBuffer = []
                p.bufferedToMs = nil
                _ = p.runtime.ingest(runtime.twins.history.updates(from: from + 1, to: next + 1))
            } else {
                // From disk: steps take what was read ahead on the storage queue; the cursor waits (the client
                // sees a pause, everyone else nothing) until the stretch it needs has arrived.
                readAhead(c, p, cursorMs: from, through: next + 1)
                guard let end = p.bufferedToMs, end >= next + 1 else { continue }
                let cut = p.diskBuffer.firstIndex { $0.timestampMs > next } ?? p.diskBuffer.count
                _ = p.runtime.ingest(p.diskBuffer.filter { $0.timestampMs > from && $0.timestampMs <= next })
                p.diskBuffer.removeFirst(cut)
            }
            p.runtime.graph.commit(timeMs: next)
            if c.playbackControl.stepped(to: next) { publishPlayback(c) }
        }
    }

    /// Asks the storage queue for about two seconds of play (at the client's speed) past what is buffered, when less
    /// than a second's worth is left. Service thread.
    func readAhead(_ c: Client, _ p: Playback, cursorMs: UInt64, through needed: UInt64) {
        guard let past = pastSource, !p.reading else { return }
        let perSecond = UInt64(max(1, c.playbackControl.watching?.speedMilli ?? 1000))  // ms of history per second of play
        let from = p.bufferedToMs ?? (cursorMs + 1)
        guard from < needed + perSecond else { return }
        let to = max(needed, from) + 2 * perSecond
        p.reading = true
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let (id, serial) = (c.id, c.playbackControl.serial)
        past.stretchLater(from: from, to: to) { result in
            let ups = UncheckedSendable(result)
            loop.post {
                let s = me.value
                guard let c = s.clients[id], c.playbackControl.serial == serial, let p = c.playback else { return }
                p.reading = false
                switch ups.value {
                case .success(let (list, through)):
                    p.diskBuffer.append(contentsOf: list)
                    p.bufferedToMs = through
                case .failure(let error):
                    s.metrics.storageErrors.increment()
                    s.logger.error("playback read from disk failed", metadata: ["conn": "\(id)", "error": "\(error)"])
                }
            }
        }
    }

    /// The next playback frame for a client in playback (nil: nothing new).
    func playbackFrame(_ c: Client) -> DeltaEngine.EncodedFrame? {
        guard let p = c.playback, let s = c.subscription else { return nil }
        guard let f = p.engine.encodedFrame(from: p.sent, filter: s.filter, version: ProtocolVersion.frameEncoding(c.machine.version)) else { return nil }
        p.sent = ClientBaseline(version: f.version, filter: s.filter)
        return f
    }
}
