/// A fan-out node's view of the commit stream: which frames of the owner's stream to apply to its copy of the
/// scene, which to skip (already had, or before the first keyframe), and when it lost the thread (a gap in
/// versions) and must start again from a keyframe. Pure: the caller applies frames and re-subscribes.
public struct FollowState: Sendable, Equatable {
    /// What to do with one frame of the stream.
    public enum Decision: Sendable, Equatable {
        case apply
        /// Already applied, or not usable before a keyframe.
        case skip
        /// A gap: versions were missed. Re-read from the last keyframe.
        case resync(missedFrom: UInt64, to: UInt64)
    }

    /// Whether the copy follows the stream (it had a keyframe and no gap since).
    public private(set) var synced = false
    /// The newest version seen in the stream (for the lag).
    public private(set) var newestSeen: UInt64 = 0
    /// Gaps found since the start.
    public private(set) var gaps = 0

    public init() {}

    /// The decision for a frame at `version` (a keyframe, or a delta from `base`) when the copy is at `current`.
    public mutating func decide(keyframe: Bool, base: UInt64, version: UInt64, current: UInt64) -> Decision {
        newestSeen = max(newestSeen, version)
        if keyframe {
            // A keyframe newer than the copy is always usable; one the copy already has is not needed.
            guard version > current else { return .skip }
            synced = true
            return .apply
        }
        guard synced, version > current else { return .skip }
        if base == current { return .apply }
        synced = false
        gaps += 1
        return .resync(missedFrom: current + 1, to: base)
    }

    /// Applying a frame failed (it did not fit the copy): start again from a keyframe.
    public mutating func failed() {
        synced = false
        gaps += 1
    }

    /// Versions the copy is behind the newest one seen.
    public func lag(current: UInt64) -> UInt64 { newestSeen > current ? newestSeen - current : 0 }
}
