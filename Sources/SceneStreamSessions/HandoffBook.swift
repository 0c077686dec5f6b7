import SceneStreamCore

/// One-time handoff codes: offered by a session's device, claimed once by another device of the same user before
/// they expire. Pure: callers pass the time and the random code.
public struct HandoffBook: Sendable {
    /// An offered code.
    public struct Code: Sendable, Equatable {
        public let sessionId: String
        public let userId: String
        public let expiresMs: UInt64
        public let keepOldDevice: Bool
        public fileprivate(set) var used = false
    }

    /// Why a claim was refused.
    public enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// No such code, or it is another user's, or its session is gone.
        case unknown
        /// The code was claimed already.
        case used
        /// The code's time ran out.
        case expired

        public var description: String {
            switch self {
            case .unknown: "no such handoff code for you"
            case .used: "this code was already used"
            case .expired: "this code has expired"
            }
        }
    }

    /// How long a code lives.
    public let lifetimeMs: UInt64
    /// Codes offered and not yet forgotten (forgotten a minute after expiry, so late claims still hear "expired").
    public private(set) var codes: [String: Code] = [:]

    /// A book whose codes live `lifetimeMs`.
    public init(lifetimeMs: UInt64) { self.lifetimeMs = lifetimeMs }

    /// Offers `code` (drawn by the caller with ``make(using:)``) for session `sessionId` of `userId`; returns its
    /// expiry, or nil when the code is taken (draw another).
    public mutating func offer(code: String, sessionId: String, userId: String, keepOldDevice: Bool, nowMs: UInt64) -> UInt64? {
        guard codes[code] == nil else { return nil }
        let expires = nowMs + lifetimeMs
        codes[code] = Code(sessionId: sessionId, userId: userId, expiresMs: expires, keepOldDevice: keepOldDevice)
        return expires
    }

    /// Claims `rawCode` (any case, dash optional) for `userId`: the code once, by its own user, before it expires,
    /// and only while `sessionExists` says its session does. A refused claim leaves the code as it was.
    public mutating func claim(_ rawCode: String, userId: String, nowMs: UInt64, sessionExists: (String) -> Bool) -> Result<Code, Refusal> {
        let code = Self.normalize(rawCode)
        guard var c = codes[code], c.userId == userId else { return .failure(.unknown) }
        // A spent code says so even after its session moved on (to the node or device that claimed it).
        guard !c.used else { return .failure(.used) }
        guard sessionExists(c.sessionId) else { return .failure(.unknown) }
        guard c.expiresMs > nowMs else { return .failure(.expired) }
        c.used = true
        codes[code] = c
        return .success(c)
    }

    /// Forgets codes a minute past their expiry.
    public mutating func expire(nowMs: UInt64) {
        codes = codes.filter { $0.value.expiresMs + 60_000 > nowMs }
    }

    /// The code alphabet: 32 letters and digits without look-alikes (0/O, 1/I), 5 bits each.
    public static let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")

    /// A fresh code, XXXX-XXXX: 8 characters, 40 bits.
    public static func make(using generator: inout some RandomNumberGenerator) -> String {
        let chars = (0..<8).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] }
        return String(chars[0..<4]) + "-" + String(chars[4..<8])
    }

    /// Accepts lower case, a missing dash and spaces.
    public static func normalize(_ s: String) -> String {
        let c = s.uppercased().filter { $0 != "-" && $0 != " " }
        guard c.count == 8 else { return s.uppercased() }
        return String(c.prefix(4)) + "-" + String(c.suffix(4))
    }
}

/// Handoff claims are rate-limited per connection (10 a minute) and for the whole server (100 a minute): with
/// 2^40 codes, guessing a live code within its minute succeeds with probability below 100 / 2^40 ≈ 1e-10.
public struct ClaimLimiter: Sendable {
    private var global: TokenBucket

    /// A limiter whose server-wide bucket starts full at `nowNs`.
    public init(nowNs: UInt64, perMinute: Double = 100) {
        global = TokenBucket(capacity: perMinute, perSecond: perMinute / 60, nowNs: nowNs)
    }

    /// A connection's own bucket (10 a minute).
    public static func connectionBucket(nowNs: UInt64) -> TokenBucket {
        TokenBucket(capacity: 10, perSecond: 10.0 / 60, nowNs: nowNs)
    }

    /// Whether a claim may go ahead; takes a token from both buckets only when both have one.
    public mutating func allow(_ own: inout TokenBucket, nowNs: UInt64) -> Bool {
        guard own.has(nowNs: nowNs), global.has(nowNs: nowNs) else { return false }
        _ = own.take(nowNs: nowNs)
        _ = global.take(nowNs: nowNs)
        return true
    }
}

/// A handoff code as every node of a cluster sees it (a key-value entry): which session it hands over and which node
/// offered it — that node's ``HandoffBook`` alone decides claims, so a code is claimed once across the cluster.
public struct SharedHandoffCode: Codable, Sendable, Equatable {
    public var sessionId: String
    public var userId: String
    public var expiresMs: UInt64
    public var keepOldDevice: Bool
    /// The session record's key (a hash of its token), so the claiming node can load it.
    public var sessionKey: String
    /// The node that offered it (and decides its claims).
    public var node: String

    public init(sessionId: String, userId: String, expiresMs: UInt64, keepOldDevice: Bool, sessionKey: String, node: String) {
        self.sessionId = sessionId
        self.userId = userId
        self.expiresMs = expiresMs
        self.keepOldDevice = keepOldDevice
        self.sessionKey = sessionKey
        self.node = node
    }
}
