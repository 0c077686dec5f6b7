import Dispatch
import CoreMetrics
import Logging
import SceneStreamMQTT
import SceneStreamStorage
import ServiceLifecycle

/// The server's long-running parts as swift-service-lifecycle services, in start order: storage, MQTT,
/// streaming. A `ServiceGroup` shuts them down in reverse — clients closed with 1001 first, then MQTT with the
/// Sparkplug host's STATE offline, then storage and annotations flushed — so nothing acknowledged is lost.
extension StreamingServer {
    /// The services of this server; `onReady` runs once the stream accepts connections.
    public func services(onReady: @escaping @Sendable () -> Void = {}) -> [any Service] {
        var out: [any Service] = []
        if storage != nil || annotationWriter != nil { out.append(StorageService(storage: storage, annotations: annotationWriter)) }
        if let mqtt { out.append(MQTTService(client: mqtt, farewell: mqttFarewell, ownership: cluster?.ownership)) }
        out.append(StreamingService(server: self, onReady: onReady))
        if let watch = plantWatchService() { out.append(watch) }
        return out
    }

    /// The swift-metrics factory whose registry `/metrics` renders (bootstrap `MetricsSystem` with it so that
    /// other libraries' metrics show there too).
    public var metricsFactory: any MetricsFactory { metrics.factory }
}

/// Runs `body` on a thread of its own and waits for it without holding a task thread (loop joins, fsyncs).
func offThread(_ body: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            body()
            done.resume()
        }
    }
}

/// The event loop: started when the group starts; on graceful shutdown every client is closed with 1001 and the
/// loop ends.
struct StreamingService: Service, @unchecked Sendable {
    // @unchecked: the server is the loop's; this touches only what is safe from any thread (starting the loop
    // before it runs, `stop`, `wait`).
    let server: StreamingServer
    let onReady: @Sendable () -> Void

    func run() async throws {
        server.startStreaming()
        onReady()
        try? await gracefulShutdown()
        await offThread { [server = UncheckedSendable(server)] in server.value.stopStreaming() }
    }
}

/// The MQTT connection (plain topics and Sparkplug B): connects when the group starts; on shutdown publishes the
/// host's STATE offline (if Sparkplug is on) and disconnects cleanly.
struct MQTTService: Service {
    let client: MQTTClient
    let farewell: MQTTClient.Message?
    /// In a cluster: ingest starts once this node owns the scene (a standby's broker session waits for takeover).
    var ownership: Gate?

    func run() async throws {
        if let ownership {
            await withGracefulShutdownHandler { await ownership.wait() } onGracefulShutdown: { ownership.open() }
            if Task.isShuttingDownGracefully { return }
        }
        try client.start()
        try? await gracefulShutdown()
        await offThread { [client, farewell] in client.stop(farewell: farewell) }
    }
}

/// Storage (twin history, sessions) and annotations: writes happen on their own queues; on shutdown, once
/// streaming and ingest have stopped, everything queued is flushed to disk.
struct StorageService: Service {
    let storage: Storage?
    let annotations: AnnotationWriter?

    func run() async throws {
        try? await gracefulShutdown()
        await offThread { [storage, annotations] in
            storage?.flush()
            annotations?.flush()
        }
    }
}
