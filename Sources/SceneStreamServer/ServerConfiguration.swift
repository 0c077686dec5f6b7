import Foundation
import SceneStreamCluster
import SceneStreamCore
import SceneStreamIngest
import SceneStreamOPCUA
import SceneStreamSparkplug

/// Where MQTT ingest connects and how topics map to twins.
public struct MQTTConfiguration: Sendable {
    public var host = "127.0.0.1"
    public var port = 1883
    public var clientId = "scenestream"
    public var qos = 1
    /// Default: `scenestream/{twin...}/{property}` → twin, property.
    public var topics: [TopicMapping] = [try! TopicMapping(pattern: "scenestream/{twin...}/{property}", twin: "{twin}", property: "{property}")]
    /// Alerts are published under this topic (`TOPIC/TWIN`); empty: not published.
    public var alertsTopic = ""
    /// false: a durable session — the broker keeps the subscriptions and queues QoS 1/2 messages while SceneStream
    /// is away, and delivers them when it comes back (needs a fixed `clientId`).
    public var cleanSession = true
    /// Largest MQTT payload taken (plain or Sparkplug); larger ones are refused unread.
    public var maxPayloadBytes = 256 * 1024
    /// Sparkplug B host application; nil: off.
    public var sparkplug: SparkplugConfiguration?
    /// OPC UA PubSub, JSON encoding (what OPC UA gateways publish); nil: off.
    public var opcua: PubSubConfiguration?
    public init() {}
}

/// Everything the server can be told, with safe defaults. Loaded from a JSON file (`serve --config`), then
/// overridden by command-line flags.
public struct ServerConfiguration: Sendable {
    /// TCP port (0: pick a free one).
    public var port = 8080
    /// Address to bind; nil for every interface.
    public var bindAddress: String?
    /// The folder served at `/assets/` (models, plants) and holding `web/` (served at `/`).
    public var assetsDirectory = "Assets"
    /// The plant to stream: a folder with scene.json, bindings.json, rules.json and twins.json.
    public var plantDirectory = "Assets/plants/demo"
    /// How often the plant folder's files are checked for changes, which are then applied live (0: never).
    public var plantWatchMs = 1000
    /// Run the built-in plant simulator.
    public var simulator = true
    /// Scene commits per second.
    public var tickHz = 30.0
    /// Frame rate for clients that ask for none; the most a client may ask for.
    public var defaultRateHz = 30
    public var maxRateHz = 60
    /// Versions kept for deltas and resume.
    public var retainedVersions = 300
    /// zlib level for frames.
    public var compressionLevel: Int32 = 6
    /// Largest message a client may send.
    public var maxClientMessageBytes = 64 * 1024
    /// Messages a client may send per second (and in a burst); the excess is dropped.
    public var maxMessagesPerSecond = 200
    /// Frames a client may have unacknowledged before the server waits for it.
    public var ackWindow = 8
    /// Heartbeat announced to clients: a WebSocket ping after this long with nothing heard from a client; nothing
    /// at all (no message, no pong) for twice as long and the connection is dropped.
    public var heartbeatMs = 15_000
    /// PEM certificate and key for TLS.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Where annotations (and, later, other durable state) are kept; nil keeps them in memory only.
    public var dataDirectory: String? = ".scenestream-data"
    /// The most sessions in one room.
    public var roomCapacity = 50
    /// Presence updates applied per second per client (the latest pose wins; the rest is dropped).
    public var presenceHz = 30
    /// How long a handoff code stays valid.
    public var handoffCodeSeconds = 60
    /// How long a session without devices is kept for resume and pull handoff.
    public var sessionIdleSeconds = 600
    /// The URL base put into handoff offers (for QR codes); empty: derived from the port.
    public var publicURL = ""
    /// Browser libraries served to the viewer: URL path → folder (Debian's packages by default).
    public var vendorDirectories: [(String, String)] = [
        ("/vendor/three", "/usr/share/javascript/three"), ("/vendor/qrcode", "/usr/share/javascript/qrcode-generator"),
        ("/vendor/dygraphs", "/usr/share/javascript/dygraphs"),
    ]
    /// Bearer-token authentication; nil: the server runs open (demo tokens), and says so.
    public var auth: AuthConfiguration?
    /// Browser origins allowed to open a stream (exact `scheme://host[:port]`); empty: any.
    public var allowedOrigins: [String] = []
    /// Open connections allowed from one address, and for one user.
    public var maxConnectionsPerAddress = 200
    public var maxConnectionsPerUser = 20
    /// Seconds a client has to finish the HTTP/WebSocket handshake and to send hello.
    public var handshakeTimeoutSeconds = 10
    /// New WebSocket connections per second from one address (a token bucket with `connectionBurstPerAddress`).
    public var connectionsPerSecondPerAddress = 20
    public var connectionBurstPerAddress = 40
    /// `GET /metrics` takes this bearer token (or an admin JWT); nil with `auth`: admins only; nil without: open.
    public var metricsToken: String?
    /// Largest HTTP request body, and the seconds it must arrive in.
    public var maxHTTPBodyBytes = 4 << 20
    public var httpBodySeconds = 10
    /// Annotations: at most this many per user and per scene, added at most `annotationsPerSecond` per user.
    public var maxAnnotationsPerUser = 200
    public var maxAnnotationsPerScene = 2000
    public var annotationsPerSecond = 5
    /// Twin updates applied per tick at most (MQTT and Sparkplug); the rest wait for the next tick.
    public var maxUpdatesPerTick = 25_000
    /// MQTT ingest; nil: none.
    public var mqtt: MQTTConfiguration?
    /// Bearer token for `POST /api/ingest`; nil: HTTP ingest off.
    public var ingestToken: String?
    /// The most property updates kept in memory for playback.
    public var historyCapacity = 2_000_000
    /// History kept for playback.
    public var historyWindowMs: UInt64 = 3_600_000
    /// Cluster over NATS; nil: this node is alone (the default).
    public var cluster: ClusterConfiguration?
    /// Staleness by age: values from outside sources that stop arriving are marked stale (``AgeWatch``).
    public var staleness = AgeWatch.Configuration()

    /// The defaults: the embedded demo plant with its simulator.
    public init() {}

    /// Reads a configuration file (JSON, decoded with Codable): every unknown key and every wrong type, at any
    /// depth, is refused with the file, the key path (`mqtt.topics[2].scale`) and the reason; then values are
    /// checked against their ranges.
    public static func load(_ bytes: [UInt8], file: String) throws(ConfigError) -> ServerConfiguration {
        let f: ConfigFile
        do {
            f = try JSONDecoder().decode(Strict<ConfigFile>.self, from: Data(bytes)).value
        } catch let e as DecodingError {
            throw ConfigError(decoding: e, file: file)
        } catch {
            throw ConfigError(file: file, location: "", reason: "not valid JSON (\(error))")
        }
        return try f.configuration(file: file)
    }
}

// MARK: the file's shape

/// A type decoded from a configuration file whose keys are all known (``Strict`` refuses others).
protocol KnownKeys: Decodable {
    associatedtype CodingKeys: CodingKey & CaseIterable
}

/// Decodes `T` after checking that the object has no key `T` does not know.
struct Strict<T: KnownKeys>: Decodable {
    let value: T

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let known = T.CodingKeys.allCases.map(\.stringValue)
        for k in c.allKeys {
            guard known.contains(k.stringValue) else {
                throw DecodingError.dataCorruptedError(
                    forKey: k, in: c, debugDescription: "unknown key (expected one of: \(known.sorted().joined(separator: ", ")))")
            }
            if try c.decodeNil(forKey: k) {
                throw DecodingError.dataCorruptedError(forKey: k, in: c, debugDescription: "null is not a value here (leave the key out for its default)")
            }
        }
        value = try T(from: decoder)
    }
}

/// A whole number in a configuration file (1 and 1.0, not 1.5, "1" or true), refused where it is.
struct Whole: Decodable {
    let value: Int

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        guard let d = try? c.decode(Double.self), d == d.rounded(), abs(d) < 1e15 else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a whole number")
        }
        value = Int(d)
    }
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) {
        stringValue = "\(intValue)"
        self.intValue = intValue
    }
}

extension ConfigError {
    /// A decoding error as a configuration error: the key path where it happened and what was expected.
    init(decoding e: DecodingError, file: String) {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for k in keys {
                if let i = k.intValue, k.stringValue == "\(i)" || k.stringValue.hasPrefix("Index") {
                    out += "[\(i)]"
                } else {
                    out += out.isEmpty ? k.stringValue : ".\(k.stringValue)"
                }
            }
            return out
        }
        func expected(_ t: Any.Type) -> String {
            switch t {
            case is Bool.Type: "expected true or false"
            case is Int.Type, is Int32.Type, is UInt64.Type: "expected a whole number"
            case is Double.Type: "expected a number"
            case is String.Type: "expected a string"
            case is [String].Type: "expected a list of strings"
            default: String(describing: t).hasPrefix("Array") ? "expected a list" : "expected an object"
            }
        }
        switch e {
        case .typeMismatch(let t, let ctx):
            self.init(file: file, location: path(ctx.codingPath), reason: expected(t))
        case .valueNotFound(let t, let ctx):
            self.init(file: file, location: path(ctx.codingPath), reason: "\(expected(t)), not null")
        case .keyNotFound(let k, let ctx):
            self.init(file: file, location: path(ctx.codingPath + [k]), reason: "missing")
        case .dataCorrupted(let ctx):
            let d = ctx.debugDescription
            // Foundation says a fractional or huge number "does not fit": that is a wrong type for a whole number.
            let reason = d.contains("does not fit") ? "expected a whole number" : d.hasPrefix("unknown key") ? d : ctx.codingPath.isEmpty ? "not valid JSON (\(d))" : d
            self.init(file: file, location: path(ctx.codingPath), reason: reason)
        @unknown default:
            self.init(file: file, location: "", reason: "\(e)")
        }
    }
}

/// The configuration file as written: every key optional (defaults come from ``ServerConfiguration``).
struct ConfigFile: KnownKeys {
    enum CodingKeys: String, CodingKey, CaseIterable {
        case port, bind, assets, plant, simulator, tickHz, defaultRateHz, maxRateHz, retainedVersions, compressionLevel
        case maxClientMessageBytes, maxMessagesPerSecond, ackWindow, heartbeatMs, idleSeconds, tls, historyWindowSeconds
        case data, roomCapacity, presenceHz, handoffCodeSeconds, sessionIdleSeconds, publicURL, historyCapacity, mqtt
        case ingestToken, auth, allowedOrigins, maxConnectionsPerAddress, maxConnectionsPerUser, handshakeTimeoutSeconds
        case connectionsPerSecondPerAddress, connectionBurstPerAddress, metricsToken, maxHTTPBodyBytes, httpBodySeconds
        case maxAnnotationsPerUser, maxAnnotationsPerScene, annotationsPerSecond, maxUpdatesPerTick, cluster, staleness
        case plantWatchMs
    }

    struct Staleness: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case enabled, factor, minimumMs, learn }
        var enabled: Bool?
        var factor: Double?
        var minimumMs: Whole?
        var learn: Bool?
    }

    struct Cluster: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable {
            case nats, role, node, standby, credentials, user, password, tls, replicas, keyframeSeconds, retentionSeconds, leaseSeconds, domain
        }
        var nats: [String]
        var role: String?
        var node: String?
        var standby: Bool?
        var credentials: String?
        var domain: String?
        var user: String?
        var password: String?
        var tls: Strict<ClusterTLS>?
        var replicas, keyframeSeconds, retentionSeconds, leaseSeconds: Whole?
    }

    struct ClusterTLS: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case ca }
        var ca: String?
    }

    struct TLS: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case certificate, key }
        var certificate: String
        var key: String
    }

    struct Auth: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case hs256Secret, jwksFile, audience }
        var hs256Secret: String?
        var jwksFile: String?
        var audience: String?
    }

    struct MQTT: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable {
            case host, port, clientId, qos, topics, alertsTopic, cleanSession, sparkplug, maxPayloadBytes, opcua
        }
        var opcua: Strict<OPCUA>?
        var host: String?
        var port: Whole?
        var clientId: String?
        var qos: Whole?
        var topics: [Strict<Topic>]?
        var alertsTopic: String?
        var cleanSession: Bool?
        var sparkplug: Strict<Sparkplug>?
        var maxPayloadBytes: Whole?
    }

    struct Topic: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case topic, twin, property, scale, offset, type, min, max, periodMs }
        var topic: String
        var periodMs: Whole?
        var twin: String
        var property: String
        var scale: Double?
        var offset: Double?
        var type: String?
        var min: Double?
        var max: Double?
    }

    struct OPCUA: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case topicPrefix, map }
        var topicPrefix: String?
        var map: [Strict<OPCUAMap>]
    }

    struct OPCUAMap: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case publisher, writer, field, twin, property, scale, offset, periodMs }
        var publisher, writer, field: String?
        var twin: String
        var property: String?
        var scale, offset: Double?
        var periodMs: Whole?
    }

    struct Sparkplug: KnownKeys {
        enum CodingKeys: String, CodingKey, CaseIterable { case hostId, groups, twinPrefix, rebirthIntervalMs, stripPrefixes }
        var stripPrefixes: [String]?
        var hostId: String?
        var groups: [String]?
        var twinPrefix: String?
        var rebirthIntervalMs: Whole?
    }

    var port, defaultRateHz, maxRateHz, retainedVersions, compressionLevel, maxClientMessageBytes, maxMessagesPerSecond: Whole?
    var tickHz, ackWindow, heartbeatMs, idleSeconds, historyWindowSeconds, roomCapacity, presenceHz, handoffCodeSeconds: Whole?
    var sessionIdleSeconds, historyCapacity, maxConnectionsPerAddress, maxConnectionsPerUser, handshakeTimeoutSeconds: Whole?
    var connectionsPerSecondPerAddress, connectionBurstPerAddress, maxHTTPBodyBytes, httpBodySeconds: Whole?
    var maxAnnotationsPerUser, maxAnnotationsPerScene, annotationsPerSecond, maxUpdatesPerTick, plantWatchMs: Whole?
    var bind, assets, plant, data, publicURL, ingestToken, metricsToken: String?
    var simulator: Bool?
    var allowedOrigins: [String]?
    var tls: Strict<TLS>?
    var auth: Strict<Auth>?
    var mqtt: Strict<MQTT>?
    var cluster: Strict<Cluster>?
    var staleness: Strict<Staleness>?

    /// The configuration these values make, each checked against its range.
    func configuration(file: String) throws(ConfigError) -> ServerConfiguration {
        func fail(_ key: String, _ reason: String) -> ConfigError { ConfigError(file: file, location: key, reason: reason) }
        func int(_ w: Whole?, _ key: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let v = w?.value else { return nil }
            guard range.contains(v) else { throw fail(key, "\(v) is outside \(range.lowerBound)…\(range.upperBound)") }
            return v
        }
        func text(_ v: String?, _ key: String) throws(ConfigError) -> String? {
            guard let v else { return nil }
            guard !v.isEmpty else { throw fail(key, "expected a non-empty string") }
            return v
        }
        func name(_ v: String, _ key: String) throws(ConfigError) -> String {
            guard !v.isEmpty, !v.contains("/"), !v.contains("+"), !v.contains("#") else { throw fail(key, "expected a name without / + #") }
            return v
        }
        var c = ServerConfiguration()
        if let v = try int(port, "port", 0...65535) { c.port = v }
        if let v = try text(bind, "bind") { c.bindAddress = v }
        if let v = try text(assets, "assets") { c.assetsDirectory = v }
        if let v = try text(plant, "plant") { c.plantDirectory = v }
        if let v = simulator { c.simulator = v }
        if let v = try int(tickHz, "tickHz", 1...120) { c.tickHz = Double(v) }
        if let v = try int(defaultRateHz, "defaultRateHz", 1...120) { c.defaultRateHz = v }
        if let v = try int(maxRateHz, "maxRateHz", 1...120) { c.maxRateHz = v }
        if let v = try int(retainedVersions, "retainedVersions", 2...100_000) { c.retainedVersions = v }
        if let v = try int(compressionLevel, "compressionLevel", 1...9) { c.compressionLevel = Int32(v) }
        if let v = try int(maxClientMessageBytes, "maxClientMessageBytes", 256...(16 << 20)) { c.maxClientMessageBytes = v }
        if let v = try int(ackWindow, "ackWindow", 1...1000) { c.ackWindow = v }
        if let v = try int(maxMessagesPerSecond, "maxMessagesPerSecond", 1...100_000) { c.maxMessagesPerSecond = v }
        if let v = try int(heartbeatMs, "heartbeatMs", 1000...600_000) { c.heartbeatMs = v }
        if idleSeconds != nil { throw fail("idleSeconds", "was replaced by heartbeatMs (a ping after heartbeatMs of silence, the hang-up after twice that)") }
        if let v = try int(historyWindowSeconds, "historyWindowSeconds", 1...(7 * 86400)) { c.historyWindowMs = UInt64(v) * 1000 }
        if let v = try text(data, "data") { c.dataDirectory = v }
        if let v = try int(roomCapacity, "roomCapacity", 1...10_000) { c.roomCapacity = v }
        if let v = try int(presenceHz, "presenceHz", 1...120) { c.presenceHz = v }
        if let v = try int(handoffCodeSeconds, "handoffCodeSeconds", 1...3600) { c.handoffCodeSeconds = v }
        if let v = try int(sessionIdleSeconds, "sessionIdleSeconds", 5...86400) { c.sessionIdleSeconds = v }
        if let v = try text(publicURL, "publicURL") { c.publicURL = v }
        if let v = try int(historyCapacity, "historyCapacity", 1000...100_000_000) { c.historyCapacity = v }
        if let v = try text(ingestToken, "ingestToken") { c.ingestToken = v }
        if let v = try int(maxConnectionsPerAddress, "maxConnectionsPerAddress", 1...1_000_000) { c.maxConnectionsPerAddress = v }
        if let v = try int(maxConnectionsPerUser, "maxConnectionsPerUser", 1...1_000_000) { c.maxConnectionsPerUser = v }
        if let v = try int(handshakeTimeoutSeconds, "handshakeTimeoutSeconds", 1...300) { c.handshakeTimeoutSeconds = v }
        if let v = try int(connectionsPerSecondPerAddress, "connectionsPerSecondPerAddress", 1...100_000) { c.connectionsPerSecondPerAddress = v }
        if let v = try int(connectionBurstPerAddress, "connectionBurstPerAddress", 1...100_000) { c.connectionBurstPerAddress = v }
        if let v = try text(metricsToken, "metricsToken") {
            guard v.utf8.count >= 16 else { throw fail("metricsToken", "expected at least 16 characters") }
            c.metricsToken = v
        }
        if let v = try int(maxHTTPBodyBytes, "maxHTTPBodyBytes", 1024...(64 << 20)) { c.maxHTTPBodyBytes = v }
        if let v = try int(httpBodySeconds, "httpBodySeconds", 1...600) { c.httpBodySeconds = v }
        if let v = try int(maxAnnotationsPerUser, "maxAnnotationsPerUser", 0...1_000_000) { c.maxAnnotationsPerUser = v }
        if let v = try int(maxAnnotationsPerScene, "maxAnnotationsPerScene", 0...1_000_000) { c.maxAnnotationsPerScene = v }
        if let v = try int(annotationsPerSecond, "annotationsPerSecond", 1...10_000) { c.annotationsPerSecond = v }
        if let v = try int(maxUpdatesPerTick, "maxUpdatesPerTick", 100...10_000_000) { c.maxUpdatesPerTick = v }
        if let v = try int(plantWatchMs, "plantWatchMs", 0...3_600_000) {
            guard v == 0 || v >= 100 else { throw fail("plantWatchMs", "expected 0 (off) or at least 100") }
            c.plantWatchMs = v
        }
        if let v = allowedOrigins { c.allowedOrigins = v }
        if let a = auth?.value {
            var ac = AuthConfiguration()
            if let v = a.hs256Secret {
                guard v.utf8.count >= 32 else { throw fail("auth.hs256Secret", "expected a secret of at least 32 bytes") }
                ac.hs256Secret = v
            }
            ac.jwksFile = try text(a.jwksFile, "auth.jwksFile")
            if let v = try text(a.audience, "auth.audience") { ac.audience = v }
            guard ac.hs256Secret != nil || ac.jwksFile != nil else { throw fail("auth", "give hs256Secret or jwksFile") }
            c.auth = ac
        }
        if let m = mqtt?.value {
            var mc = MQTTConfiguration()
            if let v = try text(m.host, "mqtt.host") { mc.host = v }
            if let v = try int(m.port, "mqtt.port", 1...65535) { mc.port = v }
            if let v = try text(m.clientId, "mqtt.clientId") { mc.clientId = v }
            if let v = try int(m.qos, "mqtt.qos", 0...2) { mc.qos = v }
            if let v = m.alertsTopic { mc.alertsTopic = v }
            if let v = m.cleanSession { mc.cleanSession = v }
            if let v = try int(m.maxPayloadBytes, "mqtt.maxPayloadBytes", 64...(16 << 20)) { mc.maxPayloadBytes = v }
            if let sp = m.sparkplug?.value {
                var sc = SparkplugConfiguration()
                if let v = sp.hostId { sc.hostId = try name(v, "mqtt.sparkplug.hostId") }
                if let gs = sp.groups {
                    for (k, g) in gs.enumerated() { _ = try name(g, "mqtt.sparkplug.groups[\(k)]") }
                    sc.groups = gs
                }
                if let v = sp.twinPrefix { sc.twinPrefix = v }
                if let v = try int(sp.rebirthIntervalMs, "mqtt.sparkplug.rebirthIntervalMs", 0...86_400_000) { sc.rebirthIntervalMs = UInt64(v) }
                if let v = sp.stripPrefixes {
                    for (k, x) in v.enumerated() where x.isEmpty { throw fail("mqtt.sparkplug.stripPrefixes[\(k)]", "expected a non-empty prefix") }
                    sc.stripPrefixes = v
                }
                mc.sparkplug = sc
            }
            if let o = m.opcua?.value {
                var oc = PubSubConfiguration()
                if let p = try text(o.topicPrefix, "mqtt.opcua.topicPrefix") {
                    guard !p.hasSuffix("/"), !p.contains("+"), !p.contains("#") else { throw fail("mqtt.opcua.topicPrefix", "expected topic levels without a trailing / and without + #") }
                    oc.topicPrefix = p
                }
                guard !o.map.isEmpty else { throw fail("mqtt.opcua.map", "expected a list of {publisher?, writer?, field?, twin, property?}") }
                for (k, e) in o.map.enumerated() {
                    let x = e.value
                    let key = "mqtt.opcua.map[\(k)]"
                    guard !x.twin.isEmpty else { throw fail("\(key).twin", "expected a twin id or template") }
                    for (v, n) in [(x.scale, "scale"), (x.offset, "offset")] where v.map({ !$0.isFinite }) == true { throw fail("\(key).\(n)", "expected a finite number") }
                    oc.mappings.append(PubSubMapping(
                        publisher: try text(x.publisher, "\(key).publisher") ?? "*", writer: try text(x.writer, "\(key).writer") ?? "*",
                        field: try text(x.field, "\(key).field") ?? "*", twin: x.twin, property: try text(x.property, "\(key).property") ?? "{field}",
                        scale: x.scale ?? 1, offset: x.offset ?? 0, periodMs: UInt64(try int(x.periodMs, "\(key).periodMs", 0...86_400_000) ?? 0)))
                }
                mc.opcua = oc
            }
            if let list = m.topics {
                guard !list.isEmpty else { throw fail("mqtt.topics", "expected a list of {topic, twin, property}") }
                mc.topics = []
                for (k, entry) in list.enumerated() {
                    let t = entry.value
                    var kind: TopicMapping.ValueKind?
                    if let raw = t.type {
                        guard let v = TopicMapping.ValueKind(rawValue: raw) else { throw fail("mqtt.topics[\(k)].type", "expected number, bool or text") }
                        kind = v
                    }
                    let minV = t.min ?? -.infinity
                    let maxV = t.max ?? .infinity
                    guard minV <= maxV else { throw fail("mqtt.topics[\(k)]", "min above max") }
                    let period = UInt64(try int(t.periodMs, "mqtt.topics[\(k)].periodMs", 0...86_400_000) ?? 0)
                    do {
                        mc.topics.append(
                            try TopicMapping(
                                pattern: t.topic, twin: t.twin, property: t.property, scale: t.scale ?? 1, offset: t.offset ?? 0, kind: kind,
                                range: minV...maxV, periodMs: period))
                    } catch {
                        throw fail("mqtt.topics[\(k)].topic", error.reason)
                    }
                }
            }
            c.mqtt = mc
        }
        if let cl = cluster?.value {
            guard !cl.nats.isEmpty else { throw fail("cluster.nats", "expected a list of nats://HOST:PORT") }
            for (k, u) in cl.nats.enumerated() where !(u.hasPrefix("nats://") || u.hasPrefix("tls://")) {
                throw fail("cluster.nats[\(k)]", "expected nats://HOST:PORT or tls://HOST:PORT, not '\(u)'")
            }
            var cc = ClusterConfiguration(servers: cl.nats, node: try text(cl.node, "cluster.node") ?? ClusterConfiguration.defaultNode)
            if let r = cl.role {
                guard let v = ClusterConfiguration.Role(rawValue: r) else { throw fail("cluster.role", "expected owner or fanout") }
                cc.role = v
            }
            if let v = cl.standby { cc.standby = v }
            if cc.standby && cc.role != .owner { throw fail("cluster.standby", "only an owner can stand by") }
            cc.security.credentialsFile = try text(cl.credentials, "cluster.credentials")
            cc.security.user = try text(cl.user, "cluster.user")
            cc.security.password = cl.password
            if let t = cl.tls?.value {
                cc.security.tls = true
                cc.security.caFile = try text(t.ca, "cluster.tls.ca")
            }
            if let v = try int(cl.replicas, "cluster.replicas", 1...5) { cc.replicas = v }
            if let v = try int(cl.keyframeSeconds, "cluster.keyframeSeconds", 1...3600) { cc.keyframeSeconds = v }
            if let v = try int(cl.retentionSeconds, "cluster.retentionSeconds", 10...(30 * 86400)) { cc.retentionSeconds = v }
            if let v = try int(cl.leaseSeconds, "cluster.leaseSeconds", 1...60) { cc.leaseSeconds = v }
            if let v = try text(cl.domain, "cluster.domain") {
                guard v.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                    throw fail("cluster.domain", "expected a JetStream domain name (letters, digits, - and _)")
                }
                cc.domain = v
            }
            c.cluster = cc
        }
        if let st = staleness?.value {
            if let v = st.enabled { c.staleness.enabled = v }
            if let v = st.learn { c.staleness.learn = v }
            if let v = st.factor {
                guard v.isFinite, (1...1000).contains(v) else { throw fail("staleness.factor", "\(v) is outside 1…1000") }
                c.staleness.factor = v
            }
            if let v = try int(st.minimumMs, "staleness.minimumMs", 100...86_400_000) { c.staleness.minimumMs = UInt64(v) }
        }
        if let t = tls?.value {
            c.tlsCertificate = t.certificate
            c.tlsKey = t.key
        }
        if c.defaultRateHz > c.maxRateHz { throw fail("defaultRateHz", "above maxRateHz \(c.maxRateHz)") }
        return c
    }
}
