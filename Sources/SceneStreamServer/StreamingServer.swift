import DequeModule
import Foundation
import Logging
import HTTPTypes
import SceneStreamCluster
import SceneStreamCore
import SceneStreamHTTP
import SceneStreamIngest
import SceneStreamMQTT
import SceneStreamProtocol
import SceneStreamSessions
import SceneStreamSimulation
import SceneStreamStorage
import SceneStreamTransport
import SceneStreamTwinModels

/// The SceneStream server: ingest (simulator), scene commits, per-client streaming, HTTP endpoints.
///
/// Everything here runs on the event loop's service thread: it owns the twin store, the scene graph, the delta
/// engine and every client's state, so none of it needs a lock. Other threads talk to it through `loop.post`.
public final class StreamingServer: EventLoopHandler {
    public let configuration: ServerConfiguration
    let runtime: SceneRuntime
    let engine: DeltaEngine
    var simulator: PlantSimulator?
    var twinsJSON: [UInt8]
    /// Models, rates and units from the plant's twins file (the inspect panel's `/api/twin`).
    var catalog: TwinCatalog
    /// The plant's DTDL models: every value from outside is checked against them before it is applied.
    var models: TwinModels
    /// The folder the plant was read from (nil: generated in memory), and its files' fingerprint then.
    let plantFolder: String?
    let plantFingerprint: [String]
    /// The reads of the plant folder in order, and the newest applied (its generation and fingerprint).
    let plantGenerations = PlantBundle.Generations()
    var appliedPlant: (generation: UInt64, fingerprint: [String]) = (0, [])
    /// Plant files written over HTTP, one at a time (each checked against the others on disk).
    let plantWrites = DispatchQueue(label: "scenestream.plant-writes")
    /// The site's spatial anchors (``anchorsRoute(_:caller:)``), where they are stored, and their writes in order.
    var anchorRegistry: AnchorRegistry
    let anchorsPath: String?
    let anchorWrites = DispatchQueue(label: "scenestream.anchors")
    /// Each twin's node in the scene, found once (``machineNode(of:)``).
    var machineNodes: [String: UInt32] = [:]
    let logger: Logger
    let metrics: ServerMetrics
    private(set) var loop: EventLoop!
    /// The port actually listened on (the kernel's pick when the configuration says 0).
    public private(set) var port = 0

    var clients: [ConnectionID: Client] = [:]
    let encoder: MessageEncoder
    let decoder: MessageDecoder
    private var nextTickNs: UInt64 = 0
    /// When the last tick ran.
    private var lastTickNs: UInt64 = 0
    var tickIndex: UInt64 = 0
    /// The service thread's CPU time at the last tick (for ``noteStall(nowNs:)``).
    var lastTickCPUNs: UInt64 = 0
    private let tickNs: UInt64
    let startedAt = Date()
    var sessions: [String: Session] = [:]
    var sessionsByToken: [String: Session] = [:]
    /// Handoff codes offered and not yet forgotten.
    var handoffs: HandoffBook
    /// Handoff claims, all connections together: 100 a minute (and 10 per connection).
    var claims = ClaimLimiter(nowNs: DispatchTime.now().uptimeNanoseconds)
    var annotations: AnnotationStore
    /// Writes annotations to disk off the service thread (nil without a data folder).
    let annotationWriter: AnnotationWriter?
    /// Annotations per user and second, and caps per user and scene.
    var annotationLimits: AnnotationLimits
    /// Presence poses waiting for the next presence tick (latest per session).
    var presenceRelay: PresenceRelay<PresenceUpdate>
    let mqttInbox = IngestInbox()
    var mqtt: MQTTClient?
    /// Published before a clean disconnect (the Sparkplug host's STATE offline).
    var mqttFarewell: MQTTClient.Message?
    var mqttTwins: Set<String> = []
    var httpPending: [PropertyUpdate] = []
    /// Staleness by age of the twins outside sources feed (only the service thread touches it).
    var ageWatch: AgeWatch
    var storage: Storage?
    /// Held for the life of the process: one server per data folder.
    private var dataLock: DataFolderLock?
    var lastDiskCheckpointMs: UInt64 = 0
    /// Past scenes are rebuilt here, off the service thread, so one client's seek does not hold up everyone's frames.
    let rebuildQueue = DispatchQueue(label: "scenestream.playback-rebuild")
    var authenticator: Authenticator?
    /// Set over HTTP (`POST /api/simulator`) so that tests can freeze the plant and compare states exactly.
    var simulatorPaused = false
    /// The HTTP route table and the folders files are served from.
    let router: HTTPRouter<APIRoute>
    let files: StaticFiles
    /// HTTP work that must not hold up frames (JSON of the scene, file reads, ingest parsing and its durable write).
    let httpWork = DispatchQueue(label: "scenestream.http-work", attributes: .concurrent)
    /// Scene snapshots (the heaviest HTTP work) on a thread that runs only when the cores are otherwise free.
    let bulkWork = BulkWorker(name: "scenestream-snapshots")
    /// Connections with a subscription (kept as clients come and go, not counted per event).
    var subscribedCount = 0
    /// Connections by peer address, and new connections' rate per address.
    var connectionsByPeer: [String: Int] = [:]
    var connectRate: [String: TokenBucket] = [:]
    /// The room: sessions whose device is subscribed, and what changed since the last tick (`syncRoom`).
    var room: RoomRoster
    /// How many queued updates a tick takes (about half a tick's time at the cost so far, at least 4,000).
    var ingestBudget: IngestBudget
    /// `GET /api/scene` answers by view: one build per view at a time, each answer reused for a second.
    var sceneAnswers = SharedAnswers<InterestFilter, HTTPRequestID, HTTPServerResponse>(freshNs: 1_000_000_000)
    /// This node's part in a cluster; nil when it is alone.
    var cluster: ClusterLink?

    final class Client {
        let id: ConnectionID
        let peer: String
        /// Counted in `connectionsByPeer` (a connection refused over the per-address limit is not).
        var counted = false
        /// Awaiting hello → verifying → established → closing.
        var machine: ConnectionMachine
        var device = DeviceKind.unknown
        var name = ""
        var sessionId = ""
        /// Set through `setSubscription` (which keeps the count of subscribed clients).
        var subscription: Subscription?
        var control = Deque<[UInt8]>()
        var unacked = Deque<ClientBaseline>()
        /// The user's session, after hello.
        var session: Session?
        /// Close (1000) once the control queue is empty (after `handedOff`).
        var closeAfterFlush = false
        var closeReason = "policy"
        var closeCode = 1008
        /// Messages that came behind the hello while its token was checked, and how many were dropped over the limit.
        var held: [ClientMessage] = []
        var heldDropped = 0
        /// Handoff claims: 10 a minute per connection.
        var claimRate: TokenBucket
        /// Keyframe requests: one a second, three in a burst (each costs a whole encode of the client's view).
        var keyframeRate: TokenBucket
        var lastSendNs: UInt64 = 0
        /// The tick at which the client's next frame is due (fractional: rates need not divide the tick rate).
        var nextDueTick: Double = 0
        /// The subscription's byte budget per second, if it set one.
        var byteBudget: TokenBucket?
        var protocolErrors = 0
        /// Set while the client watches the past: its rebuilt runtime.
        var playback: Playback?
        /// Live, seeking or watching the past: the cursor, speed, and which rebuild counts.
        var playbackControl: PlaybackController
        /// Where a resumed session's first frame starts (taken by the next subscribe).
        var resumeBase: ClientBaseline?
        /// Incoming messages.
        var inRate: TokenBucket
        /// Waiting for the cluster to say whether it knows the session being resumed (messages are dropped).
        var awaitingCluster = false
        init(id: ConnectionID, peer: String, openedNs: UInt64, inRate: TokenBucket, tickMs: UInt64) {
            self.id = id
            self.peer = peer
            self.inRate = inRate
            machine = ConnectionMachine(openedNs: openedNs)
            playbackControl = PlaybackController(tickMs: tickMs)
            claimRate = ClaimLimiter.connectionBucket(nowNs: openedNs)
            keyframeRate = TokenBucket(capacity: 3, perSecond: 1, nowNs: openedNs)
        }
    }

    struct Subscription {
        var sceneId: String
        var filter: InterestFilter
        var rateHz: Int
        var byteBudget: Int
        var sent: ClientBaseline?
    }

    /// Builds the server for `plant` and binds its port (the loop is not started yet).
    public init(configuration: ServerConfiguration, plant: PlantBundle, logger: Logger, startMs: UInt64? = nil) throws {
        self.configuration = configuration
        // Every line of this server names its scene; other keys are stable too: conn, peer, session, route, reason.
        var logger = logger
        logger[metadataKey: "scene"] = .string(plant.scene.id)
        self.logger = logger
        runtime = try SceneRuntime(
            scene: plant.scene, bindings: plant.bindings, rules: plant.rules, relationships: plant.relationships,
            history: TwinHistory(capacity: configuration.historyCapacity, windowMs: configuration.historyWindowMs),
            retainedVersions: configuration.retainedVersions)
        engine = try DeltaEngine(graph: runtime.graph, compressionLevel: configuration.compressionLevel)
        encoder = try MessageEncoder(level: configuration.compressionLevel)
        decoder = try MessageDecoder(
            limits: DecodeLimits(maxMessageBytes: configuration.maxClientMessageBytes, maxInflatedBytes: 4 * configuration.maxClientMessageBytes))
        let now = startMs ?? Self.wallMs()
        twinsJSON = plant.twinsJSON
        catalog = try TwinCatalog(json: plant.twinsJSON, file: "\(plant.source)/twins.json")
        models = plant.models
        plantFolder = FileManager.default.fileExists(atPath: "\(plant.source)/scene.json") ? plant.source : nil
        plantFingerprint = plantFolder.map { PlantBundle.fingerprint(directory: $0) } ?? []
        appliedPlant = (0, plantFingerprint)
        anchorsPath = Self.anchorsPath(configuration, scene: plant.scene.id)
        anchorRegistry = try Self.loadAnchors(anchorsPath)
        ageWatch = AgeWatch(configuration: configuration.staleness)
        for (twin, e) in catalog.entries where e.rateHz > 0 { ageWatch.expect(twin: twin, periodMs: UInt64(1000 / max(e.rateHz, 0.001))) }
        // A fan-out node's scene comes from the owner's commits: no simulator, no ingest of its own.
        let follows = configuration.cluster?.role == .fanout
        if configuration.simulator && !follows {
            simulator = try PlantSimulator(twinsJSON: plant.twinsJSON, file: "\(plant.source)/twins.json", startMs: now)
        }
        tickNs = UInt64(1e9 / configuration.tickHz)
        metrics = ServerMetrics()
        if let dir = configuration.dataDirectory { dataLock = try DataFolderLock(dir) }
        annotations = try AnnotationStore(path: configuration.dataDirectory.map { "\($0)/annotations-\(plant.scene.id).json" })
        annotationWriter = annotations.path.map(AnnotationWriter.init)
        annotationLimits = AnnotationLimits(
            perSecond: configuration.annotationsPerSecond, maxPerUser: configuration.maxAnnotationsPerUser,
            maxPerScene: configuration.maxAnnotationsPerScene)
        presenceRelay = PresenceRelay(everyTicks: Int((configuration.tickHz / Double(configuration.presenceHz)).rounded()))
        room = RoomRoster(capacity: configuration.roomCapacity)
        handoffs = HandoffBook(lifetimeMs: UInt64(configuration.handoffCodeSeconds) * 1000)
        ingestBudget = IngestBudget(
            budgetNs: UInt64(1e9 / configuration.tickHz / 2), maxUpdates: configuration.maxUpdatesPerTick,
            minUpdates: min(2000, configuration.maxUpdatesPerTick))
        router = Self.makeRouter(authenticated: configuration.auth != nil)
        files = Self.makeFiles(configuration)

        var t = TransportConfiguration(port: configuration.port, bindAddress: configuration.bindAddress)
        t.maxBodyBytes = configuration.maxHTTPBodyBytes
        t.bodySeconds = configuration.httpBodySeconds
        t.tlsCertificate = configuration.tlsCertificate
        t.tlsKey = configuration.tlsKey
        // §5.1: a WebSocket ping after heartbeatMs with nothing heard; nothing (no message, no pong) for twice that
        // and the connection is dead.
        t.pingSeconds = max(1, (configuration.heartbeatMs + 999) / 1000)
        t.hangupSeconds = 2 * t.pingSeconds
        t.maxMessageBytes = configuration.maxClientMessageBytes
        loop = try EventLoop(configuration: t, handler: self, logger: logger)
        port = loop.port ?? configuration.port
        if let auth = configuration.auth {
            let box = LockedResult()
            let sem = DispatchSemaphore(value: 0)
            Task {
                do { box.set(.success(try await Authenticator(configuration: auth))) } catch { box.set(.failure(error)) }
                sem.signal()
            }
            sem.wait()
            authenticator = try box.get()
        }
        if !follows { restoreAnnotations() }
        if let dir = configuration.dataDirectory {
            let s = try Storage(path: "\(dir)/twins-\(plant.scene.id).sqlite", prepareThread: BackgroundPriority.lower)
            // The state now, not the whole history: older moments are seeked on disk.
            let restored = follows ? [] : try s.currentState()
            if !restored.isEmpty {
                _ = runtime.ingest(restored)
                // Memory holds the state now, not how it got there: moments before this start are read from disk.
                runtime.twins.history.markUnknown(through: now)
                if !configuration.simulator { for u in restored { mqttTwins.insert(u.twin) } }
                logger.info("twin state restored", metadata: ["properties": "\(restored.count)", "path": "\(s.path)"])
            }
            storage = s
            restoreSessions(try s.loadSessions(), nowMs: now)
        }
        runtime.commit(timeMs: now)
        if let cc = configuration.cluster {
            cluster = try Self.joinCluster(
                cc, scene: plant.scene.id, graph: runtime.graph, codeSeconds: configuration.handoffCodeSeconds, logger: logger)
        }
        if !follows { try makeMQTT() }
    }

    /// Starts everything: MQTT, then the loop (embedding without a ``ServiceGroup``; `serve` runs ``services(onReady:)``).
    public func start() throws {
        try mqtt?.start()
        startStreaming()
    }

    /// Stops everything, in order: every client closed with 1001 and the loop ended, then MQTT (with the Sparkplug
    /// host's STATE offline), then storage and annotations flushed. Returns when done.
    public func stop() {
        stopStreaming()
        mqtt?.stop(farewell: mqttFarewell)
        storage?.flush()
        annotationWriter?.flush()
    }

    /// Starts the loop's thread and the tick.
    func startStreaming() {
        let server = LoopBound(self, loop: loop)  // bound before the loop runs; read on its thread
        startCluster()
        loop.start()
        loop.post {
            let s = server.value
            s.nextTickNs = DispatchTime.now().uptimeNanoseconds + s.tickNs
            s.loop.schedule(afterMicroseconds: Int64(s.tickNs / 1000))
        }
    }

    /// Closes every client with 1001 and ends the loop; returns when it has.
    func stopStreaming() {
        loop.stop()
        loop.wait()
        stopCluster()
    }

    static func wallMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    /// Counts stalls of our own making: tick intervals longer than two ticks in which the service thread itself
    /// was busy (CPU time: the tick, callbacks, frame sends — all of its work) for more than a tick. A long interval
    /// with less work than that was the operating system's doing (the cores busy with other processes).
    func noteStall(nowNs: UInt64) {
        var ts = timespec()
        guard clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0 else { return }
        let cpu = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        defer { lastTickCPUNs = cpu }
        guard lastTickCPUNs > 0, lastTickNs > 0 else { return }
        let tickNs = UInt64(1e9 / configuration.tickHz)
        if nowNs - lastTickNs > 2 * tickNs + 2_000_000, cpu - lastTickCPUNs > tickNs { metrics.loopStalls.increment() }
    }

    // MARK: tick

    public func timer() {
        tickIndex += 1
        let nowNs = DispatchTime.now().uptimeNanoseconds
        noteStall(nowNs: nowNs)
        lastTickNs = nowNs
        let nowMs = Self.wallMs()
        var events: [AlertEvent] = []
        var batch = drainMQTT(nowMs: nowMs)
        if !batch.isEmpty { metrics.ingestedMQTT.increment(by: batch.count) }
        if !isFollower {
            // Staleness by age, for outside sources only (the simulator cannot die without saying so).
            ageWatch.arrived(batch, nowMs: nowMs)
            ageWatch.arrived(httpPending, nowMs: nowMs)
            let marks = ageWatch.sweep(nowMs: nowMs, store: runtime.twins)
            if !marks.isEmpty {
                metrics.staleByAge.increment(by: Set(marks.map(\.twin)).count)
                logger.notice("values marked stale by age: their source stopped sending", metadata: ["twins": "\(Set(marks.map(\.twin)).sorted().prefix(5).joined(separator: ", "))", "count": "\(marks.count)"])
                batch.append(contentsOf: marks)
            }
        }
        if isFollower { followCommits() }
        if cluster != nil, tickIndex % UInt64(max(1, configuration.tickHz)) == 0 { clusterHousekeeping() }
        if let storage {
            for error in annotationWriter?.takeFailures() ?? [] {
                metrics.storageErrors.increment()
                logger.error("annotations write failed (they stay in memory)", metadata: ["error": "\(error)"])
            }
            for error in storage.takeFailures() {
                metrics.storageErrors.increment()
                logger.error("storage write failed (ingest continues in memory)", metadata: ["error": "\(error)"])
            }
            // Keep the file bounded by the history window: fold older rows into the latest values once a minute.
            if tickIndex % UInt64(max(1, configuration.tickHz) * 60) == 0, nowMs > configuration.historyWindowMs {
                storage.pruneLater(before: nowMs - configuration.historyWindowMs)
            }
        }
        if var sim = simulator, !simulatorPaused, !isFollower {
            let ups = sim.step(to: nowMs)
            simulator = sim
            batch.append(contentsOf: ups)
        }
        // MQTT and simulator updates go to disk in the background (HTTP batches were written before their answer).
        storage?.appendLater(batch)
        batch.append(contentsOf: httpPending)
        httpPending.removeAll(keepingCapacity: true)
        if !batch.isEmpty {
            metrics.ingested.increment(by: batch.count)
            let duplicates = runtime.twins.duplicates
            let t0 = DispatchTime.now().uptimeNanoseconds
            events = runtime.ingest(batch)
            ingestBudget.record(updates: batch.count, ns: DispatchTime.now().uptimeNanoseconds - t0)
            // Copies inside one batch (a redelivery arriving in the same tick) are dropped by the store.
            if runtime.twins.duplicates > duplicates { metrics.ingestDuplicates.increment(by: runtime.twins.duplicates - duplicates) }
        }
        if !events.isEmpty { publishAlerts(events) }
        // A checkpoint every few seconds (after this tick's updates) bounds what a seek on disk replays.
        if let storage, nowMs >= lastDiskCheckpointMs + Storage.checkpointIntervalMs {
            lastDiskCheckpointMs = nowMs
            storage.checkpointLater(at: nowMs, state: runtime.twins.snapshot())
        }
        if tickIndex % UInt64(max(1, configuration.tickHz / 2)) == 0 { checkDeadlines(nowMs: nowMs) }
        applyPresence()
        sendCollaboration(nowMs: nowMs)
        syncRoom()
        advancePlayback(nowMs: nowMs)
        if tickIndex % UInt64(max(1, configuration.tickHz)) == 0 { expireSessions(nowMs: nowMs) }
        if !isFollower {
            let before = runtime.graph.version
            runtime.commit(timeMs: nowMs)
            if runtime.graph.version != before {
                metrics.sceneVersion.set(Double(runtime.graph.version))
                metrics.nodeChanges.increment(by: runtime.graph.lastChangeCount)
            }
            replicate(nowMs: nowMs)
            markIngested()
        }
        if !events.isEmpty { broadcast(events) }
        for c in clients.values where c.subscription != nil && frameAllowed(c, nowNs) {
            loop.requestWrite(c.id)
        }
        // Keep a steady cadence; skip ticks rather than pile them up. A fan-out node ticks when the owner's commits
        // arrive (``commitArrived()``), so its own cadence only covers a quiet scene.
        nextTickNs += tickNs
        if nextTickNs < nowNs { nextTickNs = nowNs + tickNs }
        if isFollower { nextTickNs = nowNs + tickNs * 3 / 2 }
        loop.schedule(afterMicroseconds: Int64((nextTickNs - nowNs) / 1000))
    }

    /// A fan-out node got a commit: serve it now — as a tick, unless one ran less than half a tick ago — so the
    /// owner's cadence, not this node's, decides when frames go out (a fixed tick here would add up to a tick of
    /// latency to every frame).
    func commitArrived() {
        let nowNs = DispatchTime.now().uptimeNanoseconds
        let soonest = lastTickNs + tickNs / 2
        if nowNs >= soonest {
            timer()
        } else if soonest < nextTickNs {
            nextTickNs = soonest
            loop.schedule(afterMicroseconds: Int64((soonest - nowNs) / 1000))
        }
    }

    /// The subscription an interest gives a client: its rate within the server's bounds, its zones within what its
    /// identity allows.
    func subscription(_ interest: InterestSpec, for session: Session?, sent: ClientBaseline?) -> Subscription {
        let rate = interest.rateHz == 0 ? configuration.defaultRateHz : min(Int(interest.rateHz), configuration.maxRateHz)
        return Subscription(
            sceneId: interest.sceneId, filter: allowedFilter(interest, session), rateHz: max(1, rate),
            byteBudget: Int(interest.byteBudget), sent: sent)
    }

    /// Sets or clears a client's subscription, keeping the count of subscribed clients and the room (a session
    /// whose device subscribes joins it).
    func setSubscription(_ c: Client, _ s: Subscription?) {
        let changed = (c.subscription == nil) != (s == nil)
        if changed {
            subscribedCount += s == nil ? -1 : 1
            metrics.subscribed.set(Double(subscribedCount))
        }
        c.subscription = s
        if changed, let session = c.session { updateMembership(session) }
    }

    /// Records a frame sent to `cl`: when its next one is due, and that it awaits an ack.
    private func noteSent(_ cl: Client, version: UInt64, _ s: Subscription) {
        let step = configuration.tickHz / Double(s.rateHz)
        if cl.nextDueTick < Double(tickIndex) - step { cl.nextDueTick = Double(tickIndex) }
        cl.nextDueTick += step
        cl.unacked.append(ClientBaseline(version: version, filter: s.filter))
    }

    func frameAllowed(_ c: Client, _ nowNs: UInt64) -> Bool {
        guard c.subscription != nil else { return false }
        // A fan-out node serves nothing before its copy has the owner's scene.
        if let cl = cluster, cl.isFollower, !cl.follow.synced { return false }
        if c.unacked.count >= configuration.ackWindow { return false }
        // Due by tick count, not wall time, so that the order clients are served in within a tick cannot make
        // one look early and skip a frame.
        if Double(tickIndex) < c.nextDueTick { return false }
        if c.byteBudget != nil, !c.byteBudget!.has(Double.leastNonzeroMagnitude, nowNs: nowNs) { return false }
        return true
    }

    func broadcast(_ events: [AlertEvent]) {
        let records = events.map { e in
            AlertRecord(id: e.id, node: e.nodeId.flatMap { runtime.graph.index(of: $0) }, severity: e.severity, state: e.state, timeMs: e.timeMs, message: e.message)
        }
        replicateAlerts(records)
        broadcast(records: records)
        metrics.alerts.increment(by: events.count)
    }

    /// Sends alert records (pinned to scene nodes, whatever anyone sees) to every subscribed client as its view
    /// allows: a node outside it is not named, and a client limited to zones hears only of alerts on nodes it sees
    /// (the message names the twin).
    func broadcast(records: [AlertRecord]) {
        for c in clients.values {
            guard let s = c.subscription else { continue }
            let members = engine.membership(s.filter)
            let limited = c.session?.identity.zones != nil
            let mine = records.compactMap { r -> AlertRecord? in
                var r = r
                r.node = r.node.flatMap { members.contains(Int($0)) ? $0 : nil }
                if limited && r.node == nil { return nil }
                return r
            }
            if !mine.isEmpty { enqueue(c, .alerts(mine)) }
        }
    }

    func enqueue(_ c: Client, _ m: ServerMessage) { enqueue(c, encoded: encoder.encode(m)) }

    /// Queues an encoded control message (one encoding can go to many clients).
    func enqueue(_ c: Client, encoded bytes: [UInt8]) {
        // Control messages are few and small. A client is "not reading" when 256 are queued and its socket still
        // holds unsent bytes — its own lack of progress, not a stall of ours (then the queue may grow to 4096).
        if c.control.count >= 256, c.control.count >= 4096 || loop.hasUnsentOutput(c.id) {
            loop.close(c.id, code: 1008, reason: "not reading")
            return
        }
        c.control.append(bytes)
        loop.requestWrite(c.id)
    }

    // MARK: connections

    /// A WebSocket upgrade: a well-formed RFC 6455 handshake on `/stream` with our subprotocol, from an allowed
    /// origin, and not too many new connections from its address (refused with an HTTP status, before any work).
    public func shouldAccept(_ u: UpgradeRequest) -> Int? {
        let status = upgradeRefusal(u, nowNs: DispatchTime.now().uptimeNanoseconds)
        if let status {
            metrics.refused.increment()
            if status == 429 || status == 403 { metrics.limitHits.increment() }
        }
        return status
    }

    func upgradeRefusal(_ u: UpgradeRequest, nowNs: UInt64) -> Int? {
        if let p = u.problem(path: "/stream") {
            logger.notice("upgrade refused", metadata: ["peer": "\(u.peer)", "status": "\(p.status)", "reason": "\(p.reason)"])
            return p.status
        }
        let offered = u.subprotocols.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard offered.contains(ProtocolVersion.subprotocol) else { return 400 }
        // Browsers send Origin; an allow-list keeps other sites' pages from opening streams with a user's cookies
        // or network position. Non-browser clients send none.
        if !configuration.allowedOrigins.isEmpty, !u.origin.isEmpty, !configuration.allowedOrigins.contains(u.origin) {
            logger.notice("upgrade refused: origin not allowed", metadata: ["origin": "\(u.origin)"])
            return 403
        }
        // New connections per address: a token bucket; the handshake is refused before a connection exists.
        if connectRate.count > 10_000 { connectRate = connectRate.filter { !$0.value.isFull(nowNs: nowNs) } }
        var bucket = connectRate[u.peer] ?? TokenBucket(capacity: Double(configuration.connectionBurstPerAddress), perSecond: Double(configuration.connectionsPerSecondPerAddress), nowNs: nowNs)
        let ok = bucket.take(nowNs: nowNs)
        let report = !ok && bucket.shouldReport(nowNs: nowNs)
        connectRate[u.peer] = bucket
        if report {
            logger.notice("new connections from one address over the limit", metadata: ["peer": "\(u.peer)", "perSecond": "\(configuration.connectionsPerSecondPerAddress)"])
        }
        return ok ? nil : 429
    }

    public func opened(_ c: ConnectionID, peer: String) {
        if connectionsByPeer[peer, default: 0] >= configuration.maxConnectionsPerAddress {
            metrics.limitHits.increment()
            logger.notice("too many connections from one address", metadata: ["peer": "\(peer)"])
            let cl = Client(id: c, peer: peer, openedNs: DispatchTime.now().uptimeNanoseconds, inRate: messageBucket(), tickMs: tickMs)
            cl.closeAfterFlush = true
            clients[c] = cl
            enqueue(cl, .error(code: .rateLimited, requestId: 0, message: "too many connections from \(peer)"))
            return
        }
        connectionsByPeer[peer, default: 0] += 1
        let cl = Client(id: c, peer: peer, openedNs: DispatchTime.now().uptimeNanoseconds, inRate: messageBucket(), tickMs: tickMs)
        cl.counted = true
        clients[c] = cl
        metrics.clients.set(Double(clients.count))
        logger.debug("connected", metadata: ["conn": "\(c)", "peer": "\(peer)"])
    }

    func messageBucket() -> TokenBucket {
        let rate = Double(configuration.maxMessagesPerSecond)
        return TokenBucket(capacity: rate, perSecond: rate, nowNs: DispatchTime.now().uptimeNanoseconds)
    }

    /// A connection is gone. Constant work per close (counts are kept, room members hear of it once per tick), so
    /// a thousand closing at once cost about a tick.
    public func closed(_ c: ConnectionID) {
        guard let cl = clients.removeValue(forKey: c) else { return }
        detach(cl)
        if cl.subscription != nil { subscribedCount -= 1 }
        if cl.counted {
            let n = connectionsByPeer[cl.peer, default: 1] - 1
            connectionsByPeer[cl.peer] = n > 0 ? n : nil
        }
        metrics.clients.set(Double(clients.count))
        metrics.subscribed.set(Double(subscribedCount))
        logger.debug("closed", metadata: ["conn": "\(c)"])
    }

    public func stopping() {
        logger.info("shutting down: closing every connection with 1001", metadata: ["connections": "\(clients.count)"])
        for c in clients.keys { loop.close(c, code: 1001, reason: "server shutting down") }
    }

    public func writable(_ c: ConnectionID) -> WriteAction {
        guard let cl = clients[c] else { return .idle }
        let nowNs = DispatchTime.now().uptimeNanoseconds
        if let m = cl.control.popFirst() {
            metrics.bytesSent.increment(by: m.count)
            return .send(m, more: !cl.control.isEmpty || cl.closeAfterFlush || (cl.subscription != nil && frameAllowed(cl, nowNs)))
        }
        if cl.closeAfterFlush { return .close(code: cl.closeCode, reason: cl.closeReason) }
        guard var s = cl.subscription, frameAllowed(cl, nowNs) else { return .idle }
        if cl.playback != nil {
            guard let f = playbackFrame(cl) else { return .idle }
            noteSent(cl, version: f.version, s)
            metrics.framesSent.increment()
            metrics.bytesSent.increment(by: f.bytes.count)
            return .send(f.bytes, more: false)
        }
        // Session changes (selection markers, annotations, presence leaving) edit the graph between ticks:
        // seal them as a version before computing frames from it.
        if runtime.graph.hasPendingChanges {
            let nowMs = Self.wallMs()
            runtime.commit(timeMs: nowMs)
            replicate(nowMs: nowMs)
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let encodedBefore = engine.framesEncoded
        guard let f = engine.encodedFrame(from: s.sent, filter: s.filter, version: ProtocolVersion.frameEncoding(cl.machine.version)) else { return .idle }
        if engine.framesEncoded != encodedBefore {
            metrics.encodeDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - t0))
        }
        s.sent = ClientBaseline(version: f.version, filter: s.filter)
        cl.subscription = s
        noteSent(cl, version: f.version, s)
        cl.lastSendNs = nowNs
        cl.byteBudget?.spend(Double(f.bytes.count), nowNs: nowNs)
        metrics.framesSent.increment()
        if f.isKeyframe { metrics.keyframesSent.increment() }
        metrics.bytesSent.increment(by: f.bytes.count)
        return .send(f.bytes, more: false)
    }

    public func received(_ c: ConnectionID, message: [UInt8], binary: Bool) -> ReceiveAction {
        guard let cl = clients[c] else { return .close(code: 1011, reason: "unknown connection") }
        metrics.messagesReceived.increment()
        // Per-connection rate limit: a token bucket; the excess is dropped with one rateLimited error a second.
        let nowNs = DispatchTime.now().uptimeNanoseconds
        guard cl.inRate.take(nowNs: nowNs) else {
            metrics.rateLimited.increment()
            if cl.inRate.shouldReport(nowNs: nowNs) {
                logger.notice("rate limit hit", metadata: ["conn": "\(c)", "peer": "\(cl.peer)"])
                enqueue(cl, .error(code: .rateLimited, requestId: 0, message: "more than \(configuration.maxMessagesPerSecond) messages/s; excess dropped"))
            }
            return .keep
        }
        guard binary else {
            protocolError(cl, "text message")
            return .close(code: 1003, reason: "binary messages only")
        }
        let m: ClientMessage
        do {
            m = try decoder.decodeClientMessage(message)
        } catch {
            if error.code == .unknownMessageType {
                protocolError(cl, "\(error)")
                enqueue(cl, .error(code: .unknownMessage, requestId: 0, message: error.description))
                return .keep
            }
            protocolError(cl, "\(error)")
            if error.code == .tooLarge { return refuse(cl, .tooLarge, "a message over \(configuration.maxClientMessageBytes) bytes", closeCode: 1009) }
            return refuse(cl, .malformed, error.description, closeCode: 1007)
        }
        // A session being looked up in the cluster has no identity here yet: what follows its hello waits for it.
        if cl.awaitingCluster && !isHello(m) { return hold(cl, m) }
        switch cl.machine.admit(isHello: isHello(m)) {
        case .pass: break
        case .hold: return hold(cl, m)
        case .drop: return .keep
        case .refuse(let code, let message, let closeCode):
            protocolError(cl, "\(Self.kind(m)) refused: \(message)")
            return refuse(cl, code, message, closeCode: closeCode)
        }
        return handle(m, from: cl)
    }

    /// A message over the limit: error 8, then close 1009 once it is out (the rest of the message is discarded).
    public func tooLarge(_ c: ConnectionID) -> ReceiveAction {
        guard let cl = clients[c] else { return .close(code: 1009, reason: "message too big") }
        protocolError(cl, "a message over \(configuration.maxClientMessageBytes) bytes")
        return refuse(cl, .tooLarge, "a message over \(configuration.maxClientMessageBytes) bytes", closeCode: 1009)
    }

    /// The most messages a client may send behind its hello before the welcome (while its token is checked).
    static let maxHeldMessages = 32

    /// Keeps a message that came before the welcome, to handle once the session exists (``releaseHeld(_:)``).
    func hold(_ c: Client, _ m: ClientMessage) -> ReceiveAction {
        guard c.held.count < Self.maxHeldMessages else {
            metrics.rateLimited.increment()
            c.heldDropped += 1
            if c.heldDropped == 1 {
                enqueue(c, .error(code: .rateLimited, requestId: 0, message: "more than \(Self.maxHeldMessages) messages before welcome; the rest are dropped"))
            }
            return .keep
        }
        c.held.append(m)
        return .keep
    }

    /// The session exists: messages that came behind the hello are handled now, in order.
    func releaseHeld(_ c: Client) {
        let held = c.held
        c.held = []
        for m in held {
            guard clients[c.id] === c, !c.closeAfterFlush else { return }
            if case .close(let code, let reason) = handle(m, from: c) {
                loop.close(c.id, code: code, reason: reason)
                return
            }
        }
    }

    /// Answers with error `code`, then closes with `closeCode` once it is out; nothing more is read.
    func refuse(_ c: Client, _ code: ErrorCode, _ message: String, closeCode: Int) -> ReceiveAction {
        enqueue(c, .error(code: code, requestId: 0, message: message))
        c.machine.close()
        c.held = []
        c.closeCode = closeCode
        var reason = message
        while reason.utf8.count > 120 { reason.removeLast() }  // a close frame's reason is at most 123 bytes
        c.closeReason = reason
        c.closeAfterFlush = true
        return .keep
    }

    private func isHello(_ m: ClientMessage) -> Bool {
        if case .hello = m { return true }
        return false
    }

    func protocolError(_ c: Client, _ what: String) {
        metrics.protocolErrors.increment()
        c.protocolErrors += 1
        if c.protocolErrors <= 3 {
            logger.notice("bad input from client", metadata: ["conn": "\(c.id)", "peer": "\(c.peer)", "error": "\(what)"])
        }
    }

    private func handle(_ m: ClientMessage, from c: Client) -> ReceiveAction {
        switch m {
        case .hello(let minV, let maxV, let device, let name, let token, let resumeToken, let resumeVersion):
            switch c.machine.hello(minVersion: minV, maxVersion: maxV, supported: ProtocolVersion.supported, authRequired: authenticator != nil) {
            case .alreadyEstablished:
                enqueue(c, .error(code: .malformed, requestId: 0, message: "hello was already sent"))
                return .keep
            case .refuse(let code, let message, let closeCode):
                protocolError(c, "no common version in \(minV)…\(maxV)")
                return refuse(c, code, message, closeCode: closeCode)
            case .verify, .establish:
                c.device = device
                c.name = name
                return hello(c, token: token, resumeToken: resumeToken, resumeVersion: resumeVersion)
            }
        case .subscribe(let requestId, let interest):
            if let allowed = c.session?.identity.scenes, !allowed.contains(interest.sceneId) {
                metrics.refusals.increment()
                enqueue(c, .error(code: .forbidden, requestId: requestId, message: "scene '\(interest.sceneId)' is not allowed for you"))
                return .keep
            }
            guard interest.sceneId == runtime.scene.id else {
                enqueue(c, .error(code: .unknownScene, requestId: requestId, message: "no scene '\(interest.sceneId)'"))
                return .keep
            }
            if c.subscription == nil, let session = c.session, !room.hasRoom(for: session.id) {
                enqueue(c, .error(code: .roomFull, requestId: requestId, message: "room is full (\(configuration.roomCapacity) sessions)"))
                return .keep
            }
            let first = c.subscription == nil
            setSubscription(c, subscription(interest, for: c.session, sent: c.subscription?.sent ?? c.resumeBase))
            c.resumeBase = nil
            c.session?.interest = interest
            if let s = c.session { persist(s) }
            c.byteBudget = interest.byteBudget > 0
                ? TokenBucket(capacity: Double(interest.byteBudget), perSecond: Double(interest.byteBudget), nowNs: DispatchTime.now().uptimeNanoseconds)
                : nil
            c.lastSendNs = 0
            c.nextDueTick = 0
            if first { broadcastActive(to: c) }
            sendAnchors(to: c)
            loop.requestWrite(c.id)
        case .ack(let version):
            guard c.subscription != nil else {
                enqueue(c, .error(code: .notSubscribed, requestId: 0, message: "ack before subscribe"))
                return .keep
            }
            while let first = c.unacked.first, first.version <= version {
                c.unacked.removeFirst()
                // Only live versions are a place to resume from.
                if c.playback == nil { c.session?.acked = first }
            }
        case .ping(let nonce):
            enqueue(c, .pong(nonce: nonce, serverTimeMs: Self.wallMs()))
        case .refreshToken(let token):
            refresh(c, token: token)
        case .presence(let head, let left, let right, let pointer, _):
            presence(c, PresenceUpdate(head: head, left: left, right: right, pointer: pointer))
        case .select(let nodes):
            select(c, nodes)
        case .annotate(let requestId, let node, let offset, let text, let remove):
            annotate(c, requestId: requestId, node: node, offset: offset, text: text, remove: remove)
        case .handoffOffer(let requestId, let keep):
            offer(c, requestId: requestId, keepOldDevice: keep)
        case .handoffClaim(let requestId, let code, let sessionId):
            claim(c, requestId: requestId, code: code, sessionId: sessionId)
        case .listSessions(let requestId):
            listSessions(c, requestId: requestId)
        case .follow(let userId):
            follow(c, userId: userId)
        case .requestKeyframe(let requestId):
            requestKeyframe(c, requestId: requestId)
        case .playback(let op, let timeMs, let speed):
            playback(c, op: op, timeMs: timeMs, speedMilli: speed)
        }
        return .keep
    }

    /// §7.4: the client could not apply a frame. Its baseline goes (live, or its playback's), so the next frame is a
    /// keyframe of what it should see; frames sent before are no longer waited for (the client drops them).
    func requestKeyframe(_ c: Client, requestId: UInt32) {
        guard var s = c.subscription else {
            enqueue(c, .error(code: .notSubscribed, requestId: requestId, message: "requestKeyframe before subscribe"))
            return
        }
        guard c.keyframeRate.take(nowNs: DispatchTime.now().uptimeNanoseconds) else {
            metrics.rateLimited.increment()
            enqueue(c, .error(code: .rateLimited, requestId: requestId, message: "at most one keyframe request a second; this one is dropped"))
            return
        }
        metrics.keyframesRequested.increment()
        s.sent = nil
        setSubscription(c, s)
        c.playback?.sent = nil
        c.unacked.removeAll()
        c.nextDueTick = 0
        loop.requestWrite(c.id)
    }

    /// The alerts active now (the owner's, on a fan-out node), for a client that just subscribed.
    func broadcastActive(to c: Client) {
        guard let s = c.subscription else { return }
        let members = engine.membership(s.filter)
        let limited = c.session?.identity.zones != nil
        let active = isFollower ? (cluster?.activeAlerts.values.map { $0 } ?? []) : activeAlertRecords()
        var records = active.sorted { $0.id < $1.id }.compactMap { r -> AlertRecord? in
            var r = r
            r.node = r.node.flatMap { members.contains(Int($0)) ? $0 : nil }
            if limited && r.node == nil { return nil }
            return r
        }
        if let stale = cluster?.staleAlert { records.append(stale) }  // about the whole scene: for every client
        if !records.isEmpty { enqueue(c, .alerts(records)) }
    }

    /// This node's active alerts as records pinned to scene nodes.
    func activeAlertRecords() -> [AlertRecord] {
        runtime.alerts.active.values.map { e in
            AlertRecord(id: e.id, node: e.nodeId.flatMap { runtime.graph.index(of: $0) }, severity: e.severity, state: .raised, timeMs: e.timeMs, message: e.message)
        }
    }

    static func kind(_ m: ClientMessage) -> String {
        String(describing: m).prefix { $0 != "(" }.description
    }

    static func randomHex(_ bytes: Int) -> String {
        var g = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &g)) }.joined()
    }

}

/// Hands a value from a task to the thread that waits for it.
final class LockedResult: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<Authenticator, any Error>?
    func set(_ r: Result<Authenticator, any Error>) {
        lock.lock()
        value = r
        lock.unlock()
    }
    func get() throws -> Authenticator {
        lock.lock()
        defer { lock.unlock() }
        return try value!.get()
    }
}

/// Carries a service-thread-confined object into a closure that runs on that same thread.
/// An exclusive `flock` on `DATA/.lock`: a second server on the same data folder is refused with a clear error
/// instead of interleaving its writes. The kernel releases it when the process ends, `kill -9` included.
final class DataFolderLock {
    private let fd: Int32

    init(_ dir: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw ConfigError(file: dir, location: "data", reason: "cannot create the data folder (\(error))")
        }
        fd = open("\(dir)/.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ConfigError(file: dir, location: "data", reason: "cannot open \(dir)/.lock (errno \(errno))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw ConfigError(file: dir, location: "data", reason: "in use by another scenestream process (one server per data folder; use --data)")
        }
    }

    deinit { close(fd) }
}

/// A value handed from one thread to another that keeps no reference to it (a rebuilt runtime, a storage read):
/// ownership moves with the value, so the check the compiler cannot make is made by construction.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
