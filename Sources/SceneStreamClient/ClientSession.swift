import SceneStreamProtocol
import SceneStreamReplica

/// How a client introduces itself and what it wants to see.
public struct ClientOptions: Sendable {
    public var device: DeviceKind
    public var name: String
    /// Bearer token (JWT) or empty.
    public var token: String
    public var interest: InterestSpec
    /// Keep a full replica (false: count and acknowledge frames without decoding them, for load generators).
    public var keepReplica: Bool
    /// Subscribe as soon as the server welcomes the client (false for a device that will claim a session).
    public var subscribeOnWelcome = true
    /// Without a replica: acknowledge every this many frames.
    public var ackEvery = 1
    /// Resume an earlier session: its token and the last version applied.
    public var resumeToken: String
    public var resumeVersion: UInt64
    /// The highest protocol version to offer (the server picks; 2 has range-coded frames).
    public var maxProtocolVersion = ProtocolVersion.supported.upperBound

    /// Creates options.
    public init(
        device: DeviceKind = .desktop, name: String = "scenestream-swift", token: String = "", interest: InterestSpec,
        keepReplica: Bool = true, resumeToken: String = "", resumeVersion: UInt64 = 0
    ) {
        self.device = device
        self.name = name
        self.token = token
        self.interest = interest
        self.keepReplica = keepReplica
        self.resumeToken = resumeToken
        self.resumeVersion = resumeVersion
    }
}

/// Something that happened on a client connection.
public enum ClientEvent: Sendable {
    case welcome(sessionId: String, sessionToken: String, scenes: [String])
    /// A frame was applied (or, without a replica, received).
    case frame(version: UInt64, timeMs: UInt64, keyframe: Bool, change: Replica.Change?)
    case alerts([AlertRecord])
    case serverError(code: ErrorCode, requestId: UInt32, message: String)
    case pong(nonce: UInt64, serverTimeMs: UInt64)
    /// A frame did not apply (`reason`); a keyframe was asked for, and deltas are dropped until it comes.
    case resyncing(reason: String)
    /// The site's spatial anchors (version 3): the whole set, replacing the one before.
    case anchors([AnchorRecord])
    case other(ServerMessage)
}

/// The client side of the protocol as a pure state machine: feed it received messages, send what it returns.
/// Shared by every transport (libwebsockets on Linux, URLSession on Apple platforms). No I/O; one owner.
public final class ClientSession {
    public let options: ClientOptions
    /// The replica (empty when `keepReplica` is false).
    public private(set) var replica = Replica()
    public private(set) var sessionId = ""
    public private(set) var sessionToken = ""
    public private(set) var framesReceived = 0
    public private(set) var keyframesReceived = 0
    public private(set) var bytesReceived = 0
    /// The protocol version the server chose (1 until the welcome).
    public private(set) var protocolVersion: UInt32 = 1
    /// A frame did not apply and the keyframe asked for has not come yet.
    public private(set) var awaitingKeyframe = false
    /// The site's spatial anchors by id (version 3; empty before the first `anchors`): resolve the one this device
    /// knows by its platform handle, then place the roots that name it.
    public private(set) var anchors: [String: AnchorRecord] = [:]
    private var nextRequestId: UInt32 = 1 << 20  // above the ids an app picks for its own requests
    /// The version of the last frame received.
    public private(set) var version: UInt64?
    private let encoder: MessageEncoder
    private let decoder: MessageDecoder

    /// Creates a session; `replica` is the copy a resuming client kept from its last connection.
    public init(options: ClientOptions, replica: Replica = Replica()) throws {
        self.options = options
        self.replica = replica
        encoder = try MessageEncoder()
        decoder = try MessageDecoder(limits: DecodeLimits(maxMessageBytes: 64 << 20, maxInflatedBytes: 256 << 20))
    }

    /// The first message to send once connected.
    public func start() -> [UInt8] {
        encoder.encode(
            ClientMessage.hello(
                minVersion: ProtocolVersion.supported.lowerBound, maxVersion: options.maxProtocolVersion, device: options.device,
                clientName: options.name, token: options.token, resumeToken: options.resumeToken,
                resumeVersion: options.resumeVersion))
    }

    /// The hello for a reconnect: resumes this session at the replica's version (a delta if the server still has it).
    public func resumeHello() -> [UInt8] {
        awaitingKeyframe = false  // the replica is whole at its version: the resume starts there
        return encoder.encode(
            ClientMessage.hello(
                minVersion: ProtocolVersion.supported.lowerBound, maxVersion: options.maxProtocolVersion, device: options.device,
                clientName: options.name, token: options.token, resumeToken: sessionToken,
                resumeVersion: sessionToken.isEmpty ? 0 : (replica.version ?? 0)))
    }

    /// Encodes a message to send.
    public func encode(_ m: ClientMessage) -> [UInt8] { encoder.encode(m) }

    /// Handles one received message; returns the messages to send and what happened.
    /// A message that breaks the spec, or a frame that does not apply, throws and leaves the replica unchanged.
    public func receive(_ bytes: [UInt8]) throws(ProtocolError) -> (send: [[UInt8]], events: [ClientEvent]) {
        bytesReceived += bytes.count
        if !options.keepReplica, let first = bytes.first, first == MessageType.keyframe.rawValue || first == MessageType.delta.rawValue {
            // Load-generator mode: acknowledge everything sent so far without inflating.
            framesReceived += 1
            if first == MessageType.keyframe.rawValue { keyframesReceived += 1 }
            let ack = framesReceived % max(1, options.ackEvery) == 0 ? [encoder.encode(ClientMessage.ack(version: UInt64(Int64.max)))] : []
            return (ack, [.frame(version: 0, timeMs: 0, keyframe: first == MessageType.keyframe.rawValue, change: nil)])
        }
        let m = try decoder.decodeServerMessage(bytes, version: protocolVersion)
        switch m {
        case .welcome(let v, let sid, let token, _, _, _, let scenes, _):
            protocolVersion = v
            sessionId = sid
            sessionToken = token
            let subscribe = options.subscribeOnWelcome ? [encoder.encode(ClientMessage.subscribe(requestId: 1, interest: options.interest))] : []
            return (subscribe, [.welcome(sessionId: sid, sessionToken: token, scenes: scenes)])
        case .frame(let f):
            framesReceived += 1
            // Deltas sent before the server had the request do not apply either (§7.4): dropped, not acked.
            if awaitingKeyframe && !f.isKeyframe { return ([], []) }
            var change: Replica.Change?
            if options.keepReplica {
                do {
                    change = try replica.apply(f)
                } catch {
                    // A keyframe that does not apply breaks the spec: nothing to ask for.
                    if f.isKeyframe { throw error }
                    awaitingKeyframe = true
                    nextRequestId &+= 1
                    return ([encoder.encode(ClientMessage.requestKeyframe(requestId: nextRequestId))], [.resyncing(reason: error.description)])
                }
            }
            awaitingKeyframe = false
            if f.isKeyframe { keyframesReceived += 1 }
            version = f.version
            return ([encoder.encode(ClientMessage.ack(version: f.version))], [.frame(version: f.version, timeMs: f.timeMs, keyframe: f.isKeyframe, change: change)])
        case .alerts(let a):
            return ([], [.alerts(a)])
        case .handoff(let notice):
            if case .claimed(_, let sid, let token, _) = notice {
                sessionId = sid
                sessionToken = token
            }
            return ([], [.other(m)])
        case .error(let code, let requestId, let message):
            return ([], [.serverError(code: code, requestId: requestId, message: message)])
        case .pong(let nonce, let t):
            return ([], [.pong(nonce: nonce, serverTimeMs: t)])
        case .anchors(_, let list):
            anchors = Dictionary(list.map { ($0.id, $0) }, uniquingKeysWith: { _, b in b })
            return ([], [.anchors(list)])
        default:
            return ([], [.other(m)])
        }
    }
}

@available(*, unavailable)
extension ClientSession: Sendable {}
