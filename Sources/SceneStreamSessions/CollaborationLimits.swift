import SceneStreamCore

/// Limits on annotations: a rate per user, a cap per user and one per scene. Pure: callers pass the time and the
/// counts (the store knows them), so the cost of a check does not grow with the number of notes.
public struct AnnotationLimits: Sendable {
    /// Why an annotation was refused.
    public enum Refusal: Sendable, Equatable, CustomStringConvertible {
        case rate(perSecond: Int)
        case userCap(Int)
        case sceneCap(Int)

        public var description: String {
            switch self {
            case .rate(let n): "more than \(n) annotations/s; this one was not added"
            case .userCap(let n): "you have \(n) annotations, the most one user may have; remove some first"
            case .sceneCap(let n): "this scene has \(n) annotations, the most it may have"
            }
        }
    }

    public let perSecond: Int
    public let maxPerUser: Int
    public let maxPerScene: Int
    private var buckets: [String: TokenBucket] = [:]

    /// Limits of `perSecond` (bursts of four seconds' worth), `maxPerUser` and `maxPerScene`.
    public init(perSecond: Int, maxPerUser: Int, maxPerScene: Int) {
        self.perSecond = perSecond
        self.maxPerUser = maxPerUser
        self.maxPerScene = maxPerScene
    }

    /// Whether `user`, who has `userCount` of the scene's `sceneCount` notes, may add one at `nowNs`; nil: yes (and
    /// a token of the user's rate is taken). A refusal by cap takes no token.
    public mutating func admit(user: String, userCount: Int, sceneCount: Int, nowNs: UInt64) -> Refusal? {
        if buckets.count > 10_000 { buckets = buckets.filter { !$0.value.isFull(nowNs: nowNs) } }
        let rate = Double(perSecond)
        var bucket = buckets[user] ?? TokenBucket(capacity: rate * 4, perSecond: rate, nowNs: nowNs)
        guard bucket.has(nowNs: nowNs) else {
            buckets[user] = bucket
            return .rate(perSecond: perSecond)
        }
        guard userCount < maxPerUser else { return .userCap(maxPerUser) }
        guard sceneCount < maxPerScene else { return .sceneCap(maxPerScene) }
        _ = bucket.take(nowNs: nowNs)
        buckets[user] = bucket
        return nil
    }
}

/// Presence poses between ticks: the latest per session wins and they are let out at most every `everyTicks`
/// ticks (presenceHz), however often a device sends. Pure.
public struct PresenceRelay<Update: Sendable>: Sendable {
    public let everyTicks: UInt64
    private var pending: [String: Update] = [:]

    /// A relay that releases every `everyTicks` ticks (at least 1).
    public init(everyTicks: Int) { self.everyTicks = UInt64(max(1, everyTicks)) }

    /// Poses waiting.
    public var waiting: Int { pending.count }

    /// Session `id` sent `update` (replacing any not yet let out).
    public mutating func submit(_ id: String, _ update: Update) { pending[id] = update }

    /// Drops what session `id` sent (it left).
    public mutating func drop(_ id: String) { pending[id] = nil }

    /// At tick `tick`: the poses due, by session id, or nothing between release ticks.
    public mutating func release(tick: UInt64) -> [(String, Update)] {
        guard tick % everyTicks == 0, !pending.isEmpty else { return [] }
        let out = pending.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        pending.removeAll(keepingCapacity: true)
        return out
    }
}
