import Foundation

/// What the plant's `twins.json` says about each twin beyond its values: its model, how often it reports, and the
/// units of the model's properties. Read by the inspect panel (`/api/twin`) and for staleness; values never come
/// from here.
public struct TwinCatalog: Hashable, Sendable {
    /// One twin's description.
    public struct Entry: Hashable, Sendable {
        public var model: String
        /// Updates a second the twin is expected to send (0: unknown).
        public var rateHz: Double
    }

    public private(set) var entries: [String: Entry] = [:]
    /// model → property → unit text (`"°C"`, `"%"`, `"rad"`).
    public private(set) var units: [String: [String: String]] = [:]

    /// An empty catalog.
    public init() {}

    private struct File: Decodable {
        struct Twin: Decodable {
            var id: String
            var model: String?
            var rateHz: Double?
        }
        var twins: [Twin]?
        var units: [String: [String: String]]?
    }

    /// Reads a twins file (`{"twins":[{"id","model","rateHz"}…], "units":{model:{property:unit}}}`).
    public init(json: [UInt8], file: String) throws(ConfigError) {
        let f: File
        do { f = try JSONDecoder().decode(File.self, from: Data(json)) } catch {
            throw ConfigError(file: file, location: "", reason: "not a twins file: \(error)")
        }
        for t in f.twins ?? [] { entries[t.id] = Entry(model: t.model ?? "", rateHz: max(0, t.rateHz ?? 0)) }
        units = f.units ?? [:]
    }

    /// The unit of `twin`'s `property`, if its model names one.
    public func unit(twin: String, property: String) -> String? {
        guard let model = entries[twin]?.model, let u = units[model]?[property], !u.isEmpty else { return nil }
        return u
    }
}
