import Foundation
import SceneStreamCore
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
    /// Heartbeat announced to clients.
    public var heartbeatMs = 15_000
    /// WebSocket ping after this many idle seconds; hang up after twice as long.
    public var idleSeconds = 20
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

    /// The defaults: the embedded demo plant with its simulator.
    public init() {}

    static let keys: Set<String> = [
        "port", "bind", "assets", "plant", "simulator", "tickHz", "defaultRateHz", "maxRateHz", "retainedVersions",
        "compressionLevel", "maxClientMessageBytes", "maxMessagesPerSecond", "ackWindow", "heartbeatMs", "idleSeconds", "tls", "historyWindowSeconds", "data", "roomCapacity", "presenceHz", "handoffCodeSeconds",
        "sessionIdleSeconds", "publicURL", "historyCapacity", "mqtt", "ingestToken", "auth", "allowedOrigins",
        "maxConnectionsPerAddress", "maxConnectionsPerUser", "handshakeTimeoutSeconds", "connectionsPerSecondPerAddress",
        "connectionBurstPerAddress", "metricsToken", "maxHTTPBodyBytes", "httpBodySeconds", "maxAnnotationsPerUser",
        "maxAnnotationsPerScene", "annotationsPerSecond", "maxUpdatesPerTick",
    ]

    /// Reads a configuration file; errors name the file, key and reason.
    public static func load(_ bytes: [UInt8], file: String) throws(ConfigError) -> ServerConfiguration {
        func fail(_ key: String, _ reason: String) -> ConfigError { ConfigError(file: file, location: key, reason: reason) }
        let root: [String: Any]
        do {
            guard let r = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
                throw fail("top level", "expected an object")
            }
            root = r
        } catch let e as ConfigError {
            throw e
        } catch {
            throw fail("", "not valid JSON (\((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error.localizedDescription))")
        }
        for k in root.keys where !keys.contains(k) {
            throw fail(k, "unknown key (expected one of: \(keys.sorted().joined(separator: ", ")))")
        }
        var c = ServerConfiguration()
        func int(_ k: String, _ range: ClosedRange<Int>) throws(ConfigError) -> Int? {
            guard let v = root[k] else { return nil }
            guard let n = v as? NSNumber, !"\(type(of: v))".contains("Boolean"), n.doubleValue == n.doubleValue.rounded() else {
                throw fail(k, "expected a whole number")
            }
            guard range.contains(n.intValue) else { throw fail(k, "\(n.intValue) is outside \(range.lowerBound)…\(range.upperBound)") }
            return n.intValue
        }
        func string(_ k: String) throws(ConfigError) -> String? {
            guard let v = root[k] else { return nil }
            guard let s = v as? String, !s.isEmpty else { throw fail(k, "expected a non-empty string") }
            return s
        }
        if let v = try int("port", 0...65535) { c.port = v }
        if let v = try string("bind") { c.bindAddress = v }
        if let v = try string("assets") { c.assetsDirectory = v }
        if let v = try string("plant") { c.plantDirectory = v }
        if let v = root["simulator"] {
            guard let b = v as? Bool, "\(type(of: v))".contains("Boolean") else { throw fail("simulator", "expected true or false") }
            c.simulator = b
        }
        if let v = try int("tickHz", 1...120) { c.tickHz = Double(v) }
        if let v = try int("defaultRateHz", 1...120) { c.defaultRateHz = v }
        if let v = try int("maxRateHz", 1...120) { c.maxRateHz = v }
        if let v = try int("retainedVersions", 2...100_000) { c.retainedVersions = v }
        if let v = try int("compressionLevel", 1...9) { c.compressionLevel = Int32(v) }
        if let v = try int("maxClientMessageBytes", 256...(16 << 20)) { c.maxClientMessageBytes = v }
        if let v = try int("ackWindow", 1...1000) { c.ackWindow = v }
        if let v = try int("maxMessagesPerSecond", 1...100_000) { c.maxMessagesPerSecond = v }
        if let v = try int("heartbeatMs", 1000...600_000) { c.heartbeatMs = v }
        if let v = try int("idleSeconds", 2...3600) { c.idleSeconds = v }
        if let v = try int("historyWindowSeconds", 1...(7 * 86400)) { c.historyWindowMs = UInt64(v) * 1000 }
        if let v = try string("data") { c.dataDirectory = v }
        if let v = try int("roomCapacity", 1...10_000) { c.roomCapacity = v }
        if let v = try int("presenceHz", 1...120) { c.presenceHz = v }
        if let v = try int("handoffCodeSeconds", 1...3600) { c.handoffCodeSeconds = v }
        if let v = try int("sessionIdleSeconds", 5...86400) { c.sessionIdleSeconds = v }
        if let v = try string("publicURL") { c.publicURL = v }
        if let v = try int("historyCapacity", 1000...100_000_000) { c.historyCapacity = v }
        if let v = try string("ingestToken") { c.ingestToken = v }
        if let v = try int("maxConnectionsPerAddress", 1...1_000_000) { c.maxConnectionsPerAddress = v }
        if let v = try int("maxConnectionsPerUser", 1...1_000_000) { c.maxConnectionsPerUser = v }
        if let v = try int("handshakeTimeoutSeconds", 1...300) { c.handshakeTimeoutSeconds = v }
        if let v = try int("connectionsPerSecondPerAddress", 1...100_000) { c.connectionsPerSecondPerAddress = v }
        if let v = try int("connectionBurstPerAddress", 1...100_000) { c.connectionBurstPerAddress = v }
        if let v = try string("metricsToken") {
            guard v.utf8.count >= 16 else { throw fail("metricsToken", "expected at least 16 characters") }
            c.metricsToken = v
        }
        if let v = try int("maxHTTPBodyBytes", 1024...(64 << 20)) { c.maxHTTPBodyBytes = v }
        if let v = try int("httpBodySeconds", 1...600) { c.httpBodySeconds = v }
        if let v = try int("maxAnnotationsPerUser", 0...1_000_000) { c.maxAnnotationsPerUser = v }
        if let v = try int("maxAnnotationsPerScene", 0...1_000_000) { c.maxAnnotationsPerScene = v }
        if let v = try int("annotationsPerSecond", 1...10_000) { c.annotationsPerSecond = v }
        if let v = try int("maxUpdatesPerTick", 100...10_000_000) { c.maxUpdatesPerTick = v }
        if let o = root["allowedOrigins"] {
            guard let list = o as? [String] else { throw fail("allowedOrigins", "expected a list of origins like https://viewer.plant.local") }
            c.allowedOrigins = list
        }
        if let a = root["auth"] {
            guard let o = a as? [String: Any] else { throw fail("auth", "expected an object") }
            let allowed: Set<String> = ["hs256Secret", "jwksFile", "audience"]
            for k in o.keys where !allowed.contains(k) { throw fail("auth.\(k)", "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))") }
            var ac = AuthConfiguration()
            if let s = o["hs256Secret"] {
                guard let v = s as? String, v.utf8.count >= 32 else { throw fail("auth.hs256Secret", "expected a secret of at least 32 bytes") }
                ac.hs256Secret = v
            }
            if let s = o["jwksFile"] { guard let v = s as? String else { throw fail("auth.jwksFile", "expected a path") }; ac.jwksFile = v }
            if let s = o["audience"] { guard let v = s as? String, !v.isEmpty else { throw fail("auth.audience", "expected a string") }; ac.audience = v }
            guard ac.hs256Secret != nil || ac.jwksFile != nil else { throw fail("auth", "give hs256Secret or jwksFile") }
            c.auth = ac
        }
        if let m = root["mqtt"] {
            guard let o = m as? [String: Any] else { throw fail("mqtt", "expected an object") }
            let allowed: Set<String> = ["host", "port", "clientId", "qos", "topics", "alertsTopic", "cleanSession", "sparkplug", "maxPayloadBytes"]
            for k in o.keys where !allowed.contains(k) { throw fail("mqtt.\(k)", "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))") }
            var mc = MQTTConfiguration()
            if let h = o["host"] { guard let s = h as? String, !s.isEmpty else { throw fail("mqtt.host", "expected a host name") }; mc.host = s }
            if let p = o["port"] { guard let n = p as? Int, (1...65535).contains(n) else { throw fail("mqtt.port", "expected 1…65535") }; mc.port = n }
            if let s = o["clientId"] { guard let v = s as? String, !v.isEmpty else { throw fail("mqtt.clientId", "expected a string") }; mc.clientId = v }
            if let p = o["maxPayloadBytes"] {
                guard let n = p as? Int, (64...(16 << 20)).contains(n) else { throw fail("mqtt.maxPayloadBytes", "expected 64…16777216") }
                mc.maxPayloadBytes = n
            }
            if let b = o["cleanSession"] { guard let v = b as? Bool else { throw fail("mqtt.cleanSession", "expected true or false") }; mc.cleanSession = v }
            if let sp = o["sparkplug"] {
                guard let so = sp as? [String: Any] else { throw fail("mqtt.sparkplug", "expected an object") }
                let keys: Set<String> = ["hostId", "groups", "twinPrefix", "rebirthIntervalMs"]
                for k in so.keys where !keys.contains(k) { throw fail("mqtt.sparkplug.\(k)", "unknown key (expected one of: \(keys.sorted().joined(separator: ", ")))") }
                var sc = SparkplugConfiguration()
                if let h = so["hostId"] {
                    guard let v = h as? String, !v.isEmpty, !v.contains("/"), !v.contains("+"), !v.contains("#") else { throw fail("mqtt.sparkplug.hostId", "expected a name without / + #") }
                    sc.hostId = v
                }
                if let gs = so["groups"] {
                    guard let v = gs as? [String], v.allSatisfy({ !$0.isEmpty && !$0.contains("/") && !$0.contains("+") && !$0.contains("#") }) else {
                        throw fail("mqtt.sparkplug.groups", "expected a list of group ids without / + #")
                    }
                    sc.groups = v
                }
                if let tp = so["twinPrefix"] { guard let v = tp as? String else { throw fail("mqtt.sparkplug.twinPrefix", "expected a string") }; sc.twinPrefix = v }
                if let r = so["rebirthIntervalMs"] { guard let v = r as? Int, v >= 0 else { throw fail("mqtt.sparkplug.rebirthIntervalMs", "expected milliseconds ≥ 0") }; sc.rebirthIntervalMs = UInt64(v) }
                mc.sparkplug = sc
            }
            if let q = o["qos"] { guard let n = q as? Int, (0...2).contains(n) else { throw fail("mqtt.qos", "expected 0, 1 or 2") }; mc.qos = n }
            if let a = o["alertsTopic"] { guard let s = a as? String else { throw fail("mqtt.alertsTopic", "expected a topic") }; mc.alertsTopic = s }
            if let raw = o["topics"] {
                guard let list = raw as? [[String: Any]], !list.isEmpty else { throw fail("mqtt.topics", "expected a list of {topic, twin, property}") }
                mc.topics = []
            }
            for (k, t) in ((o["topics"] as? [[String: Any]]) ?? []).enumerated() {
                guard let pattern = t["topic"] as? String, let twin = t["twin"] as? String, let property = t["property"] as? String else {
                    throw fail("mqtt.topics[\(k)]", "needs topic, twin and property")
                }
                let scale = (t["scale"] as? NSNumber)?.doubleValue ?? 1
                let offset = (t["offset"] as? NSNumber)?.doubleValue ?? 0
                var kind: TopicMapping.ValueKind?
                if let raw = t["type"] {
                    guard let v = raw as? String, let k = TopicMapping.ValueKind(rawValue: v) else { throw fail("mqtt.topics[\(k)].type", "expected number, bool or text") }
                    kind = k
                }
                let minV = (t["min"] as? NSNumber)?.doubleValue ?? -.infinity
                let maxV = (t["max"] as? NSNumber)?.doubleValue ?? .infinity
                guard minV <= maxV else { throw fail("mqtt.topics[\(k)]", "min above max") }
                do {
                    mc.topics.append(
                        try TopicMapping(pattern: pattern, twin: twin, property: property, scale: scale, offset: offset, kind: kind, range: minV...maxV))
                } catch {
                    throw fail("mqtt.topics[\(k)].topic", error.reason)
                }
            }
            c.mqtt = mc
        }
        if let tls = root["tls"] {
            guard let t = tls as? [String: Any], let cert = t["certificate"] as? String, let key = t["key"] as? String else {
                throw fail("tls", "expected {\"certificate\": PATH, \"key\": PATH}")
            }
            c.tlsCertificate = cert
            c.tlsKey = key
        }
        if c.defaultRateHz > c.maxRateHz { throw fail("defaultRateHz", "above maxRateHz \(c.maxRateHz)") }
        return c
    }
}
