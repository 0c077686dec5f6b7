import Dispatch
import Foundation
import Logging
import SceneStreamCluster
import SceneStreamCore
import SceneStreamNATS
import SceneStreamProtocol

/// This node's part in a cluster, owned by the service thread: the NATS connection and, by role, the commit
/// publisher and owner lease (owner) or the commit follower (fan-out).
final class ClusterLink {
    let configuration: ClusterConfiguration
    let subjects: ClusterSubjects
    let connection: NATSConnection
    var publisher: CommitPublisher?
    var follower: CommitFollower?
    var lease: OwnerLease?
    var follow = FollowState()
    /// The version last published, and when the last keyframe was.
    var lastPublished: UInt64 = 0
    var lastKeyframeVersion: UInt64 = 0
    var lastKeyframeMs: UInt64 = 0
    /// Counts already turned into metrics.
    var publishedSeen = CommitPublisher.Counts()
    var followedSeen = CommitFollower.Counts()
    var leaseSeen = (renewals: 0, failures: 0)
    var refusedLogged = 0
    var wasConnected = true

    init(configuration: ClusterConfiguration, subjects: ClusterSubjects, connection: NATSConnection) {
        self.configuration = configuration
        self.subjects = subjects
        self.connection = connection
    }

    var isFollower: Bool { follower != nil }
}

extension StreamingServer {
    /// Whether this node serves a copy of another node's scene (it never changes the scene itself).
    var isFollower: Bool { cluster?.isFollower == true }

    /// Joins the cluster: connects to NATS and, as an owner, takes the scene's lease (refusing to start when another
    /// owner holds it), opens the commit stream and continues its version sequence; as a fan-out node, prepares to
    /// follow it. Runs once, in `init`.
    static func joinCluster(_ cc: ClusterConfiguration, scene: String, graph: SceneGraph, logger: Logger) throws -> ClusterLink {
        let subjects = ClusterSubjects(scene: scene)
        let conn: NATSConnection
        do {
            conn = try NATSConnection(servers: cc.servers, name: "scenestream-\(cc.node)", security: cc.security)
        } catch {
            throw ClusterError("cannot reach the cluster at \(cc.servers.joined(separator: ",")): \(error)")
        }
        let link = ClusterLink(configuration: cc, subjects: subjects, connection: conn)
        switch cc.role {
        case .fanout:
            link.follower = try CommitFollower(connection: conn, subjects: subjects)
        case .owner:
            let lease = try OwnerLease(connection: conn, key: subjects.leaseKey, node: cc.node, leaseSeconds: cc.leaseSeconds, replicas: cc.replicas)
            if let holder = try lease.acquire() {
                throw ClusterError(
                    "scene '\(scene)' is owned by node '\(holder)': start this node with --standby to take over when that one stops, or with --role fanout to serve copies of it")
            }
            link.lease = lease
            let publisher = try CommitPublisher(
                connection: conn, subjects: subjects, replicas: cc.replicas, retentionSeconds: cc.retentionSeconds)
            link.publisher = publisher
            // Continue the stream's versions: a client or fan-out node that has version N must never see an N again.
            let decoder = try MessageDecoder()
            var newest: UInt64 = 1
            for m in [try publisher.lastKeyframe(), try publisher.lastCommit()].compactMap({ $0 }) {
                if case .frame(let f)? = try? decoder.decodeServerMessage(m.payload) { newest = max(newest, f.version) }
            }
            graph.continueVersions(after: newest)
            logger.info(
                "cluster: owner of the scene, publishing commits", metadata: ["node": "\(cc.node)", "stream": "\(subjects.stream)", "from": "\(graph.version + 1)"])
        }
        return link
    }

    /// Starts what runs in the background: the lease's renewal, the follower.
    func startCluster() {
        guard let c = cluster else { return }
        c.follower?.start()
        let logger = self.logger
        c.lease?.keepRenewed { holder in
            // Another owner took the scene (this process paused longer than the lease): two owners would fork the
            // version sequence, so this one stops.
            logger.critical("cluster: lost the scene's lease to another owner; stopping", metadata: ["holder": "\(holder)"])
            kill(getpid(), SIGTERM)
        }
    }

    /// Stops the background parts: everything queued is published, the lease is given up (a standby takes over at
    /// once instead of after it expires), the follower stops.
    func stopCluster() {
        guard let c = cluster else { return }
        c.publisher?.drain()
        c.lease?.release()
        c.follower?.stop()
    }

    // MARK: owner

    /// After a commit: publishes the versions since the last publish (an unfiltered delta), and a keyframe every
    /// `keyframeSeconds` or when the publisher asks for one (after a failure). Service thread; NATS work is the
    /// publisher's, on its queue.
    func replicate(nowMs: UInt64) {
        guard let c = cluster, let pub = c.publisher else { return }
        let v = runtime.graph.version
        if v != c.lastPublished {
            let base = c.lastPublished == 0 ? nil : ClientBaseline(version: c.lastPublished, filter: .everything)
            if let f = engine.encodedFrame(from: base, filter: .everything) {
                if f.isKeyframe {
                    pub.publishKeyframe(f.bytes, version: f.version)
                    c.lastKeyframeVersion = f.version
                    c.lastKeyframeMs = nowMs
                } else {
                    pub.publishCommit(f.bytes, version: f.version)
                }
            }
            c.lastPublished = v
        }
        let due = nowMs >= c.lastKeyframeMs + UInt64(c.configuration.keyframeSeconds) * 1000
        if (pub.takeKeyframeRequest() || due) && c.lastKeyframeVersion != v || c.lastKeyframeVersion == 0 {
            if let k = engine.encodedFrame(from: nil, filter: .everything) {
                pub.publishKeyframe(k.bytes, version: k.version)
                c.lastKeyframeVersion = k.version
                c.lastKeyframeMs = nowMs
            }
        } else if due {
            c.lastKeyframeMs = nowMs  // nothing changed since the last keyframe: it is still the scene
        }
    }

    // MARK: fan-out

    /// Takes the frames the follower received and applies them to this node's copy, in order; a gap or a frame
    /// that does not fit starts again from the stream's last keyframe. Service thread.
    func followCommits() {
        guard let c = cluster, let follower = c.follower else { return }
        let (frames, refused) = follower.take()
        for r in refused {
            c.refusedLogged += 1
            if c.refusedLogged <= 5 || c.refusedLogged % 1000 == 0 {
                logger.warning("cluster: stream message refused", metadata: ["reason": "\(r)", "count": "\(c.refusedLogged)"])
            }
        }
        for f in frames {
            let base: UInt64
            if case .delta(let b) = f.kind { base = b } else { base = 0 }
            switch c.follow.decide(keyframe: f.isKeyframe, base: base, version: f.version, current: runtime.graph.version) {
            case .skip:
                continue
            case .apply:
                do {
                    try runtime.graph.follow(f)
                    metrics.commitsApplied.increment()
                } catch {
                    c.follow.failed()
                    logger.warning("cluster: a commit did not fit this copy; catching up from the last keyframe", metadata: ["version": "\(f.version)", "reason": "\(error)"])
                    follower.resync()
                    return
                }
            case .resync(let from, let to):
                logger.notice("cluster: versions missed; catching up from the last keyframe", metadata: ["from": "\(from)", "to": "\(to)"])
                follower.resync()
                return
            }
        }
        if !frames.isEmpty {
            metrics.sceneVersion.set(Double(runtime.graph.version))
            metrics.nodeChanges.increment(by: runtime.graph.lastChangeCount)
        }
    }

    /// Once a second: NATS connection state and the publisher's and follower's counts as metrics, and their
    /// failures in the log.
    func clusterHousekeeping() {
        guard let c = cluster else { return }
        let up = c.connection.isConnected
        if up != c.wasConnected {
            c.wasConnected = up
            if up { logger.notice("cluster: NATS connection back") } else { logger.warning("cluster: NATS connection lost; reconnecting") }
        }
        metrics.clusterConnected.set(up ? 1 : 0)
        metrics.clusterOwner.set(c.publisher != nil ? 1 : 0)
        if let p = c.publisher {
            let now = p.snapshot
            metrics.commitsPublished.increment(by: now.commits - c.publishedSeen.commits)
            metrics.keyframesPublished.increment(by: now.keyframes - c.publishedSeen.keyframes)
            metrics.publishFailures.increment(by: now.failures - c.publishedSeen.failures)
            c.publishedSeen = now
            if let e = p.takeError() { logger.warning("cluster: publishing commits failed (a keyframe follows when NATS takes them again)", metadata: ["reason": "\(e)"]) }
        }
        if let l = c.lease {
            let now = l.counts
            metrics.kvOperations.increment(by: now.renewals + now.failures - c.leaseSeen.renewals - c.leaseSeen.failures)
            metrics.kvFailures.increment(by: now.failures - c.leaseSeen.failures)
            c.leaseSeen = now
        }
        if let f = c.follower {
            let now = f.snapshot
            metrics.commitsReceived.increment(by: now.received - c.followedSeen.received)
            metrics.catchUps.increment(by: now.catchUps - c.followedSeen.catchUps)
            metrics.clusterRefused.increment(by: now.refused - c.followedSeen.refused)
            c.followedSeen = now
            metrics.clusterLag.set(Double(c.follow.lag(current: runtime.graph.version)))
            metrics.clusterSynced.set(c.follow.synced ? 1 : 0)
        }
    }

    /// What `/healthz` adds for a cluster node: its role and name, the owner, how far behind it is.
    func clusterHealth() -> [String: Any] {
        guard let c = cluster else { return [:] }
        var out: [String: Any] = [
            "role": c.configuration.role.rawValue, "node": c.configuration.node, "version": runtime.graph.version,
            "nats": c.connection.isConnected ? "connected" : "reconnecting",
        ]
        if c.publisher != nil {
            out["owner"] = c.configuration.node
            out["lag"] = 0
        } else {
            out["lag"] = c.follow.lag(current: runtime.graph.version)
            out["synced"] = c.follow.synced
        }
        return out
    }
}
