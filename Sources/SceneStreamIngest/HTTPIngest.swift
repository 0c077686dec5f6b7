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
