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
    let factory: PrometheusMetricsFactory

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

    /// CoreMetrics.Counter names (swift-metrics labels): Prometheus shows them with `_total`.
    static let counters: Set<String> = [
        "scenestream.frames.sent", "scenestream.keyframes.sent", "scenestream.keyframes.requested", "scenestream.bytes.sent", "scenestream.messages.received",
        "scenestream.protocol.errors", "scenestream.upgrades.refused", "scenestream.rate_limited.messages",
        "scenestream.session.resumes", "scenestream.ingest.mqtt.updates", "scenestream.ingest.http.updates",
        "scenestream.ingest.rejected", "scenestream.ingest.refused", "scenestream.ingest.duplicates",
        "scenestream.sparkplug.messages", "scenestream.sparkplug.rebirth_requests", "scenestream.storage.errors",
        "scenestream.handoffs", "scenestream.refusals", "scenestream.limits.hit", "scenestream.auth.failures",
        "scenestream.ingest.updates", "scenestream.node.changes", "scenestream.alerts", "scenestream.http.responses",
        "scenestream.playback.seeks", "scenestream.cluster.commits.published", "scenestream.cluster.keyframes.published",
        "scenestream.cluster.publish.failures", "scenestream.cluster.commits.received", "scenestream.cluster.commits.applied",
        "scenestream.cluster.catchups", "scenestream.cluster.messages.refused", "scenestream.cluster.kv.operations",
        "scenestream.cluster.kv.failures", "scenestream.loop.stalls", "scenestream.cluster.collaboration.forwarded", "scenestream.cluster.collaboration.applied", "scenestream.cluster.clock.skewed",
        "scenestream.cluster.ingest.log.failures", "scenestream.cluster.ingest.replayed",
    ]
    /// CoreMetrics.Timer names: Prometheus shows them as histograms in seconds.
    static let timers: Set<String> = ["scenestream.playback.seek.duration", "scenestream.frame.encode.duration"]

    /// The Prometheus name of a swift-metrics label.
    static func prometheusName(_ label: String) -> String {
        let base = label.replacingOccurrences(of: ".", with: "_")
        if counters.contains(label) { return base + "_total" }
        if timers.contains(label) { return base.hasSuffix("_duration") ? String(base.dropLast(9)) + "_seconds" : base + "_seconds" }
        return base
    }

    init() {
        registry = PrometheusCollectorRegistry()
        var f = PrometheusMetricsFactory(registry: registry)
        f.nameAndLabelSanitizer = { name, labels in (ServerMetrics.prometheusName(name), labels) }
        f.durationHistogramBuckets = [
            Self.prometheusName("scenestream.playback.seek.duration"): [1, 5, 20, 50, 100, 200, 500, 1000].map { .milliseconds($0) },
            Self.prometheusName("scenestream.frame.encode.duration"): [100, 500, 1000, 5000, 10_000, 50_000, 100_000].map { .microseconds($0) },
        ]
        factory = f
        func counter(_ label: String) -> CoreMetrics.Counter {
            assert(Self.counters.contains(label), "\(label) is not in ServerMetrics.counters: Prometheus would show it without _total")
            return CoreMetrics.Counter(label: label, dimensions: [], factory: f)
        }
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

    /// Counts a playback seek by where the past was read from (memory, disk).
    func seek(source: String) {
        CoreMetrics.Counter(label: "scenestream.playback.seeks", dimensions: [("source", source)], factory: factory).increment()
    }
}

extension CoreMetrics.Gauge {
    /// Sets the gauge (swift-metrics calls it recording).
    func set(_ v: Double) { record(v) }
}
