/// A clock that moves only when told: the time the pure parts are given in tests, in both of the server's units
/// (monotonic nanoseconds for rates and deadlines, wall milliseconds for expiries and history).
public struct ManualClock: Sendable, Equatable {
    /// Monotonic time, nanoseconds.
    public private(set) var nowNs: UInt64
    /// Wall time, milliseconds since the epoch.
    public private(set) var nowMs: UInt64

    /// A clock at `nowMs` (wall) and `nowNs` (monotonic).
    public init(nowMs: UInt64 = 1_800_000_000_000, nowNs: UInt64 = 1_000_000_000) {
        self.nowMs = nowMs
        self.nowNs = nowNs
    }

    /// Moves both readings on by `ms` milliseconds.
    public mutating func advance(ms: UInt64) {
        nowMs += ms
        nowNs += ms * 1_000_000
    }

    /// Moves both readings on by `seconds`.
    public mutating func advance(seconds: Double) { advance(ms: UInt64(seconds * 1000)) }
}
