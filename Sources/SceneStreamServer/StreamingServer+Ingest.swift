import Foundation
import SceneStreamCore
import SceneStreamStorage
import SceneStreamIngest
import SceneStreamMQTT
import SceneStreamOPCUA
import SceneStreamProtocol
import SceneStreamSparkplug
import SceneStreamTransport
import SceneStreamTwinModels

/// What arrived on the MQTT thread, in order, waiting for the next tick (an ``IngestQueue``); what was refused;
/// broker connection changes; messages to send. The MQTT thread adds, the service thread drains, under one lock.
final class IngestInbox: @unchecked Sendable {
    private let lock = NSLock()
    private var queue = IngestQueue()
    private var rejects = RejectLog()
    private var connectionChanges: [Bool] = []
    private var outgoing: [MQTTClient.Message] = []
    private var periods: [String: (twin: String, property: String, ms: UInt64)] = [:]

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    func add(_ u: PropertyUpdate) { locked { queue.append(.update(u)) } }
    func add(_ us: [PropertyUpdate]) { locked { queue.append(contentsOf: us) } }
    func stale(_ twins: [String]) { locked { queue.append(.stale(twins)) } }
    func send(_ m: MQTTClient.Message) { locked { outgoing.append(m) } }
    func connection(_ up: Bool) { locked { connectionChanges.append(up) } }
    /// Notes a property's expected period (from its mapping), for staleness by age.
    func expect(twin: String, property: String, periodMs: UInt64) { locked { periods[twin + "\u{0}" + property] = (twin, property, periodMs) } }
    /// Notes a quality change without a value (an OPC UA Bad status with no value).
    func mark(twin: String, property: String, quality: Quality, atMs: UInt64) { locked { queue.append(.mark(twin: twin, property: property, quality: quality, atMs: atMs)) } }
    /// Expected periods noted since the last call.
    func takePeriods() -> [(twin: String, property: String, ms: UInt64)] {
        locked {
            defer { periods.removeAll() }
            return Array(periods.values)
        }
    }
    /// Notes a refusal; the first one per topic is logged (at most 1000 topics).
    func reject(topic: String, reason: String) { locked { rejects.note(topic: topic, reason: reason) } }

    /// Items waiting.
    var backlog: Int { locked { queue.backlog } }

    /// What arrived since the last drain, at most `maxItems` of the items (the rest stay, in order, for the next).
    func drain(maxItems: Int = .max) -> (items: [IngestItem], rejectedTopics: [(topic: String, reason: String)], connection: [Bool], outgoing: [MQTTClient.Message]) {
        locked {
            let r = (queue.drain(maxItems: maxItems), rejects.take(), connectionChanges, outgoing)
            connectionChanges.removeAll()
            outgoing.removeAll()
            return r
        }
    }
}

/// The OPC UA PubSub reader's state (writer names, sequence numbers), touched only by the MQTT network thread.
final class PubSubBox: @unchecked Sendable {
    private let lock = NSLock()
    private var reader: PubSubReader

    init(_ c: PubSubConfiguration) { reader = PubSubReader(configuration: c) }

    func handle(topic: String, payload: [UInt8], nowMs: UInt64) -> [PubSubAction] {
        lock.lock()
        defer { lock.unlock() }
        return reader.handle(topic: topic, payload: payload, nowMs: nowMs)
    }
}

/// The Sparkplug host state, touched only by the MQTT network thread (the lock makes that explicit).
final class SparkplugBox: @unchecked Sendable {
    private let lock = NSLock()
    private var host: SparkplugHost

    init(_ c: SparkplugConfiguration) { host = SparkplugHost(configuration: c) }

    func handle(topic: String, payload: [UInt8], nowMs: UInt64) -> [SparkplugAction] {
        lock.lock()
        defer { lock.unlock() }
        return host.handle(topic: topic, payload: payload, nowMs: nowMs)
    }
}

extension StreamingServer {
    /// Makes the MQTT client the configuration names (started by ``MQTTService``), with its subscriptions.
    func makeMQTT() throws {
        guard let m = configuration.mqtt else { return }
        let mappings = m.topics
        let ownAlerts = m.alertsTopic.isEmpty ? nil : m.alertsTopic + "/"
        let inbox = mqttInbox
        let metrics = self.metrics
        let sparkplug = m.sparkplug.map(SparkplugBox.init)
        let opcua = m.opcua.map(PubSubBox.init)
        let opcuaPrefix = (m.opcua?.topicPrefix ?? "") + "/"
        var will: MQTTClient.Message?
        var birth: MQTTClient.Message?
        if let sc = m.sparkplug {
            // Sparkplug 3.0 host STATE: retained, QoS 1; the will says offline with the same timestamp.
            let topic = SparkplugHost(configuration: sc).stateTopic
            let since = Self.wallMs()
            birth = MQTTClient.Message(topic: topic, payload: SparkplugHost.statePayload(online: true, timestampMs: since), qos: 1, retain: true)
            will = MQTTClient.Message(topic: topic, payload: SparkplugHost.statePayload(online: false, timestampMs: since), qos: 1, retain: true)
            mqttFarewell = will
        }
        let ownState = birth
        let maxPayload = m.maxPayloadBytes
        let client = try MQTTClient(
            host: m.host, port: m.port, clientId: m.clientId, cleanSession: m.cleanSession, will: will, birth: birth, logger: logger,
            onMessage: { topic, payload in
                if let ownAlerts, topic.hasPrefix(ownAlerts) { return }  // our own alerts, echoed back
                // One cap for plain and Sparkplug payloads: a huge message is refused before it is decoded.
                guard payload.count <= maxPayload else {
                    metrics.refused(source: topic.hasPrefix("spBv1.0/") ? "sparkplug" : "mqtt", reason: "too_large")
                    inbox.reject(topic: topic, reason: "payload of \(payload.count) bytes is over the \(maxPayload)-byte limit (mqtt.maxPayloadBytes)")
                    return
                }
                if let sparkplug, topic.hasPrefix("spBv1.0/") {
                    // Our own STATE said offline while we are connected (a stale will, another instance with our
                    // host id): say online again, as Sparkplug 3.0 asks of a host.
                    if let ownState, topic == ownState.topic {
                        let said = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]
                        if said?["online"] as? Bool == false { inbox.send(ownState) }
                        return
                    }
                    metrics.sparkplugMessages.increment()
                    for action in sparkplug.handle(topic: topic, payload: payload, nowMs: Self.wallMs()) {
                        switch action {
                        case .updates(let us): inbox.add(us)
                        case .stale(let twins): inbox.stale(twins)
                        case .publish(let t, let p):
                            metrics.sparkplugRebirths.increment()
                            inbox.send(MQTTClient.Message(topic: t, payload: p, qos: 0))
                        case .rejected(let r):
                            metrics.refused(source: "sparkplug", reason: r.code)
                            inbox.reject(topic: topic, reason: r.description)
                        }
                    }
                    return
                }
                if let opcua, topic.hasPrefix(opcuaPrefix) {
                    metrics.opcuaMessages.increment()
                    for action in opcua.handle(topic: topic, payload: payload, nowMs: Self.wallMs()) {
                        switch action {
                        case .updates(let us): inbox.add(us)
                        case .mark(let twin, let property, let quality, let at): inbox.mark(twin: twin, property: property, quality: quality, atMs: at)
                        case .expect(let twin, let property, let ms): inbox.expect(twin: twin, property: property, periodMs: ms)
                        case .sequenceGap(let n): metrics.opcuaSequenceGaps.increment(by: n)
                        case .duplicate(let n): metrics.ingestDuplicates.increment(by: n)
                        case .rejected(let r):
                            metrics.refused(source: "opcua", reason: r.code)
                            inbox.reject(topic: topic, reason: r.description)
                        }
                    }
                    return
                }
                switch TopicMapping.match(topic: topic, payload: payload, mappings: mappings, nowMs: Self.wallMs()) {
                case .success(let (u, mapping)):
                    if mapping.periodMs > 0 { inbox.expect(twin: u.twin, property: u.property, periodMs: mapping.periodMs) }
                    inbox.add(u)
                case .failure(let r):
                    metrics.refused(source: "mqtt", reason: r.code)
                    inbox.reject(topic: topic, reason: r.description)
                }
            },
            onConnection: { up in inbox.connection(up) })
        var filters = Set(mappings.map(\.filter))
        if let oc = m.opcua { filters.insert(oc.filter) }
        if let sc = m.sparkplug {
            filters.formUnion(sc.filters)
            if let birth { filters.insert(birth.topic) }
        }
        for t in filters.sorted() { client.subscribe(t, qos: m.qos) }
        mqtt = client
    }

    /// Takes what MQTT delivered since the last tick, in order: updates (exact duplicates — a QoS 1 redelivery —
    /// dropped), Sparkplug deaths as stale marks; marks every MQTT twin stale while the broker is away; sends
    /// rebirth requests.
    func drainMQTT(nowMs: UInt64) -> [PropertyUpdate] {
        guard let client = mqtt else { return [] }
        // Bounded work per tick: a burst (one huge Sparkplug message, a broker replaying a backlog) is spread over ticks.
        let (items, rejected, changes, outgoing) = mqttInbox.drain(maxItems: ingestBudget.allowance)
        for (topic, reason) in rejected {
            logger.notice("MQTT message refused", metadata: ["topic": "\(topic)", "reason": "\(reason)"])
        }
        for m in outgoing {
            client.publish(m.topic, m.payload, qos: m.qos, retain: m.retain)
            logger.info("Sparkplug message sent", metadata: ["topic": "\(m.topic)"])
        }
        for up in changes {
            metrics.mqttConnected.set(Double(up ? 1 : 0))
            if !up { logger.warning("MQTT broker away: its twins marked stale", metadata: ["twins": "\(mqttTwins.count)"]) }
        }
        for p in mqttInbox.takePeriods() { ageWatch.expect(twin: p.twin, property: p.property, periodMs: p.ms) }
        let batch = IngestPipeline.assemble(items, twins: runtime.twins, sourced: &mqttTwins, brokerLost: changes.contains(false), nowMs: nowMs)
        if batch.duplicates > 0 { metrics.ingestDuplicates.increment(by: batch.duplicates) }
        if batch.badKeys > 0 {
            metrics.refused(source: "mqtt", reason: "bad_key", count: batch.badKeys)
            logger.notice("MQTT updates refused: twin id or property name breaks the key rules", metadata: ["count": "\(batch.badKeys)"])
        }
        return checkedAgainstModels(batch.updates, source: "mqtt")
    }

    /// `updates` without those that break their twin's DTDL model (wrong type, out of range), each counted and the
    /// first few logged.
    func checkedAgainstModels(_ updates: [PropertyUpdate], source: String) -> [PropertyUpdate] {
        guard !models.isEmpty else { return updates }
        var kept: [PropertyUpdate] = []
        kept.reserveCapacity(updates.count)
        var logged = 0
        for u in updates {
            guard let p = models.problem(u) else {
                kept.append(u)
                continue
            }
            metrics.refused(source: source, reason: p.code)
            if logged < 5 {
                logger.notice("update refused by the twin's model", metadata: ["reason": "\(p.code)", "detail": "\(p.detail)"])
                logged += 1
            }
        }
        return kept
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
    /// "timestamp"?, "quality"?}]}`. Answered 200 only once the batch is durable: written to storage and, on a
    /// cluster's owner, stored in the cluster's ingest log (so the next owner applies it if this one dies first).
    /// The body is parsed and written on a worker; the service thread only takes the parsed batch for the next tick.
    /// The ingest token was checked by `authorize`.
    func httpIngest(_ r: HTTPServerRequest) {
        let body = r.body ?? []
        let (storage, metrics, logger, id, models) = (self.storage, self.metrics, self.logger, r.id, self.models)
        let log = cluster?.ingestLog
        let appends = cluster?.ingestAppends
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        httpWork.async {
            BackgroundPriority.lower()
            let parsed = HTTPIngest.parse(body, nowMs: Self.wallMs())
            guard case .success(let updates) = parsed else {
                if case .failure(let e) = parsed {
                    metrics.refused(source: "http", reason: e.code)
                    Self.answerLater(loop, metrics, id, .ingest, .text("\(e.message)\n", status: e.code == "too_many" ? .contentTooLarge : .badRequest))
                }
                return
            }
            // The twins' models hold here as on MQTT: a batch with a value that breaks one is refused whole.
            if let (k, p) = updates.enumerated().lazy.compactMap({ k, u in models.problem(u).map { (k, $0) } }).first {
                metrics.refused(source: "http", reason: p.code)
                Self.answerLater(loop, metrics, id, .ingest, .text("updates[\(k)]: \(p.code): \(p.detail); nothing was applied\n", status: .badRequest))
                return
            }
            let logged = log.map { _ in HTTPIngest.encode(updates) }
            do {
                try storage?.append(updates)
            } catch {
                logger.error("storage write failed", metadata: ["error": "\(error)"])
                metrics.storageErrors.increment()
                // In a cluster the ingest log is what makes the batch durable; alone, storage is.
                if log == nil {
                    Self.answerLater(loop, metrics, id, .ingest, .text("could not store the batch (\(error)); nothing was applied\n", status: .serviceUnavailable))
                    return
                }
            }
            let accept: @Sendable (UInt64) -> Void = { sequence in
                loop.post {
                    let s = me.value
                    s.httpPending.append(contentsOf: updates)
                    if sequence > 0, let c = s.cluster { c.ingestAcknowledged = max(c.ingestAcknowledged, sequence) }
                    s.metrics.ingestedHTTP.increment(by: updates.count)
                    s.answer(r, .json(Array("{\"accepted\":\(updates.count),\"durable\":\(storage != nil || log != nil)}".utf8)), route: .ingest)
                }
            }
            guard let log, let logged, let appends else { return accept(0) }
            // One at a time, so that batches reach the service thread in the log's order (its markers say "up to
            // sequence S": every batch before S must be in the scene by then).
            appends.async {
                do {
                    accept(try log.append(logged))
                } catch {
                    logger.error("cluster: ingest log write failed", metadata: ["error": "\(error)"])
                    metrics.ingestLogFailures.increment()
                    Self.answerLater(
                        loop, metrics, id, .ingest,
                        .text("could not store the batch in the cluster's ingest log (\(error)); nothing was applied\n", status: .serviceUnavailable))
                }
            }
        }
    }
}
