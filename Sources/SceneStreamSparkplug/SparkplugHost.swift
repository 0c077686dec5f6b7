import Foundation
import SceneStreamCore
import SwiftProtobuf

typealias Payload = Scenestream_Sparkplug_Payload

/// A Sparkplug B topic: `spBv1.0/GROUP/TYPE/EDGE_NODE[/DEVICE]`, or `spBv1.0/STATE/HOST_ID`.
public struct SparkplugTopic: Hashable, Sendable {
    /// The message types of the Sparkplug topic namespace.
    public enum Kind: String, Sendable, CaseIterable {
        case nbirth = "NBIRTH", ndeath = "NDEATH", ndata = "NDATA", ncmd = "NCMD"
        case dbirth = "DBIRTH", ddeath = "DDEATH", ddata = "DDATA", dcmd = "DCMD"
        case state = "STATE"
    }

    public var group: String
    public var kind: Kind
    public var node: String
    public var device: String?

    /// The namespace every Sparkplug B topic starts with.
    public static let namespace = "spBv1.0"

    /// Parses a topic; nil if it is not a well-formed Sparkplug B topic.
    public init?(_ topic: String) {
        let p = topic.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard p.count >= 3, p[0] == Self.namespace, p.allSatisfy({ !$0.isEmpty }) else { return nil }
        if p[1] == "STATE" {
            guard p.count == 3 else { return nil }
            self.init(group: "", kind: .state, node: p[2])
            return
        }
        guard p.count == 4 || p.count == 5, let kind = Kind(rawValue: p[2]), kind != .state else { return nil }
        let isDevice = [.dbirth, .ddeath, .ddata, .dcmd].contains(kind)
        guard isDevice == (p.count == 5) else { return nil }
        self.init(group: p[1], kind: kind, node: p[3], device: isDevice ? p[4] : nil)
    }

    public init(group: String, kind: Kind, node: String, device: String? = nil) {
        self.group = group
        self.kind = kind
        self.node = node
        self.device = device
    }

    /// The topic string.
    public var string: String {
        if kind == .state { return "\(Self.namespace)/STATE/\(node)" }
        return [Self.namespace, group, kind.rawValue, node, device].compactMap { $0 }.joined(separator: "/")
    }
}

/// What SceneStream does as a Sparkplug host application (`mqtt.sparkplug` in the server configuration).
public struct SparkplugConfiguration: Sendable, Hashable {
    /// The host id: SceneStream publishes `spBv1.0/STATE/HOST_ID` (online, retained; offline as its will).
    public var hostId = "scenestream"
    /// Groups to subscribe to; empty: every group.
    public var groups: [String] = []
    /// Prepended to every twin id (`PREFIX` + `GROUP/NODE[/DEVICE][/METRIC_FOLDERS]`).
    public var twinPrefix = ""
    /// At most one rebirth request per edge node in this many milliseconds.
    public var rebirthIntervalMs: UInt64 = 5000
    /// Name prefixes some edge libraries put on birth names only (mqtt-spb-wrapper: `DATA/`, `ATTR/`, `CMD/`): a
    /// birth metric `DATA/temperature` is then also known, and named in the twin, as `temperature`.
    public var stripPrefixes: [String] = []

    public init() {}

    /// The MQTT subscription filters this host needs.
    public var filters: [String] {
        groups.isEmpty ? ["\(SparkplugTopic.namespace)/#"] : groups.map { "\(SparkplugTopic.namespace)/\($0)/#" }
    }
}

/// One thing the host asks its owner to do after a message.
public enum SparkplugAction: Hashable, Sendable {
    /// Apply these twin property updates.
    case updates([PropertyUpdate])
    /// These twins lost their source (NDEATH, DDEATH): show their values as stale.
    case stale(twins: [String])
    /// Publish this message (a rebirth request to an edge node).
    case publish(topic: String, payload: [UInt8])
    /// The message (or a metric in it) was refused; count it and log the topic with the reason.
    case rejected(SparkplugRejection)
}

/// Why a Sparkplug message or metric was refused. `code` is a stable name for metrics.
public enum SparkplugRejection: Error, Hashable, Sendable, CustomStringConvertible {
    case malformedTopic
    case malformedPayload(String)
    case dataBeforeBirth
    case sequenceGap(expected: UInt64, got: UInt64)
    case unknownAlias(UInt64)
    /// A name not in the birth; `near`: a birth name ending in it (an edge that prefixes names in births only).
    case unknownMetric(String, near: String? = nil)
    case unsupportedDatatype(String, UInt32)
    case wrongType(String)
    case duplicate(UInt64)

    public var code: String {
        switch self {
        case .malformedTopic: "malformed_topic"
        case .malformedPayload: "malformed_payload"
        case .dataBeforeBirth: "data_before_birth"
        case .sequenceGap: "sequence_gap"
        case .unknownAlias: "unknown_alias"
        case .unknownMetric: "unknown_metric"
        case .unsupportedDatatype: "unsupported_datatype"
        case .wrongType: "wrong_type"
        case .duplicate: "duplicate"
        }
    }

    public var description: String {
        switch self {
        case .malformedTopic: "not a Sparkplug B topic"
        case .malformedPayload(let why): "payload is not a Sparkplug B protobuf (\(why))"
        case .dataBeforeBirth: "data before its birth certificate (rebirth requested)"
        case .sequenceGap(let e, let g): "sequence gap: expected seq \(e), got \(g) (rebirth requested)"
        case .unknownAlias(let a): "alias \(a) was not in the birth certificate"
        case .unknownMetric(let n, let near?): "metric \"\(n)\" was not in the birth certificate (it has \"\(near)\": a data message must use the birth's name or its alias)"
        case .unknownMetric(let n, nil): "metric \"\(n)\" was not in the birth certificate"
        case .unsupportedDatatype(let n, let t): "metric \"\(n)\": datatype \(t) is not a number, boolean or string"
        case .wrongType(let n): "metric \"\(n)\": the value does not match its datatype"
        case .duplicate(let s): "duplicate of seq \(s) (QoS 1 redelivery), dropped"
        }
    }
}

/// The Sparkplug B host application's view of the edge nodes: birth certificates (metric names, aliases and
/// datatypes), sequence numbers and liveness. Pure: it turns (topic, payload) into ``SparkplugAction``s and
/// keeps no I/O; the server owns one and serialises calls to it.
///
/// Twins: a metric `FOLDER/NAME` of device `D` on edge node `N` in group `G` is property `NAME` of twin
/// `PREFIX` + `G/N/D/FOLDER` (node metrics: `G/N/FOLDER`). `bdSeq`, `Node Control/…`, `Device Control/…` and
/// `Properties/…` are Sparkplug's own and are not twins.
public struct SparkplugHost: Sendable {
    struct Metric: Hashable, Sendable {
        var name: String
        var datatype: UInt32
        var twin: String
        var property: String
    }

    struct Device: Sendable {
        var born = false
        var byAlias: [UInt64: Metric] = [:]
        var byName: [String: Metric] = [:]
        var twins: Set<String> = []
    }

    struct Node: Sendable {
        var born = false
        var bdSeq: UInt64?
        var lastSeq: UInt64?
        var metrics = Device()
        var devices: [String: Device] = [:]
        var lastRebirthRequestMs: UInt64?
    }

    public let configuration: SparkplugConfiguration
    var nodes: [String: Node] = [:]
    /// Rebirth requests sent so far.
    public private(set) var rebirthRequests = 0

    public init(configuration: SparkplugConfiguration = SparkplugConfiguration()) {
        self.configuration = configuration
    }

    /// The host's STATE topic and its payloads (Sparkplug 3.0: retained JSON, the will carries `online: false` with
    /// the same timestamp).
    public var stateTopic: String { SparkplugTopic(group: "", kind: .state, node: configuration.hostId).string }

    public static func statePayload(online: Bool, timestampMs: UInt64) -> [UInt8] {
        Array("{\"online\":\(online),\"timestamp\":\(timestampMs)}".utf8)
    }

    /// Handles one message.
    public mutating func handle(topic: String, payload: [UInt8], nowMs: UInt64) -> [SparkplugAction] {
        guard let t = SparkplugTopic(topic) else { return [.rejected(.malformedTopic)] }
        switch t.kind {
        case .state, .ncmd, .dcmd: return []  // other hosts' state and commands are not plant data
        default: break
        }
        let p: Payload
        do {
            p = try Payload(serializedBytes: payload)
        } catch {
            return [.rejected(.malformedPayload("\(error)"))]
        }
        let key = "\(t.group)/\(t.node)"
        var node = nodes[key] ?? Node()
        defer { nodes[key] = node }
        var out: [SparkplugAction] = []

        if t.kind == .ndeath {
            // The will of the edge node's MQTT session; ignore one from an older session (bdSeq mismatch).
            let bd = p.metrics.first { $0.name == "bdSeq" }.map(\.longValue)
            if let bd, let mine = node.bdSeq, bd != mine { return [] }
            let twins = node.metrics.twins.union(node.devices.values.flatMap(\.twins))
            node.born = false
            node.lastSeq = nil
            for k in node.devices.keys { node.devices[k]!.born = false }
            return twins.isEmpty ? [] : [.stale(twins: twins.sorted())]
        }

        // A DDEATH without seq (some edge libraries send none, though the specification asks for one): the device
        // is gone either way, so say so rather than refuse it and leave its values live.
        if t.kind == .ddeath, !p.hasSeq {
            guard var dev = node.devices[t.device!], dev.born else { return [] }
            dev.born = false
            node.devices[t.device!] = dev
            return dev.twins.isEmpty ? [] : [.stale(twins: dev.twins.sorted())]
        }
        // Every other message carries the edge node's sequence number.
        guard p.hasSeq, p.seq <= 255 else { return [.rejected(.malformedPayload("seq missing or above 255"))] }
        if t.kind == .nbirth {
            // A new session of the node: its devices must be born again; until then their values are stale.
            let orphaned = node.devices.values.filter(\.born).flatMap(\.twins)
            if !orphaned.isEmpty { out.append(.stale(twins: Set(orphaned).sorted())) }
            node = Node()
            node.born = true
            node.bdSeq = p.metrics.first { $0.name == "bdSeq" }.map(\.longValue)
            node.lastSeq = p.seq
            node.lastRebirthRequestMs = nil
            var table = Device()
            out += birth(p, into: &table, base: "\(configuration.twinPrefix)\(t.group)/\(t.node)", nowMs: nowMs)
            node.metrics = table
            return out
        }
        guard node.born, let last = node.lastSeq else {
            return [.rejected(.dataBeforeBirth)] + rebirth(t, &node, nowMs: nowMs)
        }
        if p.seq == last { return [.rejected(.duplicate(p.seq))] }
        let expected = (last + 1) % 256
        node.lastSeq = p.seq
        if p.seq != expected {
            // Messages were lost: apply this one (its values are real) and ask for the whole state again.
            out.append(.rejected(.sequenceGap(expected: expected, got: p.seq)))
            out += rebirth(t, &node, nowMs: nowMs)
        }

        switch t.kind {
        case .ndata:
            out += data(p, table: node.metrics, nowMs: nowMs)
        case .dbirth:
            var table = Device()
            table.born = true
            out += birth(p, into: &table, base: "\(configuration.twinPrefix)\(t.group)/\(t.node)/\(t.device!)", nowMs: nowMs)
            node.devices[t.device!] = table
        case .ddata:
            guard let dev = node.devices[t.device!], dev.born else {
                return out + [.rejected(.dataBeforeBirth)] + rebirth(t, &node, nowMs: nowMs)
            }
            out += data(p, table: dev, nowMs: nowMs)
        case .ddeath:
            guard var dev = node.devices[t.device!] else { return out }
            dev.born = false
            node.devices[t.device!] = dev
            if !dev.twins.isEmpty { out.append(.stale(twins: dev.twins.sorted())) }
        default:
            break
        }
        return out
    }

    /// The rebirth request for an edge node (`NCMD` with `Node Control/Rebirth = true`), at most once per interval.
    mutating func rebirth(_ t: SparkplugTopic, _ node: inout Node, nowMs: UInt64) -> [SparkplugAction] {
        if let last = node.lastRebirthRequestMs, nowMs < last + configuration.rebirthIntervalMs { return [] }
        node.lastRebirthRequestMs = nowMs
        rebirthRequests += 1
        let topic = SparkplugTopic(group: t.group, kind: .ncmd, node: t.node).string
        return [.publish(topic: topic, payload: Self.rebirthRequest(nowMs: nowMs))]
    }

    /// The payload of a rebirth request.
    public static func rebirthRequest(nowMs: UInt64) -> [UInt8] {
        var m = Payload.Metric()
        m.name = "Node Control/Rebirth"
        m.timestamp = nowMs
        m.datatype = SparkplugDatatype.boolean.rawValue
        m.booleanValue = true
        var p = Payload()
        p.timestamp = nowMs
        p.metrics = [m]
        return (try? p.serializedBytes() as [UInt8]) ?? []
    }

    static func isOwn(_ name: String) -> Bool {
        name == "bdSeq" || name.hasPrefix("Node Control/") || name.hasPrefix("Device Control/") || name.hasPrefix("Properties/")
    }

    /// Reads a birth certificate into `table` and returns the values it carries.
    func birth(_ p: Payload, into table: inout Device, base: String, nowMs: UInt64) -> [SparkplugAction] {
        table.born = true
        var updates: [PropertyUpdate] = []
        var out: [SparkplugAction] = []
        for m in p.metrics where m.hasName {
            let prefix = configuration.stripPrefixes.first { m.name.hasPrefix($0) && m.name.count > $0.count }
            let shown = prefix.map { String(m.name.dropFirst($0.count)) } ?? m.name
            if Self.isOwn(shown) { continue }
            let parts = shown.split(separator: "/").map(String.init)
            guard let leaf = parts.last, !leaf.isEmpty else {
                out.append(.rejected(.unknownMetric(m.name)))
                continue
            }
            let twin = parts.count > 1 ? "\(base)/\(parts.dropLast().joined(separator: "/"))" : base
            let info = Metric(name: m.name, datatype: m.datatype, twin: twin, property: leaf)
            table.byName[m.name] = info
            if shown != m.name, table.byName[shown] == nil { table.byName[shown] = info }
            if m.hasAlias { table.byAlias[m.alias] = info }
            table.twins.insert(twin)
            switch Self.value(m, datatype: m.datatype) {
            case .success(let v?):
                updates.append(PropertyUpdate(twin: twin, property: leaf, value: v, timestampMs: Self.time(m, p, nowMs), quality: .good))
            case .success(nil): break
            case .failure(let r): out.append(.rejected(r))
            }
        }
        return (updates.isEmpty ? [] : [.updates(updates)]) + out
    }

    /// The values of a data message, looked up by alias (or name) in the birth table.
    func data(_ p: Payload, table: Device, nowMs: UInt64) -> [SparkplugAction] {
        var updates: [PropertyUpdate] = []
        var out: [SparkplugAction] = []
        for m in p.metrics {
            let info: Metric
            if m.hasAlias {
                guard let i = table.byAlias[m.alias] else {
                    out.append(.rejected(.unknownAlias(m.alias)))
                    continue
                }
                info = i
            } else if m.hasName {
                if Self.isOwn(m.name) { continue }
                guard let i = table.byName[m.name] else {
                    // Say which birth name it probably meant (an edge that prefixes names in births only).
                    let near = table.byName.keys.filter { $0.hasSuffix("/" + m.name) }.sorted().first
                    out.append(.rejected(.unknownMetric(m.name, near: near)))
                    continue
                }
                info = i
            } else {
                out.append(.rejected(.malformedPayload("a metric with neither name nor alias")))
                continue
            }
            // The birth fixed the datatype; a data message may repeat it, not change it.
            if m.hasDatatype, m.datatype != info.datatype {
                out.append(.rejected(.wrongType(info.name)))
                continue
            }
            switch Self.value(m, datatype: info.datatype, name: info.name) {
            case .success(let v?):
                updates.append(PropertyUpdate(twin: info.twin, property: info.property, value: v, timestampMs: Self.time(m, p, nowMs), quality: .good))
            case .success(nil): break
            case .failure(let r): out.append(.rejected(r))
            }
        }
        return (updates.isEmpty ? [] : [.updates(updates)]) + out
    }

    static func time(_ m: Payload.Metric, _ p: Payload, _ nowMs: UInt64) -> UInt64 {
        m.hasTimestamp ? m.timestamp : p.hasTimestamp ? p.timestamp : nowMs
    }

    /// A metric's value as a twin value; nil for an explicit null (nothing to show).
    static func value(_ m: Payload.Metric, datatype: UInt32, name: String? = nil) -> Result<TwinValue?, SparkplugRejection> {
        let name = name ?? m.name
        if m.isNull { return .success(nil) }
        guard let type = SparkplugDatatype(rawValue: datatype) else { return .failure(.unsupportedDatatype(name, datatype)) }
        let v: TwinValue?
        switch (type, m.value) {
        // Signed values arrive as two's complement, sign-extended to 32 bits or not (0xFF and 0xFFFFFFFF are both
        // Int8 −1): truncating to the type's width reads both.
        case (.int8, .intValue(let x)):
            v = .number(Double(Int8(truncatingIfNeeded: x)))
        case (.int16, .intValue(let x)):
            v = .number(Double(Int16(truncatingIfNeeded: x)))
        case (.int32, .intValue(let x)):
            v = .number(Double(Int32(bitPattern: x)))
        case (.uint8, .intValue(let x)), (.uint16, .intValue(let x)), (.uint32, .intValue(let x)):
            v = .number(Double(x))
        case (.uint32, .longValue(let x)), (.uint64, .longValue(let x)), (.dateTime, .longValue(let x)):
            v = .number(Double(x))
        case (.int64, .longValue(let x)):
            v = .number(Double(Int64(bitPattern: x)))
        case (.float, .floatValue(let x)):
            v = x.isFinite ? .number(Double(x)) : nil
        case (.double, .doubleValue(let x)):
            v = x.isFinite ? .number(x) : nil
        case (.boolean, .booleanValue(let b)):
            v = .bool(b)
        case (.string, .stringValue(let s)), (.text, .stringValue(let s)), (.uuid, .stringValue(let s)):
            v = .text(s)
        case (_, nil):
            return .success(nil)  // a birth may announce a metric without a value yet
        default:
            return .failure(type.isSupported ? .wrongType(name) : .unsupportedDatatype(name, datatype))
        }
        guard let v else { return .failure(.wrongType(name)) }
        return .success(v)
    }
}

/// Sparkplug B data types (the `datatype` field of a metric).
public enum SparkplugDatatype: UInt32, Sendable, CaseIterable {
    case int8 = 1, int16, int32, int64, uint8, uint16, uint32, uint64, float, double, boolean, string, dateTime, text
    case uuid, dataSet, bytes, file, template

    var isSupported: Bool { rawValue <= 15 }
}

/// Builds Sparkplug B payloads (for publishers: the ingest benchmark, tests, plant gateways written in Swift).
public struct SparkplugPayloadBuilder: Sendable {
    private var payload = Payload()

    public init(seq: UInt64?, timestampMs: UInt64) {
        if let seq { payload.seq = seq }
        payload.timestamp = timestampMs
    }

    /// Adds a metric; `name` on births, `alias` on both (or name only, without aliases).
    public mutating func add(name: String? = nil, alias: UInt64? = nil, datatype: SparkplugDatatype? = nil, value: TwinValue?) {
        var m = Payload.Metric()
        if let name { m.name = name }
        if let alias { m.alias = alias }
        if let datatype { m.datatype = datatype.rawValue }
        switch value {
        case .number(let d)?: m.doubleValue = d
        case .bool(let b)?: m.booleanValue = b
        case .text(let s)?: m.stringValue = s
        case nil: m.isNull = true
        }
        payload.metrics.append(m)
    }

    /// Adds an unsigned 64-bit metric (e.g. `bdSeq`).
    public mutating func add(name: String, uint64 value: UInt64) {
        var m = Payload.Metric()
        m.name = name
        m.datatype = SparkplugDatatype.uint64.rawValue
        m.longValue = value
        payload.metrics.append(m)
    }

    /// The encoded payload.
    public func bytes() -> [UInt8] { (try? payload.serializedBytes() as [UInt8]) ?? [] }
}

/// Feeds a byte string to a host as a sequence of messages (the Sparkplug fuzz target and its corpus replay):
/// records of [kind byte][length byte][payload]; the kind picks the message type and one of two nodes and devices.
public enum SparkplugFuzz {
    static let kinds: [SparkplugTopic.Kind] = [.nbirth, .ndata, .dbirth, .ddata, .ddeath, .ndeath, .state, .ncmd]

    /// Runs the records through a fresh host; returns how many actions it produced.
    @discardableResult
    public static func run(_ bytes: [UInt8]) -> Int {
        var host = SparkplugHost(configuration: { var c = SparkplugConfiguration(); c.rebirthIntervalMs = 0; return c }())
        var i = 0
        var actions = 0
        while i + 2 <= bytes.count {
            let k = bytes[i]
            let n = min(Int(bytes[i + 1]), bytes.count - i - 2)
            let payload = Array(bytes[(i + 2)..<(i + 2 + n)])
            i += 2 + n
            let kind = kinds[Int(k) % kinds.count]
            let node = "n\((k >> 3) & 1)", device = "d\((k >> 4) & 1)"
            let topic: String
            switch kind {
            case .state: topic = "spBv1.0/STATE/\(node)"
            case .dbirth, .ddata, .ddeath, .dcmd: topic = "spBv1.0/g/\(kind.rawValue)/\(node)/\(device)"
            default: topic = "spBv1.0/g/\(kind.rawValue)/\(node)"
            }
            actions += host.handle(topic: topic, payload: payload, nowMs: UInt64(i)).count
        }
        return actions
    }
}
