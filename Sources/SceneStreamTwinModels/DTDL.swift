import Foundation
import SceneStreamCore

/// Twin models in DTDL v3 (Digital Twins Definition Language, as Azure Digital Twins uses it): interfaces with
/// properties and telemetry (schemas, units), relationships and components; twin instances and relationships in the
/// Azure Digital Twins JSON form (`$dtId`, `$metadata.$model`, `$sourceId`, `$relationshipName`, `$targetId`). Pure:
/// it reads bytes and answers questions; the server loads the files.
///
/// What is checked against a model, for every value from every source: the type (`boolean`, `integer`, `long`,
/// `float`, `double`, `string`, enums), enum values, and a range (`minValue`/`maxValue` on a property or telemetry —
/// SceneStream's addition, since DTDL v3 has none). A twin's component `c` is the twin `TWIN/c` (as Sparkplug metric
/// folders are), modelled by the component's schema.
public struct TwinModels: Sendable {
    /// One property or telemetry.
    public struct Content: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable { case property, telemetry }
        public enum Schema: Sendable, Hashable {
            case boolean, integer, double, string
            /// Enum of numbers (integer valueSchema) or strings.
            case enumeration(numbers: Set<Double>, strings: Set<String>)
        }
        public var kind: Kind
        public var name: String
        public var schema: Schema
        /// The DTDL unit (`degreeCelsius`), and how it is shown (`°C`).
        public var unit: String?
        public var minValue: Double?
        public var maxValue: Double?
    }

    /// One interface, its `extends` already folded in.
    public struct Interface: Sendable, Hashable {
        public var id: String
        public var displayName: String?
        public var contents: [String: Content]
        /// Relationship name → target interface id (nil: any).
        public var relationships: [String: String?]
        /// Component name → interface id.
        public var components: [String: String]
        /// Every interface it extends, through any chain.
        public var bases: Set<String> = []
    }

    /// Why a value does not fit its model: `wrong_type` or `out_of_range`.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        public var code: String
        public var detail: String
        public var description: String { "\(code): \(detail)" }
    }

    public private(set) var interfaces: [String: Interface] = [:]
    /// Twin id → interface id (components' twins included: `TWIN/c` → the component's schema).
    public private(set) var twinModel: [String: String] = [:]
    /// Relationships between twins, in file order.
    public private(set) var relationships: [(source: String, name: String, target: String)] = []

    /// No models.
    public init() {}

    /// Whether any twin has a model.
    public var isEmpty: Bool { twinModel.isEmpty }

    // MARK: loading

    /// Loads interface files (each a JSON interface or an array of them) and the twins file; errors name the file,
    /// the JSON path and the reason.
    public static func load(interfaces files: [(name: String, bytes: [UInt8])], twins: (name: String, bytes: [UInt8])?) throws(ConfigError) -> TwinModels {
        var raw: [String: (file: String, path: String, object: [String: Any])] = [:]
        for f in files {
            let root: Any
            do { root = try JSONSerialization.jsonObject(with: Data(f.bytes)) } catch {
                throw ConfigError(file: f.name, location: "$", reason: "not JSON (\(error.localizedDescription))")
            }
            let list: [Any] = (root as? [Any]) ?? [root]
            for (k, item) in list.enumerated() {
                let path = root is [Any] ? "$[\(k)]" : "$"
                guard let o = item as? [String: Any] else { throw ConfigError(file: f.name, location: path, reason: "expected an Interface object") }
                guard let id = o["@id"] as? String, id.hasPrefix("dtmi:") else { throw ConfigError(file: f.name, location: "\(path).@id", reason: "expected a DTMI like dtmi:com:plant:Press;1") }
                guard (o["@type"] as? String) == "Interface" else { throw ConfigError(file: f.name, location: "\(path).@type", reason: "expected \"Interface\"") }
                let context = (o["@context"] as? String) ?? (o["@context"] as? [Any])?.first as? String
                guard context == "dtmi:dtdl:context;3" || context == "dtmi:dtdl:context;2" else {
                    throw ConfigError(file: f.name, location: "\(path).@context", reason: "expected dtmi:dtdl:context;3")
                }
                guard raw[id] == nil else { throw ConfigError(file: f.name, location: "\(path).@id", reason: "\(id) is defined twice") }
                raw[id] = (f.name, path, o)
            }
        }
        var models = TwinModels()
        var resolving: Set<String> = []
        func resolve(_ id: String, from site: String, at siteLocation: String) throws(ConfigError) -> Interface {
            if let done = models.interfaces[id] { return done }
            guard let (file, path, o) = raw[id] else { throw ConfigError(file: site, location: siteLocation, reason: "no interface \(id)") }
            guard resolving.insert(id).inserted else { throw ConfigError(file: site, location: siteLocation, reason: "\(id) extends itself") }
            var out = Interface(id: id, displayName: displayName(o["displayName"]), contents: [:], relationships: [:], components: [:])
            let extends: [String] = (o["extends"] as? [String]) ?? ((o["extends"] as? String).map { [$0] } ?? [])
            for (k, base) in extends.enumerated() {
                let b = try resolve(base, from: file, at: "\(path).extends[\(k)]")
                out.bases.formUnion(b.bases.union([base]))
                out.contents.merge(b.contents) { a, _ in a }
                out.relationships.merge(b.relationships) { a, _ in a }
                out.components.merge(b.components) { a, _ in a }
            }
            for (k, c) in ((o["contents"] as? [Any]) ?? []).enumerated() {
                let at = "\(path).contents[\(k)]"
                guard let c = c as? [String: Any], let name = c["name"] as? String, !name.isEmpty else {
                    throw ConfigError(file: file, location: at, reason: "expected an object with a name")
                }
                let types: [String] = (c["@type"] as? [String]) ?? ((c["@type"] as? String).map { [$0] } ?? [])
                if types.contains("Relationship") {
                    out.relationships[name] = c["target"] as? String
                } else if types.contains("Component") {
                    guard let s = c["schema"] as? String else { throw ConfigError(file: file, location: "\(at).schema", reason: "a component's schema is an interface id") }
                    out.components[name] = s
                } else if types.contains("Property") || types.contains("Telemetry") {
                    let schema = try Self.schema(c["schema"], file: file, at: "\(at).schema")
                    let unit = c["unit"] as? String
                    var content = Content(
                        kind: types.contains("Property") ? .property : .telemetry, name: name, schema: schema, unit: unit,
                        minValue: (c["minValue"] as? NSNumber)?.doubleValue, maxValue: (c["maxValue"] as? NSNumber)?.doubleValue)
                    if let lo = content.minValue, let hi = content.maxValue, lo > hi {
                        throw ConfigError(file: file, location: at, reason: "minValue \(lo) above maxValue \(hi)")
                    }
                    if content.unit == nil, let u = c["unit"] { content.unit = "\(u)" }
                    out.contents[name] = content
                } else if types.contains("Command") {
                    continue  // commands go to the plant, not from it
                } else {
                    throw ConfigError(file: file, location: "\(at).@type", reason: "expected Property, Telemetry, Relationship, Component or Command")
                }
            }
            resolving.remove(id)
            models.interfaces[id] = out
            return out
        }
        for id in raw.keys.sorted() { _ = try resolve(id, from: raw[id]!.file, at: raw[id]!.path) }
        for (id, i) in models.interfaces {
            for (name, schema) in i.components where models.interfaces[schema] == nil {
                throw ConfigError(file: raw[id]!.file, location: "\(raw[id]!.path) component \(name)", reason: "no interface \(schema)")
            }
        }
        if let (name, bytes) = twins { try models.loadTwins(bytes, file: name) }
        return models
    }

    static func displayName(_ v: Any?) -> String? {
        if let s = v as? String { return s }
        if let o = v as? [String: String] { return o["en"] ?? o.values.sorted().first }
        return nil
    }

    static func schema(_ v: Any?, file: String, at: String) throws(ConfigError) -> Content.Schema {
        if let s = v as? String {
            switch s {
            case "boolean": return .boolean
            case "integer", "long", "byte", "short", "unsignedInteger", "unsignedLong", "unsignedByte", "unsignedShort": return .integer
            case "double", "float", "decimal": return .double
            case "string", "date", "dateTime", "time", "duration", "uuid": return .string
            default: throw ConfigError(file: file, location: at, reason: "schema \(s) is not supported (boolean, integer, long, float, double, string, Enum)")
            }
        }
        guard let o = v as? [String: Any], (o["@type"] as? String) == "Enum" else {
            throw ConfigError(file: file, location: at, reason: "expected a primitive schema or an Enum")
        }
        var numbers: Set<Double> = [], strings: Set<String> = []
        for (k, e) in ((o["enumValues"] as? [Any]) ?? []).enumerated() {
            guard let e = e as? [String: Any] else { throw ConfigError(file: file, location: "\(at).enumValues[\(k)]", reason: "expected {name, enumValue}") }
            if let n = e["enumValue"] as? NSNumber, !isJSONBool(n) { numbers.insert(n.doubleValue) } else if let s = e["enumValue"] as? String { strings.insert(s) } else {
                throw ConfigError(file: file, location: "\(at).enumValues[\(k)].enumValue", reason: "expected a number or a string")
            }
        }
        guard !numbers.isEmpty || !strings.isEmpty else { throw ConfigError(file: file, location: "\(at).enumValues", reason: "an Enum needs values") }
        return .enumeration(numbers: numbers, strings: strings)
    }

    /// Reads `{"twins": [{"$dtId", "$metadata": {"$model"}}], "relationships": [{"$sourceId", "$relationshipName", "$targetId"}]}`.
    mutating func loadTwins(_ bytes: [UInt8], file: String) throws(ConfigError) {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else {
            throw ConfigError(file: file, location: "$", reason: "expected {\"twins\": [...], \"relationships\": [...]}")
        }
        func place(_ twin: String, _ model: String, at: String) throws(ConfigError) {
            guard let i = interfaces[model] else { throw ConfigError(file: file, location: at, reason: "no interface \(model)") }
            twinModel[twin] = model
            for (c, schema) in i.components { try place("\(twin)/\(c)", schema, at: "\(at) component \(c)") }
        }
        for (k, t) in ((o["twins"] as? [Any]) ?? []).enumerated() {
            let at = "$.twins[\(k)]"
            guard let t = t as? [String: Any], let id = t["$dtId"] as? String, !id.isEmpty else { throw ConfigError(file: file, location: at, reason: "expected {\"$dtId\", \"$metadata\": {\"$model\"}}") }
            guard let model = (t["$metadata"] as? [String: Any])?["$model"] as? String else { throw ConfigError(file: file, location: "\(at).$metadata.$model", reason: "missing") }
            guard twinModel[id] == nil else { throw ConfigError(file: file, location: "\(at).$dtId", reason: "twin \(id) is listed twice") }
            try place(id, model, at: at)
        }
        for (k, r) in ((o["relationships"] as? [Any]) ?? []).enumerated() {
            let at = "$.relationships[\(k)]"
            guard let r = r as? [String: Any], let s = r["$sourceId"] as? String, let n = r["$relationshipName"] as? String, let t = r["$targetId"] as? String else {
                throw ConfigError(file: file, location: at, reason: "expected {\"$sourceId\", \"$relationshipName\", \"$targetId\"}")
            }
            guard let sm = twinModel[s] else { throw ConfigError(file: file, location: "\(at).$sourceId", reason: "no twin \(s)") }
            guard let tm = twinModel[t] else { throw ConfigError(file: file, location: "\(at).$targetId", reason: "no twin \(t)") }
            guard let want = interfaces[sm]?.relationships[n] else {
                throw ConfigError(file: file, location: "\(at).$relationshipName", reason: "\(sm) has no relationship \(n)")
            }
            if let want, !extends(tm, want) { throw ConfigError(file: file, location: "\(at).$targetId", reason: "\(t) is a \(tm), not a \(want)") }
            relationships.append((s, n, t))
        }
    }

    /// Whether interface `a` is `b` or extends it (through any chain).
    func extends(_ a: String, _ b: String) -> Bool { a == b || interfaces[a]?.bases.contains(b) == true }

    // MARK: questions

    /// The model content for `twin`'s `property`, if the twin has a model that names it.
    public func content(twin: String, property: String) -> Content? {
        twinModel[twin].flatMap { interfaces[$0]?.contents[property] }
    }

    /// Why `u` does not fit its twin's model, or nil (no model, a property the model does not name, or a fit).
    /// Marks (values that are not good) carry the value held and are not checked.
    public func problem(_ u: PropertyUpdate) -> Problem? {
        guard u.quality == .good, let c = content(twin: u.twin, property: u.property) else { return nil }
        let at = "\(u.twin).\(u.property)"
        switch (c.schema, u.value) {
        case (.boolean, .bool), (.string, .text): return nil
        case (.integer, .number(let d)):
            guard d == d.rounded() else { return Problem(code: "wrong_type", detail: "\(at) is an integer, got \(d)") }
            return range(c, d, at)
        case (.double, .number(let d)): return range(c, d, at)
        case (.enumeration(let ns, _), .number(let d)) where !ns.isEmpty:
            return ns.contains(d) ? nil : Problem(code: "out_of_range", detail: "\(at): \(d) is not one of \(ns.sorted())")
        case (.enumeration(_, let ss), .text(let s)) where !ss.isEmpty:
            return ss.contains(s) ? nil : Problem(code: "out_of_range", detail: "\(at): '\(s.prefix(40))' is not one of \(ss.sorted())")
        default:
            return Problem(code: "wrong_type", detail: "\(at) is \(c.schema.name), got \(u.value)")
        }
    }

    func range(_ c: Content, _ d: Double, _ at: String) -> Problem? {
        if let lo = c.minValue, d < lo { return Problem(code: "out_of_range", detail: "\(at): \(d) is below \(lo)") }
        if let hi = c.maxValue, d > hi { return Problem(code: "out_of_range", detail: "\(at): \(d) is above \(hi)") }
        return nil
    }

    /// How a DTDL unit is shown.
    public static func symbol(_ unit: String) -> String {
        [
            "degreeCelsius": "°C", "degreeFahrenheit": "°F", "kelvin": "K", "percent": "%", "metre": "m", "millimetre": "mm",
            "centimetre": "cm", "metrePerSecond": "m/s", "radian": "rad", "degreeOfArc": "°", "second": "s", "millisecond": "ms",
            "hertz": "Hz", "revolutionPerMinute": "rpm", "radianPerSecond": "rad/s", "pascal": "Pa", "kilopascal": "kPa", "bar": "bar",
            "volt": "V", "ampere": "A", "watt": "W", "kilowatt": "kW", "kilogram": "kg", "newton": "N", "newtonMetre": "N·m",
            "litre": "L", "litrePerSecond": "L/s", "cubicMetrePerSecond": "m³/s", "kilowattHour": "kWh",
        ][unit] ?? unit
    }
}

extension TwinModels.Content.Schema {
    var name: String {
        switch self {
        case .boolean: "boolean"
        case .integer: "integer"
        case .double: "double"
        case .string: "string"
        case .enumeration: "an Enum"
        }
    }
}
