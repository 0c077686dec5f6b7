/// The byte-exact test vectors of `Protocol/vectors/`: each message, its direction, and whether its body is deflated.
/// `scenestream vectors` writes them; the tests check the files against these definitions.
public enum ProtocolVectors {
    /// Which way a vector's message travels.
    public enum Direction: String, Sendable {
        case clientToServer = "client-to-server"
        case serverToClient = "server-to-client"
    }

    /// A valid message vector.
    public struct Vector: Sendable {
        public var name: String
        public var direction: Direction
        public var client: ClientMessage?
        public var server: ServerMessage?
        public var deflated: Bool
        public var note: String
    }

    /// A message that must be rejected, and the error kind it must give.
    public struct Invalid: Sendable {
        public var name: String
        public var direction: Direction
        public var bytes: [UInt8]
        public var error: String
        public var note: String
    }

    static func c(_ name: String, _ m: ClientMessage, _ note: String) -> Vector {
        Vector(name: name, direction: .clientToServer, client: m, server: nil, deflated: false, note: note)
    }

    static func s(_ name: String, _ m: ServerMessage, deflated: Bool = false, _ note: String) -> Vector {
        Vector(name: name, direction: .serverToClient, client: nil, server: m, deflated: deflated, note: note)
    }

    static let pose = Pose(anchor: "hall-a", position: QVec3(1500, 1700, -250), rotation: QRotation(largest: 3, 0, 724, 0))

    static let threeNodes: [NodeEntry] = [
        NodeEntry(index: 0, node: WireNode(name: "hall-a", anchor: "hall-a", layer: "structure")),
        NodeEntry(index: 1, node: WireNode(parent: 0, name: "robot-01", translation: QVec3(2500, 0, -2200), asset: "models/robot-base.gltf", layer: "equipment", zone: "line-1")),
        NodeEntry(index: 2, node: WireNode(parent: 1, name: "j1", translation: QVec3(0, 500, 0), rotation: QRotation(largest: 3, 0, 1024, 0), color: 0x22CC44FF, label: "J1")),
    ]

    /// Every frame vector again, with a version-2 body (`v2-` + its name): the same frame, range-coded.
    public static let version2: [(name: String, frame: SceneFrame, note: String)] = all.compactMap { v in
        guard case .frame(let f)? = v.server else { return nil }
        return ("v2-" + v.name, f, v.note + " (version 2)")
    }

    /// Frames to apply in order (`server-sequence-1` … `-3`); the replica after them equals the keyframe
    /// `server-sequence-replica`.
    static let sequence: [Vector] = {
        let q = Quantization()
        let first: [NodeEntry] = [
            NodeEntry(index: 0, node: WireNode(name: "hall", anchor: "hall")),
            NodeEntry(index: 1, node: WireNode(parent: 0, name: "line", zone: "l1")),
            NodeEntry(index: 2, node: WireNode(parent: 1, name: "robot", translation: QVec3(100, 0, 0), rotation: QRotation(largest: 3, 0, 100, 0))),
            NodeEntry(index: 3, node: WireNode(parent: 2, name: "tool")),
        ]
        var lineLabel = NodeUpdate(index: 1, fields: [.label])
        lineLabel.label = "Line 1"
        var move = NodeUpdate(index: 4, fields: [.translation, .rotation])
        move.translation = QVec3(-50, 10, 0)
        move.rotation = RotationCode(isDelta: true, largest: 0, 0, 5, 0)
        var hide = NodeUpdate(index: 5, fields: [.color, .visible])
        hide.color = 0xFF8800FF
        hide.visible = false
        let last: [NodeEntry] = [
            NodeEntry(index: 0, node: WireNode(name: "hall", anchor: "hall")),
            NodeEntry(index: 1, node: WireNode(parent: 0, name: "line", label: "Line 1", zone: "l1")),
            NodeEntry(index: 4, node: WireNode(parent: 1, name: "robot-b", translation: QVec3(150, 10, 0), rotation: QRotation(largest: 3, 0, 5, 0))),
            NodeEntry(index: 5, node: WireNode(parent: 4, name: "tool-b", color: 0xFF8800FF, visible: false, label: "T")),
        ]
        return [
            s("server-sequence-1", .frame(SceneFrame(kind: .keyframe(sceneId: "demo", quantization: q), version: 10, timeMs: 1_795_000_000_000, nodeSpace: 4, entered: first)), "apply in order, 1 of 3: a keyframe of four nodes"),
            s("server-sequence-2", .frame(SceneFrame(kind: .delta(base: 10), version: 11, timeMs: 1_795_000_000_033, nodeSpace: 6, removed: [2, 3], entered: [NodeEntry(index: 4, node: WireNode(parent: 1, name: "robot-b", translation: QVec3(200, 0, 0))), NodeEntry(index: 5, node: WireNode(parent: 4, name: "tool-b", label: "T"))], updated: [lineLabel])), "2 of 3: node 2 leaves with its child 3 (both listed); 4 enters with its child 5 (entered in the same frame); 1 relabelled"),
            s("server-sequence-3", .frame(SceneFrame(kind: .delta(base: 11), version: 12, timeMs: 1_795_000_000_066, nodeSpace: 6, updated: [move, hide])), "3 of 3: node 4 moves and turns (differences), node 5 is hidden and coloured"),
            s("server-sequence-replica", .frame(SceneFrame(kind: .keyframe(sceneId: "demo", quantization: q), version: 12, timeMs: 1_795_000_000_066, nodeSpace: 6, entered: last)), "the replica after server-sequence-1, -2 and -3, as a keyframe"),
        ]
    }()

    /// Every valid vector.
    public static let all: [Vector] = sequence + {
        var updateA = NodeUpdate(index: 2, fields: [.rotation, .label])
        updateA.rotation = RotationCode(isDelta: true, largest: 0, 0, -37, 0)
        updateA.label = "J1 moving"
        var updateB = NodeUpdate(index: 5, fields: [.translation, .color, .visible])
        updateB.translation = QVec3(120, 0, -3)
        updateB.color = 0xFF2222FF
        updateB.visible = false
        var updateC = NodeUpdate(index: 7, fields: [.rotation, .scale])
        updateC.rotation = RotationCode(isDelta: false, largest: 1, 10, -20, 30)
        updateC.scale = QVec3(0, -500, 0)
        var bitmaskUpdates: [NodeUpdate] = []
        for i in [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13] as [UInt32] {
            var u = NodeUpdate(index: i, fields: [.translation])
            u.translation = QVec3(Int32(i), 0, 0)
            bitmaskUpdates.append(u)
        }
        var rootUpdate = NodeUpdate(index: 0, fields: [.anchor])
        rootUpdate.anchor = "yard"
        var stringUpdate = NodeUpdate(index: 1, fields: [.asset, .layer, .zone])
        stringUpdate.asset = "models/robot-base-v2.gltf"
        stringUpdate.layer = "maintenance"
        stringUpdate.zone = "line-2"
        var scaleUpdate = NodeUpdate(index: 2, fields: [.scale, .visible])
        scaleUpdate.scale = QVec3(250, 0, -250)
        scaleUpdate.visible = true
        let twoRoots: [NodeEntry] = [
            NodeEntry(index: 0, node: WireNode(name: "hall-a", anchor: "hall-a")),
            NodeEntry(index: 1, node: WireNode(name: "yard", anchor: "yard-marker", layer: "outdoor")),
            NodeEntry(index: 2, node: WireNode(parent: 1, name: "tank-01", translation: QVec3(-4000, 0, 12500), scale: QVec3(1500, 2000, 1500), visible: false, asset: "models/tank.gltf")),
            NodeEntry(index: 3, node: WireNode(parent: 0, name: "robot-01", rotation: QRotation(largest: 1, 0, 0, 1447))),
        ]
        var manyNodes: [NodeEntry] = [NodeEntry(index: 0, node: WireNode(name: "arena", anchor: "floor"))]
        for i in 1...50 {
            manyNodes.append(
                NodeEntry(
                    index: UInt32(i),
                    node: WireNode(parent: 0, name: "cube-\(i)", translation: QVec3(Int32(i % 10) * 768, 128, Int32(i / 10) * 768), asset: "models/cube.gltf")))
        }
        return [
            c("client-hello", .hello(minVersion: 1, maxVersion: 1, device: .desktop, clientName: "viewer/1.0", token: "", resumeToken: "", resumeVersion: 0), "first message, no credentials"),
            c("client-hello-resume", .hello(minVersion: 1, maxVersion: 2, device: .headset, clientName: "vision", token: "eyJhbGciOi.x.y", resumeToken: "st_4f2a", resumeVersion: 1234), "resume a session at version 1234"),
            c("client-subscribe", .subscribe(requestId: 1, interest: InterestSpec(sceneId: "demo", rateHz: 30)), "whole scene at 30 Hz"),
            c("client-subscribe-region", .subscribe(requestId: 2, interest: InterestSpec(sceneId: "reference", region: Region(anchor: "hall-a", min: QVec3(0, -1000, 0), max: QVec3(40000, 10000, 30000)), layers: ["equipment", "status"], zones: ["hall-a-line-01"], rateHz: 10, byteBudget: 65536)), "region, layers, zones, rate and byte budget"),
            c("client-ack", .ack(version: 300), "acknowledge version 300"),
            c("client-presence", .presence(head: pose, leftHand: nil, rightHand: Pose(anchor: "hall-a", position: QVec3(1800, 1200, -100), rotation: .identity), pointer: nil, pointerTarget: 17), "head and right hand, pointing at node 17"),
            c("client-select", .select(nodes: [3, 17, 130]), "select three nodes"),
            c("client-annotate", .annotate(requestId: 5, node: 17, offset: QVec3(0, 250, 0), text: "Check the gripper", remove: ""), "pin a note 25 cm above node 17"),
            c("client-annotate-remove", .annotate(requestId: 6, node: 0, offset: .zero, text: "", remove: "a-000042"), "remove annotation a-000042"),
            c("client-handoff-offer", .handoffOffer(requestId: 7, keepOldDevice: false), "ask for a handoff code"),
            c("client-handoff-claim-code", .handoffClaim(requestId: 8, code: "K7QM-4XWD", sessionId: ""), "claim by code (push)"),
            c("client-handoff-claim-session", .handoffClaim(requestId: 9, code: "", sessionId: "s-91c2"), "take over one of this user's sessions (pull)"),
            c("client-playback-seek", .playback(op: .seek, timeMs: 1_795_000_000_000, speedMilli: 1000), "seek to a time"),
            c("client-playback-live", .playback(op: .live, timeMs: 0, speedMilli: 1000), "back to live"),
            c("client-ping", .ping(nonce: 0xDEAD_BEEF), "ping"),
            c("client-list-sessions", .listSessions(requestId: 10), "list this user's sessions"),
            c("client-refresh-token", .refreshToken(token: "eyJhbGciOi.new.sig"), "replace the bearer token"),
            c("client-follow", .follow(userId: "ada"), "follow Ada's view"),
            c("client-request-keyframe", .requestKeyframe(requestId: 12), "a delta did not apply: send a keyframe next"),
            s("server-welcome", .welcome(version: 1, sessionId: "s-91c2", sessionToken: "st_4f2a", serverName: "scenestream", heartbeatMs: 15000, maxMessageBytes: 65536, scenes: ["demo", "reference"]), "answer to hello"),
            s("server-welcome-v2", .welcome(version: 2, sessionId: "s-91c2", sessionToken: "st_4f2a", serverName: "scenestream", heartbeatMs: 15000, maxMessageBytes: 65536, scenes: ["demo"], ackWindow: 8), "answer to a hello offering 1…2: version 2, with the ack window"),
            s("server-keyframe", .frame(SceneFrame(kind: .keyframe(sceneId: "demo", quantization: Quantization()), version: 42, timeMs: 1_795_000_000_000, nodeSpace: 3, entered: threeNodes)), "three nodes: an anchored root, a robot base, a joint"),
            s("server-delta", .frame(SceneFrame(kind: .delta(base: 42), version: 43, timeMs: 1_795_000_000_033, nodeSpace: 9, removed: [4], entered: [NodeEntry(index: 8, node: WireNode(parent: 1, name: "tool", translation: QVec3(0, 200, 0), asset: "models/gripper.gltf"))], updated: [updateA, updateB, updateC])), "removal, entry and updates with index gaps"),
            s("server-keyframe-two-roots", .frame(SceneFrame(kind: .keyframe(sceneId: "demo", quantization: Quantization()), version: 7, timeMs: 1_795_000_000_000, nodeSpace: 4, entered: twoRoots)), "two roots on two anchors; a hidden, scaled tank; a rotation whose largest component is y (120° about +Y)"),
            s("server-delta-same-version", .frame(SceneFrame(kind: .delta(base: 50), version: 50, timeMs: 1_795_000_000_500, nodeSpace: 6, removed: [3, 4], entered: [NodeEntry(index: 5, node: WireNode(parent: 0, name: "line-02", zone: "line-2"))])), "an interest change at the same version (baseDistance 0): node 3 and its child 4 leave, node 5 enters"),
            s("server-delta-fields", .frame(SceneFrame(kind: .delta(base: 7), version: 8, timeMs: 1_795_000_000_033, nodeSpace: 4, updated: [rootUpdate, stringUpdate, scaleUpdate])), "updates of a root's anchor, asset, layer and zone, scale (difference) and visible"),
            s("server-delta-bitmask", .frame(SceneFrame(kind: .delta(base: 100), version: 101, timeMs: 1_795_000_001_000, nodeSpace: 16, updated: bitmaskUpdates)), "12 of 16 nodes updated: the bitmask is smaller than gaps"),
            s("server-keyframe-deflated", .frame(SceneFrame(kind: .keyframe(sceneId: "cubes", quantization: Quantization(positionUnitsPerMetre: 512, rotationBits: 9)), version: 1, timeMs: 0, nodeSpace: 51, entered: manyNodes)), deflated: true, "51 nodes, body deflated"),
            s("server-alerts", .alerts([AlertRecord(id: "press-overheat@hall-a/line-01/press-02", node: 212, severity: .critical, state: .raised, timeMs: 1_795_000_002_000, message: "hall-a/line-01/press-02: temperature 93.5 °C"), AlertRecord(id: "tank-low@hall-a/line-01/tank-03", node: nil, severity: .warning, state: .cleared, timeMs: 1_795_000_002_500, message: "level 11.0 %")]), "one raised, one cleared"),
            s("server-room-members", .roomMembers(roomId: "demo-room", changes: [MemberChange(userId: "lin", members: [Member(userId: "lin", displayName: "Lin", device: .mobile, role: .viewer, color: 0xEB3B2FFF), Member(userId: "lin", displayName: "Lin", device: .desktop, role: .viewer, color: 0xEB3B2FFF)]), MemberChange(userId: "kim", members: [])]), "lin is here on two devices, kim left"),
            s("server-session-state", .sessionState(SessionState(sessionId: "s-91c2", userId: "ada", role: .host, roomId: "demo-room", members: [Member(userId: "ada", displayName: "Ada", device: .headset, role: .host, color: 0x3A7BD5FF), Member(userId: "lin", displayName: "Lin", device: .mobile, role: .viewer, color: 0xEB3B2FFF)], selection: [17], followUserId: "", playback: PlaybackState(mode: .paused, cursorMs: 1_795_000_000_000, speedMilli: 2000), viewpoint: pose)), "a room of two, paused playback, a viewpoint"),
            s("server-handoff-offer", .handoff(.offer(requestId: 7, code: "K7QM-4XWD", url: "http://127.0.0.1:8080/?claim=K7QM-4XWD", expiresMs: 1_795_000_060_000)), "a code to show as text and QR"),
            s("server-handoff-handed-off", .handoff(.handedOff(to: .desktop, detached: true)), "the old device is told"),
            s("server-handoff-claimed", .handoff(.claimed(requestId: 8, sessionId: "s-91c2", sessionToken: "st_77e0", from: .mobile)), "the new device holds the session"),
            s("server-handoff-sessions", .handoff(.sessions(requestId: 10, [SessionSummary(sessionId: "s-91c2", device: .mobile, sceneId: "demo", lastSeenMs: 1_795_000_000_000)])), "this user's sessions"),
            s("server-error", .error(code: .unknownScene, requestId: 1, message: "no scene 'demo2'"), "subscribe to an unknown scene"),
            s("server-pong", .pong(nonce: 0xDEAD_BEEF, serverTimeMs: 1_795_000_000_000), "answer to ping"),
            s("server-welcome-v3", .welcome(version: 3, sessionId: "s-91c2", sessionToken: "st_4f2a", serverName: "scenestream", heartbeatMs: 15000, maxMessageBytes: 65536, scenes: ["demo"], ackWindow: 8), "answer to a hello offering 1…3: version 3 (version 2 and the anchors message)"),
            s("server-anchors", .anchors(sceneId: "demo", anchors: [
                AnchorRecord(id: "hall-a", position: QVec3(0, 0, 0), rotation: SIMD4(0, 0, 0, 1_000_000), handles: [AnchorHandle(platform: "marker", value: "qr:hall-a-door-1"), AnchorHandle(platform: "openxr", value: "6f1c2b9e-3d4a-4b8e-9c21-0a5f7e3d2c10")], updatedMs: 1_795_000_000_000),
                AnchorRecord(id: "line-2", position: QVec3(12_500, 0, -3_250), rotation: SIMD4(0, 707_107, 0, 707_107), handles: [AnchorHandle(platform: "visionos", value: "8A3F0C52-91D4-4E0B-B7C6-2F9D1E5A7B34"), AnchorHandle(platform: "webxr", value: "b1946ac9")], updatedMs: 1_795_000_001_500),
            ]), "version 3: two anchors of the demo site — a hall at the origin (a printed marker, an OpenXR UUID) and a line at x = 12.5 m, z = −3.25 m, turned 90° about +Y (visionOS, WebXR)"),
        ]
    }()

    /// The start of a keyframe body: version 1, scene "demo", millimetres, 12-bit rotations, time 0.
    static let keyHead: [UInt8] = [0x82, 0x00, 0x01, 0x04, 0x64, 0x65, 0x6D, 0x6F, 0xE8, 0x07, 0x0C, 0x00]
    /// The start of a delta body: version 2, base 1, time 0.
    static let deltaHead: [UInt8] = [0x83, 0x00, 0x02, 0x01, 0x00]

    /// Frames that break §6, one rule each (every decoder must refuse them without reading past their end).
    static let invalidFrames: [Invalid] = [
        Invalid(name: "invalid-frame-string-ref", direction: .serverToClient, bytes: keyHead + [0x01, 0x01, 0x01, 0x61, 0x01, 0x00, 0x01, 0x00, 0x01], error: "invalidValue", note: "keyframe: a name refers to string 1 of a table of 1"),
        Invalid(name: "invalid-frame-index-beyond-node-space", direction: .serverToClient, bytes: keyHead + [0x01, 0x01, 0x01, 0x61, 0x01, 0x01, 0x01, 0x00, 0x00], error: "invalidValue", note: "keyframe: node index 1 with nodeSpace 1"),
        Invalid(name: "invalid-frame-structure-in-update", direction: .serverToClient, bytes: deltaHead + [0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01], error: "invalidValue", note: "delta: an update's mask has the structure bit"),
        Invalid(name: "invalid-frame-delta-rotation-in-entry", direction: .serverToClient, bytes: keyHead + [0x01, 0x00, 0x01, 0x00, 0x08, 0x01, 0x00, 0x00], error: "invalidValue", note: "keyframe: an entry's rotation is a delta code"),
        Invalid(name: "invalid-frame-bad-bool", direction: .serverToClient, bytes: keyHead + [0x01, 0x00, 0x01, 0x00, 0x40, 0x02], error: "invalidValue", note: "keyframe: visible is 2"),
        Invalid(name: "invalid-frame-reserved-mask-bit", direction: .serverToClient, bytes: keyHead + [0x01, 0x00, 0x01, 0x00, 0x80, 0x10], error: "invalidValue", note: "keyframe: mask bit 11 (reserved)"),
        Invalid(name: "invalid-frame-masks-missing", direction: .serverToClient, bytes: keyHead + [0x02, 0x00, 0x02, 0x00, 0x00, 0x00], error: "truncated", note: "keyframe: two entries, one mask"),
        Invalid(name: "invalid-frame-bitmask-count", direction: .serverToClient, bytes: deltaHead + [0x08, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x00, 0x00], error: "invalidValue", note: "delta: count 2, the bitmask has 1 bit set"),
        Invalid(name: "invalid-frame-bitmask-beyond-node-space", direction: .serverToClient, bytes: deltaHead + [0x03, 0x00, 0x00, 0x00, 0x02, 0x01, 0x21, 0x00, 0x00], error: "invalidValue", note: "delta: bit 5 set with nodeSpace 3"),
        Invalid(name: "invalid-frame-anchor-on-child", direction: .serverToClient, bytes: keyHead + [0x02, 0x02, 0x01, 0x61, 0x01, 0x62, 0x02, 0x00, 0x00, 0x03, 0x03, 0x00, 0x00, 0x03, 0x01, 0x00, 0x01], error: "invalidValue", note: "keyframe: node 1 (child of 0) names an anchor; only roots do"),
        Invalid(name: "invalid-frame-translation-beyond-int32", direction: .serverToClient, bytes: keyHead + [0x01, 0x00, 0x01, 0x00, 0x04, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00, 0x00], error: "invalidValue", note: "keyframe: x = 2^31 does not fit an int32"),
        Invalid(name: "invalid-frame-bad-enum", direction: .serverToClient, bytes: [0x84, 0x00, 0x01, 0x01, 0x78, 0x00, 0x07, 0x00, 0x00, 0x00], error: "invalidValue", note: "alerts: severity 7"),
        Invalid(name: "invalid-frame-parent-is-self", direction: .serverToClient, bytes: keyHead + [0x01, 0x01, 0x01, 0x61, 0x01, 0x00, 0x01, 0x01, 0x00], error: "invalidValue", note: "keyframe: node 0's parentRef 1 names node 0 itself"),
    ]

    /// Every invalid vector.
    public static let invalid: [Invalid] = invalidFrames + [
        Invalid(name: "invalid-empty", direction: .clientToServer, bytes: [], error: "truncated", note: "no envelope"),
        Invalid(name: "invalid-reserved-flags", direction: .clientToServer, bytes: [0x03, 0x80, 0x01], error: "reservedFlags", note: "flag bit 7 set"),
        Invalid(name: "invalid-unknown-type", direction: .clientToServer, bytes: [0x7F, 0x00], error: "unknownMessageType", note: "type 0x7f is not defined"),
        Invalid(name: "invalid-truncated-string", direction: .clientToServer, bytes: [0x0C, 0x00, 0x05, 0x61, 0x62], error: "truncated", note: "refreshToken claims 5 bytes, has 2"),
        Invalid(name: "invalid-varint-overflow", direction: .clientToServer, bytes: [0x03, 0x00] + [UInt8](repeating: 0xFF, count: 10) + [0x01], error: "malformedVarint", note: "ack version longer than 64 bits"),
        Invalid(name: "invalid-overlong-varint", direction: .serverToClient, bytes: [0x88, 0x00, 0x80, 0x00, 0x01], error: "malformedVarint", note: "pong whose nonce 0 is written in two bytes (80 00): only the shortest form is allowed"),
        Invalid(name: "invalid-trailing-bytes", direction: .clientToServer, bytes: [0x03, 0x00, 0x05, 0x00], error: "trailingBytes", note: "ack followed by an extra byte"),
        Invalid(name: "invalid-bad-utf8", direction: .clientToServer, bytes: [0x0C, 0x00, 0x02, 0xC3, 0x28], error: "invalidValue", note: "token is not UTF-8"),
        Invalid(name: "invalid-bad-deflate", direction: .serverToClient, bytes: [0x88, 0x01, 0xFF, 0xFF, 0xFF], error: "compression", note: "deflate flag with garbage body"),
        Invalid(name: "invalid-anchors-rotation", direction: .serverToClient, bytes: [0x8A, 0x00, 0x01, 0x64, 0x01, 0x01, 0x61, 0x00, 0x00, 0x00, 0x82, 0x89, 0x7A, 0x00, 0x00, 0x00, 0x00, 0x00], error: "invalidValue", note: "anchors: a rotation component of 1,000,001 (more than 1)"),
        Invalid(name: "invalid-delta-base", direction: .serverToClient, bytes: [0x83, 0x00, 0x05, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], error: "invalidValue", note: "delta whose base would be before version 0"),
    ]
}
