import SceneStreamProtocol

/// A fan-out node's view of the owner's frames: which to apply to its copy of the scene and in what order, which
/// to hold (deltas ahead of the copy, kept until the versions before them arrive from a catch-up), which to drop
/// (already had), and when the copy lost the thread (a gap in versions) and must catch up from the last keyframe.
/// Frames come from two places that interleave — live, and read back from the stream on a catch-up — so order of
/// arrival is not order of versions. Pure: the caller applies frames and starts catch-ups.
public struct FollowState: Sendable {
    /// The next thing to do.
    public enum Step: Sendable, Equatable {
        case apply(SceneFrame)
        /// A gap: versions `from…to` were missed. Read the last keyframe and the commits after it.
        case catchUp(from: UInt64, to: UInt64)
    }

    /// Whether the copy follows the owner (it had a keyframe and no gap since).
    public private(set) var synced = false
    /// Whether a catch-up was asked for and no keyframe has come since.
    public private(set) var catchingUp = false
    /// The newest version seen (for the lag).
    public private(set) var newestSeen: UInt64 = 0
    /// Gaps found since the start.
    public private(set) var gaps = 0
    private var queue: [SceneFrame] = []
    private var head = 0
    private var held: [SceneFrame] = []
    /// The most deltas held while catching up (about ten seconds at 30 commits a second).
    public let maxHeld: Int

    public init(maxHeld: Int = 300) { self.maxHeld = maxHeld }

    /// A frame arrived (live or from a catch-up).
    public mutating func offer(_ f: SceneFrame) {
        newestSeen = max(newestSeen, f.version)
        queue.append(f)
    }

    /// A catch-up is under way (the caller started one, e.g. at start).
    public mutating func catchUpStarted() { catchingUp = true }

    /// The next step for a copy at version `current`, or nil when there is nothing to do until more frames come.
    public mutating func step(current: UInt64) -> Step? {
        while head < queue.count {
            let f = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
            if f.isKeyframe {
                // A keyframe newer than the copy is always usable; one of the copy's own version says the copy is
                // whole again (versions are global); an older one is not needed.
                if f.version == current && !synced {
                    synced = true
                    catchingUp = false
                }
                guard f.version > current else { continue }
                synced = true
                catchingUp = false
                return .apply(f)
            }
            guard case .delta(let base) = f.kind, f.version > current else { continue }
            if synced && base == current { return .apply(f) }
            hold(f)
            if synced {
                synced = false
                gaps += 1
                if !catchingUp {
                    catchingUp = true
                    return .catchUp(from: current + 1, to: base)
                }
            }
        }
        // Held deltas whose turn has come (after a keyframe or the catch-up's own deltas).
        held.removeAll { $0.version <= current }
        if synced, let k = held.firstIndex(where: { if case .delta(let b) = $0.kind { b == current } else { false } }) {
            return .apply(held.remove(at: k))
        }
        return nil
    }

    /// Applying the frame failed (it did not fit the copy): catch up from a keyframe. Returns whether to start one.
    public mutating func failed() -> Bool {
        synced = false
        gaps += 1
        guard !catchingUp else { return false }
        catchingUp = true
        return true
    }

    /// A catch-up could not finish (NATS away): the next gap may ask again.
    public mutating func catchUpFailed() { catchingUp = false }

    /// Versions the copy is behind the newest one seen.
    public func lag(current: UInt64) -> UInt64 { newestSeen > current ? newestSeen - current : 0 }

    private mutating func hold(_ f: SceneFrame) {
        held.append(f)
        if held.count > maxHeld { held.removeFirst(held.count - maxHeld) }
    }
}
