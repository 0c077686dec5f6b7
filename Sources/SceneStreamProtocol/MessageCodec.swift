import SceneStreamDeflate

/// Limits a decoder enforces before it allocates (`SPEC.md` §2.3).
public struct DecodeLimits: Hashable, Sendable {
    /// Largest message accepted, as received.
    public var maxMessageBytes: Int
    /// Largest body accepted after inflating.
    public var maxInflatedBytes: Int

    /// Creates limits; defaults allow 1 MiB on the wire and 16 MiB inflated.
    public init(maxMessageBytes: Int = 1 << 20, maxInflatedBytes: Int = 16 << 20) {
        self.maxMessageBytes = maxMessageBytes
        self.maxInflatedBytes = maxInflatedBytes
    }
}

/// Envelope flag bits (`SPEC.md` §2.2).
public enum EnvelopeFlags {
    /// The body is one raw DEFLATE stream.
    public static let deflated: UInt8 = 0x01
}

/// Encodes messages into envelopes, compressing bodies when that makes them smaller. One owner at a time.
public final class MessageEncoder {
    private let deflater: Deflater
    /// Bodies shorter than this are never compressed.
    public var compressionThreshold: Int

    /// Creates an encoder; `level` is zlib's (1 fastest … 9 smallest).
    public init(level: Int32 = 6, compressionThreshold: Int = 64) throws(DeflateError) {
        deflater = try Deflater(level: level)
        self.compressionThreshold = compressionThreshold
    }

    /// Wraps `body` in an envelope of `type`, deflating it if `compress` and that saves bytes.
    public func envelope(_ type: MessageType, body: [UInt8], compress: Bool) -> [UInt8] {
        if compress && body.count >= compressionThreshold {
            let packed = deflater.compress(body)
            if packed.count < body.count {
                var out = [UInt8]()
                out.reserveCapacity(packed.count + 2)
                out.append(type.rawValue)
                out.append(EnvelopeFlags.deflated)
                out.append(contentsOf: packed)
                return out
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(body.count + 2)
        out.append(type.rawValue)
        out.append(0)
        out.append(contentsOf: body)
        return out
    }

    /// Encodes a server message; frames and other large bodies are compressed when it helps.
    public func encode(_ message: ServerMessage, compress: Bool = true) -> [UInt8] {
        let (type, body) = message.encodedBody()
        return envelope(type, body: body, compress: compress)
    }

    /// Encodes a client message; client messages are small and sent uncompressed.
    public func encode(_ message: ClientMessage) -> [UInt8] {
        let (type, body) = message.encodedBody()
        return envelope(type, body: body, compress: false)
    }
}

@available(*, unavailable)
extension MessageEncoder: Sendable {}

/// Decodes envelopes into messages, enforcing ``DecodeLimits``. One owner at a time.
public final class MessageDecoder {
    private let inflater: Inflater
    /// The limits applied to every message.
    public var limits: DecodeLimits

    /// Creates a decoder.
    public init(limits: DecodeLimits = DecodeLimits()) throws(DeflateError) {
        inflater = try Inflater()
        self.limits = limits
    }

    /// Checks the envelope and returns the message type and inflated body.
    public func open(_ message: [UInt8]) throws(ProtocolError) -> (MessageType, [UInt8]) {
        guard message.count <= limits.maxMessageBytes else {
            throw ProtocolError(.tooLarge(limit: limits.maxMessageBytes), "message")
        }
        guard message.count >= 2 else { throw ProtocolError(.truncated, "envelope") }
        let type = MessageType(rawValue: message[0])
        let flags = message[1]
        guard flags & ~EnvelopeFlags.deflated == 0 else { throw ProtocolError(.reservedFlags(flags), "envelope(\(type))") }
        if flags & EnvelopeFlags.deflated != 0 {
            do {
                let body = try inflater.decompress(message[2...], limit: limits.maxInflatedBytes)
                return (type, body)
            } catch {
                if case .outputLimitExceeded(let limit) = error.kind {
                    throw ProtocolError(.tooLarge(limit: limit), "\(type) body")
                }
                throw ProtocolError(.compression, "\(type) body: \(error)")
            }
        }
        return (type, Array(message[2...]))
    }

    /// Decodes a message the server sent.
    public func decodeServerMessage(_ message: [UInt8]) throws(ProtocolError) -> ServerMessage {
        let (type, body) = try open(message)
        return try ServerMessage.decode(type: type, body: body)
    }

    /// Decodes a message a client sent.
    public func decodeClientMessage(_ message: [UInt8]) throws(ProtocolError) -> ClientMessage {
        let (type, body) = try open(message)
        return try ClientMessage.decode(type: type, body: body)
    }
}

@available(*, unavailable)
extension MessageDecoder: Sendable {}

// MARK: - Bodies

extension WireWriter {
    mutating func writePose(_ p: Pose) {
        writeString(p.anchor)
        writeZigZag(Int64(p.position.x))
        writeZigZag(Int64(p.position.y))
        writeZigZag(Int64(p.position.z))
        SceneFrame.writeRotation(
            RotationCode(isDelta: false, largest: p.rotation.largest, p.rotation.a, p.rotation.b, p.rotation.c), &self)
    }

    mutating func writeOptionalIndex(_ i: UInt32?) { writeVarint(i.map { UInt64($0) + 1 } ?? 0) }
}

extension WireReader {
    mutating func readPose(_ field: String) throws(ProtocolError) -> Pose {
        let anchor = try readString("\(field).anchor")
        let pos = try SceneFrame.readVec(&self, "\(field).position")
        let rot = try SceneFrame.readRotation(&self, "\(field).rotation")
        guard !rot.isDelta else { throw ProtocolError(.invalidValue, "\(context).\(field).rotation") }
        return Pose(anchor: anchor, position: pos, rotation: rot.applied(to: .identity))
    }

    mutating func readOptionalIndex(_ field: String) throws(ProtocolError) -> UInt32? {
        let v = try readVarint(field)
        if v == 0 { return nil }
        guard v - 1 <= UInt64(UInt32.max) else { throw ProtocolError(.invalidValue, "\(context).\(field)") }
        return UInt32(v - 1)
    }

    mutating func readEnum<E: RawRepresentable>(_ field: String, _: E.Type) throws(ProtocolError) -> E where E.RawValue == UInt8 {
        guard let e = E(rawValue: try readU8(field)) else { throw ProtocolError(.invalidValue, "\(context).\(field)") }
        return e
    }
}

extension ClientMessage {
    /// The message type and body bytes.
    public func encodedBody() -> (MessageType, [UInt8]) {
        var w = WireWriter(capacity: 64)
        let type: MessageType
        switch self {
        case .hello(let minV, let maxV, let device, let name, let token, let resumeToken, let resumeVersion):
            type = .hello
            w.writeVarint(minV)
            w.writeVarint(maxV)
            w.writeU8(device.rawValue)
            w.writeString(name)
            w.writeString(token)
            w.writeString(resumeToken)
            w.writeVarint(resumeVersion)
        case .subscribe(let requestId, let i):
            type = .subscribe
            w.writeVarint(requestId)
            w.writeString(i.sceneId)
            if let r = i.region {
                w.writeU8(1)
                w.writeString(r.anchor)
                SceneFrame.writeVec(r.min, &w)
                SceneFrame.writeVec(r.max, &w)
            } else {
                w.writeU8(0)
            }
            w.writeVarint(i.layers.count)
            for l in i.layers { w.writeString(l) }
            w.writeVarint(i.zones.count)
            for z in i.zones { w.writeString(z) }
            w.writeVarint(i.rateHz)
            w.writeVarint(i.byteBudget)
        case .ack(let v):
            type = .ack
            w.writeVarint(v)
        case .presence(let head, let left, let right, let pointer, let target):
            type = .presence
            let parts = [head, left, right, pointer]
            var mask: UInt8 = 0
            for (k, p) in parts.enumerated() where p != nil { mask |= 1 << UInt8(k) }
            w.writeU8(mask)
            for p in parts { if let p { w.writePose(p) } }
            w.writeOptionalIndex(target)
        case .select(let nodes):
            type = .select
            w.writeVarint(nodes.count)
            for n in nodes { w.writeVarint(n) }
        case .annotate(let requestId, let node, let offset, let text, let remove):
            type = .annotate
            w.writeVarint(requestId)
            w.writeVarint(node)
            SceneFrame.writeVec(offset, &w)
            w.writeString(text)
            w.writeString(remove)
        case .handoffOffer(let requestId, let keep):
            type = .handoffOffer
            w.writeVarint(requestId)
            w.writeU8(keep ? 1 : 0)
        case .handoffClaim(let requestId, let code, let sessionId):
            type = .handoffClaim
            w.writeVarint(requestId)
            w.writeString(code)
            w.writeString(sessionId)
        case .playback(let op, let time, let speed):
            type = .playback
            w.writeU8(op.rawValue)
            w.writeVarint(time)
            w.writeVarint(speed)
        case .ping(let nonce):
            type = .ping
            w.writeVarint(nonce)
        case .listSessions(let requestId):
            type = .listSessions
            w.writeVarint(requestId)
        case .refreshToken(let token):
            type = .refreshToken
            w.writeString(token)
        case .follow(let userId):
            type = .follow
            w.writeString(userId)
        }
        return (type, w.bytes)
    }

    /// Decodes the body of a client message of `type`.
    public static func decode(type: MessageType, body: [UInt8]) throws(ProtocolError) -> ClientMessage {
        var r = WireReader(body, context: type.description)
        let m: ClientMessage
        switch type {
        case .hello:
            let minV = try r.readVarint("minVersion", as: UInt32.self)
            let maxV = try r.readVarint("maxVersion", as: UInt32.self)
            guard minV <= maxV else { throw ProtocolError(.invalidValue, "hello.minVersion > maxVersion") }
            m = .hello(
                minVersion: minV, maxVersion: maxV, device: try r.readEnum("device", DeviceKind.self),
                clientName: try r.readString("clientName"), token: try r.readString("token"),
                resumeToken: try r.readString("resumeToken"), resumeVersion: try r.readVarint("resumeVersion"))
        case .subscribe:
            let requestId = try r.readVarint("requestId", as: UInt32.self)
            let sceneId = try r.readString("sceneId")
            var region: Region?
            switch try r.readU8("hasRegion") {
            case 0: region = nil
            case 1:
                region = Region(
                    anchor: try r.readString("region.anchor"), min: try SceneFrame.readVec(&r, "region.min"),
                    max: try SceneFrame.readVec(&r, "region.max"))
            default: throw ProtocolError(.invalidValue, "subscribe.hasRegion")
            }
            var layers: [String] = []
            for _ in 0..<(try r.readCount("layers.count")) { layers.append(try r.readString("layers")) }
            var zones: [String] = []
            for _ in 0..<(try r.readCount("zones.count")) { zones.append(try r.readString("zones")) }
            let rate = try r.readVarint("rateHz", as: UInt32.self)
            let budget = try r.readVarint("byteBudget", as: UInt32.self)
            m = .subscribe(
                requestId: requestId,
                interest: InterestSpec(
                    sceneId: sceneId, region: region, layers: layers, zones: zones, rateHz: rate, byteBudget: budget))
        case .ack:
            m = .ack(version: try r.readVarint("version"))
        case .presence:
            let mask = try r.readU8("parts")
            guard mask & 0xF0 == 0 else { throw ProtocolError(.invalidValue, "presence.parts") }
            var poses: [Pose?] = []
            let names = ["head", "leftHand", "rightHand", "pointer"]
            for k in 0..<4 { poses.append(mask & (1 << UInt8(k)) != 0 ? try r.readPose(names[k]) : nil) }
            m = .presence(
                head: poses[0], leftHand: poses[1], rightHand: poses[2], pointer: poses[3],
                pointerTarget: try r.readOptionalIndex("pointerTarget"))
        case .select:
            var nodes: [UInt32] = []
            for _ in 0..<(try r.readCount("nodes.count")) { nodes.append(try r.readVarint("nodes", as: UInt32.self)) }
            m = .select(nodes: nodes)
        case .annotate:
            m = .annotate(
                requestId: try r.readVarint("requestId", as: UInt32.self), node: try r.readVarint("node", as: UInt32.self),
                offset: try SceneFrame.readVec(&r, "offset"), text: try r.readString("text"),
                remove: try r.readString("remove"))
        case .handoffOffer:
            m = .handoffOffer(requestId: try r.readVarint("requestId", as: UInt32.self), keepOldDevice: try r.readBool("keepOldDevice"))
        case .handoffClaim:
            m = .handoffClaim(
                requestId: try r.readVarint("requestId", as: UInt32.self), code: try r.readString("code"),
                sessionId: try r.readString("sessionId"))
        case .playback:
            m = .playback(
                op: try r.readEnum("op", PlaybackOp.self), timeMs: try r.readVarint("timeMs"),
                speedMilli: try r.readVarint("speedMilli", as: UInt32.self))
        case .ping:
            m = .ping(nonce: try r.readVarint("nonce"))
        case .listSessions:
            m = .listSessions(requestId: try r.readVarint("requestId", as: UInt32.self))
        case .refreshToken:
            m = .refreshToken(token: try r.readString("token"))
        case .follow:
            m = .follow(userId: try r.readString("userId"))
        default:
            throw ProtocolError(.unknownMessageType(type.rawValue), "client message")
        }
        try r.expectEnd()
        return m
    }
}

extension ServerMessage {
    /// The message type and body bytes.
    public func encodedBody() -> (MessageType, [UInt8]) {
        var w = WireWriter(capacity: 256)
        let type: MessageType
        switch self {
        case .welcome(let version, let sessionId, let token, let serverName, let heartbeat, let maxBytes, let scenes):
            type = .welcome
            w.writeVarint(version)
            w.writeString(sessionId)
            w.writeString(token)
            w.writeString(serverName)
            w.writeVarint(heartbeat)
            w.writeVarint(maxBytes)
            w.writeVarint(scenes.count)
            for s in scenes { w.writeString(s) }
        case .frame(let f):
            type = f.isKeyframe ? .keyframe : .delta
            f.encodeBody(into: &w)
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
    public static func decode(type: MessageType, body: [UInt8]) throws(ProtocolError) -> ServerMessage {
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
            m = .welcome(
                version: version, sessionId: sessionId, sessionToken: token, serverName: name, heartbeatMs: heartbeat,
                maxMessageBytes: maxBytes, scenes: scenes)
        case .keyframe, .delta:
            m = .frame(try SceneFrame.decodeBody(&r, isKeyframe: type == .keyframe))
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
    /// The version described by `Protocol/SPEC.md`.
    public static let current: UInt32 = 1
    /// The WebSocket subprotocol name.
    public static let subprotocol = "scenestream.v1"
}
