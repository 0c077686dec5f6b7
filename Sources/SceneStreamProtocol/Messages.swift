/// A pose in an anchor's frame: position in millimetres, rotation at 12 bits per component (`SPEC.md` §5.3).
public struct Pose: Hashable, Sendable {
    public var anchor: String
    public var position: QVec3
    public var rotation: QRotation

    /// Creates a pose.
    public init(anchor: String, position: QVec3, rotation: QRotation) {
        self.anchor = anchor
        self.position = position
        self.rotation = rotation
    }

    /// The quantization client poses use: millimetres and 12-bit rotation components.
    public static let quantization = Quantization(positionUnitsPerMetre: 1000, rotationBits: 12)
}

/// An axis-aligned box in an anchor's frame, in millimetres.
public struct Region: Hashable, Sendable {
    public var anchor: String
    public var min: QVec3
    public var max: QVec3

    /// Creates a region.
    public init(anchor: String, min: QVec3, max: QVec3) {
        self.anchor = anchor
        self.min = min
        self.max = max
    }
}

/// What part of a scene a client wants, and how often.
public struct InterestSpec: Hashable, Sendable {
    /// The scene to stream.
    public var sceneId: String
    /// Only nodes with an asset inside this box (groups are never culled); nil for everywhere.
    public var region: Region?
    /// Only nodes on these layers; empty for all layers.
    public var layers: [String]
    /// Only nodes in these zones; empty for all the client may see.
    public var zones: [String]
    /// Frames per second wanted; 0 for the server's default.
    public var rateHz: UInt32
    /// Bytes per second the client can take; 0 for no budget.
    public var byteBudget: UInt32

    /// Creates an interest.
    public init(
        sceneId: String, region: Region? = nil, layers: [String] = [], zones: [String] = [], rateHz: UInt32 = 0,
        byteBudget: UInt32 = 0
    ) {
        self.sceneId = sceneId
        self.region = region
        self.layers = layers
        self.zones = zones
        self.rateHz = rateHz
        self.byteBudget = byteBudget
    }
}

/// One alert raised or cleared by a rule.
public struct AlertRecord: Hashable, Sendable {
    /// Whether the alert starts or ends.
    public enum State: UInt8, Hashable, Sendable {
        case raised = 0
        case cleared = 1
    }

    public var id: String
    /// The node the alert is pinned to, if it has one in the client's view.
    public var node: UInt32?
    public var severity: Severity
    public var state: State
    public var timeMs: UInt64
    public var message: String

    /// Creates an alert record.
    public init(id: String, node: UInt32?, severity: Severity, state: State, timeMs: UInt64, message: String) {
        self.id = id
        self.node = node
        self.severity = severity
        self.state = state
        self.timeMs = timeMs
        self.message = message
    }
}

/// A room member as others see them.
public struct Member: Hashable, Sendable {
    public var userId: String
    public var displayName: String
    public var device: DeviceKind
    public var role: Role
    /// RGBA colour of the member's avatar.
    public var color: UInt32

    /// Creates a member.
    public init(userId: String, displayName: String, device: DeviceKind, role: Role, color: UInt32) {
        self.userId = userId
        self.displayName = displayName
        self.device = device
        self.role = role
        self.color = color
    }
}

/// Playback position of a session.
public struct PlaybackState: Hashable, Sendable {
    /// Live, paused at the cursor, or playing from it.
    public enum Mode: UInt8, Hashable, Sendable {
        case live = 0
        case paused = 1
        case playing = 2
    }

    public var mode: Mode
    public var cursorMs: UInt64
    /// Playback speed in thousandths (1000 = real time).
    public var speedMilli: UInt32

    /// Creates a playback state.
    public init(mode: Mode, cursorMs: UInt64, speedMilli: UInt32) {
        self.mode = mode
        self.cursorMs = cursorMs
        self.speedMilli = speedMilli
    }

    /// Following the live plant.
    public static let live = PlaybackState(mode: .live, cursorMs: 0, speedMilli: 1000)
}

/// A session the same user has open on another device (for pull handoff).
public struct SessionSummary: Hashable, Sendable {
    public var sessionId: String
    public var device: DeviceKind
    public var sceneId: String
    public var lastSeenMs: UInt64

    /// Creates a summary.
    public init(sessionId: String, device: DeviceKind, sceneId: String, lastSeenMs: UInt64) {
        self.sessionId = sessionId
        self.device = device
        self.sceneId = sceneId
        self.lastSeenMs = lastSeenMs
    }
}

/// A message from a client to the server (`SPEC.md` §4).
public enum ClientMessage: Hashable, Sendable {
    /// First message on a connection: versions, device, credentials, and an optional session to resume.
    case hello(minVersion: UInt32, maxVersion: UInt32, device: DeviceKind, clientName: String, token: String,
        resumeToken: String, resumeVersion: UInt64)
    /// Start streaming a scene, or change the interest of the running stream.
    case subscribe(requestId: UInt32, interest: InterestSpec)
    /// The client has applied every frame up to `version`.
    case ack(version: UInt64)
    /// Head, hands and pointer of the client's user; absent parts are nil.
    case presence(head: Pose?, leftHand: Pose?, rightHand: Pose?, pointer: Pose?, pointerTarget: UInt32?)
    /// The user's current selection (node indices).
    case select(nodes: [UInt32])
    /// Add an annotation pinned to a node (`remove` empty), or remove one by id.
    case annotate(requestId: UInt32, node: UInt32, offset: QVec3, text: String, remove: String)
    /// Ask for a one-time handoff code for this session.
    case handoffOffer(requestId: UInt32, keepOldDevice: Bool)
    /// Take over a session by code (push) or by session id of the same user (pull).
    case handoffClaim(requestId: UInt32, code: String, sessionId: String)
    /// Seek, play, pause or go back to live.
    case playback(op: PlaybackOp, timeMs: UInt64, speedMilli: UInt32)
    /// Keep-alive and round-trip measurement.
    case ping(nonce: UInt64)
    /// List this user's sessions on other devices.
    case listSessions(requestId: UInt32)
    /// Replace the bearer token before it expires.
    case refreshToken(token: String)
    /// Follow another room member's view (their head pose), or stop following (empty).
    case follow(userId: String)
    /// Ask for a keyframe of the running stream next (the client could not apply a frame).
    case requestKeyframe(requestId: UInt32)
}

/// A playback request.
public enum PlaybackOp: UInt8, Hashable, Sendable {
    case seek = 0
    case play = 1
    case pause = 2
    case live = 3
}

/// What a `handoff` message says (`SPEC.md` §7.6).
public enum HandoffNotice: Hashable, Sendable {
    /// A code this device can show; another device claims it before `expiresMs`.
    case offer(requestId: UInt32, code: String, url: String, expiresMs: UInt64)
    /// The session moved to another device; this one detached unless it stays as a companion.
    case handedOff(to: DeviceKind, detached: Bool)
    /// This device now holds the session (sent before its keyframe), with the token that resumes it.
    case claimed(requestId: UInt32, sessionId: String, sessionToken: String, from: DeviceKind)
    /// The user's sessions on other devices.
    case sessions(requestId: UInt32, [SessionSummary])
}

/// A message from the server to a client (`SPEC.md` §5).
public enum ServerMessage: Hashable, Sendable {
    /// Answer to hello: the version chosen and the session; from version 2 on, the ack window too (0 in version 1,
    /// which does not carry it).
    case welcome(version: UInt32, sessionId: String, sessionToken: String, serverName: String, heartbeatMs: UInt32,
        maxMessageBytes: UInt32, scenes: [String], ackWindow: UInt32 = 0)
    /// A keyframe or delta.
    case frame(SceneFrame)
    /// Alerts raised or cleared.
    case alerts([AlertRecord])
    /// The session's and room's state.
    case sessionState(SessionState)
    /// Handoff notices.
    case handoff(HandoffNotice)
    /// A refusal or failure; `requestId` 0 when it answers no request.
    case error(code: ErrorCode, requestId: UInt32, message: String)
    /// Answer to ping.
    case pong(nonce: UInt64, serverTimeMs: UInt64)
    /// Changes to the room's member list since the last `sessionState` or `roomMembers`: for each user named, the
    /// members that user has now (none: the user left).
    case roomMembers(roomId: String, changes: [MemberChange])
    /// The spatial anchors of the subscribed scene's site (version 3): the whole set, replacing the one before.
    case anchors(sceneId: String, anchors: [AnchorRecord])
}

/// One spatial anchor of a site: its pose in the site's frame and the handles by which each platform finds it
/// (an OpenXR spatial-anchor UUID, a visionOS WorldAnchor id, a WebXR persistent handle, a printed marker).
public struct AnchorRecord: Hashable, Sendable {
    public var id: String
    /// Position in the site's frame, millimetres (+Y up, right-handed).
    public var position: QVec3
    /// Orientation in the site's frame: a unit quaternion (x, y, z, w), each component × 1,000,000, rounded.
    public var rotation: SIMD4<Int32>
    /// Platform handles, by platform name (`openxr`, `visionos`, `webxr`, `marker`, …), sorted by platform.
    public var handles: [AnchorHandle]
    /// When an admin last set it (ms since the epoch).
    public var updatedMs: UInt64

    /// Creates a record.
    public init(id: String, position: QVec3, rotation: SIMD4<Int32>, handles: [AnchorHandle], updatedMs: UInt64) {
        self.id = id
        self.position = position
        self.rotation = rotation
        self.handles = handles
        self.updatedMs = updatedMs
    }
}

/// How one platform finds an anchor.
public struct AnchorHandle: Hashable, Sendable {
    public var platform: String
    public var value: String

    /// Creates a handle.
    public init(platform: String, value: String) {
        self.platform = platform
        self.value = value
    }
}

/// What one user is in a room now: every member entry (device) of theirs; empty when they left.
public struct MemberChange: Hashable, Sendable {
    public var userId: String
    /// Each entry's `userId` is `userId`.
    public var members: [Member]

    /// Creates a change.
    public init(userId: String, members: [Member]) {
        self.userId = userId
        self.members = members
    }
}

/// The state of a session and its room, sent when it changes.
public struct SessionState: Hashable, Sendable {
    public var sessionId: String
    public var userId: String
    public var role: Role
    public var roomId: String
    public var members: [Member]
    public var selection: [UInt32]
    public var followUserId: String
    public var playback: PlaybackState
    /// The view the session last had (camera or head), so a new device starts there.
    public var viewpoint: Pose?

    /// Creates a session state.
    public init(
        sessionId: String, userId: String, role: Role, roomId: String, members: [Member], selection: [UInt32],
        followUserId: String, playback: PlaybackState, viewpoint: Pose?
    ) {
        self.sessionId = sessionId
        self.userId = userId
        self.role = role
        self.roomId = roomId
        self.members = members
        self.selection = selection
        self.followUserId = followUserId
        self.playback = playback
        self.viewpoint = viewpoint
    }
}
