import Foundation
import SceneStreamCore

/// Why an ingest body was refused: a metrics code and a message naming the entry.
public struct IngestRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// A short code for metrics (`bad_payload`, `too_many`, `bad_key`, or a value's own code).
    public var code: String
    /// What is wrong, and in which entry.
    public var message: String
    /// A refusal with a metrics code and a message.
    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// The body of `POST /api/ingest`: `{"updates": [{"twin", "property", "value", "timestamp"?, "quality"?}]}`.
/// Pure: the whole batch or a refusal naming the first bad entry (nothing of a refused batch is applied).
public enum HTTPIngest {
    /// Entries per batch at most.
    public static let maxUpdates = 100_000

    /// Parses `body`; entries without a timestamp get `nowMs`.
    public static func parse(_ body: [UInt8], nowMs: UInt64) -> Result<[PropertyUpdate], IngestRefusal> {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any], let list = obj["updates"] as? [[String: Any]] else {
            return .failure(IngestRefusal(code: "bad_payload", message: "expected {\"updates\": [{\"twin\", \"property\", \"value\"}]}"))
        }
        guard list.count <= maxUpdates else { return .failure(IngestRefusal(code: "too_many", message: "at most \(maxUpdates) updates per batch")) }
        var updates: [PropertyUpdate] = []
        updates.reserveCapacity(list.count)
        for (k, u) in list.enumerated() {
            guard let twin = u["twin"] as? String, let property = u["property"] as? String, let raw = u["value"] else {
                return .failure(IngestRefusal(code: "bad_payload", message: "updates[\(k)]: needs twin, property and value"))
            }
            if let why = TwinKeyRules.problem(twin: twin, property: property) {
                return .failure(IngestRefusal(code: "bad_key", message: "updates[\(k)]: \(why)"))
            }
            // The entry is already decoded JSON: read value, timestamp and quality the way MQTT payloads are read.
            var entry: [String: Any] = ["value": raw]
            entry["timestamp"] = u["timestamp"]
            entry["quality"] = u["quality"]
            switch TopicMapping.parse(object: entry, nowMs: nowMs) {
            case .success(let (value, ts, quality)):
                updates.append(PropertyUpdate(twin: twin, property: property, value: value, timestampMs: ts, quality: quality))
            case .failure(let e):
                return .failure(IngestRefusal(code: e.code, message: "updates[\(k)]: \(e)"))
            }
        }
        return .success(updates)
    }
}

extension HTTPIngest {
    /// `updates` as an ingest body that ``parse(_:nowMs:)`` reads back to the same updates (every timestamp and
    /// quality written out): how an owner hands an acknowledged batch to the cluster's ingest log, and a standby
    /// replays it.
    public static func encode(_ updates: [PropertyUpdate]) -> [UInt8] {
        var out: [UInt8] = Array(#"{"updates":["#.utf8)
        out.reserveCapacity(updates.count * 80 + 16)
        for (k, u) in updates.enumerated() {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"twin":"#.utf8)
            writeString(u.twin, into: &out)
            out.append(contentsOf: #","property":"#.utf8)
            writeString(u.property, into: &out)
            out.append(contentsOf: #","value":"#.utf8)
            switch u.value {
            // Swift's description of a finite Double is the shortest text that reads back to the same Double.
            case .number(let d): out.append(contentsOf: (d.isFinite ? "\(d)" : "0").utf8)
            case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
            case .text(let s): writeString(s, into: &out)
            }
            out.append(contentsOf: ",\"timestamp\":\(u.timestampMs),\"quality\":\"\(u.quality.name)\"}".utf8)
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }

    private static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
            case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

extension Quality {
    /// The name ingest bodies use: `good`, `stale`, `bad`, `uncertain`.
    public var name: String {
        switch self {
        case .good: "good"
        case .stale: "stale"
        case .bad: "bad"
        case .uncertain: "uncertain"
        }
    }
}
