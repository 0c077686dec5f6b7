/// Whether a fan-out node still hears the scene's owner. The owner sends something every `keyframeSeconds` even
/// when nothing changes (its active alerts), so a node that is cut off from NATS, or hears nothing for `quietMs`
/// (the owner gone with no standby), serves a scene that may be old: stale. It says so once when it becomes
/// stale and once when it hears the owner again. Pure: `now` comes in.
public struct OwnerWatch: Sendable, Equatable {
    /// What changed.
    public enum Change: Sendable, Equatable {
        /// Stale since `sinceMs` (the last time the owner was heard).
        case stale(sinceMs: UInt64)
        case fresh
    }

    public let quietMs: UInt64
    public private(set) var lastHeardMs: UInt64
    /// Since when the scene is stale (the owner last heard), or nil.
    public private(set) var staleSinceMs: UInt64?

    /// A watch that starts at `nowMs` as if the owner had just been heard.
    public init(quietMs: UInt64, nowMs: UInt64) {
        self.quietMs = quietMs
        lastHeardMs = nowMs
    }

    /// The owner was heard (a frame or its alerts) at `nowMs`.
    public mutating func heard(nowMs: UInt64) -> Change? {
        lastHeardMs = max(lastHeardMs, nowMs)
        guard staleSinceMs != nil else { return nil }
        staleSinceMs = nil
        return .fresh
    }

    /// Checks at `nowMs` with the NATS connection `connected`.
    public mutating func check(connected: Bool, nowMs: UInt64) -> Change? {
        guard staleSinceMs == nil, !connected || nowMs >= lastHeardMs + quietMs else { return nil }
        staleSinceMs = lastHeardMs
        return .stale(sinceMs: lastHeardMs)
    }
}
