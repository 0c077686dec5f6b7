/// Server → client message bodies (`SPEC.md` §5): each message's fields in order.
extension ServerMessage {
    /// The message type and body bytes in protocol `version` (frames have a range-coded body from version 2).
    public func encodedBody(version protocolVersion: UInt32 = 1) -> (MessageType, [UInt8]) {
        var w = WireWriter(capacity: 256)
        let type: MessageType
        switch self {
        case .welcome(let version, let sessionId, let token, let serverName, let heartbeat, let maxBytes, let scenes, let ackWindow):
            type = .welcome
            w.writeVarint(version)
            w.writeString(sessionId)
            w.writeString(token)
            w.writeString(serverName)
            w.writeVarint(heartbeat)
            w.writeVarint(maxBytes)
            w.writeVarint(scenes.count)
            for s in scenes { w.writeString(s) }
            if version >= 2 { w.writeVarint(ackWindow) }
        case .frame(let f):
            type = f.isKeyframe ? .keyframe : .delta
            if protocolVersion >= 2 { FrameCodecV2.encodeBody(f, into: &w) } else { f.encodeBody(into: &w) }
        case .alerts(let alerts):
            type = .alerts
            w.writeVarint(alerts.count)
            for a in alerts {
                w.writeString(a.id)
                w.writeOptionalIndex(a.node)
                w.writeU8(a.severity.rawValue)
                w.writeU8(a.state.rawValue)
                w.writeVarint(a.timeMs)
                w.writeString(a.message)
            }
        case .roomMembers(let roomId, let changes):
            type = .roomMembers
            w.writeString(roomId)
            w.writeVarint(changes.count)
            for c in changes {
                w.writeString(c.userId)
                w.writeVarint(c.members.count)
                for m in c.members {
                    w.writeString(m.displayName)
                    w.writeU8(m.device.rawValue)
                    w.writeU8(m.role.rawValue)
                    w.writeU32BE(m.color)
                }
            }
        case .anchors(let sceneId, let anchors):
            type = .anchors
            w.writeString(sceneId)
            w.writeVarint(anchors.count)
            for a in anchors {
                w.writeString(a.id)
                w.writeZigZag(Int64(a.position.x))
                w.writeZigZag(Int64(a.position.y))
                w.writeZigZag(Int64(a.position.z))
                for k in 0..<4 { w.writeZigZag(Int64(a.rotation[k])) }
                w.writeVarint(a.handles.count)
                for h in a.handles {
                    w.writeString(h.platform)
                    w.writeString(h.value)
                }
                w.writeVarint(a.updatedMs)
            }
        case .sessionState(let s):
            type = .sessionState
            w.writeString(s.sessionId)
            w.writeString(s.userId)
            w.writeU8(s.role.rawValue)
            w.writeString(s.roomId)
            w.writeVarint(s.members.count)
            for m in s.members {
                w.writeString(m.userId)
                w.writeString(m.displayName)
                w.writeU8(m.device.rawValue)
                w.writeU8(m.role.rawValue)
                w.writeU32BE(m.color)
            }
            w.writeVarint(s.selection.count)
            for n in s.selection { w.writeVarint(n) }
            w.writeString(s.followUserId)
            w.writeU8(s.playback.mode.rawValue)
            w.writeVarint(s.playback.cursorMs)
            w.writeVarint(s.playback.speedMilli)
            if let v = s.viewpoint {
                w.writeU8(1)
                w.writePose(v)
            } else {
                w.writeU8(0)
            }
        case .handoff(let notice):
            type = .handoff
            switch notice {
            case .offer(let requestId, let code, let url, let expires):
                w.writeU8(0)
                w.writeVarint(requestId)
                w.writeString(code)
                w.writeString(url)
                w.writeVarint(expires)
            case .handedOff(let to, let detached):
                w.writeU8(1)
                w.writeU8(to.rawValue)
                w.writeU8(detached ? 1 : 0)
            case .claimed(let requestId, let sessionId, let token, let from):
                w.writeU8(2)
                w.writeVarint(requestId)
                w.writeString(sessionId)
                w.writeString(token)
                w.writeU8(from.rawValue)
            case .sessions(let requestId, let list):
                w.writeU8(3)
                w.writeVarint(requestId)
                w.writeVarint(list.count)
                for s in list {
                    w.writeString(s.sessionId)
                    w.writeU8(s.device.rawValue)
                    w.writeString(s.sceneId)
                    w.writeVarint(s.lastSeenMs)
                }
            }
        case .error(let code, let requestId, let message):
            type = .error
            w.writeVarint(code.rawValue)
            w.writeVarint(requestId)
            w.writeString(message)
        case .pong(let nonce, let time):
            type = .pong
            w.writeVarint(nonce)
            w.writeVarint(time)
        }
        return (type, w.bytes)
    }

    /// Decodes the body of a server message of `type`.
    public static func decode(type: MessageType, body: [UInt8], version protocolVersion: UInt32 = 1) throws(ProtocolError) -> ServerMessage {
        var r = WireReader(body, context: type.description)
        let m: ServerMessage
        switch type {
        case .welcome:
            let version = try r.readVarint("version", as: UInt32.self)
            let sessionId = try r.readString("sessionId")
            let token = try r.readString("sessionToken")
            let name = try r.readString("serverName")
            let heartbeat = try r.readVarint("heartbeatMs", as: UInt32.self)
            let maxBytes = try r.readVarint("maxMessageBytes", as: UInt32.self)
            var scenes: [String] = []
            for _ in 0..<(try r.readCount("scenes.count")) { scenes.append(try r.readString("scenes")) }
            let window = version >= 2 ? try r.readVarint("ackWindow", as: UInt32.self) : 0
            m = .welcome(
                version: version, sessionId: sessionId, sessionToken: token, serverName: name, heartbeatMs: heartbeat,
                maxMessageBytes: maxBytes, scenes: scenes, ackWindow: window)
        case .keyframe, .delta:
            if protocolVersion >= 2 {
                m = .frame(try FrameCodecV2.decodeBody(&r, isKeyframe: type == .keyframe))
            } else {
                m = .frame(try SceneFrame.decodeBody(&r, isKeyframe: type == .keyframe))
            }
        case .alerts:
            var alerts: [AlertRecord] = []
            for _ in 0..<(try r.readCount("alerts.count", minBytes: 5)) {
                alerts.append(
                    AlertRecord(
                        id: try r.readString("id"), node: try r.readOptionalIndex("node"),
                        severity: try r.readEnum("severity", Severity.self), state: try r.readEnum("state", AlertRecord.State.self),
                        timeMs: try r.readVarint("timeMs"), message: try r.readString("message")))
            }
            m = .alerts(alerts)
        case .roomMembers:
            let roomId = try r.readString("roomId")
            var changes: [MemberChange] = []
            for _ in 0..<(try r.readCount("changes.count", minBytes: 2)) {
                let userId = try r.readString("change.userId")
                var members: [Member] = []
                for _ in 0..<(try r.readCount("change.members.count", minBytes: 7)) {
                    members.append(
                        Member(
                            userId: userId, displayName: try r.readString("member.displayName"),
                            device: try r.readEnum("member.device", DeviceKind.self), role: try r.readEnum("member.role", Role.self),
                            color: try r.readU32BE("member.color")))
                }
                changes.append(MemberChange(userId: userId, members: members))
            }
            m = .roomMembers(roomId: roomId, changes: changes)
        case .anchors:
            let sceneId = try r.readString("sceneId")
            var anchors: [AnchorRecord] = []
            for _ in 0..<(try r.readCount("anchors.count", minBytes: 10)) {
                let id = try r.readString("anchor.id")
                let position = try SceneFrame.readVec(&r, "anchor.position")
                var q = SIMD4<Int32>()
                for k in 0..<4 {
                    q[k] = try r.readZigZag32("anchor.rotation")
                    guard abs(Int64(q[k])) <= 1_000_000 else { throw ProtocolError(.invalidValue, "anchors.anchor.rotation") }
                }
                var handles: [AnchorHandle] = []
                for _ in 0..<(try r.readCount("anchor.handles.count", minBytes: 2)) {
                    handles.append(AnchorHandle(platform: try r.readString("handle.platform"), value: try r.readString("handle.value")))
                }
                anchors.append(AnchorRecord(id: id, position: position, rotation: q, handles: handles, updatedMs: try r.readVarint("anchor.updatedMs")))
            }
            m = .anchors(sceneId: sceneId, anchors: anchors)
        case .sessionState:
            let sessionId = try r.readString("sessionId")
            let userId = try r.readString("userId")
            let role = try r.readEnum("role", Role.self)
            let roomId = try r.readString("roomId")
            var members: [Member] = []
            for _ in 0..<(try r.readCount("members.count", minBytes: 8)) {
                members.append(
                    Member(
                        userId: try r.readString("member.userId"), displayName: try r.readString("member.displayName"),
                        device: try r.readEnum("member.device", DeviceKind.self), role: try r.readEnum("member.role", Role.self),
                        color: try r.readU32BE("member.color")))
            }
            var selection: [UInt32] = []
            for _ in 0..<(try r.readCount("selection.count")) { selection.append(try r.readVarint("selection", as: UInt32.self)) }
            let follow = try r.readString("followUserId")
            let playback = PlaybackState(
                mode: try r.readEnum("playback.mode", PlaybackState.Mode.self), cursorMs: try r.readVarint("playback.cursorMs"),
                speedMilli: try r.readVarint("playback.speedMilli", as: UInt32.self))
            let viewpoint: Pose? = try r.readBool("hasViewpoint") ? try r.readPose("viewpoint") : nil
            m = .sessionState(
                SessionState(
                    sessionId: sessionId, userId: userId, role: role, roomId: roomId, members: members,
                    selection: selection, followUserId: follow, playback: playback, viewpoint: viewpoint))
        case .handoff:
            switch try r.readU8("kind") {
            case 0:
                m = .handoff(
                    .offer(
                        requestId: try r.readVarint("requestId", as: UInt32.self), code: try r.readString("code"),
                        url: try r.readString("url"), expiresMs: try r.readVarint("expiresMs")))
            case 1:
                m = .handoff(.handedOff(to: try r.readEnum("to", DeviceKind.self), detached: try r.readBool("detached")))
            case 2:
                m = .handoff(
                    .claimed(
                        requestId: try r.readVarint("requestId", as: UInt32.self), sessionId: try r.readString("sessionId"),
                        sessionToken: try r.readString("sessionToken"), from: try r.readEnum("from", DeviceKind.self)))
            case 3:
                let requestId = try r.readVarint("requestId", as: UInt32.self)
                var list: [SessionSummary] = []
                for _ in 0..<(try r.readCount("sessions.count", minBytes: 4)) {
                    list.append(
                        SessionSummary(
                            sessionId: try r.readString("sessionId"), device: try r.readEnum("device", DeviceKind.self),
                            sceneId: try r.readString("sceneId"), lastSeenMs: try r.readVarint("lastSeenMs")))
                }
                m = .handoff(.sessions(requestId: requestId, list))
            default:
                throw ProtocolError(.invalidValue, "handoff.kind")
            }
        case .error:
            m = .error(
                code: ErrorCode(rawValue: try r.readVarint("code", as: UInt16.self)),
                requestId: try r.readVarint("requestId", as: UInt32.self), message: try r.readString("message"))
        case .pong:
            m = .pong(nonce: try r.readVarint("nonce"), serverTimeMs: try r.readVarint("serverTimeMs"))
        default:
            throw ProtocolError(.unknownMessageType(type.rawValue), "server message")
        }
        try r.expectEnd()
        return m
    }
}

/// The protocol versions this implementation speaks.
public enum ProtocolVersion {
    /// The version described by `Protocol/SPEC.md` §1–10 (what a client that asks for nothing else gets).
    public static let current: UInt32 = 1
    /// The versions this implementation speaks: 2 has range-coded frame bodies (§11) and the ack window in welcome;
    /// 3 is 2 with the `anchors` message (§12).
    public static let supported: ClosedRange<UInt32> = 1...3
    /// The frame encoding a connection of `version` gets (version 3's frames are version 2's).
    public static func frameEncoding(_ version: UInt32) -> UInt32 { min(version, 2) }
    /// The WebSocket subprotocol name.
    public static let subprotocol = "scenestream.v1"
}
