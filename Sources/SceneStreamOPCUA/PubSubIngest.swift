import SceneStreamCore

/// Which twin property an OPC UA field feeds. Each part matches exactly or is `*`; `twin` and `property` are
/// templates over `{publisher}`, `{group}`, `{writer}` (the writer's name where known, else its id), `{field}`, and
/// for fields named like browse paths (`Robot-01/J1`) `{folder}` (before the last `/`) and `{leaf}` (after it).
public struct PubSubMapping: Sendable, Hashable {
    public var publisher: String
    public var writer: String
    public var field: String
    public var twin: String
    public var property: String
    public var scale: Double
    public var offset: Double
    /// The publishing interval the gateway keeps, in ms (0: learned): for staleness by age.
    public var periodMs: UInt64

    /// A mapping; `*` matches anything.
    public init(
        publisher: String = "*", writer: String = "*", field: String = "*", twin: String, property: String = "{field}", scale: Double = 1,
        offset: Double = 0, periodMs: UInt64 = 0
    ) {
        self.publisher = publisher
        self.writer = writer
        self.field = field
        self.twin = twin
        self.property = property
        self.scale = scale
        self.offset = offset
        self.periodMs = periodMs
    }

    func matches(publisher p: String, writerName: String, writerId: String, field f: String) -> Bool {
        (publisher == "*" || publisher == p) && (writer == "*" || writer == writerName || writer == writerId) && (field == "*" || field == f)
    }

    /// A template compiled into pieces: filled by concatenation, once per distinct field (``PubSubReader`` caches).
    enum Piece: Sendable, Hashable {
        case text(String), publisher, group, writer, field, folder, leaf
    }

    static func compile(_ template: String) -> [Piece] {
        var out: [Piece] = []
        var rest = Substring(template)
        let names: [(String, Piece)] = [
            ("{publisher}", .publisher), ("{group}", .group), ("{writer}", .writer), ("{field}", .field), ("{folder}", .folder), ("{leaf}", .leaf),
        ]
        while !rest.isEmpty {
            if let (n, p) = names.first(where: { rest.hasPrefix($0.0) }) {
                out.append(p)
                rest = rest.dropFirst(n.count)
            } else {
                let next = rest.dropFirst().firstIndex(of: "{") ?? rest.endIndex
                if case .text(let t)? = out.last { out[out.count - 1] = .text(t + rest[..<next]) } else { out.append(.text(String(rest[..<next]))) }
                rest = rest[next...]
            }
        }
        return out
    }

    static func fill(_ pieces: [Piece], publisher: String, group: String, writer: String, field: String) -> String {
        var out = ""
        let cut = field.lastIndex(of: "/")
        for p in pieces {
            switch p {
            case .text(let t): out += t
            case .publisher: out += publisher
            case .group: out += group
            case .writer: out += writer
            case .field: out += field
            case .folder: out += cut.map { field[..<$0] } ?? ""
            case .leaf: out += cut.map { field[field.index(after: $0)...] } ?? Substring(field)
            }
        }
        return out
    }
}

/// OPC UA PubSub (JSON over MQTT) as a source of twin updates: topics, metadata, sequence numbers, mappings.
public struct PubSubConfiguration: Sendable, Hashable {
    /// The topics' first levels (§7.3.5.7: `opcua/json`), before `data|metadata/PUBLISHER/GROUP[/WRITER]`.
    public var topicPrefix = "opcua/json"
    /// First match wins; a field no mapping takes is refused (`unmapped`).
    public var mappings: [PubSubMapping] = []

    /// The default prefix and no mappings.
    public init() {}

    /// The MQTT subscription that covers the prefix.
    public var filter: String { topicPrefix + "/#" }
}

/// What the reader asks of the server.
public enum PubSubAction: Sendable, Equatable {
    /// Values to apply, in order.
    case updates([PropertyUpdate])
    /// A property's quality changed without a value (a Bad DataValue with no `Value`): mark what is stored.
    case mark(twin: String, property: String, quality: Quality, atMs: UInt64)
    /// A property's expected period, from its mapping.
    case expect(twin: String, property: String, periodMs: UInt64)
    /// Messages the publisher sent that never came (a sequence-number gap), or old ones dropped.
    case sequenceGap(missing: Int)
    case duplicate(Int)
    /// Something refused, with its reason code.
    case rejected(PubSubJSON.Refusal)
}

/// The subscriber side of OPC UA PubSub's JSON mapping: a pure state machine over MQTT messages (it keeps writer
/// names and field types from metadata and the last sequence number per writer). Not thread-safe: one owner.
public struct PubSubReader: Sendable {
    public let configuration: PubSubConfiguration
    private var writerNames: [String: String] = [:]
    private var fieldTypes: [String: [String: Int]] = [:]
    private var lastSequence: [String: UInt32] = [:]
    private var expected: Set<String> = []
    /// Each mapping's templates, compiled; and what (publisher, writer, field) resolved to, so that a field seen before
    /// costs one lookup.
    private let compiled: [(twin: [PubSubMapping.Piece], property: [PubSubMapping.Piece])]
    private var resolved: [String: (mapping: Int, twin: String, property: String)?] = [:]
    /// Writers remembered at most (metadata and sequence numbers), so a flood of made-up ids costs bounded memory.
    public static let maxWriters = 100_000

    /// A reader for `configuration`.
    public init(configuration: PubSubConfiguration) {
        self.configuration = configuration
        compiled = configuration.mappings.map { (PubSubMapping.compile($0.twin), PubSubMapping.compile($0.property)) }
    }

    /// The mapping, twin and property a field feeds, or nil when no mapping takes it.
    private mutating func resolve(publisher: String, group: String, writerName: String, writerId: String, field: String)
        -> (mapping: Int, twin: String, property: String)?
    {
        let key = publisher + "\u{0}" + group + "\u{0}" + writerName + "\u{0}" + writerId + "\u{0}" + field
        if let hit = resolved[key] { return hit }
        var out: (Int, String, String)?
        if let k = configuration.mappings.firstIndex(where: { $0.matches(publisher: publisher, writerName: writerName, writerId: writerId, field: field) }) {
            out = (
                k, PubSubMapping.fill(compiled[k].twin, publisher: publisher, group: group, writer: writerName, field: field),
                PubSubMapping.fill(compiled[k].property, publisher: publisher, group: group, writer: writerName, field: field)
            )
        }
        // Bounded: a flood of made-up names empties the cache rather than growing it.
        if resolved.count >= Self.maxWriters { resolved.removeAll(keepingCapacity: true) }
        resolved[key] = out
        return out
    }

    /// Handles one MQTT message on `topic`.
    public mutating func handle(topic: String, payload: [UInt8], nowMs: UInt64) -> [PubSubAction] {
        let prefix = configuration.topicPrefix + "/"
        guard topic.hasPrefix(prefix) else { return [] }
        let levels = topic.dropFirst(prefix.count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard let kind = levels.first, kind == "data" || kind == "metadata" else { return [] }  // status, connection: not values
        // An empty retained message clears a retained metadata message (the broker's way); it says nothing.
        if payload.isEmpty && kind == "metadata" { return [] }
        let topicPublisher = levels.count > 1 && !levels[1].isEmpty ? levels[1] : nil
        let topicGroup = levels.count > 2 && !levels[2].isEmpty ? levels[2] : nil
        switch PubSubJSON.read(payload, topicPublisher: topicPublisher, topicGroup: topicGroup) {
        case .failure(let r):
            return [.rejected(r)]
        case .success(.metadata(let md)):
            let key = md.publisher + "\u{0}" + md.writerId
            guard writerNames.count < Self.maxWriters || fieldTypes[key] != nil else {
                return [.rejected(.init(code: "too_many_writers", detail: "over \(Self.maxWriters) writers"))]
            }
            if let n = md.name { writerNames[key] = n }
            fieldTypes[key] = md.fieldTypes
            return []
        case .success(.data(let sets)):
            var out: [PubSubAction] = []
            var ups: [PropertyUpdate] = []
            for set in sets { read(set, nowMs: nowMs, into: &ups, &out) }
            if !ups.isEmpty { out.insert(.updates(ups), at: 0) }
            return out
        }
    }

    private mutating func read(_ set: PubSubJSON.DataSet, nowMs: UInt64, into ups: inout [PropertyUpdate], _ out: inout [PubSubAction]) {
        let key = set.publisher + "\u{0}" + set.writerId
        if let seq = set.sequence {
            // Data carries its own number; a keep-alive the next one expected, so it says the one before was sent.
            let current = set.keepAlive ? seq &- 1 : seq
            if let last = lastSequence[key] {
                let step = current &- last
                if set.keepAlive && step == 0 {
                    // Nothing lost.
                } else if step == 0 {
                    out.append(.duplicate(1))
                    return
                }
                if step > UInt32(1) << 31, step < UInt32.max - 15 {
                    // Far back: the publisher restarted; take it as the new start.
                } else if step > UInt32(1) << 31 {
                    out.append(.duplicate(1))  // a few back: late or repeated
                    return
                } else if set.keepAlive ? step > 0 : step > 1 {
                    // Data n after m lost m+1…n−1; a keep-alive expecting n after m lost m+1…n−1 as well (current = n−1).
                    out.append(.sequenceGap(missing: Int(set.keepAlive ? step : step - 1)))
                }
            }
            if lastSequence[key] != nil || lastSequence.count < Self.maxWriters { lastSequence[key] = current }
        }
        let name = set.writerName ?? writerNames[key] ?? set.writerId
        let types = fieldTypes[key]
        for f in set.fields {
            guard let (k, twin, property) = resolve(publisher: set.publisher, group: set.group, writerName: name, writerId: set.writerId, field: f.name) else {
                out.append(.rejected(.init(code: "unmapped", detail: "no mapping takes \(set.publisher)/\(name)/\(f.name.prefix(80))")))
                continue
            }
            let m = configuration.mappings[k]
            let ts = f.timestampMs ?? nowMs
            guard var value = f.value else {
                out.append(.mark(twin: twin, property: property, quality: f.quality, atMs: ts))
                continue
            }
            if let t = types?[f.name], let problem = Self.typeProblem(value, builtIn: t) {
                out.append(.rejected(.init(code: "wrong_type", detail: "\(set.publisher)/\(name)/\(f.name.prefix(80)): \(problem)")))
                continue
            }
            if case .number(let d) = value, m.scale != 1 || m.offset != 0 { value = .number(d * m.scale + m.offset) }
            if m.periodMs > 0, expected.count < Self.maxWriters, expected.insert(twin + "\u{0}" + property).inserted {
                out.append(.expect(twin: twin, property: property, periodMs: m.periodMs))
            }
            ups.append(PropertyUpdate(twin: twin, property: property, value: value, timestampMs: ts, quality: f.quality))
        }
        for (name, why) in set.badFields {
            out.append(.rejected(.init(code: "bad_field", detail: "\(set.publisher)/\(set.writerId)/\(name.prefix(80)): \(why)")))
        }
    }

    /// Why `value` does not fit the metadata's built-in type (1 Boolean, 2–11 numbers, 12 String), or nil.
    static func typeProblem(_ value: TwinValue, builtIn: Int) -> String? {
        switch (builtIn, value) {
        case (1, .bool), (2...11, .number), (12, .text): nil
        case (1, _): "the metadata says Boolean, got \(value)"
        case (2...11, _): "the metadata says a number (type \(builtIn)), got \(value)"
        case (12, _): "the metadata says String, got \(value)"
        default: nil
        }
    }
}

/// Feeds a byte string to one reader as a sequence of MQTT messages (the OPC UA fuzz target and its corpus replay):
/// records of [length, 2 bytes little-endian][payload], alternating data and metadata topics, through a reader
/// that maps everything. Returns the messages handled.
public enum PubSubFuzz {
    @discardableResult
    public static func run(_ bytes: [UInt8]) -> Int {
        var c = PubSubConfiguration()
        c.mappings = [PubSubMapping(twin: "{publisher}/{group}/{writer}", property: "{field}", scale: 0.5, offset: 1, periodMs: 100)]
        var reader = PubSubReader(configuration: c)
        var i = 0, handled = 0
        while i < bytes.count {
            let n = i + 1 < bytes.count ? Int(bytes[i]) | Int(bytes[i + 1]) << 8 : Int(bytes[i])
            i += 2
            let end = min(bytes.count, i + n)
            let payload = i < end ? Array(bytes[i..<end]) : []
            let topic = handled % 3 == 2 ? "opcua/json/metadata/p/g/w" : "opcua/json/data/p/g"
            _ = reader.handle(topic: topic, payload: payload, nowMs: UInt64(handled))
            handled += 1
            i = end
        }
        return handled
    }
}
