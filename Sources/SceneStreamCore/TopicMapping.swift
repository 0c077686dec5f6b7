import Foundation

/// Maps MQTT topics and payloads to twin property updates (`mqtt.topics` in the server configuration).
///
/// A pattern is a topic with placeholders: `{name}` matches one level, `{name...}` one or more levels.
/// `twin` and `property` are templates over those names. Payloads: a number, `true`/`false`, a quoted string, or
/// JSON `{"value": …, "timestamp": ms, "quality": "good|stale|bad"}`.
public struct TopicMapping: Sendable, Hashable {
    enum Segment: Hashable, Sendable {
        case literal(String)
        case one(String)
        case many(String)
    }

    /// A template compiled against the pattern's captures.
    enum Piece: Hashable, Sendable {
        case text(String)
        case capture(Int)
    }

    let segments: [Segment]
    let captureNames: [String]
    let twinPieces: [Piece]
    let propertyPieces: [Piece]
    public let pattern: String
    public let twin: String
    public let property: String
    public let scale: Double
    public let offset: Double
    /// The kind of value the property takes; nil: any.
    public let kind: ValueKind?
    /// Numbers outside this range (after scaling) are refused.
    public let range: ClosedRange<Double>
    /// How often the source is expected to publish, in ms (0: not given; learned from arrivals instead). Past a few
    /// periods without a message the value is marked stale.
    public let periodMs: UInt64

    /// The kinds of value a mapping can insist on.
    public enum ValueKind: String, Sendable, Hashable {
        case number, bool, text
    }

    /// Parses a mapping; errors say what is wrong with the pattern.
    public init(
        pattern: String, twin: String, property: String, scale: Double = 1, offset: Double = 0, kind: ValueKind? = nil,
        range: ClosedRange<Double> = -Double.infinity...Double.infinity, periodMs: UInt64 = 0
    ) throws(ConfigError) {
        self.periodMs = periodMs
        var segs: [Segment] = []
        for s in pattern.split(separator: "/", omittingEmptySubsequences: false) {
            if s.hasPrefix("{") && s.hasSuffix("...}") {
                segs.append(.many(String(s.dropFirst().dropLast(4))))
            } else if s.hasPrefix("{") && s.hasSuffix("}") {
                segs.append(.one(String(s.dropFirst().dropLast())))
            } else if s.contains("+") || s.contains("#") || s.isEmpty {
                throw ConfigError(file: "mqtt", location: pattern, reason: "use {name} or {name...} instead of MQTT wildcards, and no empty levels")
            } else {
                segs.append(.literal(String(s)))
            }
        }
        guard segs.filter({ if case .many = $0 { return true } else { return false } }).count <= 1 else {
            throw ConfigError(file: "mqtt", location: pattern, reason: "at most one {name...} per pattern")
        }
        segments = segs
        let names = segs.compactMap { s -> String? in
            switch s {
            case .literal: nil
            case .one(let n), .many(let n): n
            }
        }
        captureNames = names
        twinPieces = Self.compile(twin, names)
        propertyPieces = Self.compile(property, names)
        self.pattern = pattern
        self.twin = twin
        self.property = property
        self.scale = scale
        self.offset = offset
        self.kind = kind
        self.range = range
    }

    /// The MQTT subscription filter that covers this pattern.
    public var filter: String {
        var out: [String] = []
        for s in segments {
            switch s {
            case .literal(let l): out.append(l)
            case .one: out.append("+")
            case .many:
                out.append("#")
                return out.joined(separator: "/")
            }
        }
        return out.joined(separator: "/")
    }

    /// Splits a template into text and references to captures (`{name}` of a name the pattern does not capture
    /// stays as text).
    static func compile(_ template: String, _ names: [String]) -> [Piece] {
        var pieces: [Piece] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let name = String(rest[rest.index(after: open)..<close])
            if let k = names.firstIndex(of: name) {
                if open > rest.startIndex { pieces.append(.text(String(rest[..<open]))) }
                pieces.append(.capture(k))
            } else {
                pieces.append(.text(String(rest[...close])))
            }
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { pieces.append(.text(String(rest))) }
        return pieces
    }

    /// The captured values of `topic` in capture order, or nil if it does not match.
    func captures(_ topic: String) -> [Substring]? {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        var caps: [Substring] = []
        caps.reserveCapacity(captureNames.count)
        var i = 0
        for (k, s) in segments.enumerated() {
            switch s {
            case .literal(let l):
                guard i < parts.count, parts[i] == l else { return nil }
                i += 1
            case .one:
                guard i < parts.count, !parts[i].isEmpty else { return nil }
                caps.append(parts[i])
                i += 1
            case .many:
                let rest = segments.count - k - 1
                guard parts.count - i >= rest + 1 else { return nil }
                let take = parts.count - i - rest
                caps.append(topic[parts[i].startIndex..<parts[i + take - 1].endIndex])
                i += take
            }
        }
        return i == parts.count ? caps : nil
    }

    /// The captures of `topic` by name, or nil if it does not match.
    func match(_ topic: String) -> [String: String]? {
        guard let caps = captures(topic) else { return nil }
        return Dictionary(zip(captureNames, caps.map(String.init)), uniquingKeysWith: { a, _ in a })
    }

    static func fill(_ pieces: [Piece], _ caps: [Substring]) -> String {
        var s = ""
        for p in pieces {
            switch p {
            case .text(let t): s += t
            case .capture(let k): s += caps[k]
            }
        }
        return s
    }

    /// Why a message was not turned into an update.
    public enum Rejection: Error, Hashable, Sendable, CustomStringConvertible {
        case noMapping
        case badPayload(String)
        case wrongType(String)
        case outOfRange(String)

        /// A stable name for metrics.
        public var code: String {
            switch self {
            case .noMapping: "no_mapping"
            case .badPayload: "bad_payload"
            case .wrongType: "wrong_type"
            case .outOfRange: "out_of_range"
            }
        }

        public var description: String {
            switch self {
            case .noMapping: "no mapping for the topic"
            case .badPayload(let s), .wrongType(let s): s
            case .outOfRange(let s): "value \(s)"
            }
        }
    }

    /// The update a message stands for.
    public static func update(topic: String, payload: [UInt8], mappings: [TopicMapping], nowMs: UInt64) -> Result<PropertyUpdate, Rejection> {
        match(topic: topic, payload: payload, mappings: mappings, nowMs: nowMs).map(\.update)
    }

    /// The update a message stands for, and the mapping that made it.
    public static func match(topic: String, payload: [UInt8], mappings: [TopicMapping], nowMs: UInt64)
        -> Result<(update: PropertyUpdate, mapping: TopicMapping), Rejection>
    {
        for m in mappings {
            guard let caps = m.captures(topic) else { continue }
            let twin = fill(m.twinPieces, caps), property = fill(m.propertyPieces, caps)
            guard !twin.isEmpty, !property.isEmpty else { return .failure(.badPayload("empty twin or property")) }
            switch parse(payload, nowMs: nowMs) {
            case .failure(let e): return .failure(e)
            case .success(let (parsed, ts, quality)):
                var value = parsed
                if case .number(let d) = value { value = .number(d * m.scale + m.offset) }
                switch (m.kind, value) {
                case (nil, _), (.number?, .number), (.bool?, .bool), (.text?, .text): break
                default: return .failure(.wrongType("expected a \(m.kind!.rawValue), got \(value)"))
                }
                if case .number(let d) = value, !m.range.contains(d) {
                    return .failure(.outOfRange("\(d) outside \(m.range.lowerBound)…\(m.range.upperBound)"))
                }
                return .success((PropertyUpdate(twin: twin, property: property, value: value, timestampMs: ts, quality: quality), m))
            }
        }
        return .failure(.noMapping)
    }

    static func parse(_ payload: [UInt8], nowMs: UInt64) -> Result<(TwinValue, UInt64, Quality), Rejection> {
        guard payload.count <= 65536 else { return .failure(.badPayload("payload over 64 KiB")) }
        // Fast path for the common case, a bare number: no Foundation, no UTF-8 validation beyond ASCII.
        var lo = 0, hi = payload.count
        func space(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
        while lo < hi, space(payload[lo]) { lo += 1 }
        while hi > lo, space(payload[hi - 1]) { hi -= 1 }
        if lo < hi, hi - lo <= 40, payload[lo...hi - 1].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E || $0 == 0x2D || $0 == 0x2B || $0 == 0x65 || $0 == 0x45 }),
            let d = Double(String(decoding: payload[lo..<hi], as: UTF8.self)), d.isFinite
        {
            return .success((.number(d), nowMs, .good))
        }
        guard let text = String(validating: payload, as: UTF8.self)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty else {
            return .failure(.badPayload("empty or not UTF-8"))
        }
        if let d = Double(text), d.isFinite { return .success((.number(d), nowMs, .good)) }
        if text == "true" || text == "false" { return .success((.bool(text == "true"), nowMs, .good)) }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) else {
            return .failure(.badPayload("not a number, boolean or JSON"))
        }
        if let s = obj as? String { return .success((.text(s), nowMs, .good)) }
        guard let o = obj as? [String: Any] else { return .failure(.badPayload("JSON without \"value\"")) }
        return parse(object: o, nowMs: nowMs)
    }

    /// A decoded JSON object `{"value", "timestamp"?, "quality"?}` (MQTT payloads, HTTP ingest entries).
    public static func parse(object o: [String: Any], nowMs: UInt64) -> Result<(TwinValue, UInt64, Quality), Rejection> {
        guard let raw = o["value"] else { return .failure(.badPayload("JSON without \"value\"")) }
        let value: TwinValue
        if isJSONBool(raw), let b = raw as? Bool {
            value = .bool(b)
        } else if let n = raw as? NSNumber, n.doubleValue.isFinite {
            value = .number(n.doubleValue)
        } else if let s = raw as? String {
            value = .text(s)
        } else {
            return .failure(.badPayload("\"value\" is not a number, boolean or string"))
        }
        var ts = nowMs
        if let t = o["timestamp"] {
            guard let n = t as? NSNumber, n.doubleValue >= 0, n.doubleValue < 1e15 else { return .failure(.badPayload("bad \"timestamp\"")) }
            ts = UInt64(n.doubleValue)
        }
        var quality = Quality.good
        if let q = o["quality"] {
            switch q as? String {
            case "good": quality = .good
            case "stale": quality = .stale
            case "bad": quality = .bad
            case "uncertain": quality = .uncertain
            default: return .failure(.badPayload("bad \"quality\""))
            }
        }
        return .success((value, ts, quality))
    }
}
