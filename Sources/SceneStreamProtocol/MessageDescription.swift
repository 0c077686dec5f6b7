/// Renders messages as JSON-compatible values (dictionaries, arrays, strings, numbers, bools), the readable form
/// used by `Protocol/vectors/*.json` and by `scenestream watch`.
public enum MessageDescription {
    /// A JSON-compatible description of a server message.
    public static func describe(_ m: ServerMessage) -> [String: Any] {
        switch m {
        case .welcome(let version, let sessionId, let token, let serverName, let heartbeat, let maxBytes, let scenes, let window):
            var d: [String: Any] = [
                "type": "welcome", "version": Int(version), "sessionId": sessionId, "sessionToken": token,
                "serverName": serverName, "heartbeatMs": Int(heartbeat), "maxMessageBytes": Int(maxBytes), "scenes": scenes,
            ]
            if version >= 2 { d["ackWindow"] = Int(window) }
            return d
        case .frame(let f):
            var d: [String: Any] = [
                "version": String(f.version), "timeMs": String(f.timeMs), "nodeSpace": Int(f.nodeSpace),
                "entered": f.entered.map { describe($0) },
            ]
            switch f.kind {
            case .keyframe(let sceneId, let q):
                d["type"] = "keyframe"
                d["sceneId"] = sceneId
                d["quantization"] = ["positionUnitsPerMetre": Int(q.positionUnitsPerMetre), "rotationBits": Int(q.rotationBits)]
            case .delta(let base):
                d["type"] = "delta"
                d["baseVersion"] = String(base)
                d["removed"] = f.removed.map { Int($0) }
                d["updated"] = f.updated.map { describe($0) }
            }
            return d
        case .alerts(let alerts):
            return [
                "type": "alerts",
                "alerts": alerts.map { a in
                    [
                        "id": a.id, "node": a.node.map { Int($0) } as Any, "severity": "\(a.severity)", "state": "\(a.state)",
                        "timeMs": String(a.timeMs), "message": a.message,
                    ] as [String: Any]
                },
            ]
        case .roomMembers(let roomId, let changes):
            return [
                "type": "roomMembers", "roomId": roomId,
                "changes": changes.map { c in
                    [
                        "userId": c.userId,
                        "members": c.members.map {
                            ["displayName": $0.displayName, "device": "\($0.device)", "role": "\($0.role)", "color": Int($0.color)] as [String: Any]
                        },
                    ] as [String: Any]
                },
            ]
        case .anchors(let sceneId, let anchors):
            return [
                "type": "anchors", "sceneId": sceneId,
                "anchors": anchors.map { a in
                    [
                        "id": a.id, "position": [Int(a.position.x), Int(a.position.y), Int(a.position.z)],
                        "rotation": (0..<4).map { Int(a.rotation[$0]) },
                        "handles": a.handles.map { ["platform": $0.platform, "value": $0.value] },
                        "updatedMs": String(a.updatedMs),
                    ] as [String: Any]
                },
            ]
        case .sessionState(let s):
            return [
                "type": "sessionState", "sessionId": s.sessionId, "userId": s.userId, "role": "\(s.role)", "roomId": s.roomId,
                "members": s.members.map {
                    ["userId": $0.userId, "displayName": $0.displayName, "device": "\($0.device)", "role": "\($0.role)", "color": Int($0.color)] as [String: Any]
                },
                "selection": s.selection.map { Int($0) }, "followUserId": s.followUserId,
                "playback": ["mode": "\(s.playback.mode)", "cursorMs": String(s.playback.cursorMs), "speedMilli": Int(s.playback.speedMilli)],
                "viewpoint": s.viewpoint.map { describe($0) } as Any,
            ]
        case .handoff(let n):
            switch n {
            case .offer(let requestId, let code, let url, let expires):
                return ["type": "handoff", "kind": "offer", "requestId": Int(requestId), "code": code, "url": url, "expiresMs": String(expires)]
            case .handedOff(let to, let detached):
                return ["type": "handoff", "kind": "handedOff", "to": "\(to)", "detached": detached]
            case .claimed(let requestId, let sessionId, let token, let from):
                return ["type": "handoff", "kind": "claimed", "requestId": Int(requestId), "sessionId": sessionId, "sessionToken": token, "from": "\(from)"]
            case .sessions(let requestId, let list):
                return [
                    "type": "handoff", "kind": "sessions", "requestId": Int(requestId),
                    "sessions": list.map {
                        ["sessionId": $0.sessionId, "device": "\($0.device)", "sceneId": $0.sceneId, "lastSeenMs": String($0.lastSeenMs)] as [String: Any]
                    },
                ]
            }
        case .error(let code, let requestId, let message):
            return ["type": "error", "code": Int(code.rawValue), "codeName": "\(code)", "requestId": Int(requestId), "message": message]
        case .pong(let nonce, let time):
            return ["type": "pong", "nonce": String(nonce), "serverTimeMs": String(time)]
        }
    }

    /// A JSON-compatible description of a client message.
    public static func describe(_ m: ClientMessage) -> [String: Any] {
        switch m {
        case .hello(let minV, let maxV, let device, let name, let token, let resumeToken, let resumeVersion):
            return [
                "type": "hello", "minVersion": Int(minV), "maxVersion": Int(maxV), "device": "\(device)", "clientName": name,
                "token": token, "resumeToken": resumeToken, "resumeVersion": String(resumeVersion),
            ]
        case .subscribe(let requestId, let i):
            var d: [String: Any] = [
                "type": "subscribe", "requestId": Int(requestId), "sceneId": i.sceneId, "layers": i.layers, "zones": i.zones,
                "rateHz": Int(i.rateHz), "byteBudget": Int(i.byteBudget),
            ]
            if let r = i.region { d["region"] = ["anchor": r.anchor, "min": vec(r.min), "max": vec(r.max)] }
            return d
        case .ack(let v):
            return ["type": "ack", "version": String(v)]
        case .presence(let head, let left, let right, let pointer, let target):
            var d: [String: Any] = ["type": "presence"]
            if let head { d["head"] = describe(head) }
            if let left { d["leftHand"] = describe(left) }
            if let right { d["rightHand"] = describe(right) }
            if let pointer { d["pointer"] = describe(pointer) }
            if let target { d["pointerTarget"] = Int(target) }
            return d
        case .select(let nodes):
            return ["type": "select", "nodes": nodes.map { Int($0) }]
        case .annotate(let requestId, let node, let offset, let text, let remove):
            return ["type": "annotate", "requestId": Int(requestId), "node": Int(node), "offset": vec(offset), "text": text, "remove": remove]
        case .handoffOffer(let requestId, let keep):
            return ["type": "handoffOffer", "requestId": Int(requestId), "keepOldDevice": keep]
        case .handoffClaim(let requestId, let code, let sessionId):
            return ["type": "handoffClaim", "requestId": Int(requestId), "code": code, "sessionId": sessionId]
        case .playback(let op, let time, let speed):
            return ["type": "playback", "op": "\(op)", "timeMs": String(time), "speedMilli": Int(speed)]
        case .ping(let nonce):
            return ["type": "ping", "nonce": String(nonce)]
        case .listSessions(let requestId):
            return ["type": "listSessions", "requestId": Int(requestId)]
        case .refreshToken(let token):
            return ["type": "refreshToken", "token": token]
        case .follow(let userId):
            return ["type": "follow", "userId": userId]
        case .requestKeyframe(let requestId):
            return ["type": "requestKeyframe", "requestId": Int(requestId)]
        }
    }

    static func vec(_ v: QVec3) -> [Int] { [Int(v.x), Int(v.y), Int(v.z)] }

    static func rot(_ r: QRotation) -> [String: Any] { ["largest": Int(r.largest), "abc": [Int(r.a), Int(r.b), Int(r.c)]] }

    static func describe(_ p: Pose) -> [String: Any] { ["anchor": p.anchor, "position": vec(p.position), "rotation": rot(p.rotation)] }

    static func describe(_ e: NodeEntry) -> [String: Any] {
        let n = e.node
        var d: [String: Any] = ["index": Int(e.index)]
        let f = n.differences(from: .defaults)
        if f.contains(.structure) {
            d["parent"] = n.parent.map { Int($0) } as Any
            d["name"] = n.name
        }
        if f.contains(.anchor) { d["anchor"] = n.anchor }
        if f.contains(.translation) { d["translation"] = vec(n.translation) }
        if f.contains(.rotation) { d["rotation"] = rot(n.rotation) }
        if f.contains(.scale) { d["scale"] = vec(n.scale) }
        if f.contains(.color) { d["color"] = Int(n.color) }
        if f.contains(.visible) { d["visible"] = n.visible }
        if f.contains(.label) { d["label"] = n.label }
        if f.contains(.asset) { d["asset"] = n.asset }
        if f.contains(.layer) { d["layer"] = n.layer }
        if f.contains(.zone) { d["zone"] = n.zone }
        return d
    }

    static func describe(_ u: NodeUpdate) -> [String: Any] {
        var d: [String: Any] = ["index": Int(u.index)]
        let f = u.fields
        if f.contains(.anchor) { d["anchor"] = u.anchor }
        if f.contains(.translation) { d["translationDelta"] = vec(u.translation) }
        if f.contains(.rotation) {
            d[u.rotation.isDelta ? "rotationDelta" : "rotation"] =
                u.rotation.isDelta
                ? [Int(u.rotation.a), Int(u.rotation.b), Int(u.rotation.c)] as Any
                : ["largest": Int(u.rotation.largest), "abc": [Int(u.rotation.a), Int(u.rotation.b), Int(u.rotation.c)]] as Any
        }
        if f.contains(.scale) { d["scaleDelta"] = vec(u.scale) }
        if f.contains(.color) { d["color"] = Int(u.color) }
        if f.contains(.visible) { d["visible"] = u.visible }
        if f.contains(.label) { d["label"] = u.label }
        if f.contains(.asset) { d["asset"] = u.asset }
        if f.contains(.layer) { d["layer"] = u.layer }
        if f.contains(.zone) { d["zone"] = u.zone }
        return d
    }
}
