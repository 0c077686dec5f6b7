import SceneStreamProtocol

/// One client's playback: live, a seek being rebuilt, or watching the past (paused or playing at a speed).
///
/// Pure: every method takes the time and returns what the adapter must do — start a rebuild, tell the client its
/// state, go back to the live scene — so seeks, plays, pauses and rebuilds finishing in any order are tested
/// without a server. Every seek and every return to live gets a new serial; a rebuild that comes back for an
/// older serial is dropped.
public struct PlaybackController: Sendable, Equatable {
    /// Watching the past.
    public struct Watching: Sendable, Equatable {
        public var cursorMs: UInt64
        public var speedMilli: UInt32
        public var playing: Bool
    }

    /// A seek being rebuilt, and what the client asked for meanwhile.
    public struct Seek: Sendable, Equatable {
        public let serial: UInt64
        public let targetMs: UInt64
        public var playing: Bool
        public var speedMilli: UInt32
    }

    /// What the adapter does after a command or event.
    public enum Action: Sendable, Equatable {
        /// Nothing visible changed.
        case none
        /// Tell the client its playback state (``state``).
        case publish
        /// Rebuild the scene at `seek.targetMs` off the service thread, then call ``rebuilt(serial:)`` or
        /// ``rebuildFailed(serial:)``.
        case rebuild(Seek)
        /// Back to the live scene: drop the past runtime, send a live keyframe, publish.
        case wentLive
        /// A seek to a time with no history: tell the client (nothing changed).
        case refuse(targetMs: UInt64)
    }

    /// What one tick of play does.
    public enum Step: Sendable, Equatable {
        /// Apply history in `(fromMs, toMs]`, then call ``stepped(to:)``.
        case advance(fromMs: UInt64, toMs: UInt64)
        /// The cursor caught up with now: back to live (``wentLive`` was applied).
        case wentLive
    }

    /// The slowest and fastest speeds, in thousandths.
    public static let speeds: ClosedRange<UInt32> = 50...32_000

    /// Watching the past (nil: live, or a seek not back yet).
    public private(set) var watching: Watching?
    /// The seek being rebuilt, if any.
    public private(set) var pending: Seek?
    /// Bumped by each seek and each return to live.
    public private(set) var serial: UInt64 = 0
    /// One tick in milliseconds.
    public let tickMs: UInt64

    /// A live controller for ticks of `tickMs`.
    public init(tickMs: UInt64) { self.tickMs = max(1, tickMs) }

    /// The state the client is told.
    public var state: PlaybackState {
        guard let w = watching else { return .live }
        return PlaybackState(mode: w.playing ? .playing : .paused, cursorMs: w.cursorMs, speedMilli: w.speedMilli)
    }

    /// A playback command from the client at `nowMs`. `timeMs` 0 means "where the cursor is" (for play and seek).
    public mutating func command(_ op: PlaybackOp, timeMs: UInt64, speedMilli: UInt32, nowMs: UInt64) -> Action {
        let speed = min(max(speedMilli, Self.speeds.lowerBound), Self.speeds.upperBound)
        switch op {
        case .live:
            return goLive()
        case .pause:
            pending?.playing = false
            guard watching != nil else { return .none }
            watching?.playing = false
            return .publish
        case .seek, .play:
            if op == .play, timeMs == 0, pending != nil {
                // Play pressed while the sought moment is still being rebuilt: it plays when it arrives.
                pending?.playing = true
                pending?.speedMilli = speed
                return .none
            }
            let target = timeMs == 0 ? (watching?.cursorMs ?? nowMs) : timeMs
            if op == .play, timeMs == 0, watching == nil { return .none }  // "play" while live is live
            if watching == nil || op == .seek || timeMs != 0 {
                guard target < nowMs else { return goLive() }
                serial &+= 1
                let seek = Seek(serial: serial, targetMs: target, playing: op == .play, speedMilli: speed)
                pending = seek
                return .rebuild(seek)
            }
            watching?.speedMilli = speed
            watching?.playing = true
            return .publish
        }
    }

    /// The rebuild for `serial` is back: returns whether to use it (the client watches the past from its target;
    /// publish), or false when the client has moved on since (drop it).
    public mutating func rebuilt(serial s: UInt64) -> Bool {
        guard let p = pending, p.serial == s, s == serial else { return false }
        pending = nil
        watching = Watching(cursorMs: p.targetMs, speedMilli: p.speedMilli, playing: p.playing)
        return true
    }

    /// The rebuild for `serial` failed or found no history: `.refuse` when it is the current one.
    public mutating func rebuildFailed(serial s: UInt64) -> Action {
        guard let p = pending, p.serial == s, s == serial else { return .none }
        pending = nil
        return .refuse(targetMs: p.targetMs)
    }

    /// Back to live (any rebuild still running is dropped).
    public mutating func goLive() -> Action {
        serial &+= 1
        pending = nil
        guard watching != nil else { return .none }
        watching = nil
        return .wentLive
    }

    /// One tick at `nowMs`: how far a playing cursor moves (at its speed), or back to live once it catches up.
    public mutating func tick(nowMs: UInt64) -> Step? {
        guard let w = watching, w.playing else { return nil }
        let next = w.cursorMs + tickMs * UInt64(w.speedMilli) / 1000
        if next + tickMs >= nowMs {
            _ = goLive()
            return .wentLive
        }
        return .advance(fromMs: w.cursorMs, toMs: next)
    }

    /// The step to `toMs` was applied: returns whether the cursor entered a new second (tell the client).
    public mutating func stepped(to toMs: UInt64) -> Bool {
        guard let w = watching else { return false }
        watching?.cursorMs = toMs
        return w.cursorMs / 1000 != toMs / 1000
    }
}
