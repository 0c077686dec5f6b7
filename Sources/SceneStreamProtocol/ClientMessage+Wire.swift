/// Client → server message bodies (`SPEC.md` §4): each message's fields in order.
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
        case .requestKeyframe(let requestId):
            type = .requestKeyframe
            w.writeVarint(requestId)
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
        case .requestKeyframe:
            m = .requestKeyframe(requestId: try r.readVarint("requestId", as: UInt32.self))
        default:
            throw ProtocolError(.unknownMessageType(type.rawValue), "client message")
        }
        try r.expectEnd()
        return m
    }
}
