import Foundation
import SceneStreamCluster
import SceneStreamCore
import SceneStreamStorage
import SceneStreamProtocol
import SceneStreamSessions
import SceneStreamTransport

/// Sessions, rooms, presence, selection, annotations, handoff and resume. Service thread only, like the rest.
extension StreamingServer {
    // MARK: hello and resume

    func hello(_ c: Client, token: String, resumeToken: String, resumeVersion: UInt64) -> ReceiveAction {
        if let auth = authenticator {
            // Verify off the service thread (the machine is verifying), then carry on there.
            let box = LoopBound(c, loop: loop)
            let me = LoopBound(self, loop: loop)
            let loop = self.loop!
            let now = Self.wallMs()
            let log = logger
            Task {
                let result = await auth.verify(token, nowMs: now)
                log.debug("token checked", metadata: ["result": "\(result)"])
                loop.post {
                    let c = box.value
                    let s = me.value
                    s.logger.debug("hello verified", metadata: ["conn": "\(c.id)", "known": "\(s.clients[c.id] === c)"])
                    guard s.clients[c.id] === c else { return }
                    switch result {
                    case .success(let identity):
                        c.machine.verified(expiresMs: identity.expiresMs)
                        _ = s.establish(c, identity: identity, token: token, resumeToken: resumeToken, resumeVersion: resumeVersion)
                    case .failure(let why):
                        s.refuseToken(c, why)
                    }
                    s.loop.requestWrite(c.id)
                }
            }
            return .keep
        }
        guard let identity = Identity.fromDemoToken(token) else {
            enqueue(c, .error(code: .unauthenticated, requestId: 0, message: "token not accepted (this server takes demo:USER[:ROLE])"))
            c.machine.refused()
            c.closeAfterFlush = true
            return .keep
        }
        return establish(c, identity: identity, token: token, resumeToken: resumeToken, resumeVersion: resumeVersion)
    }

    func refuseToken(_ c: Client, _ why: AuthFailure) {
        metrics.authFailures.increment()
        let (code, text): (ErrorCode, String)
        switch why {
        case .missing: (code, text) = (.unauthenticated, "a bearer token is required")
        case .invalid(let why): (code, text) = (.unauthenticated, "token not valid: \(why.prefix(100))")
        case .expired: (code, text) = (.tokenExpired, "token expired")
        case .notYetValid: (code, text) = (.unauthenticated, "token not valid yet (nbf)")
        case .wrongAudience: (code, text) = (.unauthenticated, "token is for another audience")
        }
        logger.notice("token refused", metadata: ["conn": "\(c.id)", "peer": "\(c.peer)", "reason": "\(why)"])
        enqueue(c, .error(code: code, requestId: 0, message: text))
        c.machine.refused()
        c.held = []
        c.closeAfterFlush = true
    }

    /// The interest a client may have: its zones narrowed to the ones its identity allows.
    func allowedFilter(_ interest: InterestSpec, _ s: Session?) -> InterestFilter {
        var f = InterestFilter(interest)
        if let allowed = s?.identity.zones {
            let z = f.zones.isEmpty ? allowed : f.zones.intersection(allowed)
            f.zones = z.isEmpty ? ["\u{0}none"] : z
        }
        return f
    }

    func refresh(_ c: Client, token: String) {
        guard let auth = authenticator, let s = c.session else { return }
        let box = LoopBound(c, loop: loop)
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let userId = s.identity.userId
        let now = Self.wallMs()
        Task {
            let result = await auth.verify(token, nowMs: now)
            loop.post {
                let c = box.value
                guard let s = c.session else { return }
                switch result {
                case .success(let id) where id.userId == userId:
                    s.identity.expiresMs = id.expiresMs
                    c.machine.refreshed(expiresMs: id.expiresMs)
                case .success:
                    me.value.refuseToken(c, .invalid("another subject"))
                case .failure(let why):
                    me.value.refuseToken(c, why)
                }
                me.value.loop.requestWrite(c.id)
            }
        }
    }

    /// Expired tokens close their connections (unless refreshed in time); a connection that never says hello goes.
    func checkDeadlines(nowMs: UInt64) {
        let nowNs = DispatchTime.now().uptimeNanoseconds
        let handshakeNs = UInt64(configuration.handshakeTimeoutSeconds) * 1_000_000_000
        for c in clients.values where !c.closeAfterFlush {
            switch c.machine.deadline(nowNs: nowNs, nowMs: nowMs, handshakeNs: handshakeNs) {
            case .noHello?:
                metrics.limitHits.increment()
                _ = refuse(c, .unauthenticated, "no hello within \(configuration.handshakeTimeoutSeconds) s", closeCode: 1008)
            case .tokenExpired?:
                refuseToken(c, .expired)
                loop.requestWrite(c.id)
            case nil:
                break
            }
        }
    }

    func establish(_ c: Client, identity: Identity, token: String, resumeToken: String, resumeVersion: UInt64, askCluster: Bool = true) -> ReceiveAction {
        let nowMs = Self.wallMs()
        if askCluster, !resumeToken.isEmpty, sessionsByToken[resumeToken] == nil, sharedSessions != nil {
            establishFromCluster(c, identity: identity, token: token, resumeToken: resumeToken, resumeVersion: resumeVersion)
            return .keep
        }
        let sameUser = sessions.values.filter { $0.identity.userId == identity.userId && $0.primary != nil }.count
        if sameUser >= configuration.maxConnectionsPerUser {
            metrics.limitHits.increment()
            enqueue(c, .error(code: .rateLimited, requestId: 0, message: "too many connections for \(identity.userId)"))
            c.closeAfterFlush = true
            return .keep
        }
        var session: Session
        if !resumeToken.isEmpty, let s = sessionsByToken[resumeToken],
            s.identity.userId == identity.userId || (authenticator == nil && token.isEmpty)
        {
            if authenticator != nil { s.identity = identity }
            session = s
            // A device that was still attached (a half-dead connection) is replaced.
            if let old = s.primary, old != c.id, let oc = clients[old] {
                oc.session = nil
                loop.close(old, code: 1000, reason: "session resumed elsewhere")
            }
            // Resume from what the client says it applied, if the server still knows that version and filter.
            let inFlight = s.pendingUnacked + (s.primary.flatMap { clients[$0] }.map { Array($0.unacked) } ?? [])
            c.resumeBase = ResumePoint.choose(acked: s.acked, inFlight: inFlight, resumeVersion: resumeVersion)
            s.pendingUnacked = []
            metrics.resumes.increment()
            announce(s, keepOld: false)
            logger.info("session resumed", metadata: ["session": "\(s.id)", "from": "\(resumeVersion)", "delta": "\(c.resumeBase != nil)"])
        } else {
            session = Session(
                id: "s-" + Self.randomHex(6), token: "st-" + Self.randomHex(16), identity: identity, device: c.device, nowMs: nowMs)
            session.color = Session.distinctColor(for: identity.userId, taken: colorsInUse())
            sessions[session.id] = session
            sessionsByToken[session.token] = session
        }
        session.primary = c.id
        session.playback = .live  // a new connection starts live (its playback controller does)
        session.device = c.device
        session.detachedAtMs = nil
        session.lastSeenMs = nowMs
        updateMembership(session)
        persist(session)
        c.session = session
        c.sessionId = session.id
        enqueue(
            c,
            .welcome(
                version: c.machine.version, sessionId: session.id, sessionToken: session.token, serverName: "scenestream",
                heartbeatMs: UInt32(configuration.heartbeatMs), maxMessageBytes: UInt32(configuration.maxClientMessageBytes),
                scenes: [runtime.scene.id], ackWindow: UInt32(configuration.ackWindow)))
        releaseHeld(c)
        return .keep
    }

    /// A connection went away: the session keeps its place (for resume and pull handoff) until it expires.
    func detach(_ c: Client) {
        guard let s = c.session else { return }
        c.session = nil
        s.companions.remove(c.id)
        if s.primary == c.id {
            s.primary = nil
            // Remember what the dropped device had acknowledged and was sent.
            if let last = c.unacked.last, s.acked == nil || s.acked!.version < last.version { s.pendingUnacked = Array(c.unacked) }
            s.detachedAtMs = Self.wallMs()
            persist(s)
            // A pose sent just before the drop must not bring the avatar back at the next presence tick.
            presenceRelay.drop(s.id)
            removePresence(s)
            updateMembership(s)
        }
    }

    /// Puts session `s` in the room or takes it out: a member is a session whose primary device is subscribed.
    /// Called wherever a primary or a subscription changes; the roster turns it into per-user changes.
    func updateMembership(_ s: Session) {
        let live = sessions[s.id] === s && s.primary.flatMap { clients[$0] }?.subscription != nil
        room.set(s.id, live ? member(s) : nil)
    }

    /// Room members, in a stable order, with their primary devices.
    func members() -> [(Session, Client)] {
        room.sessionIds().compactMap { id in
            guard let s = sessions[id], let p = s.primary, let c = clients[p] else { return nil }
            return (s, c)
        }
    }

    func sessionState(for s: Session, members list: [(Session, Client)]) -> SessionState {
        SessionState(
            sessionId: s.id, userId: s.identity.userId, role: s.identity.role, roomId: runtime.scene.id,
            members: list.map { member($0.0) },
            selection: s.selection, followUserId: s.followUserId, playback: s.playback, viewpoint: s.viewpoint)
    }

    /// Tells the room what changed this tick: a session whose own state changed (it joined, selected, follows, took
    /// over) gets its whole `sessionState`; every other member gets one `roomMembers` with the users whose entries
    /// changed, encoded once. A join or a leave costs each member a few bytes, so a room of n costs O(n) per change
    /// rather than O(n²).
    func syncRoom() {
        let changes = room.takeChanges()
        guard !changes.isEmpty else { return }
        let list = members()
        let delta = changes.delta.isEmpty ? nil : encoder.encode(.roomMembers(roomId: runtime.scene.id, changes: changes.delta))
        for (s, c) in list {
            let devices = [c] + s.companions.compactMap { clients[$0] }
            if changes.fullState.contains(s.id) {
                let state = encoder.encode(.sessionState(sessionState(for: s, members: list)))
                for d in devices { enqueue(d, encoded: state) }
            } else if let delta {
                for d in devices { enqueue(d, encoded: delta) }
            }
        }
    }

    func member(_ s: Session) -> Member {
        Member(userId: s.identity.userId, displayName: s.identity.displayName, device: s.device, role: s.identity.role, color: s.color)
    }

    // MARK: presence

    func presence(_ c: Client, _ p: PresenceUpdate) {
        guard let s = c.session, c.subscription != nil else {
            enqueue(c, .error(code: .notSubscribed, requestId: 0, message: "presence before subscribe"))
            return
        }
        // The latest pose wins; it is applied at the next tick (at most presenceHz per client, see applyPresence).
        presenceRelay.submit(s.id, p)
        if let head = p.head { s.viewpoint = head }
    }

    static let presencePrefix = "~presence."

    /// The colour each user with a device connected here (or a stand-in for one on another node) has; sessions
    /// waiting to be resumed do not hold a colour.
    func colorsInUse() -> [String: UInt32] {
        var taken: [String: UInt32] = [:]
        for s in sessions.values where s.primary != nil || !s.companions.isEmpty { taken[s.identity.userId] = s.color }
        if let remote = cluster?.remoteSessions { for s in remote.values { taken[s.identity.userId] = s.color } }
        return taken
    }

    /// Poses released this tick become avatar nodes in the scene (on a fan-out node: go to the owner, which
    /// places them).
    func applyPresence() {
        for (id, p) in presenceRelay.release(tick: tickIndex) {
            if isFollower {
                if let s = sessions[id], let c = s.primary.flatMap({ clients[$0] }) {
                    forward(c, s, .presence(head: p.head, leftHand: p.left, rightHand: p.right, pointer: p.pointer, pointerTarget: nil))
                }
                continue
            }
            guard let s = sessions[id] ?? cluster?.remoteSessions[id], let anchor = (p.head ?? p.pointer ?? p.left ?? p.right)?.anchor,
                runtime.scene.anchors.contains(where: { $0.id == anchor })
            else { continue }
            if let old = s.presenceAnchor, old != anchor { removePresence(s) }
            s.presenceAnchor = anchor
            let g = runtime.graph
            let root = Self.presencePrefix + anchor
            if g.index(of: root) == nil { _ = try? g.add(NodeSpec(id: root, anchor: anchor, layer: "presence")) }
            let group = "\(root)/\(s.identity.userId)"
            if g.index(of: group) == nil {
                _ = try? g.add(NodeSpec(id: group, color: s.color))
            }
            let parts: [(String, Pose?, String)] = [
                ("head", p.head, "models/avatar-head.gltf"), ("left", p.left, "models/avatar-hand.gltf"),
                ("right", p.right, "models/avatar-hand.gltf"), ("pointer", p.pointer, "models/avatar-pointer.gltf"),
            ]
            let q = g.quantization
            for (name, pose, asset) in parts {
                let id = "\(group)/\(name)"
                var index = g.index(of: id)
                if index == nil, pose != nil {
                    // The name tag rides on the head (the group itself stays at the anchor's origin).
                    index = try? g.add(NodeSpec(id: id, color: s.color, label: name == "head" ? s.identity.displayName : "", asset: asset))
                }
                guard let i = index else { continue }
                g.update(i) { n in
                    if let pose {
                        let m = Pose.quantization.metres(pose.position)
                        n.translation = q.position(m.0, m.1, m.2)
                        n.rotation = q.rotation(Pose.quantization.quaternion(pose.rotation))
                        n.visible = true
                    } else {
                        n.visible = false
                    }
                }
            }
        }
    }

    /// The session's avatar and selection markers leave the scene (on a fan-out node: the owner is told).
    func removePresence(_ s: Session) {
        if isFollower {
            leaveCollaboration(s)
            return
        }
        if let anchor = s.presenceAnchor, let i = runtime.graph.index(of: "\(Self.presencePrefix)\(anchor)/\(s.identity.userId)") {
            runtime.graph.remove(i)
        }
        s.presenceAnchor = nil
        for target in s.selection { removeMarker(s, target) }
    }

    // MARK: selection

    func markerId(_ s: Session, _ target: UInt32) -> String? {
        runtime.graph.id(of: target).map { "\($0)/~sel-\(s.identity.userId)" }
    }

    func removeMarker(_ s: Session, _ target: UInt32) {
        if let id = markerId(s, target), let i = runtime.graph.index(of: id) { runtime.graph.remove(i) }
    }

    func select(_ c: Client, _ nodes: [UInt32]) {
        guard let s = c.session, let sub = c.subscription else {
            enqueue(c, .error(code: .notSubscribed, requestId: 0, message: "select before subscribe"))
            return
        }
        switch chosenNodes(nodes, visible: engine.membership(sub.filter)) {
        case .failure(let r):
            enqueue(c, .error(code: r.code, requestId: 0, message: r.message))
            return
        case .success(let chosen):
            // A fan-out node's copy is the owner's: the owner places the markers.
            if isFollower { forward(c, s, .select(nodes: chosen)) } else { applySelection(s, chosen) }
            s.selection = chosen
        }
        persist(s)
        room.stateChanged(s.id)
    }

    /// The nodes of a selection (at most 64, each once), or why not: every one must be in `visible` and a node of
    /// the plant (not a marker, avatar or note).
    func chosenNodes(_ nodes: [UInt32], visible: Bitset) -> Result<[UInt32], ActRefusal> {
        var chosen: [UInt32] = []
        for n in nodes.prefix(64) {
            guard visible.contains(Int(n)), let id = runtime.graph.id(of: n), !id.contains("/~") else {
                return .failure(ActRefusal(code: .unknownNode, message: "node \(n) is not in your view"))
            }
            if !chosen.contains(n) { chosen.append(n) }
        }
        return .success(chosen)
    }

    /// Moves session `s`'s selection markers in the scene to `chosen`. Owner.
    func applySelection(_ s: Session, _ chosen: [UInt32]) {
        for old in s.selection where !chosen.contains(old) { removeMarker(s, old) }
        for n in chosen where !s.selection.contains(n) {
            if let id = markerId(s, n), runtime.graph.index(of: id) == nil {
                _ = try? runtime.graph.add(NodeSpec(id: id, color: s.color, asset: "models/selection-ring.gltf", layer: "presence"))
            }
        }
        s.selection = chosen
    }

    // MARK: annotations

    static func noteId(_ a: Annotation) -> String { "\(a.nodeId)/~note-\(a.id)" }

    func addNoteNode(_ a: Annotation) {
        guard runtime.graph.index(of: a.nodeId) != nil else { return }
        let off = a.offset.count == 3 ? a.offset : [0, 0, 0]
        _ = try? runtime.graph.add(
            NodeSpec(
                id: Self.noteId(a), translation: (Double(off[0]) / 1000, Double(off[1]) / 1000, Double(off[2]) / 1000),
                color: 0xF2C94CFF, label: a.text, asset: "models/note-pin.gltf", layer: "annotations"))
    }

    func restoreAnnotations() {
        for a in annotations.items where a.sceneId == runtime.scene.id { addNoteNode(a) }
    }

    func annotate(_ c: Client, requestId: UInt32, node: UInt32, offset: QVec3, text: String, remove: String) {
        guard let s = c.session, let sub = c.subscription else {
            enqueue(c, .error(code: .notSubscribed, requestId: requestId, message: "annotate before subscribe"))
            return
        }
        let visible = engine.membership(sub.filter)
        let refusal: ActRefusal?
        if isFollower {
            // Checked here for a quick answer, and again by the owner, which also keeps the limits and the notes.
            refusal = annotationCheck(s, node: node, text: text, remove: remove, visible: visible)
            if refusal == nil { forward(c, s, .annotate(requestId: requestId, node: node, offset: offset, text: text, remove: remove)) }
        } else {
            refusal = annotate(s, node: node, offset: offset, text: text, remove: remove, visible: visible)
        }
        if let refusal {
            if refusal.code == .forbidden { metrics.refusals.increment() }
            if refusal.code == .rateLimited { metrics.limitHits.increment() }
            enqueue(c, .error(code: refusal.code, requestId: requestId, message: refusal.message))
        }
    }

    /// What any node can check of an annotation: the role, and for a new note its text and that its node is in
    /// `visible`.
    func annotationCheck(_ s: Session, node: UInt32, text: String, remove: String, visible: Bitset) -> ActRefusal? {
        guard s.identity.role != .viewer else { return ActRefusal(code: .forbidden, message: "viewers cannot annotate") }
        guard remove.isEmpty else { return nil }
        guard visible.contains(Int(node)), let target = runtime.graph.id(of: node), !target.contains("/~") else {
            return ActRefusal(code: .unknownNode, message: "node \(node) is not in your view")
        }
        guard !text.isEmpty else { return ActRefusal(code: .malformed, message: "empty annotation") }
        return nil
    }

    /// Adds or removes a note for session `s` (owner): the checks above, then who may remove it, then the limits —
    /// a rate per user, caps per user and per scene.
    func annotate(_ s: Session, node: UInt32, offset: QVec3, text: String, remove: String, visible: Bitset) -> ActRefusal? {
        if let refusal = annotationCheck(s, node: node, text: text, remove: remove, visible: visible) { return refusal }
        if !remove.isEmpty {
            guard let a = annotations.items.first(where: { $0.id == remove }) else {
                return ActRefusal(code: .unknownNode, message: "no annotation \(remove)")
            }
            guard a.author == s.identity.userId || s.identity.role == .host else {
                return ActRefusal(code: .forbidden, message: "only the author or a host removes an annotation")
            }
            _ = annotations.remove(remove)
            annotationWriter?.save(annotations.items)
            if let i = runtime.graph.index(of: Self.noteId(a)) { runtime.graph.remove(i) }
            return nil
        }
        let user = s.identity.userId
        if let refusal = annotationLimits.admit(
            user: user, userCount: annotations.countByAuthor[user, default: 0], sceneCount: annotations.items.count,
            nowNs: DispatchTime.now().uptimeNanoseconds)
        {
            return ActRefusal(code: .rateLimited, message: refusal.description)
        }
        let a = Annotation(
            id: "a-" + Self.randomHex(4), sceneId: runtime.scene.id, nodeId: runtime.graph.id(of: node) ?? "",
            offset: [offset.x, offset.y, offset.z], text: String(text.prefix(500)), author: user, timeMs: Self.wallMs())
        annotations.add(a)
        annotationWriter?.save(annotations.items)
        addNoteNode(a)
        return nil
    }

    // MARK: handoff

    func offer(_ c: Client, requestId: UInt32, keepOldDevice: Bool) {
        guard let s = c.session else { return }
        if sharedSessions != nil { return offerShared(c, requestId: requestId, keepOldDevice: keepOldDevice) }
        let now = Self.wallMs()
        var random = SystemRandomNumberGenerator()
        var code = HandoffBook.make(using: &random)
        var offered = handoffs.offer(code: code, sessionId: s.id, userId: s.identity.userId, keepOldDevice: keepOldDevice, nowMs: now)
        while offered == nil {
            code = HandoffBook.make(using: &random)
            offered = handoffs.offer(code: code, sessionId: s.id, userId: s.identity.userId, keepOldDevice: keepOldDevice, nowMs: now)
        }
        let expires = offered!
        let base = configuration.publicURL.isEmpty ? "\(configuration.tlsCertificate == nil ? "http" : "https")://127.0.0.1:\(port)" : configuration.publicURL
        enqueue(c, .handoff(.offer(requestId: requestId, code: code, url: "\(base)/?claim=\(code)", expiresMs: expires)))
    }

    /// Claims are rate-limited per connection and for the whole server (``ClaimLimiter``).
    func claimAllowed(_ c: Client) -> Bool {
        claims.allow(&c.claimRate, nowNs: DispatchTime.now().uptimeNanoseconds)
    }

    /// `local`: a cluster's claim of a code this node offered, already counted against the limits.
    func claim(_ c: Client, requestId: UInt32, code rawCode: String, sessionId: String, local: Bool = false) {
        guard let me = c.session else { return }
        guard local || claimAllowed(c) else {
            metrics.refusals.increment()
            enqueue(c, .error(code: .rateLimited, requestId: requestId, message: "too many handoff claims; wait a minute"))
            return
        }
        if !rawCode.isEmpty, sharedSessions != nil, !local { return claimShared(c, requestId: requestId, code: rawCode) }
        let now = Self.wallMs()
        var target: Session?
        var keepOld = false
        if !rawCode.isEmpty {
            switch handoffs.claim(rawCode, userId: me.identity.userId, nowMs: now, sessionExists: { sessions[$0] != nil }) {
            case .success(let h):
                target = sessions[h.sessionId]
                keepOld = h.keepOldDevice
            case .failure(let why):
                refuseClaim(c, requestId: requestId, why)
                return
            }
        } else {
            guard let s = sessions[sessionId], s.identity.userId == me.identity.userId, s.id != me.id else {
                metrics.refusals.increment()
                enqueue(c, .error(code: .handoffCodeInvalid, requestId: requestId, message: "no such session of yours"))
                return
            }
            target = s
        }
        guard let s = target else { return }
        takeOver(s, by: c, requestId: requestId, keepOld: keepOld)
        announce(s, keepOld: keepOld)
    }

    /// Moves session `s` to connection `c`: the old device is told, the new one gets the view state and a keyframe
    /// of the same interest; room members see a device switch, not a leave and a join.
    func takeOver(_ s: Session, by c: Client, requestId: UInt32, keepOld: Bool) {
        let started = DispatchTime.now().uptimeNanoseconds
        let fromDevice = s.device
        if let mine = c.session, mine !== s {
            // The claiming device's own, fresh session goes away.
            removePresence(mine)
            sessions[mine.id] = nil
            sessionsByToken[mine.token] = nil
            presenceRelay.drop(mine.id)
            room.set(mine.id, nil)
            forget(mine)
        }
        let old = s.primary.flatMap { clients[$0] }
        // The moment in the past the old device watched, if any: the new one goes on watching it.
        let watching = old?.playbackControl.watching
        s.playback = .live
        s.primary = c.id
        s.device = c.device
        s.detachedAtMs = nil
        c.session = s
        c.sessionId = s.id
        persist(s)
        enqueue(c, .handoff(.claimed(requestId: requestId, sessionId: s.id, sessionToken: s.token, from: fromDevice)))
        if let interest = s.interest {
            setSubscription(c, subscription(interest, for: s, sent: nil))
            c.nextDueTick = 0
            c.unacked.removeAll()
            broadcastActive(to: c)
            sendAnchors(to: c)
            if let w = watching {
                perform(c.playbackControl.command(w.playing ? .play : .seek, timeMs: w.cursorMs, speedMilli: w.speedMilli, nowMs: Self.wallMs()), for: c)
            }
        }
        if let old, old !== c {
            enqueue(old, .handoff(.handedOff(to: c.device, detached: !keepOld)))
            if keepOld {
                // The old device stays attached as a companion and keeps streaming its own interest.
                s.companions.insert(old.id)
            } else {
                old.session = nil
                setSubscription(old, nil)
                old.closeAfterFlush = true
                old.closeReason = "session handed off"
                old.closeCode = 1000
            }
        }
        metrics.handoffs.increment()
        // Members see a device switch (one change for the user), never a leave and a join.
        updateMembership(s)
        room.stateChanged(s.id)
        loop.requestWrite(c.id)
        logger.info(
            "handoff", metadata: ["session": "\(s.id)", "to": "\(c.device)", "from": "\(fromDevice)",
                                  "us": "\((DispatchTime.now().uptimeNanoseconds - started) / 1000)"])
    }

    func listSessions(_ c: Client, requestId: UInt32) {
        guard let me = c.session else { return }
        let list = sessions.values.filter { $0.identity.userId == me.identity.userId && $0.id != me.id }.sorted { $0.lastSeenMs > $1.lastSeenMs }
            .map { SessionSummary(sessionId: $0.id, device: $0.device, sceneId: $0.interest?.sceneId ?? runtime.scene.id, lastSeenMs: $0.lastSeenMs) }
        enqueue(c, .handoff(.sessions(requestId: requestId, list)))
    }

    func follow(_ c: Client, userId: String) {
        guard let s = c.session else { return }
        guard userId.isEmpty || room.contains(user: userId) else {
            enqueue(c, .error(code: .unknownNode, requestId: 0, message: "\(userId) is not in the room"))
            return
        }
        s.followUserId = userId
        persist(s)
        room.stateChanged(s.id)
        if !userId.isEmpty { joinPlayback(c, leader: userId) }
    }

    // MARK: housekeeping

    func expireSessions(nowMs: UInt64) {
        handoffs.expire(nowMs: nowMs)
        let idleMs = UInt64(configuration.sessionIdleSeconds) * 1000
        for s in sessions.values where s.primary == nil && s.companions.isEmpty {
            if let d = s.detachedAtMs, nowMs > d + idleMs {
                removePresence(s)
                sessions[s.id] = nil
                sessionsByToken[s.token] = nil
                presenceRelay.drop(s.id)
                room.set(s.id, nil)
                forget(s)
            } else if s.detachedAtMs == nil {
                s.detachedAtMs = nowMs
            }
        }
        for s in sessions.values where s.primary != nil { s.lastSeenMs = nowMs }
    }

    // MARK: durability

    /// Writes the session's record (identity, token, device, interest, selection, follow) to storage.
    func persist(_ s: Session) {
        shareSession(s)
        guard let storage else { return }
        let record = SessionRecord(s) { runtime.graph.id(of: $0) }
        guard let data = try? JSONEncoder().encode(record) else { return }
        storage.saveSessionLater(id: s.id, data: [UInt8](data))
    }

    /// Removes the session's record.
    func forget(_ s: Session) {
        storage?.deleteSessionLater(id: s.id)
        sharedSessions?.deleteSession(key: ClusterSessions.key(token: s.token))
    }

    /// Sessions saved before a restart, detached until a device resumes (token) or pulls (listSessions) them.
    func restoreSessions(_ rows: [(id: String, data: [UInt8])], nowMs: UInt64) {
        var restored = 0
        for (id, data) in rows {
            guard let record = try? JSONDecoder().decode(SessionRecord.self, from: Data(data)),
                let s = record.session(nodeIndex: { runtime.graph.index(of: $0) }, nowMs: nowMs)
            else {
                logger.warning("session record unreadable; dropped", metadata: ["session": "\(id)"])
                storage?.deleteSessionLater(id: id)
                continue
            }
            sessions[s.id] = s
            sessionsByToken[s.token] = s
            restored += 1
        }
        if restored > 0 { logger.info("sessions restored", metadata: ["count": "\(restored)"]) }
    }
}
