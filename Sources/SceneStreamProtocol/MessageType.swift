/// The first byte of every message (`SPEC.md` §3). An open set: unknown values decode to an error, not a crash.
public struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Client → server.
    public static let hello = MessageType(rawValue: 0x01)
    public static let subscribe = MessageType(rawValue: 0x02)
    public static let ack = MessageType(rawValue: 0x03)
    public static let presence = MessageType(rawValue: 0x04)
    public static let select = MessageType(rawValue: 0x05)
    public static let annotate = MessageType(rawValue: 0x06)
    public static let handoffOffer = MessageType(rawValue: 0x07)
    public static let handoffClaim = MessageType(rawValue: 0x08)
    public static let playback = MessageType(rawValue: 0x09)
    public static let ping = MessageType(rawValue: 0x0A)
    public static let listSessions = MessageType(rawValue: 0x0B)
    public static let refreshToken = MessageType(rawValue: 0x0C)
    public static let follow = MessageType(rawValue: 0x0D)
    public static let requestKeyframe = MessageType(rawValue: 0x0E)

    // Server → client.
    public static let welcome = MessageType(rawValue: 0x81)
    public static let keyframe = MessageType(rawValue: 0x82)
    public static let delta = MessageType(rawValue: 0x83)
    public static let alerts = MessageType(rawValue: 0x84)
    public static let sessionState = MessageType(rawValue: 0x85)
    public static let handoff = MessageType(rawValue: 0x86)
    public static let error = MessageType(rawValue: 0x87)
    public static let pong = MessageType(rawValue: 0x88)
    public static let roomMembers = MessageType(rawValue: 0x89)
    /// Version 3.
    public static let anchors = MessageType(rawValue: 0x8A)

    public var description: String {
        let names: [UInt8: String] = [
            0x01: "hello", 0x02: "subscribe", 0x03: "ack", 0x04: "presence", 0x05: "select", 0x06: "annotate",
            0x07: "handoffOffer", 0x08: "handoffClaim", 0x09: "playback", 0x0A: "ping", 0x0B: "listSessions",
            0x0C: "refreshToken", 0x0D: "follow", 0x0E: "requestKeyframe", 0x81: "welcome", 0x82: "keyframe", 0x83: "delta", 0x84: "alerts",
            0x85: "sessionState", 0x86: "handoff", 0x87: "error", 0x88: "pong", 0x89: "roomMembers", 0x8A: "anchors",
        ]
        return names[rawValue] ?? "0x\(String(rawValue, radix: 16))"
    }
}

/// Error codes carried by the `error` message (`SPEC.md` §8). An open set.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let malformed = ErrorCode(rawValue: 1)
    public static let unsupportedVersion = ErrorCode(rawValue: 2)
    public static let unknownMessage = ErrorCode(rawValue: 3)
    public static let unknownScene = ErrorCode(rawValue: 4)
    public static let unauthenticated = ErrorCode(rawValue: 5)
    public static let forbidden = ErrorCode(rawValue: 6)
    public static let rateLimited = ErrorCode(rawValue: 7)
    public static let tooLarge = ErrorCode(rawValue: 8)
    public static let handoffCodeInvalid = ErrorCode(rawValue: 9)
    public static let handoffCodeExpired = ErrorCode(rawValue: 10)
    public static let handoffCodeUsed = ErrorCode(rawValue: 11)
    public static let resync = ErrorCode(rawValue: 12)
    public static let internalError = ErrorCode(rawValue: 13)
    public static let unknownNode = ErrorCode(rawValue: 14)
    public static let roomFull = ErrorCode(rawValue: 15)
    public static let tokenExpired = ErrorCode(rawValue: 16)
    public static let notSubscribed = ErrorCode(rawValue: 17)
    public static let playbackUnavailable = ErrorCode(rawValue: 18)

    public var description: String {
        let names: [UInt16: String] = [
            1: "malformed", 2: "unsupportedVersion", 3: "unknownMessage", 4: "unknownScene", 5: "unauthenticated",
            6: "forbidden", 7: "rateLimited", 8: "tooLarge", 9: "handoffCodeInvalid", 10: "handoffCodeExpired",
            11: "handoffCodeUsed", 12: "resync", 13: "internalError", 14: "unknownNode", 15: "roomFull",
            16: "tokenExpired", 17: "notSubscribed", 18: "playbackUnavailable",
        ]
        return names[rawValue] ?? "error\(rawValue)"
    }
}

/// The kind of device a client runs on.
public enum DeviceKind: UInt8, Hashable, Sendable, CaseIterable {
    case unknown = 0
    case headset = 1
    case desktop = 2
    case mobile = 3
}

/// A member's role in a room.
public enum Role: UInt8, Hashable, Sendable, CaseIterable {
    case viewer = 0
    case participant = 1
    case host = 2
}

/// Alert severity.
public enum Severity: UInt8, Hashable, Sendable, CaseIterable, Comparable {
    case info = 0
    case warning = 1
    case critical = 2

    public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }
}
