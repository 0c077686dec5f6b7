import Dispatch
import Foundation
import Logging
import SceneStreamCluster
import SceneStreamCore
import SceneStreamIngest
import SceneStreamNATS
import SceneStreamProtocol
import SceneStreamSimulation
import SceneStreamTransport

/// This node's part in a cluster, owned by the service thread: the NATS connection and, by role, the commit
/// publisher and owner lease (owner) or the commit follower (fan-out).
final class ClusterLink: @unchecked Sendable {
    // @unchecked: owned by the service thread; only `isStopping` (locked) and the thread-safe NATS parts are
    // touched elsewhere.
    let configuration: ClusterConfiguration
    let subjects: ClusterSubjects
    let connection: NATSConnection
    var publisher: CommitPublisher?
    var follower: CommitFollower?
    var lease: OwnerLease?
    /// The owner's log of acknowledged HTTP ingest batches.
    var ingestLog: IngestLog?
    /// The newest log sequence handed to the service thread, and the one the last marker named.
    var ingestAcknowledged: UInt64 = 0
    var ingestMarked: UInt64 = 0
    /// Appends to the ingest log one at a time, so batches reach the service thread in the log's order.
    let ingestAppends = DispatchQueue(label: "scenestream.ingest-log")
    /// A standby's copy of the owner's HTTP batches, into its twin store (so a takeover starts from them).
    var absorbSubscription: NATSSubscription?
    /// Sessions and handoff codes every node sees.
    var sessions: ClusterSessions?
    var sessionsSeen = (operations: 0, failures: 0)
    var follow = FollowState()
    /// The version last published, and when the last keyframe was.
    var lastPublished: UInt64 = 0
    var lastKeyframeVersion: UInt64 = 0
    var lastKeyframeMs: UInt64 = 0
    /// Counts already turned into metrics.
    var publishedSeen = CommitPublisher.Counts()
    var followedSeen = CommitFollower.Counts()
    var leaseSeen = (renewals: 0, failures: 0)
    /// The owner's answer to followers' sync requests.
    var syncSubscription: NATSSubscription?
    /// A standby's lease, waited on until the active owner goes; nil once it is the owner (or for other roles).
    var standbyLease: OwnerLease?
    /// Opens when this node owns the scene (at once for an owner, on takeover for a standby): MQTT waits on it.
    let ownership = Gate()
    private let stopLock = NSLock()
    private var stoppingFlag = false
    /// Batches to apply before any other ingest (read from the ingest log when this node became the owner).
    var replay: [PropertyUpdate] = []
    /// Set when the node shuts down (read by the standby's waiting thread).
    var isStopping: Bool {
        get { stopLock.withLock { stoppingFlag } }
        set { stopLock.withLock { stoppingFlag = newValue } }
    }
    var refusedLogged = 0
    var wasConnected = true
    /// On a fan-out node: the owner's active alerts, by id.
    var activeAlerts: [String: AlertRecord] = [:]
    /// On a fan-out node: whether it hears the owner, and the alert it shows its clients while it does not.
    var ownerWatch: OwnerWatch?
    /// On a fan-out node: playback reads the owner's history; on the owner: it answers.
    var ownerPast: OwnerPast?
    var historySubscription: NATSSubscription?
    let historyAnswers = DispatchQueue(label: "scenestream.history-answers")
    var staleAlert: AlertRecord?
    /// The least (local now − commit time) of the commits received since the last housekeeping, and whether the
    /// clocks were last found apart.
    var clockSample: Int64?
    var clockApart = false
    /// On a fan-out node: what its users did this tick, for the owner; when it last listed its sessions; the
    /// owner's answers.
    var outgoing: CollaborationBatch
    var lastAliveMs: UInt64 = 0
    let collaborationSends = DispatchQueue(label: "scenestream.collaboration")
    var answersSubscription: NATSSubscription?
    /// On the owner: users of other nodes (stand-in sessions), which node each is on, fan-out batches waiting.
    var remoteSessions: [String: Session] = [:]
    var remote = RemoteCollaborators()
    var collaborationSubscription: NATSSubscription?
    let collaborationWaiting = WaitingCount(limit: 256)

    init(configuration: ClusterConfiguration, subjects: ClusterSubjects, connection: NATSConnection) {
        self.configuration = configuration
        self.subjects = subjects
        self.connection = connection
        outgoing = CollaborationBatch(node: configuration.node)
    }

    var isFollower: Bool { follower != nil }
}

extension StreamingServer {
    /// Whether this node serves a copy of another node's scene (it never changes the scene itself).
    var isFollower: Bool { cluster?.isFollower == true }

    /// Joins the cluster: connects to NATS and, as an owner, takes the scene's lease (refusing to start when another
    /// owner holds it), opens the commit stream and continues its version sequence; as a fan-out node, prepares to
    /// follow it. Runs once, in `init`.
    static func joinCluster(_ cc: ClusterConfiguration, scene: String, graph: SceneGraph, codeSeconds: Int, logger: Logger) throws -> ClusterLink {
        let subjects = ClusterSubjects(scene: scene)
        let conn: NATSConnection
        do {
            conn = try NATSConnection(servers: cc.servers, name: "scenestream-\(cc.node)", security: cc.security)
        } catch {
            throw ClusterError("cannot reach the cluster at \(cc.servers.joined(separator: ",")): \(error)")
        }
        let link = ClusterLink(configuration: cc, subjects: subjects, connection: conn)
        // JetStream may be electing a leader (a cluster starting or a server lost): retry for a while.
        func retrying<T>(_ what: String, _ body: () throws -> T) throws -> T {
            let deadline = Date().addingTimeInterval(30)
            while true {
                do { return try body() } catch let e as ClusterError { throw e } catch {
                    guard Date() < deadline else { throw ClusterError("\(what): \(error)") }
                    logger.notice("cluster: \(what) failed; trying again", metadata: ["reason": "\(error)"])
                    Thread.sleep(forTimeInterval: 0.5)
                }
            }
        }
        link.sessions = try retrying("the session buckets") {
            // Records live a day after their last write (a session idle longer starts afresh); codes a minute past
            // their expiry (so a late claim still hears "expired").
            try ClusterSessions(
                connection: conn, subjects: subjects, replicas: cc.replicas, sessionSeconds: 86_400, codeSeconds: codeSeconds + 60, domain: cc.domain)
        }
        switch cc.role {
        case .fanout:
            link.follower = try retrying("following the commit stream") { try CommitFollower(connection: conn, subjects: subjects, domain: cc.domain) }
        case .owner:
            let lease = try retrying("the owner lease bucket") {
                try OwnerLease(connection: conn, key: subjects.leaseKey, node: cc.node, leaseSeconds: cc.leaseSeconds, replicas: cc.replicas, domain: cc.domain)
            }
            if let holder = try retrying("taking the owner lease", { try lease.acquire() }) {
                guard cc.standby else {
                    throw ClusterError(
                        "scene '\(scene)' is owned by node '\(holder)': start this node with --standby to take over when that one stops, or with --role fanout to serve copies of it")
                }
                // A standby follows the owner like a fan-out node until the lease is free.
                link.standbyLease = lease
                link.follower = try retrying("following the commit stream") { try CommitFollower(connection: conn, subjects: subjects, domain: cc.domain) }
                logger.notice("cluster: standby owner; following until the owner's lease expires", metadata: ["owner": "\(holder)", "node": "\(cc.node)"])
                return link
            }
            link.lease = lease
            let publisher = try retrying("the commit stream") {
                try CommitPublisher(connection: conn, subjects: subjects, replicas: cc.replicas, retentionSeconds: cc.retentionSeconds, domain: cc.domain)
            }
            link.publisher = publisher
            let log = try retrying("the ingest log") {
                try IngestLog(connection: conn, subjects: subjects, replicas: cc.replicas, retentionSeconds: cc.retentionSeconds, domain: cc.domain)
            }
            link.ingestLog = log
            // Batches an earlier run of this owner acknowledged and may not have committed.
            (link.replay, link.ingestAcknowledged) = try retrying("reading the ingest log") { try Self.unappliedBatches(log, logger: logger) }
            // Continue the stream's versions: a client or fan-out node that has version N must never see an N again.
            graph.continueVersions(after: try retrying("reading the stream's last versions") { try newestVersion(publisher) })
            link.ownership.open()
            logger.info(
                "cluster: owner of the scene, publishing commits", metadata: ["node": "\(cc.node)", "stream": "\(subjects.stream)", "from": "\(graph.version + 1)"])
        }
        return link
    }

    /// The newest version in the commit stream (1 when it has none).
    static func newestVersion(_ publisher: CommitPublisher) throws -> UInt64 {
        let decoder = try MessageDecoder()
        var newest: UInt64 = 1
        for m in [try publisher.lastKeyframe(), try publisher.lastCommit()].compactMap({ $0 }) {
            if case .frame(let f)? = try? decoder.decodeServerMessage(m.payload) { newest = max(newest, f.version) }
        }
        return newest
    }

    /// Starts what runs in the background: the lease's renewal, the follower, a standby's wait for the lease.
    func startCluster() {
        guard let c = cluster else { return }
        if let lease = c.standbyLease {
            absorbIngest(c)
            waitForOwnership(c, lease)
        }
        applyReplay(c)
        if let f = c.follower {
            let me = LoopBound(self, loop: loop)
            let loop = self.loop!
            c.ownerPast = OwnerPast(OwnerHistory(connection: c.connection, subjects: c.subjects))
            c.ownerWatch = OwnerWatch(quietMs: UInt64(max(10, 3 * c.configuration.keyframeSeconds)) * 1000, nowMs: Self.wallMs())
            f.onFrame { loop.post { me.value.commitArrived() } }
            c.follow.catchUpStarted()
            do { try f.start() } catch { logger.error("cluster: cannot follow the scene's commits", metadata: ["reason": "\(error)"]) }
            listenForAnswers(c)
        }
        if c.publisher != nil { startOwning(c) }
        if let shared = c.sessions {
            let me = LoopBound(self, loop: loop)
            let loop = self.loop!
            do {
                try shared.serveClaims(node: c.configuration.node) { request, reply in
                    loop.post { me.value.decideClaim(request, reply: reply) }
                }
                try shared.onTaken { bytes in
                    guard let t = try? JSONDecoder().decode(Takeover.self, from: Data(bytes)) else { return }
                    loop.post { me.value.takenElsewhere(t) }
                }
            } catch {
                logger.error("cluster: cannot hear of sessions taken over elsewhere", metadata: ["reason": "\(error)"])
            }
        }
    }

    /// What an owner runs: answers to followers' sync requests, the lease's renewal.
    func startOwning(_ c: ClusterLink) {
        listenForCollaboration(c)
        serveHistory(c)
        c.syncSubscription = listen(c, c.subjects.sync, to: "answer followers' sync requests") { m in
            guard let reply = m.reply else { return nil }
            return { $0.answerSync(reply: reply) }
        }
        let logger = self.logger
        c.lease?.keepRenewed { holder in
            // Another owner took the scene (this process paused longer than the lease): two owners would fork the
            // version sequence, so this one stops.
            logger.critical("cluster: lost the scene's lease to another owner; stopping", metadata: ["holder": "\(holder)"])
            kill(getpid(), SIGTERM)
        }
    }

    /// A standby waits for the lease on a thread of its own, then opens the commit stream and hands over to the
    /// service thread to take the scene over.
    func waitForOwnership(_ c: ClusterLink, _ lease: OwnerLease) {
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let (cc, subjects, conn, logger) = (c.configuration, c.subjects, c.connection, self.logger)
        Thread.detachNewThread {
            do {
                try lease.waitAndAcquire(stop: { c.isStopping })
                let publisher = try CommitPublisher(connection: conn, subjects: subjects, replicas: cc.replicas, retentionSeconds: cc.retentionSeconds, domain: cc.domain)
                let newest = (try? Self.newestVersion(publisher)) ?? 0
                let log = try IngestLog(connection: conn, subjects: subjects, replicas: cc.replicas, retentionSeconds: cc.retentionSeconds, domain: cc.domain)
                // What the old owner acknowledged and may not have committed. Without it the takeover waits: an
                // owner that drops acknowledged batches is worse than one a second late.
                var replay: (updates: [PropertyUpdate], through: UInt64)?
                while replay == nil, !c.isStopping {
                    do { replay = try Self.unappliedBatches(log, logger: logger) } catch {
                        logger.warning("cluster: cannot read the ingest log yet; trying again", metadata: ["reason": "\(error)"])
                        Thread.sleep(forTimeInterval: 0.25)
                    }
                }
                let taken = UncheckedSendable((publisher, newest, log, replay ?? ([], 0)))
                loop.post { me.value.takeOver(publisher: taken.value.0, newest: taken.value.1, log: taken.value.2, replay: taken.value.3) }
            } catch {
                if !c.isStopping { logger.error("cluster: standby cannot take over", metadata: ["reason": "\(error)"]) }
            }
        }
    }

    /// The active owner is gone and this standby holds the lease: it applies what it followed, stops following,
    /// continues the version sequence from its copy (so fan-out nodes and clients keep getting deltas), and starts
    /// ingest (simulator from now, MQTT). Service thread.
    func takeOver(publisher: CommitPublisher, newest: UInt64, log: IngestLog, replay: (updates: [PropertyUpdate], through: UInt64)) {
        guard let c = cluster, let lease = c.standbyLease else { return }
        followCommits()
        c.follower?.stop()
        c.follower = nil
        c.ownerPast = nil
        // It is the owner now: nothing to hear from (a stale notice it raised as a standby is cleared).
        if c.staleAlert != nil { staleChanged(.fresh) }
        c.ownerWatch = nil
        c.answersSubscription?.cancel()
        c.answersSubscription = nil
        c.absorbSubscription?.cancel()
        c.absorbSubscription = nil
        c.standbyLease = nil
        c.lease = lease
        c.publisher = publisher
        c.ingestLog = log
        c.replay = replay.updates
        c.ingestAcknowledged = max(c.ingestAcknowledged, replay.through)
        applyReplay(c)
        removeStrangers()
        // Versions the stream has and this copy missed: jump past them (clients get a keyframe), never repeat them.
        if newest > runtime.graph.version { runtime.graph.continueVersions(after: newest) }
        c.lastPublished = runtime.graph.version
        c.lastKeyframeVersion = 0
        if configuration.simulator {
            simulator = try? PlantSimulator(twinsJSON: twinsJSON, file: "twins.json", startMs: Self.wallMs())
        }
        startOwning(c)
        c.ownership.open()
        metrics.clusterOwner.set(1)
        logger.notice("cluster: took the scene over as its owner", metadata: ["node": "\(c.configuration.node)", "version": "\(runtime.graph.version)"])
    }

    /// Reads the ingest log's batches after the last marker (off the service thread) as updates, and the newest
    /// sequence read.
    static func unappliedBatches(_ log: IngestLog, logger: Logger) throws(NATSError) -> (updates: [PropertyUpdate], through: UInt64) {
        var updates: [PropertyUpdate] = []
        var through: UInt64 = 0
        for m in try log.unapplied() {
            through = max(through, m.sequence)
            switch HTTPIngest.parse(m.payload, nowMs: wallMs()) {
            case .success(let us): updates.append(contentsOf: us)
            case .failure(let e): logger.warning("cluster: an ingest log entry is not a batch; skipped", metadata: ["sequence": "\(m.sequence)", "reason": "\(e)"])
            }
        }
        return (updates, through)
    }

    /// Queues what was read from the ingest log ahead of every other update, and writes it to this node's storage.
    /// Service thread.
    func applyReplay(_ c: ClusterLink) {
        guard !c.replay.isEmpty else { return }
        httpPending.insert(contentsOf: c.replay, at: 0)
        storage?.appendLater(c.replay)
        metrics.ingestReplayed.increment(by: c.replay.count)
        logger.notice("cluster: applying HTTP ingest acknowledged by the previous owner", metadata: ["updates": "\(c.replay.count)"])
        c.replay = []
    }

    /// A standby keeps the owner's HTTP batches in its twin store (and storage) as they are logged, so that after a
    /// takeover its twins hold them — the scene already does, through the commits it follows. Parsed on the NATS
    /// thread; the service thread only applies them.
    func absorbIngest(_ c: ClusterLink) {
        let metrics = self.metrics
        c.absorbSubscription = listen(c, c.subjects.ingest, to: "follow the owner's HTTP ingest") { m in
            guard case .success(let updates) = HTTPIngest.parse(m.payload, nowMs: Self.wallMs()) else {
                metrics.clusterRefused.increment()
                return nil
            }
            let box = UncheckedSendable(updates)
            return { $0.absorb(box.value) }
        }
    }

    /// Subscribes to `subject` on the cluster connection: `parse` runs on the NATS thread for each message and
    /// returns the work for the service thread (nil: nothing to do, it refused or answered the message itself). A
    /// subscription that cannot be made is logged as "cannot `what`".
    func listen(
        _ c: ClusterLink, _ subject: String, to what: String,
        parse: @escaping @Sendable (NATSMessage) -> (@Sendable (StreamingServer) -> Void)?
    ) -> NATSSubscription? {
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        do {
            return try c.connection.subscribe(subject) { m in
                guard let work = parse(m) else { return }
                loop.post { work(me.value) }
            }
        } catch {
            logger.error("cluster: cannot \(what)", metadata: ["reason": "\(error)", "subject": "\(subject)"])
            return nil
        }
    }

    /// Applies the owner's updates to the twin store only (the scene comes from the commits). Service thread.
    func absorb(_ updates: [PropertyUpdate]) {
        guard cluster?.standbyLease != nil else { return }
        for u in updates { runtime.twins.apply(u) }
        storage?.appendLater(updates)
    }

    /// After a commit that applied logged batches: the marker naming the newest of them, in order after the commit.
    func markIngested() {
        guard let c = cluster, let pub = c.publisher, c.ingestMarked < c.ingestAcknowledged, !runtime.graph.hasPendingChanges else { return }
        pub.publishPlain(c.subjects.ingested, IngestLog.marker(through: c.ingestAcknowledged, version: runtime.graph.version))
        c.ingestMarked = c.ingestAcknowledged
    }

    /// Stops the background parts: everything queued is published, the lease is given up (a standby takes over at
    /// once instead of after it expires), the follower stops.
    func stopCluster() {
        guard let c = cluster else { return }
        c.isStopping = true
        c.ownership.open()
        c.syncSubscription?.cancel()
        c.absorbSubscription?.cancel()
        c.collaborationSubscription?.cancel()
        c.historySubscription?.cancel()
        c.answersSubscription?.cancel()
        c.collaborationSends.sync {}
        c.ingestAppends.sync {}
        c.publisher?.drain()
        c.sessions?.drain()
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
                    if pub.publishKeyframe(f.bytes, version: f.version) {
                        c.lastKeyframeVersion = f.version
                        c.lastKeyframeMs = nowMs
                    }
                } else {
                    pub.publishCommit(f.bytes, version: f.version)
                }
            }
            c.lastPublished = v
        }
        let due = nowMs >= c.lastKeyframeMs + UInt64(c.configuration.keyframeSeconds) * 1000
        if (pub.takeKeyframeRequest() || due) && c.lastKeyframeVersion != v || c.lastKeyframeVersion == 0 {
            if let k = engine.encodedFrame(from: nil, filter: .everything), pub.publishKeyframe(k.bytes, version: k.version) {
                c.lastKeyframeVersion = k.version
                c.lastKeyframeMs = nowMs
            }
        } else if due {
            c.lastKeyframeMs = nowMs  // nothing changed since the last keyframe: it is still the scene
        }
        if due {
            pub.publishPlain(c.subjects.activeAlerts, encoder.encode(.alerts(activeAlertRecords())))
            replicateAnchors()
        }
    }

    /// The owner's anchors to the fan-out nodes (on every change, and with each keyframe for nodes that start later).
    func replicateAnchors() {
        guard let c = cluster, let pub = c.publisher else { return }
        pub.publishPlain(c.subjects.anchors, encoder.encode(.anchors(sceneId: runtime.scene.id, anchors: anchorRegistry.records)))
    }

    /// A follower asked for the scene now: a keyframe of the current version (shared with every other asker and
    /// with clients' keyframes at this version). Service thread.
    func answerSync(reply: String) {
        guard let pub = cluster?.publisher else { return }
        if runtime.graph.hasPendingChanges {
            let nowMs = Self.wallMs()
            runtime.commit(timeMs: nowMs)
            replicate(nowMs: nowMs)
        }
        guard let k = engine.encodedFrame(from: nil, filter: .everything) else { return }
        pub.reply(k.bytes, to: reply)
    }

    // MARK: fan-out

    /// Takes the frames the follower received and applies them to this node's copy in version order; a gap or a
    /// frame that does not fit starts a catch-up from the stream's last keyframe. Service thread.
    func followCommits() {
        guard let c = cluster, let follower = c.follower else { return }
        let (frames, notes) = follower.take()
        for n in notes { logger.warning("cluster: \(n)") }
        let alertBatches = follower.takeAlerts()
        if !frames.isEmpty || !alertBatches.isEmpty, let change = c.ownerWatch?.heard(nowMs: Self.wallMs()) { staleChanged(change) }
        let now = Int64(Self.wallMs())
        for f in frames {
            c.follow.offer(f)
            let offset = now - Int64(f.timeMs)
            c.clockSample = min(c.clockSample ?? offset, offset)
        }
        var applied = 0
        while let step = c.follow.step(current: runtime.graph.version) {
            switch step {
            case .apply(let f):
                do {
                    try runtime.graph.follow(f)
                    applied += 1
                } catch {
                    logger.warning("cluster: a commit did not fit this copy; catching up from the last keyframe", metadata: ["version": "\(f.version)", "reason": "\(error)"])
                    if c.follow.failed() { follower.catchUp() }
                }
            case .catchUp(let from, let to):
                logger.notice("cluster: versions missed; catching up from the last keyframe", metadata: ["from": "\(from)", "to": "\(to)"])
                follower.catchUp()
            }
        }
        if let records = follower.takeAnchors() {
            let copy = AnchorRegistry(records: records, by: "owner")
            if copy != anchorRegistry {
                anchorRegistry = copy
                for c in clients.values { sendAnchors(to: c) }
                // Kept on disk too: a standby that takes over, and restarts later, starts from the owner's set.
                if let path = anchorsPath {
                    let (bytes, logger) = (copy.fileBytes(), self.logger)
                    anchorWrites.async {
                        do { try DurableFile.write(Data(bytes), to: path) } catch {
                            logger.warning("could not keep the owner's anchors on disk", metadata: ["path": "\(path)", "error": "\(error)"])
                        }
                    }
                }
            }
        }
        for batch in alertBatches {
            if batch.active {
                activeAlerts(replacedBy: batch.records)
            } else {
                for r in batch.records {
                    if r.state == .raised { c.activeAlerts[r.id] = r } else { c.activeAlerts[r.id] = nil }
                }
                broadcast(records: batch.records)
                metrics.alerts.increment(by: batch.records.count)
            }
        }
        if applied > 0 {
            metrics.commitsApplied.increment(by: applied)
            metrics.sceneVersion.set(Double(runtime.graph.version))
            metrics.nodeChanges.increment(by: runtime.graph.lastChangeCount)
        }
    }

    /// The id of the alert a fan-out node raises while its scene is stale.
    static let staleAlertId = "cluster/stale"

    /// The node stopped or started hearing the owner: every client is told with an alert (whatever its zones: it
    /// is about the whole scene), and clients that subscribe meanwhile get it with the active ones. Service thread.
    func staleChanged(_ change: OwnerWatch.Change) {
        guard let c = cluster else { return }
        let record: AlertRecord
        switch change {
        case .stale(let since):
            let why = c.connection.isConnected ? "the owner is silent" : "NATS is unreachable"
            let day = since / 1000 % 86_400
            let at = String(format: "%02d:%02d:%02d", Int(day / 3600), Int(day / 60 % 60), Int(day % 60))
            record = AlertRecord(
                id: Self.staleAlertId, node: nil, severity: .warning, state: .raised, timeMs: since,
                message: "(stale) data as of \(at) UTC: this node does not hear the scene's owner (\(why)); it shows the last scene and catches up by itself")
            c.staleAlert = record
            logger.warning("cluster: scene stale; showing the last one", metadata: ["since": "\(since)", "reason": "\(why)"])
        case .fresh:
            guard var r = c.staleAlert else { return }
            r.state = .cleared
            r.timeMs = Self.wallMs()
            record = r
            c.staleAlert = nil
            logger.notice("cluster: hearing the scene's owner again")
        }
        metrics.clusterStale.set(c.staleAlert != nil ? 1 : 0)
        let bytes = encoder.encode(.alerts([record]))
        for client in clients.values where client.subscription != nil { enqueue(client, encoded: bytes) }
    }

    /// The owner's whole active set (sent with each keyframe): alerts this node missed are raised or cleared for its
    /// clients, so a node that started late, or lost messages, converges.
    func activeAlerts(replacedBy records: [AlertRecord]) {
        guard let c = cluster else { return }
        let now = Dictionary(records.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var changes = now.values.filter { c.activeAlerts[$0.id] == nil }
        for (id, r) in c.activeAlerts where now[id] == nil {
            var cleared = r
            cleared.state = .cleared
            changes.append(cleared)
        }
        c.activeAlerts = now
        if !changes.isEmpty { broadcast(records: changes.sorted { $0.id < $1.id }) }
    }

    /// The owner's alerts go to followers with the commits (after the commit they came with).
    func replicateAlerts(_ records: [AlertRecord]) {
        guard let c = cluster, let pub = c.publisher, !records.isEmpty else { return }
        pub.publishPlain(c.subjects.alerts, encoder.encode(.alerts(records)))
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
        expireRemoteCollaborators(nowMs: Self.wallMs())
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
        if let sh = c.sessions {
            let now = sh.counts
            metrics.kvOperations.increment(by: now.operations - c.sessionsSeen.operations)
            metrics.kvFailures.increment(by: now.failures - c.sessionsSeen.failures)
            c.sessionsSeen = now
            for e in sh.takeErrors() { logger.warning("cluster: session or handoff operation failed", metadata: ["reason": "\(e)"]) }
        }
        if let change = c.ownerWatch?.check(connected: up, nowMs: Self.wallMs()) { staleChanged(change) }
        metrics.clusterStale.set(c.staleAlert != nil ? 1 : 0)
        if let offset = c.clockSample {
            c.clockSample = nil
            metrics.clusterClockOffset.set(Double(offset))
            let apart = abs(offset) > 2000
            if apart { metrics.clusterClockSkewed.increment() }
            if apart != c.clockApart {
                c.clockApart = apart
                if apart {
                    logger.warning("cluster: this node's clock and the owner's are apart: token expiry, the live edge of playback and times shown to clients follow this node's clock (run NTP)", metadata: ["offsetMs": "\(offset)"])
                } else {
                    logger.notice("cluster: this node's clock agrees with the owner's again", metadata: ["offsetMs": "\(offset)"])
                }
            }
        }
        if let f = c.follower {
            let now = f.snapshot
            metrics.commitsReceived.increment(by: now.received - c.followedSeen.received)
            metrics.catchUps.increment(by: now.catchUps - c.followedSeen.catchUps)
            metrics.clusterRefused.increment(by: now.refused - c.followedSeen.refused)
            metrics.kvOperations.increment(by: now.catchUps - c.followedSeen.catchUps)
            metrics.kvFailures.increment(by: now.catchUpFailures - c.followedSeen.catchUpFailures)
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
            out["stale"] = c.staleAlert != nil
            if let since = c.ownerWatch?.staleSinceMs, c.staleAlert != nil { out["staleSinceMs"] = since }
            if c.standbyLease != nil { out["standby"] = true }
        }
        return out
    }
}

/// Opens once; waiters resume then (MQTT ingest waits for this node to own its scene).
final class Gate: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func open() {
        let w: [CheckedContinuation<Void, Never>] = lock.withLock {
            isOpen = true
            defer { waiters = [] }
            return waiters
        }
        for c in w { c.resume() }
    }

    func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = lock.withLock {
                if isOpen { return true }
                waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
