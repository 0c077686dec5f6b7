import Dispatch
import Foundation
import SceneStreamCluster
import SceneStreamCore
import SceneStreamNATS
import SceneStreamProtocol
import SceneStreamTransport

/// Collaboration across nodes: a fan-out node checks its clients' presence, selections and annotations against
/// what they see, and forwards them to the scene's owner (one ``CollaborationBatch`` a tick at most); the owner
/// checks them again under its own rules (the user's zones and role, annotation limits), applies them to its scene
/// — so they reach every node through the commit stream, like everything else in the scene — and answers
/// refusals to the node they came from. Service thread; NATS work on the link's queue.
extension StreamingServer {
    /// Why an act (a selection, an annotation) was refused: the protocol's error code and a message for the user.
    struct ActRefusal: Error {
        let code: ErrorCode
        let message: String
    }

    // MARK: fan-out

    /// Queues `message` of client `c` for the owner (sent at the end of the tick).
    func forward(_ c: Client, _ s: Session, _ message: ClientMessage) {
        guard let link = cluster else { return }
        let id = s.identity
        link.outgoing.acts.append(
            CollaborationBatch.Act(
                session: s.id, connection: c.id.raw, user: id.userId, name: id.displayName, role: id.role.rawValue,
                zones: id.zones.map { $0.sorted() }, device: s.device.rawValue, message: encoder.encode(message)))
        metrics.collaborationForwarded.increment()
    }

    /// A session left this fan-out node: the owner takes its presence and selection out of the scene.
    func leaveCollaboration(_ s: Session) {
        guard let link = cluster, !link.outgoing.left.contains(s.id) else { return }
        link.outgoing.left.append(s.id)
    }

    /// Sends what this tick's users did to the owner, and every few seconds the sessions still here.
    func sendCollaboration(nowMs: UInt64) {
        guard let link = cluster, isFollower else { return }
        if nowMs >= link.lastAliveMs + Self.collaborationAliveMs {
            link.lastAliveMs = nowMs
            link.outgoing.alive = sessions.values.filter { $0.primary != nil }.map(\.id).sorted()
        }
        guard !link.outgoing.isEmpty else { return }
        let bytes = link.outgoing.encoded()
        link.outgoing = CollaborationBatch(node: link.configuration.node)
        let (conn, subject) = (link.connection, link.subjects.collaboration)
        link.collaborationSends.async { try? conn.publish(subject, bytes) }
    }

    /// How often a fan-out node lists its sessions for the owner (who forgets a node quiet for three times that).
    static let collaborationAliveMs: UInt64 = 5_000

    /// The owner's refusals of this node's acts go back to the clients that made them. Service thread.
    func collaborationAnswered(_ a: CollaborationAnswer) {
        guard let c = clients[ConnectionID(raw: a.connection)], c.session?.id == a.session else { return }
        enqueue(c, .error(code: ErrorCode(rawValue: a.code), requestId: a.requestId, message: a.message))
    }

    /// A fan-out node hears the owner's refusals of its users' acts.
    func listenForAnswers(_ link: ClusterLink) {
        let metrics = self.metrics
        let subject = CollaborationBatch.answersSubject(link.subjects, node: link.configuration.node)
        link.answersSubscription = listen(link, subject, to: "hear the owner's answers to collaboration") { m in
            guard m.payload.count <= 64 * 1024, let a = try? JSONDecoder().decode(CollaborationAnswer.self, from: Data(m.payload)) else {
                metrics.clusterRefused.increment()
                return nil
            }
            return { $0.collaborationAnswered(a) }
        }
    }

    // MARK: owner

    /// The owner hears fan-out nodes' batches (parsed on the NATS thread, at most `maxWaiting` waiting for the
    /// service thread; more are refused and counted).
    func listenForCollaboration(_ link: ClusterLink) {
        let metrics = self.metrics
        let waiting = link.collaborationWaiting
        link.collaborationSubscription = listen(link, link.subjects.collaboration, to: "hear collaboration from fan-out nodes") { m in
            switch CollaborationBatch.decode(m.payload) {
            case .failure(let e):
                metrics.clusterRefused.increment()
                return { $0.collaborationRefused(e.description) }
            case .success(let batch):
                guard waiting.enter() else {
                    metrics.clusterRefused.increment()
                    return nil
                }
                let box = UncheckedSendable(batch)
                return {
                    waiting.leave()
                    $0.collaborate(box.value)
                }
            }
        }
    }

    /// A refused collaboration message: logged the first few times.
    func collaborationRefused(_ why: String) {
        guard let link = cluster else { return }
        link.refusedLogged += 1
        if link.refusedLogged <= 3 { logger.warning("cluster: refused a message on the collaboration subject", metadata: ["reason": "\(why)"]) }
    }

    /// Applies a fan-out node's batch to the scene: each act under the rules the owner's own clients meet, the user
    /// as the fan-out node authenticated them. Service thread.
    func collaborate(_ batch: CollaborationBatch) {
        guard let link = cluster, link.publisher != nil else { return }
        let nowMs = Self.wallMs()
        for id in link.remote.heard(batch, nowMs: nowMs) { dropRemote(id) }
        for act in batch.acts {
            guard let role = Role(rawValue: act.role), let device = DeviceKind(rawValue: act.device), !act.session.isEmpty, !act.user.isEmpty,
                let message = try? decoder.decodeClientMessage([UInt8](act.message))
            else {
                metrics.clusterRefused.increment()
                collaborationRefused("an act from node '\(batch.node)' is not a client message of a known user")
                continue
            }
            let identity = Identity(userId: act.user, displayName: act.name, role: role, zones: act.zones.map(Set.init))
            let s = remoteSession(act.session, identity: identity, device: device, nowMs: nowMs)
            metrics.collaborationApplied.increment()
            let visible = { self.engine.membership(self.httpFilter(identity)) }
            var refusal: (UInt32, ActRefusal)?
            switch message {
            case .presence(let head, let left, let right, let pointer, _):
                presenceRelay.submit(s.id, PresenceUpdate(head: head, left: left, right: right, pointer: pointer))
                if let head { s.viewpoint = head }
            case .select(let nodes):
                switch chosenNodes(nodes, visible: visible()) {
                case .success(let chosen): applySelection(s, chosen)
                case .failure(let r): refusal = (0, r)
                }
            case .annotate(let requestId, let node, let offset, let text, let remove):
                if let r = annotate(s, node: node, offset: offset, text: text, remove: remove, visible: visible()) { refusal = (requestId, r) }
            default:
                metrics.clusterRefused.increment()
                collaborationRefused("node '\(batch.node)' forwarded a \(Self.kind(message)) message")
            }
            if let (requestId, r) = refusal {
                metrics.refusals.increment()
                let answer = CollaborationAnswer(connection: act.connection, session: act.session, requestId: requestId, code: r.code.rawValue, message: r.message)
                if let bytes = try? JSONEncoder().encode(answer) {
                    link.publisher?.publishPlain(CollaborationBatch.answersSubject(link.subjects, node: batch.node), [UInt8](bytes))
                }
            }
        }
    }

    /// The owner's stand-in for a user on another node (no device here): it carries their presence and selection.
    func remoteSession(_ id: String, identity: Identity, device: DeviceKind, nowMs: UInt64) -> Session {
        let link = cluster!
        if let s = link.remoteSessions[id], s.identity == identity {
            s.lastSeenMs = nowMs
            return s
        }
        // New, or the user's rights changed (a refreshed token): a fresh stand-in, the old one's marks removed.
        if link.remoteSessions[id] != nil { dropRemote(id) }
        let s = Session(id: id, token: "", identity: identity, device: device, nowMs: nowMs)
        s.color = Session.distinctColor(for: identity.userId, taken: colorsInUse())
        link.remoteSessions[id] = s
        return s
    }

    /// A remote user left (or their node went quiet): their presence and selection leave the scene.
    func dropRemote(_ id: String) {
        guard let s = cluster?.remoteSessions.removeValue(forKey: id) else { return }
        presenceRelay.drop(id)
        removePresence(s)
    }

    /// After a takeover: avatars and selection markers of users this node has no session for — the old owner's
    /// stand-ins for users on other nodes — leave the scene, so none lingers. Avatars come back with the next pose;
    /// selections when they are made again.
    func removeStrangers() {
        let users = Set(sessions.values.map(\.identity.userId))
        let g = runtime.graph
        var strangers: [UInt32] = []
        for i in g.liveIndices {
            guard let id = g.id(of: i) else { continue }
            var user: Substring?
            if id.hasPrefix(Self.presencePrefix) {
                let parts = id.split(separator: "/")
                if parts.count == 2 { user = parts[1] }
            } else if let r = id.range(of: "/~sel-") {
                user = id[r.upperBound...]
            }
            if let user, !users.contains(String(user)) { strangers.append(i) }
        }
        for i in strangers where g.id(of: i) != nil { _ = g.remove(i) }
    }

    /// Once a second on the owner: users of nodes that went quiet leave the scene.
    func expireRemoteCollaborators(nowMs: UInt64) {
        guard let link = cluster, link.publisher != nil else { return }
        for id in link.remote.expire(nowMs: nowMs) { dropRemote(id) }
    }
}

/// Counts batches handed to the service thread and not yet applied; refuses more than `limit`.
final class WaitingCount: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var count = 0
    let limit: Int

    init(limit: Int) { self.limit = limit }

    /// Takes a place, or says there is none.
    func enter() -> Bool {
        lock.withLock {
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { lock.withLock { count -= 1 } }
}
