import Foundation

/// A bad scene, bindings or rules file: which file, where in it (line or key path), and why.
public struct ConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file (or source name) that was being read.
    public var file: String
    /// Where in the file: a key path such as `bindings[3].map.kind`, or a line.
    public var location: String
    /// What is wrong.
    public var reason: String

    /// Creates an error.
    public init(file: String, location: String, reason: String) {
        self.file = file
        self.location = location
        self.reason = reason
    }

    public var description: String { location.isEmpty ? "\(file): \(reason)" : "\(file): \(location): \(reason)" }
}

/// A JSON value with the key path it was found at, for error messages that say where.
struct JSONNode {
    let value: Any?
    let path: String
    let file: String

    static func parse(_ data: [UInt8], file: String) throws(ConfigError) -> JSONNode {
        do {
            let v = try JSONSerialization.jsonObject(with: Data(data), options: [.fragmentsAllowed])
            return JSONNode(value: v, path: "", file: file)
        } catch {
            let ns = error as NSError
            let detail = (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
            throw ConfigError(file: file, location: Self.lineHint(data, detail), reason: "not valid JSON (\(detail))")
        }
    }

    /// Foundation reports a character offset on some platforms and a line on others; give a line either way.
    static func lineHint(_ data: [UInt8], _ detail: String) -> String {
        if detail.contains("line ") { return "" }
        guard let r = detail.range(of: "character "), let n = Int(detail[r.upperBound...].prefix { $0.isNumber }) else { return "" }
        let line = data.prefix(n).filter { $0 == UInt8(ascii: "\n") }.count + 1
        return "line \(line)"
    }

    func error(_ reason: String) -> ConfigError { ConfigError(file: file, location: path.isEmpty ? "top level" : path, reason: reason) }

    subscript(key: String) -> JSONNode {
        let child = (value as? [String: Any])?[key]
        return JSONNode(value: child, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    var exists: Bool { value != nil && !(value is NSNull) }

    var keys: [String] { ((value as? [String: Any])?.keys).map { Array($0).sorted() } ?? [] }

    func object() throws(ConfigError) -> JSONNode {
        guard value is [String: Any] else { throw error("expected an object") }
        return self
    }

    func array() throws(ConfigError) -> [JSONNode] {
        guard let a = value as? [Any] else { throw error(exists ? "expected an array" : "missing") }
        return a.enumerated().map { JSONNode(value: $1, path: "\(path)[\($0)]", file: file) }
    }

    func string() throws(ConfigError) -> String {
        guard let s = value as? String else { throw error(exists ? "expected a string" : "missing") }
        return s
    }

    func string(default d: String) throws(ConfigError) -> String { exists ? try string() : d }

    func number() throws(ConfigError) -> Double {
        guard let v = value, !isJSONBool(v), let n = v as? NSNumber else {
            throw error(exists ? "expected a number" : "missing")
        }
        let d = n.doubleValue
        guard d.isFinite else { throw error("expected a finite number") }
        return d
    }

    func number(default d: Double) throws(ConfigError) -> Double { exists ? try number() : d }

    func bool() throws(ConfigError) -> Bool {
        guard let v = value, isJSONBool(v), let b = v as? Bool else { throw error(exists ? "expected true or false" : "missing") }
        return b
    }

    func bool(default d: Bool) throws(ConfigError) -> Bool { exists ? try bool() : d }

    /// `[x, y, z]` numbers.
    func vector3(default d: (Double, Double, Double)) throws(ConfigError) -> (Double, Double, Double) {
        guard exists else { return d }
        let a = try array()
        guard a.count == 3 else { throw error("expected 3 numbers") }
        return (try a[0].number(), try a[1].number(), try a[2].number())
    }

    /// Rejects keys not in `allowed`, so typos are reported instead of ignored.
    func checkKeys(_ allowed: Set<String>) throws(ConfigError) {
        for k in keys where !allowed.contains(k) {
            throw self[k].error("unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
    }
}

/// JSONSerialization gives NSNumber for numbers and a boolean subclass for true/false; only the latter is a bool.
public func isJSONBool(_ v: Any) -> Bool { "\(type(of: v))".contains("Boolean") || v is Bool && !(v is NSNumber) }

/// Parses `#rrggbb` or `#rrggbbaa` into RGBA.
func parseColor(_ s: String) -> UInt32? {
    guard s.hasPrefix("#") else { return nil }
    let hex = s.dropFirst()
    guard hex.count == 6 || hex.count == 8, let v = UInt32(hex, radix: 16) else { return nil }
    return hex.count == 6 ? (v << 8 | 0xFF) : v
}

/// Formats RGBA as `#rrggbbaa`.
public func formatColor(_ c: UInt32) -> String {
    let s = String(c, radix: 16)
    return "#" + String(repeating: "0", count: 8 - s.count) + s
}
