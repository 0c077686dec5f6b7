import Foundation
import SceneStreamCluster
import SceneStreamCore
import SceneStreamProtocol
import SceneStreamSessions
import SceneStreamTransport

/// Sessions and handoff codes across a cluster: records every node can read (resume on any node), codes claimed
/// once across the cluster, and takeovers announced so the node holding the old device tells it. Service thread;
/// NATS work is ``ClusterSessions``', its answers posted back here.
extension StreamingServer {
    /// A takeover announcement: session `sessionId` now streams from `node` to a `device`.
    struct Takeover: Codable {
        var sessionId: String
        var node: String
        var device: UInt8
        var keepOld: Bool
    }

    var sharedSessions: ClusterSessions? { cluster?.sessions }

    /// Writes the session's record where every node sees it (no token in it: the key is the token's hash).
    func shareSession(_ s: Session) {
        guard let shared = sharedSessions else { return }
        var record = SessionRecord(s) { runtime.graph.id(of: $0) }
        record.token = ""
        guard let data = try? JSONEncoder().encode(record) else { return }
        shared.saveSession(key: ClusterSessions.key(token: s.token), [UInt8](data))
    }

    /// Resume with a token this node does not know: look the session up in the cluster (off this thread), then
    /// establish — the session, if another node had it; a new one otherwise. Until then the connection waits.
    func establishFromCluster(_ c: Client, identity: Identity, token: String, resumeToken: String, resumeVersion: UInt64) {
        guard let shared = sharedSessions else { return }
        c.awaitingCluster = true
        let box = LoopBound(c, loop: loop)
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        shared.loadSession(key: ClusterSessions.key(token: resumeToken)) { result in
            loop.post {
                let c = box.value
                let s = me.value
                guard s.clients[c.id] === c else { return }
                c.awaitingCluster = false
                if case .success(let data?) = result, var record = try? JSONDecoder().decode(SessionRecord.self, from: Data(data)),
                    s.sessions[record.id] == nil
                {
                    record.token = resumeToken
                    if let restored = record.session(nodeIndex: { s.runtime.graph.index(of: $0) }, nowMs: Self.wallMs()) {
                        // Versions are global: the device's own version, under the session's interest, is a baseline
                        // this node can make a delta from.
                        if resumeVersion > 0, let interest = restored.interest {
                            restored.acked = ClientBaseline(version: resumeVersion, filter: s.allowedFilter(interest, restored))
                        }
                        s.sessions[restored.id] = restored
                        s.sessionsByToken[restored.token] = restored
                        s.announce(restored, keepOld: false)
                    }
                } else if case .failure(let e) = result {
                    s.metrics.kvFailures.increment()
                    s.logger.warning("cluster: session lookup failed; starting a new session", metadata: ["conn": "\(c.id)", "reason": "\(e)"])
                }
                _ = s.establish(c, identity: identity, token: token, resumeToken: resumeToken, resumeVersion: resumeVersion, askCluster: false)
                s.loop.requestWrite(c.id)
            }
        }
    }

    /// Tells the other nodes this one streams `s` now.
    func announce(_ s: Session, keepOld: Bool) {
        guard let shared = sharedSessions, let node = cluster?.configuration.node,
            let data = try? JSONEncoder().encode(Takeover(sessionId: s.id, node: node, device: s.device.rawValue, keepOld: keepOld))
        else { return }
        shared.announceTaken([UInt8](data))
    }

    /// Another node took session `t.sessionId` over: its device here is told and let go (unless it stays), and the
    /// session's state leaves this node (the other one has it now).
    func takenElsewhere(_ t: Takeover) {
        guard t.node != cluster?.configuration.node, let s = sessions[t.sessionId] else { return }
        let device = DeviceKind(rawValue: t.device) ?? .unknown
        if let old = s.primary.flatMap({ clients[$0] }) {
            enqueue(old, .handoff(.handedOff(to: device, detached: !t.keepOld)))
            if t.keepOld { return }
            old.session = nil
            setSubscription(old, nil)
            old.closeAfterFlush = true
            old.closeReason = "session handed off"
            old.closeCode = 1000
        }
        removePresence(s)
        sessions[s.id] = nil
        sessionsByToken[s.token] = nil
        presenceRelay.drop(s.id)
        room.set(s.id, nil)
        storage?.deleteSessionLater(id: s.id)
        logger.info("cluster: session taken over by another node", metadata: ["session": "\(s.id)", "node": "\(t.node)"])
    }

    // MARK: handoff codes

    /// A claim sent to the node that offered the code, and its answer.
    struct ClaimRequest: Codable {
        var code: String
        var userId: String
        /// The claiming node and the device kind that claims (so the offering node can let its device go at once).
        var node: String?
        var device: UInt8?
    }

    struct ClaimAnswer: Codable {
        /// "won", or the refusal: "unknown", "used", "expired".
        var result: String
    }

    /// Offers a code every node can claim: kept in this node's book (which alone decides its claims) and named in
    /// the cluster's bucket (created once: a code drawn twice is drawn again), with this node as its decider.
    func offerShared(_ c: Client, requestId: UInt32, keepOldDevice: Bool, attempt: Int = 0) {
        guard let shared = sharedSessions, let s = c.session, let node = cluster?.configuration.node else { return }
        var random = SystemRandomNumberGenerator()
        let code = HandoffBook.make(using: &random)
        let now = Self.wallMs()
        guard let expires = handoffs.offer(code: code, sessionId: s.id, userId: s.identity.userId, keepOldDevice: keepOldDevice, nowMs: now) else {
            return offerShared(c, requestId: requestId, keepOldDevice: keepOldDevice, attempt: attempt + 1)
        }
        let record = SharedHandoffCode(
            sessionId: s.id, userId: s.identity.userId, expiresMs: expires, keepOldDevice: keepOldDevice,
            sessionKey: ClusterSessions.key(token: s.token), node: node)
        guard let data = try? JSONEncoder().encode(record) else { return }
        shareSession(s)
        let box = LoopBound(c, loop: loop)
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        shared.offer(code: code, [UInt8](data)) { result in
            loop.post {
                let c = box.value
                let me = me.value
                guard me.clients[c.id] === c else { return }
                switch result {
                case .success(true):
                    me.enqueue(c, .handoff(.offer(requestId: requestId, code: code, url: "\(me.publicBase)/?claim=\(code)", expiresMs: expires)))
                case .success(false) where attempt < 5:
                    me.offerShared(c, requestId: requestId, keepOldDevice: keepOldDevice, attempt: attempt + 1)
                case .success(false), .failure:
                    me.metrics.kvFailures.increment()
                    me.enqueue(c, .error(code: .internalError, requestId: requestId, message: "handoff codes are unavailable: the cluster does not answer"))
                }
            }
        }
    }

    /// Answers another node's claim of a code this node offered (service thread: one decision at a time, so a
    /// code is claimed once however many nodes race for it).
    func decideClaim(_ request: [UInt8], reply: String) {
        guard let shared = sharedSessions else { return }
        var answer = ClaimAnswer(result: "unknown")
        var won: Takeover?
        if let r = try? JSONDecoder().decode(ClaimRequest.self, from: Data(request)) {
            switch handoffs.claim(r.code, userId: r.userId, nowMs: Self.wallMs(), sessionExists: { sessions[$0] != nil }) {
            case .success(let code):
                answer.result = "won"
                if let node = r.node { won = Takeover(sessionId: code.sessionId, node: node, device: r.device ?? 0, keepOld: code.keepOldDevice) }
            case .failure(.unknown): answer.result = "unknown"
            case .failure(.used): answer.result = "used"
            case .failure(.expired): answer.result = "expired"
            }
        }
        shared.reply(to: reply, (try? JSONEncoder().encode(answer)).map { [UInt8]($0) } ?? [])
        // The claim is decided here: the device here is told now, not only when the claiming node's announcement
        // arrives (a core message, which a NATS server restarting can lose; that one then finds nothing to do).
        if let won { takenElsewhere(won) }
    }

    /// Claims a code offered anywhere in the cluster: the node that offered it decides (this one, or another asked
    /// over NATS); then the session is taken over — from this node's memory, or from its record.
    func claimShared(_ c: Client, requestId: UInt32, code rawCode: String) {
        guard let shared = sharedSessions, let me = c.session, let node = cluster?.configuration.node else { return }
        let code = HandoffBook.normalize(rawCode)
        let userId = me.identity.userId
        let box = LoopBound(c, loop: loop)
        let server = LoopBound(self, loop: loop)
        let loop = self.loop!
        shared.loadCode(code) { result in
            loop.post {
                let c = box.value
                let s = server.value
                guard s.clients[c.id] === c else { return }
                switch result {
                case .failure(let e):
                    s.metrics.kvFailures.increment()
                    s.enqueue(c, .error(code: .internalError, requestId: requestId, message: "handoff is unavailable: the cluster does not answer (\(e.description.prefix(80)))"))
                case .success(nil):
                    s.refuseClaim(c, requestId: requestId, .unknown)
                case .success(let bytes?):
                    guard let record = try? JSONDecoder().decode(SharedHandoffCode.self, from: Data(bytes)), record.userId == userId else {
                        return s.refuseClaim(c, requestId: requestId, .unknown)
                    }
                    if record.node == node {
                        // Offered here: the local book decides, as on a single node.
                        return s.claim(c, requestId: requestId, code: code, sessionId: "", local: true)
                    }
                    s.askOfferingNode(record, code: code, by: c, requestId: requestId)
                }
                s.loop.requestWrite(c.id)
            }
        }
    }

    func askOfferingNode(_ record: SharedHandoffCode, code: String, by c: Client, requestId: UInt32) {
        guard let shared = sharedSessions, let userId = c.session?.identity.userId,
            let request = try? JSONEncoder().encode(
                ClaimRequest(code: code, userId: userId, node: cluster?.configuration.node, device: c.device.rawValue))
        else { return }
        let box = LoopBound(c, loop: loop)
        let server = LoopBound(self, loop: loop)
        let loop = self.loop!
        shared.askClaim(node: record.node, [UInt8](request)) { result in
            loop.post {
                let c = box.value
                let s = server.value
                guard s.clients[c.id] === c else { return }
                switch result {
                case .failure:
                    s.metrics.kvFailures.increment()
                    s.enqueue(c, .error(code: .internalError, requestId: requestId, message: "the node that offered this code (\(record.node)) does not answer"))
                case .success(let bytes):
                    switch (try? JSONDecoder().decode(ClaimAnswer.self, from: Data(bytes)))?.result {
                    case "won": s.takeOverShared(record, by: c, requestId: requestId)
                    case "used": s.refuseClaim(c, requestId: requestId, .used)
                    case "expired": s.refuseClaim(c, requestId: requestId, .expired)
                    default: s.refuseClaim(c, requestId: requestId, .unknown)
                    }
                }
                s.loop.requestWrite(c.id)
            }
        }
    }

    /// Answers a refused claim (on one node or across a cluster) with the error code of its reason.
    func refuseClaim(_ c: Client, requestId: UInt32, _ why: HandoffBook.Refusal) {
        metrics.refusals.increment()
        let code: ErrorCode = switch why {
        case .unknown: .handoffCodeInvalid
        case .used: .handoffCodeUsed
        case .expired: .handoffCodeExpired
        }
        enqueue(c, .error(code: code, requestId: requestId, message: why.description))
    }

    /// After a won claim: the session from this node's memory, or loaded from its record (with a new token, so that
    /// the old device's token no longer resumes it).
    func takeOverShared(_ code: SharedHandoffCode, by c: Client, requestId: UInt32) {
        if let s = sessions[code.sessionId] {
            takeOver(s, by: c, requestId: requestId, keepOld: code.keepOldDevice)
            announce(s, keepOld: code.keepOldDevice)
            return
        }
        guard let shared = sharedSessions else { return }
        let box = LoopBound(c, loop: loop)
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        shared.loadSession(key: code.sessionKey) { result in
            loop.post {
                let c = box.value
                let s = me.value
                guard s.clients[c.id] === c else { return }
                let data: [UInt8]
                switch result {
                case .failure(let e):
                    s.metrics.kvFailures.increment()
                    s.logger.warning("cluster: loading a claimed session failed", metadata: ["session": "\(code.sessionId)", "reason": "\(e)"])
                    s.enqueue(c, .error(code: .internalError, requestId: requestId, message: "the session of this code could not be read from the cluster"))
                    return
                case .success(nil):
                    s.logger.warning("cluster: a claimed session has no record", metadata: ["session": "\(code.sessionId)", "key": "\(code.sessionKey.prefix(12))"])
                    s.enqueue(c, .error(code: .handoffCodeInvalid, requestId: requestId, message: "the session of this code is gone"))
                    return
                case .success(let d?): data = d
                }
                guard var record = try? JSONDecoder().decode(SessionRecord.self, from: Data(data)) else {
                    s.enqueue(c, .error(code: .handoffCodeInvalid, requestId: requestId, message: "the session record of this code is unreadable"))
                    return
                }
                record.token = "st-" + Self.randomHex(16)
                guard let session = record.session(nodeIndex: { s.runtime.graph.index(of: $0) }, nowMs: Self.wallMs()) else { return }
                s.sessions[session.id] = session
                s.sessionsByToken[session.token] = session
                if !code.keepOldDevice { shared.deleteSession(key: code.sessionKey) }
                s.takeOver(session, by: c, requestId: requestId, keepOld: code.keepOldDevice)
                s.announce(session, keepOld: code.keepOldDevice)
                s.loop.requestWrite(c.id)
            }
        }
    }

    /// The URL base of handoff links.
    var publicBase: String {
        configuration.publicURL.isEmpty ? "\(configuration.tlsCertificate == nil ? "http" : "https")://127.0.0.1:\(port)" : configuration.publicURL
    }
}
