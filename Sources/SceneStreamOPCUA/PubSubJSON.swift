import Foundation
import SceneStreamCore

/// OPC UA PubSub's JSON message mapping (OPC 10000-14, §7.2.5 in 1.05, §7.2.3 in 1.04) as gateways publish it over
/// MQTT, read into values. Pure: no I/O, no clock (the caller passes `nowMs`).
///
/// What is read, and how leniently (real gateways follow different editions):
/// - a NetworkMessage `{"MessageType": "ua-data", "PublisherId", "WriterGroupName"?, "Messages": [...]}` — or a single
///   DataSetMessage object instead of the array, or a bare DataSetMessage carrying `PublisherId` itself;
/// - DataSetMessages `{"DataSetWriterId", "DataSetWriterName"?, "SequenceNumber"?, "Timestamp"?, "Status"?,
///   "MessageType"?: ua-keyframe | ua-deltaframe | ua-keepalive, "Payload": {field: value}}`;
/// - a field value: a plain JSON value (non-reversible/verbose), a Variant `{"Type", "Body"}` (reversible) or
///   `{"UaType", "Value"}` (1.05 compact), or a DataValue `{"Value"?, "Status"|"StatusCode"?, "SourceTimestamp"?}`
///   whose value is any of those (or flattened into it); 64-bit integers and NaN/Infinity as strings;
/// - StatusCode as a number or `{"Code", "Symbol"?}`; severity from the top two bits: Good, Uncertain, Bad;
/// - `ua-metadata` messages `{"DataSetWriterId", "MetaData": {"Name", "Fields": [{"Name", "BuiltInType"}]}}`: the
///   writer's name (when its data messages carry only the id) and its fields' types.
public enum PubSubJSON {
    /// One field of one DataSetMessage.
    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: TwinValue?
        public var quality: Quality
        /// The field's SourceTimestamp, else the DataSetMessage's Timestamp (ms since the Unix epoch), else nil.
        public var timestampMs: UInt64?
    }

    /// One DataSetMessage.
    public struct DataSet: Sendable, Equatable {
        public var publisher: String
        public var group: String
        public var writerId: String
        public var writerName: String?
        public var sequence: UInt32?
        public var keepAlive: Bool
        public var fields: [Field]
        /// Fields that could not be read, with the reason.
        public var badFields: [(name: String, reason: String)]

        public static func == (a: Self, b: Self) -> Bool {
            a.publisher == b.publisher && a.group == b.group && a.writerId == b.writerId && a.writerName == b.writerName
                && a.sequence == b.sequence && a.keepAlive == b.keepAlive && a.fields == b.fields
                && a.badFields.map(\.name) == b.badFields.map(\.name) && a.badFields.map(\.reason) == b.badFields.map(\.reason)
        }
    }

    /// A metadata message: a writer's name and its fields' built-in types.
    public struct MetaData: Sendable, Equatable {
        public var publisher: String
        public var writerId: String
        public var name: String?
        public var fieldTypes: [String: Int]
    }

    /// What one MQTT message holds.
    public enum Message: Sendable, Equatable {
        case data([DataSet])
        case metadata(MetaData)
    }

    /// Why a message was refused (the `reason` label of `scenestream_ingest_refused_total{source="opcua"}`).
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var code: String
        public var detail: String
        public var description: String { "\(code): \(detail)" }
    }

    /// Limits on what one message may hold.
    public static let maxFieldsPerMessage = 10_000
    public static let maxMessagesPerNetworkMessage = 1_000
    public static let maxPayloadBytes = 4 << 20

    /// Reads one MQTT message. `topicPublisher`/`topicGroup` (from the topic, §7.3.5.7) fill in what the message
    /// leaves out.
    public static func read(_ payload: [UInt8], topicPublisher: String?, topicGroup: String?) -> Result<Message, Refusal> {
        guard payload.count <= maxPayloadBytes else { return .failure(Refusal(code: "too_large", detail: "payload of \(payload.count) bytes")) }
        guard let root = try? JSONSerialization.jsonObject(with: Data(payload)) else {
            return .failure(Refusal(code: "not_json", detail: "the payload is not JSON"))
        }
        guard let o = root as? [String: Any] else { return .failure(Refusal(code: "not_network_message", detail: "the payload is not a JSON object")) }
        let type = o["MessageType"] as? String
        let publisher = text(o["PublisherId"]) ?? topicPublisher
        if type == "ua-metadata" {
            guard let publisher else { return .failure(Refusal(code: "bad_message", detail: "ua-metadata without PublisherId")) }
            guard let writer = text(o["DataSetWriterId"]) else { return .failure(Refusal(code: "bad_message", detail: "ua-metadata without DataSetWriterId")) }
            guard let md = o["MetaData"] as? [String: Any] else { return .failure(Refusal(code: "bad_message", detail: "ua-metadata without MetaData")) }
            var types: [String: Int] = [:]
            for f in (md["Fields"] as? [Any] ?? []).prefix(maxFieldsPerMessage) {
                guard let f = f as? [String: Any], let n = f["Name"] as? String else { continue }
                types[n] = (f["BuiltInType"] as? NSNumber)?.intValue ?? 0
            }
            let name = (o["DataSetWriterName"] as? String) ?? (md["Name"] as? String)
            return .success(.metadata(MetaData(publisher: publisher, writerId: writer, name: name, fieldTypes: types)))
        }
        var group = (o["WriterGroupName"] as? String) ?? topicGroup ?? ""
        var list: [[String: Any]]
        if type == "ua-data" {
            if let a = o["Messages"] as? [Any] {
                guard a.count <= maxMessagesPerNetworkMessage else {
                    return .failure(Refusal(code: "too_large", detail: "\(a.count) DataSetMessages (at most \(maxMessagesPerNetworkMessage))"))
                }
                list = []
                for m in a {
                    guard let m = m as? [String: Any] else { return .failure(Refusal(code: "bad_message", detail: "a Messages entry is not an object")) }
                    list.append(m)
                }
            } else if let m = o["Messages"] as? [String: Any] {
                list = [m]
            } else {
                return .failure(Refusal(code: "bad_message", detail: "ua-data without Messages"))
            }
        } else if type == nil || type!.hasPrefix("ua-keyframe") || type == "ua-deltaframe" || type == "ua-keepalive" {
            // No NetworkMessage header: the object is a DataSetMessage itself (1.05 allows it).
            guard o["Payload"] != nil || type == "ua-keepalive" else {
                return .failure(Refusal(code: "not_network_message", detail: "no MessageType ua-data, no Payload"))
            }
            list = [o]
        } else {
            return .failure(Refusal(code: "not_network_message", detail: "MessageType \(type!.prefix(40)) is not ua-data or ua-metadata"))
        }
        var sets: [DataSet] = []
        var fieldCount = 0
        for m in list {
            let pub = text(m["PublisherId"]) ?? publisher
            if let g = m["WriterGroupName"] as? String { group = g }
            guard let pub else { return .failure(Refusal(code: "bad_message", detail: "no PublisherId in the message or the topic")) }
            guard let writer = text(m["DataSetWriterId"]) ?? (m["DataSetWriterName"] as? String) else {
                return .failure(Refusal(code: "bad_message", detail: "a DataSetMessage without DataSetWriterId"))
            }
            var seq: UInt32?
            if let s = m["SequenceNumber"] {
                guard let n = s as? NSNumber, let v = UInt32(exactly: n.doubleValue) else {
                    return .failure(Refusal(code: "bad_message", detail: "SequenceNumber is not a UInt32"))
                }
                seq = v
            }
            let mtype = m["MessageType"] as? String ?? "ua-keyframe"
            guard ["ua-keyframe", "ua-deltaframe", "ua-keepalive", "ua-event"].contains(mtype) else {
                return .failure(Refusal(code: "bad_message", detail: "DataSetMessage type \(mtype.prefix(40))"))
            }
            let messageTime = (m["Timestamp"] as? String).flatMap(dateTimeMs)
            let messageQuality = m["Status"].map(quality) ?? .good
            var fields: [Field] = []
            var bad: [(String, String)] = []
            if mtype != "ua-keepalive" {
                guard let payload = m["Payload"] as? [String: Any] else {
                    return .failure(Refusal(code: "bad_message", detail: "a DataSetMessage without a Payload object"))
                }
                fieldCount += payload.count
                guard fieldCount <= maxFieldsPerMessage else {
                    return .failure(Refusal(code: "too_large", detail: "over \(maxFieldsPerMessage) fields in one message"))
                }
                for (name, raw) in payload.sorted(by: { $0.key < $1.key }) {
                    switch field(raw) {
                    case .success(let (value, q, ts)):
                        let worst = q.rawValue == 0 ? messageQuality : q
                        fields.append(Field(name: name, value: value, quality: worst, timestampMs: ts ?? messageTime))
                    case .failure(let why):
                        bad.append((name, why.reason))
                    }
                }
            }
            sets.append(DataSet(
                publisher: pub, group: group, writerId: writer, writerName: m["DataSetWriterName"] as? String, sequence: seq,
                keepAlive: mtype == "ua-keepalive", fields: fields, badFields: bad))
        }
        return .success(.data(sets))
    }

    /// A number or string id as text (PublisherId may be either; DataSetWriterId was a string before 1.04 errata).
    static func text(_ v: Any?) -> String? {
        if let s = v as? String { return s.isEmpty ? nil : s }
        if let v, !isJSONBool(v), let n = v as? NSNumber, let i = UInt64(exactly: n.doubleValue) { return String(i) }
        return nil
    }

    /// Quality from a StatusCode (a number, or `{"Code"}`): the top two bits are its severity.
    static func quality(_ status: Any) -> Quality {
        var code: UInt32 = 0
        if let n = status as? NSNumber { code = UInt32(truncatingIfNeeded: n.int64Value) }
        if let o = status as? [String: Any], let n = o["Code"] as? NSNumber { code = UInt32(truncatingIfNeeded: n.int64Value) }
        switch code >> 30 {
        case 0: return .good
        case 1: return .uncertain
        default: return .bad
        }
    }

    /// Reads one field value: a DataValue (`Value` with `Status`/`StatusCode` and `SourceTimestamp`) or a Variant
    /// (plain, `{"Type","Body"}`, `{"UaType","Value"}`). A bad-status DataValue may have no value.
    static func field(_ raw: Any) -> Result<(TwinValue?, Quality, UInt64?), FieldProblem> {
        guard let o = raw as? [String: Any] else { return variant(raw, type: nil).map { ($0, .good, nil) } }
        let statusValue = o["Status"] ?? o["StatusCode"]
        let isDataValue = o["SourceTimestamp"] != nil || statusValue != nil || o["ServerTimestamp"] != nil
            || (o["Value"] != nil && o["UaType"] == nil)
        guard isDataValue else { return variant(raw, type: nil).map { ($0, .good, nil) } }
        let q = statusValue.map(quality) ?? .good
        var ts: UInt64?
        if let t = o["SourceTimestamp"] {
            guard let s = t as? String, let ms = dateTimeMs(s) else { return .failure(FieldProblem("SourceTimestamp is not an ISO 8601 date-time")) }
            ts = ms
        }
        // The value: nested (`Value`), or flattened 1.05.04 style (`UaType` + `Value` beside Status).
        let type = (o["UaType"] as? NSNumber)?.intValue
        guard let v = o["Value"] else {
            return q == .good ? .failure(FieldProblem("a DataValue without Value")) : .success((nil, q, ts))
        }
        return variant(v, type: type).map { ($0, q, ts) }
    }

    public struct FieldProblem: Error, Sendable { public var reason: String; init(_ r: String) { reason = r } }

    /// A Variant's value. `type`: its built-in type id when known (1 Boolean … 11 Double, 12 String).
    static func variant(_ raw: Any, type: Int?) -> Result<TwinValue, FieldProblem> {
        if let o = raw as? [String: Any] {
            if let t = o["Type"] as? NSNumber, let body = o["Body"] { return variant(body, type: t.intValue) }
            if let t = o["UaType"] as? NSNumber, let body = o["Value"] { return variant(body, type: t.intValue) }
            return .failure(FieldProblem("an object that is neither a Variant nor a DataValue"))
        }
        if isJSONBool(raw), let b = raw as? Bool { return .success(.bool(b)) }
        if let n = raw as? NSNumber {
            let d = n.doubleValue
            guard d.isFinite else { return .failure(FieldProblem("not a finite number")) }
            return .success(type == 1 ? .bool(d != 0) : .number(d))
        }
        if let s = raw as? String {
            // Int64/UInt64 (8, 9) travel as strings, as do NaN and ±Infinity of Float/Double (10, 11).
            if let type, (2...11).contains(type) {
                guard let d = Double(s) else { return .failure(FieldProblem("'\(s.prefix(40))' is not a number")) }
                guard d.isFinite else { return .failure(FieldProblem("\(s.prefix(20)) is not a finite number")) }
                return .success(.number(d))
            }
            return .success(.text(String(s.prefix(4096))))
        }
        if raw is NSNull { return .failure(FieldProblem("null")) }
        return .failure(FieldProblem("an array or structure (only scalars are taken)"))
    }

    /// Milliseconds since the Unix epoch of an ISO 8601 UTC date-time (`2026-01-02T03:04:05.6789Z`, 0–7 fraction
    /// digits, `Z` or `+hh:mm`). Nil when malformed or before 1970.
    public static func dateTimeMs(_ s: String) -> UInt64? {
        let b = Array(s.utf8)
        guard b.count >= 20, b.count <= 40 else { return nil }
        func num(_ lo: Int, _ n: Int) -> Int? {
            var v = 0
            for i in lo..<(lo + n) {
                guard i < b.count, b[i] >= 48, b[i] <= 57 else { return nil }
                v = v * 10 + Int(b[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), b[4] == 45, let mo = num(5, 2), b[7] == 45, let d = num(8, 2), b[10] == 84 || b[10] == 116,
            let h = num(11, 2), b[13] == 58, let mi = num(14, 2), b[16] == 58, let sec = num(17, 2)
        else { return nil }
        guard (1970...9999).contains(y), (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, sec < 61 else { return nil }
        var i = 19
        var ms = 0
        if i < b.count, b[i] == 46 {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if digits < 3 { ms = ms * 10 + Int(b[i] - 48) }
                digits += 1
                i += 1
            }
            guard digits >= 1, digits <= 9 else { return nil }
            for _ in 0..<max(0, 3 - digits) { ms *= 10 }
        }
        var offsetMin = 0
        guard i < b.count else { return nil }
        if b[i] == 90 || b[i] == 122 {
            i += 1
        } else if b[i] == 43 || b[i] == 45, let oh = num(i + 1, 2), b.count > i + 3, b[i + 3] == 58, let om = num(i + 4, 2) {
            offsetMin = (oh * 60 + om) * (b[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from the civil date (H. Hinnant's algorithm).
        let yy = mo <= 2 ? y - 1 : y
        let era = yy / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let total = ((days * 24 + h) * 60 + mi - offsetMin) * 60 + min(sec, 59)
        guard total >= 0 else { return nil }
        return UInt64(total) * 1000 + UInt64(ms)
    }
}
