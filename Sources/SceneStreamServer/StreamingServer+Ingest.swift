import Foundation
import SceneStreamCore
import SceneStreamMQTT
import SceneStreamProtocol
import SceneStreamTransport

/// Updates that arrived on the MQTT thread, waiting for the next tick; and what was refused, by reason.
final class IngestInbox: @unchecked Sendable {
    private let lock = NSLock()
    private var updates: [PropertyUpdate] = []
    private var rejected: [String: Int] = [:]
    private var newlyRejectedTopics: [(String, String)] = []
    private var loggedTopics: Set<String> = []
    private var connectionChanges: [Bool] = []
    private(set) var received = 0

    func add(_ u: PropertyUpdate) {
        lock.lock()
        updates.append(u)
        received += 1
        lock.unlock()
    }

    func reject(topic: String, reason: String) {
        lock.lock()
        rejected[reason, default: 0] += 1
        if loggedTopics.count < 1000, loggedTopics.insert(topic).inserted { newlyRejectedTopics.append((topic, reason)) }
        lock.unlock()
    }

    func connection(_ up: Bool) {
        lock.lock()
        connectionChanges.append(up)
        lock.unlock()
    }

    /// Everything since the last drain.
    func drain() -> (updates: [PropertyUpdate], rejectedTopics: [(String, String)], connection: [Bool]) {
        lock.lock()
        defer { lock.unlock() }
        let r = (updates, newlyRejectedTopics, connectionChanges)
        updates.removeAll(keepingCapacity: true)
        newlyRejectedTopics.removeAll()
        connectionChanges.removeAll()
        return r
    }
}

extension StreamingServer {
    /// Connects to the broker in the background, if the configuration names one.
    func startMQTT() throws {
        guard let m = configuration.mqtt else { return }
        let mappings = m.topics
        let ownAlerts = m.alertsTopic.isEmpty ? nil : m.alertsTopic + "/"
        let inbox = mqttInbox
        let metrics = self.metrics
        let client = try MQTTClient(
            host: m.host, port: m.port, clientId: m.clientId, logger: logger,
            onMessage: { topic, payload in
                if let ownAlerts, topic.hasPrefix(ownAlerts) { return }  // our own alerts, echoed back
                switch TopicMapping.update(topic: topic, payload: payload, mappings: mappings, nowMs: Self.wallMs()) {
                case .success(let u): inbox.add(u)
                case .failure(.noMapping):
                    metrics.ingestRejected.increment()
                    inbox.reject(topic: topic, reason: "no mapping for the topic")
                case .failure(.badPayload(let why)):
                    metrics.ingestRejected.increment()
                    inbox.reject(topic: topic, reason: why)
                }
            },
            onConnection: { up in inbox.connection(up) })
        for t in Set(mappings.map(\.filter)) { client.subscribe(t, qos: m.qos) }
        mqtt = client
        try client.start()
    }

    /// Takes what MQTT delivered since the last tick; marks MQTT twins stale while the broker is away.
    func drainMQTT(nowMs: UInt64) -> [PropertyUpdate] {
        guard mqtt != nil else { return [] }
        let (updates, rejected, changes) = mqttInbox.drain()
        for (topic, reason) in rejected {
            logger.notice("MQTT message refused", metadata: ["topic": "\(topic)", "reason": "\(reason)"])
        }
        var out = updates
        for u in updates { mqttTwins.insert(u.twin) }
        for up in changes {
            metrics.mqttConnected.set(Double(up ? 1 : 0))
            if !up {
                // The values are the last known ones; say so instead of showing them as live.
                for twin in mqttTwins {
                    out.append(contentsOf: runtime.twins.mark(twinsWithPrefix: twin, quality: .stale, atMs: nowMs).filter { $0.twin == twin })
                }
                logger.warning("MQTT broker away: \(mqttTwins.count) twins marked stale")
            }
        }
        return out
    }

    /// Publishes alerts to the configured topic (events out to the MES / platform).
    func publishAlerts(_ events: [AlertEvent]) {
        guard let client = mqtt, let topic = configuration.mqtt?.alertsTopic, !topic.isEmpty else { return }
        for e in events {
            let o: [String: Any] = [
                "id": e.id, "rule": e.ruleId, "twin": e.twin, "severity": "\(e.severity)", "state": "\(e.state)", "timeMs": e.timeMs,
                "message": e.message,
            ]
            if let d = try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]) {
                client.publish("\(topic)/\(e.twin)", [UInt8](d), qos: 1)
            }
        }
    }

    // MARK: HTTP ingest

    /// `POST /api/ingest` with `Authorization: Bearer TOKEN` and `{"updates": [{"twin", "property", "value",
    /// "timestamp"?, "quality"?}]}`. Answered 200 only once the batch is durable (written to storage).
    func httpIngest(_ r: HTTPRequest) -> HTTPResponse {
        guard let token = configuration.ingestToken, !token.isEmpty else {
            return .text("HTTP ingest is off: set \"ingestToken\" in the configuration\n", status: 403)
        }
        guard r.authorization == "Bearer \(token)" else {
            metrics.ingestRejected.increment()
            return .text("missing or wrong bearer token\n", status: 401)
        }
        guard let body = r.body, let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let list = obj["updates"] as? [[String: Any]]
        else {
            metrics.ingestRejected.increment()
            return .text("expected {\"updates\": [{\"twin\", \"property\", \"value\"}]}\n", status: 400)
        }
        guard list.count <= 100_000 else { return .text("at most 100000 updates per batch\n", status: 413) }
        let now = Self.wallMs()
        var updates: [PropertyUpdate] = []
        for (k, u) in list.enumerated() {
            guard let twin = u["twin"] as? String, !twin.isEmpty, let property = u["property"] as? String, !property.isEmpty, let raw = u["value"] else {
                metrics.ingestRejected.increment()
                return .text("updates[\(k)]: needs twin, property and value\n", status: 400)
            }
            var payload: [String: Any] = ["value": raw]
            if let t = u["timestamp"] { payload["timestamp"] = t }
            if let q = u["quality"] { payload["quality"] = q }
            guard let data = try? JSONSerialization.data(withJSONObject: payload) else { return .text("updates[\(k)]: bad value\n", status: 400) }
            switch TopicMapping.update(
                topic: "x", payload: [UInt8](data), mappings: [try! TopicMapping(pattern: "x", twin: twin, property: property)], nowMs: now)
            {
            case .success(let p): updates.append(p)
            case .failure(let e):
                metrics.ingestRejected.increment()
                return .text("updates[\(k)]: \(e)\n", status: 400)
            }
        }
        do {
            try storage?.append(updates)
        } catch {
            logger.error("storage write failed: \(error)")
            metrics.storageErrors.increment()
            return .text("could not store the batch (\(error)); nothing was applied\n", status: 503)
        }
        httpPending.append(contentsOf: updates)
        metrics.ingestedHTTP.increment(by: Int64(updates.count))
        return HTTPResponse(contentType: "application/json", body: Array("{\"accepted\":\(updates.count),\"durable\":\(storage != nil)}".utf8))
    }

    /// `GET /api/twin?id=TWIN`: the twin's properties now.
    func twinJSON(_ id: String) -> HTTPResponse {
        let props = runtime.twins.properties(of: id)
        guard !props.isEmpty else { return .text("no twin \(id)\n", status: 404) }
        var out: [String: Any] = [:]
        for (k, v) in props {
            let value: Any
            switch v.value {
            case .number(let d): value = d
            case .bool(let b): value = b
            case .text(let s): value = s
            }
            out[k] = ["value": value, "timestamp": v.timestampMs, "quality": "\(v.quality)"]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["twin": id, "properties": out], options: [.sortedKeys])) ?? Data()
        return HTTPResponse(contentType: "application/json", body: [UInt8](data))
    }
}
