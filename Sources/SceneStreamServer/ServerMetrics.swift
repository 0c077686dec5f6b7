import CoreMetrics
import Foundation
import Prometheus

/// The server's metrics, through swift-metrics, named the OpenTelemetry way (`scenestream.frames.sent`); the
/// Prometheus backend (swift-prometheus) exposes them at `/metrics` with Prometheus' conventions
/// (`scenestream_frames_sent_total`, durations in `_seconds`). The factory is passed in, so two servers in one
/// process (tests, benchmarks) keep separate figures.
final class ServerMetrics: Sendable {
    /// What `/metrics` renders.
    let registry: PrometheusCollectorRegistry
    let factory: PrometheusNaming

    let clients: CoreMetrics.Gauge
    let subscribed: CoreMetrics.Gauge
    let sceneVersion: CoreMetrics.Gauge
    let controlQueued: CoreMetrics.Gauge
    let unackedFrames: CoreMetrics.Gauge
    let uptime: CoreMetrics.Gauge
    let mqttConnected: CoreMetrics.Gauge
    let framesSent: CoreMetrics.Counter
    let keyframesSent: CoreMetrics.Counter
    /// Keyframes clients asked for (requestKeyframe).
    let keyframesRequested: CoreMetrics.Counter
    let bytesSent: CoreMetrics.Counter
    let messagesReceived: CoreMetrics.Counter
    let protocolErrors: CoreMetrics.Counter
    let refused: CoreMetrics.Counter
    let rateLimited: CoreMetrics.Counter
    let resumes: CoreMetrics.Counter
    let ingestedMQTT: CoreMetrics.Counter
    let ingestedHTTP: CoreMetrics.Counter
    let ingestRejected: CoreMetrics.Counter
    let ingestDuplicates: CoreMetrics.Counter
    let sparkplugMessages: CoreMetrics.Counter
    let sparkplugRebirths: CoreMetrics.Counter
    /// Twins marked stale because their source stopped sending (``AgeWatch``).
    let staleByAge: CoreMetrics.Counter
    /// OPC UA PubSub messages read, DataSetMessages the publisher sent that never came (sequence gaps).
    let opcuaMessages: CoreMetrics.Counter
    let opcuaSequenceGaps: CoreMetrics.Counter
    let storageErrors: CoreMetrics.Counter
    let handoffs: CoreMetrics.Counter
    let refusals: CoreMetrics.Counter
    let limitHits: CoreMetrics.Counter
    let authFailures: CoreMetrics.Counter
    let ingested: CoreMetrics.Counter
    let nodeChanges: CoreMetrics.Counter
    let alerts: CoreMetrics.Counter
    let seekDuration: CoreMetrics.Timer
    let clusterLag: CoreMetrics.Gauge
    let clusterSynced: CoreMetrics.Gauge
    /// 1 while a fan-out node does not hear the scene's owner (its clients see the last scene, marked stale).
    let clusterStale: CoreMetrics.Gauge
    /// How far this node's clock is ahead of the owner's, plus the transit time: the least (now − commit time) of
    /// the commits received in the last second, in milliseconds.
    let clusterClockOffset: CoreMetrics.Gauge
    /// Seconds in which that offset was over 2 s (clocks apart: displayed times disagree between nodes).
    let clusterClockSkewed: CoreMetrics.Counter
    let clusterConnected: CoreMetrics.Gauge
    let clusterOwner: CoreMetrics.Gauge
    let commitsPublished: CoreMetrics.Counter
    let keyframesPublished: CoreMetrics.Counter
    let publishFailures: CoreMetrics.Counter
    let commitsReceived: CoreMetrics.Counter
    let commitsApplied: CoreMetrics.Counter
    let catchUps: CoreMetrics.Counter
    let clusterRefused: CoreMetrics.Counter
    /// HTTP ingest updates a new owner applied from the ingest log (acknowledged by the one before).
    let ingestReplayed: CoreMetrics.Counter
    /// HTTP batches refused because the ingest log could not store them.
    let ingestLogFailures: CoreMetrics.Counter
    /// Presence, selection and annotation messages a fan-out node sent its owner, and those the owner applied.
    let collaborationForwarded: CoreMetrics.Counter
    let collaborationApplied: CoreMetrics.Counter
    let kvOperations: CoreMetrics.Counter
    let kvFailures: CoreMetrics.Counter
    let encodeDuration: CoreMetrics.Timer
    /// Tick intervals over two ticks long in which the service thread's own work (CPU time) took more than a tick.
    let loopStalls: CoreMetrics.Counter

    init() {
        registry = PrometheusCollectorRegistry()
        var prometheus = PrometheusMetricsFactory(registry: registry)
        prometheus.durationHistogramBuckets = [
            PrometheusNaming.timerName("scenestream.playback.seek.duration"): [1, 5, 20, 50, 100, 200, 500, 1000].map { .milliseconds($0) },
            PrometheusNaming.timerName("scenestream.frame.encode.duration"): [100, 500, 1000, 5000, 10_000, 50_000, 100_000].map { .microseconds($0) },
        ]
        let f = PrometheusNaming(prometheus)
        factory = f
        func counter(_ label: String) -> CoreMetrics.Counter { CoreMetrics.Counter(label: label, dimensions: [], factory: f) }
        func gauge(_ label: String) -> CoreMetrics.Gauge { CoreMetrics.Gauge(label: label, dimensions: [], factory: f) }
        clients = gauge("scenestream.clients")
        subscribed = gauge("scenestream.clients.subscribed")
        sceneVersion = gauge("scenestream.scene.version")
        controlQueued = gauge("scenestream.control_messages.queued")
        unackedFrames = gauge("scenestream.frames.unacknowledged")
        uptime = gauge("scenestream.uptime.seconds")
        mqttConnected = gauge("scenestream.mqtt.connected")
        framesSent = counter("scenestream.frames.sent")
        keyframesSent = counter("scenestream.keyframes.sent")
        keyframesRequested = counter("scenestream.keyframes.requested")
        bytesSent = counter("scenestream.bytes.sent")
        messagesReceived = counter("scenestream.messages.received")
        protocolErrors = counter("scenestream.protocol.errors")
        refused = counter("scenestream.upgrades.refused")
        rateLimited = counter("scenestream.rate_limited.messages")
        limitHits = counter("scenestream.limits.hit")
        authFailures = counter("scenestream.auth.failures")
        ingestedMQTT = counter("scenestream.ingest.mqtt.updates")
        ingestedHTTP = counter("scenestream.ingest.http.updates")
        ingestRejected = counter("scenestream.ingest.rejected")
        ingestDuplicates = counter("scenestream.ingest.duplicates")
        sparkplugMessages = counter("scenestream.sparkplug.messages")
        sparkplugRebirths = counter("scenestream.sparkplug.rebirth_requests")
        staleByAge = counter("scenestream.ingest.stale_by_age")
        opcuaMessages = counter("scenestream.opcua.messages")
        opcuaSequenceGaps = counter("scenestream.opcua.sequence_gaps")
        storageErrors = counter("scenestream.storage.errors")
        resumes = counter("scenestream.session.resumes")
        handoffs = counter("scenestream.handoffs")
        refusals = counter("scenestream.refusals")
        ingested = counter("scenestream.ingest.updates")
        nodeChanges = counter("scenestream.node.changes")
        alerts = counter("scenestream.alerts")
        seekDuration = CoreMetrics.Timer(label: "scenestream.playback.seek.duration", dimensions: [], factory: f)
        encodeDuration = CoreMetrics.Timer(label: "scenestream.frame.encode.duration", dimensions: [], factory: f)
        clusterLag = gauge("scenestream.cluster.lag.versions")
        clusterSynced = gauge("scenestream.cluster.synced")
        clusterStale = gauge("scenestream.cluster.stale")
        clusterClockOffset = gauge("scenestream.cluster.clock_offset_ms")
        clusterClockSkewed = counter("scenestream.cluster.clock.skewed")
        clusterConnected = gauge("scenestream.cluster.nats.connected")
        clusterOwner = gauge("scenestream.cluster.owner.active")
        commitsPublished = counter("scenestream.cluster.commits.published")
        keyframesPublished = counter("scenestream.cluster.keyframes.published")
        publishFailures = counter("scenestream.cluster.publish.failures")
        commitsReceived = counter("scenestream.cluster.commits.received")
        commitsApplied = counter("scenestream.cluster.commits.applied")
        catchUps = counter("scenestream.cluster.catchups")
        clusterRefused = counter("scenestream.cluster.messages.refused")
        ingestReplayed = counter("scenestream.cluster.ingest.replayed")
        ingestLogFailures = counter("scenestream.cluster.ingest.log.failures")
        collaborationForwarded = counter("scenestream.cluster.collaboration.forwarded")
        collaborationApplied = counter("scenestream.cluster.collaboration.applied")
        kvOperations = counter("scenestream.cluster.kv.operations")
        kvFailures = counter("scenestream.cluster.kv.failures")
        loopStalls = counter("scenestream.loop.stalls")
    }

    /// Counts a refused ingest message by source (mqtt, sparkplug, http) and reason code.
    func refused(source: String, reason: String, count: Int = 1) {
        ingestRejected.increment(by: count)
        CoreMetrics.Counter(label: "scenestream.ingest.refused", dimensions: [("source", source), ("reason", reason)], factory: factory).increment(by: count)
    }

    /// Counts an HTTP answer by route and status.
    func http(route: String, status: Int) {
        CoreMetrics.Counter(label: "scenestream.http.responses", dimensions: [("route", route), ("status", "\(status)")], factory: factory).increment()
    }

    /// Counts a plant reload (files changed on disk or written over HTTP) by result: applied, refused.
    func plantReload(result: String) {
        CoreMetrics.Counter(label: "scenestream.plant.reloads", dimensions: [("result", result)], factory: factory).increment()
    }

    /// Counts a playback seek by where the past was read from (memory, disk).
    func seek(source: String) {
        CoreMetrics.Counter(label: "scenestream.playback.seeks", dimensions: [("source", source)], factory: factory).increment()
    }
}

/// Names swift-metrics labels the Prometheus way where the kind of metric is known — when it is made: counters get
/// `_total`, timers are histograms in `_seconds` (`scenestream.frame.encode.duration` →
/// `scenestream_frame_encode_seconds`), dots become underscores — then hands them to swift-prometheus.
struct PrometheusNaming: MetricsFactory {
    let base: PrometheusMetricsFactory

    init(_ base: PrometheusMetricsFactory) { self.base = base }

    static func plainName(_ label: String) -> String { label.replacingOccurrences(of: ".", with: "_") }
    static func counterName(_ label: String) -> String { plainName(label) + "_total" }
    static func timerName(_ label: String) -> String {
        let name = plainName(label)
        return name.hasSuffix("_duration") ? String(name.dropLast(9)) + "_seconds" : name + "_seconds"
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        base.makeCounter(label: Self.counterName(label), dimensions: dimensions)
    }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        base.makeFloatingPointCounter(label: Self.counterName(label), dimensions: dimensions)
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        base.makeMeter(label: Self.plainName(label), dimensions: dimensions)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        base.makeRecorder(label: Self.plainName(label), dimensions: dimensions, aggregate: aggregate)
    }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        base.makeTimer(label: Self.timerName(label), dimensions: dimensions)
    }
    func destroyCounter(_ handler: any CounterHandler) { base.destroyCounter(handler) }
    func destroyMeter(_ handler: any MeterHandler) { base.destroyMeter(handler) }
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) { base.destroyFloatingPointCounter(handler) }
    func destroyRecorder(_ handler: any RecorderHandler) { base.destroyRecorder(handler) }
    func destroyTimer(_ handler: any TimerHandler) { base.destroyTimer(handler) }
}

extension CoreMetrics.Gauge {
    /// Sets the gauge (swift-metrics calls it recording).
    func set(_ v: Double) { record(v) }
}
