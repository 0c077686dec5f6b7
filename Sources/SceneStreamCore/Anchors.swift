import Foundation
import SceneStreamProtocol

/// Why an anchor was refused: a code for metrics and programs, a reason for people.
public struct AnchorError: Error, Hashable, Sendable, CustomStringConvertible {
    /// `bad_anchor` (the body breaks a rule) or `unknown_anchor` (the scene declares no such anchor).
    public var code: String
    public var reason: String
    public var description: String { reason }
    public init(_ code: String, _ reason: String) {
        self.code = code
        self.reason = reason
    }
}

/// A site's spatial anchors as its admins set them: each anchor's pose in the site's frame (metres, +Y up, a unit
/// quaternion) and the handles by which each platform resolves it — an OpenXR spatial-anchor UUID, a visionOS
/// WorldAnchor id, a WebXR persistent handle, a printed marker's payload. A value; no I/O: the server stores
/// ``fileBytes()`` and reads it back with ``init(file:path:)``.
public struct AnchorRegistry: Sendable, Equatable {
    /// One anchor as stored (and as `/api/anchors` shows it).
    public struct Anchor: Codable, Hashable, Sendable {
        public var id: String
        /// Metres in the site's frame.
        public var position: [Double]
        /// A unit quaternion x, y, z, w.
        public var rotation: [Double]
        /// Platform → handle.
        public var handles: [String: String]
        public var updatedMs: UInt64
        public var updatedBy: String
    }

    struct File: Codable {
        var format: String
        var anchors: [Anchor]
    }

    public static let format = "scenestream.anchors/1"
    /// At most this many handles per anchor, each platform name at most 32 characters, each handle 512 bytes.
    public static let maxHandles = 16

    public private(set) var anchors: [String: Anchor] = [:]

    /// An empty registry.
    public init() {}

    /// The registry another node sent (a fan-out node's copy of the owner's): back to metres and a quaternion.
    public init(records: [AnchorRecord], by source: String) {
        for r in records {
            anchors[r.id] = Anchor(
                id: r.id, position: [Double(r.position.x) / 1000, Double(r.position.y) / 1000, Double(r.position.z) / 1000],
                rotation: (0..<4).map { Double(r.rotation[$0]) / 1_000_000 },
                handles: Dictionary(r.handles.map { ($0.platform, $0.value) }, uniquingKeysWith: { _, b in b }),
                updatedMs: r.updatedMs, updatedBy: source)
        }
    }

    /// Reads a stored registry (`path` names it in errors).
    public init(file bytes: [UInt8], path: String) throws(ConfigError) {
        let f: File
        do { f = try JSONDecoder().decode(File.self, from: Data(bytes)) } catch {
            throw ConfigError(file: path, location: "", reason: "not an anchors file (\(error))")
        }
        guard f.format == Self.format else { throw ConfigError(file: path, location: "format", reason: "unsupported format '\(f.format)'") }
        // The file is ours, but a hand edit must not reach the wire unchecked: the same rules as an admin's PUT.
        for (k, a) in f.anchors.enumerated() {
            guard !a.id.isEmpty, anchors[a.id] == nil else {
                throw ConfigError(file: path, location: "anchors[\(k)].id", reason: "empty or repeated id '\(a.id)'")
            }
            do {
                let pose = try Self.check(position: a.position, rotation: a.rotation, handles: a.handles)
                anchors[a.id] = Anchor(id: a.id, position: pose.position, rotation: pose.rotation, handles: a.handles, updatedMs: a.updatedMs, updatedBy: a.updatedBy)
            } catch {
                throw ConfigError(file: path, location: "anchors[\(k)]", reason: error.reason)
            }
        }
    }

    /// The registry as stored: sorted, readable.
    public func fileBytes() -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return [UInt8]((try? enc.encode(File(format: Self.format, anchors: anchors.values.sorted { $0.id < $1.id }))) ?? Data())
    }

    /// Sets (adds or replaces) an anchor.
    public mutating func set(_ a: Anchor) { anchors[a.id] = a }

    /// Removes an anchor; false if there was none.
    @discardableResult
    public mutating func remove(_ id: String) -> Bool { anchors.removeValue(forKey: id) != nil }

    /// The anchors as the protocol sends them (§12): millimetres, quaternion components × 1,000,000 (w ≥ 0),
    /// anchors sorted by id and handles by platform, both by their UTF-8 bytes.
    public var records: [AnchorRecord] {
        anchors.values.sorted { Self.utf8Less($0.id, $1.id) }.map { a in
            func mm(_ v: Double) -> Int32 { Int32((v * 1000).rounded()) }
            // q and −q are the same rotation: the one with w ≥ 0 is sent (canonical).
            let sign: Double = a.rotation[3] < 0 ? -1 : 1
            func micro(_ v: Double) -> Int32 { Int32((sign * v * 1_000_000).rounded()) }
            return AnchorRecord(
                id: a.id, position: QVec3(mm(a.position[0]), mm(a.position[1]), mm(a.position[2])),
                rotation: SIMD4(micro(a.rotation[0]), micro(a.rotation[1]), micro(a.rotation[2]), micro(a.rotation[3])),
                handles: a.handles.sorted { Self.utf8Less($0.key, $1.key) }.map { AnchorHandle(platform: $0.key, value: $0.value) },
                updatedMs: a.updatedMs)
        }
    }

    /// Byte order of the UTF-8 encodings (what the spec says; Swift's `<` on strings is Unicode's order).
    static func utf8Less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    /// Only the anchors `declared` names (the scene may have dropped one since it was registered).
    public func declared(_ ids: Set<String>) -> AnchorRegistry {
        var r = self
        r.anchors = anchors.filter { ids.contains($0.key) }
        return r
    }

    struct Body: Decodable {
        var position: [Double]
        var rotation: [Double]?
        var handles: [String: String]?
    }

    /// An admin's description of anchor `id` — `{"position": [x, y, z], "rotation": [x, y, z, w], "handles":
    /// {"openxr": "…", …}}` — checked: the scene declares the anchor, the position is within 100 km of the site's
    /// origin, the rotation a quaternion (normalized here; identity if left out), the handles named and bounded.
    public static func parse(body: [UInt8], id: String, declared: Set<String>, by user: String, nowMs: UInt64) throws(AnchorError) -> Anchor {
        guard declared.contains(id) else {
            throw AnchorError("unknown_anchor", "the scene declares no anchor '\(id)' (it declares: \(declared.sorted().joined(separator: ", ")))")
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw AnchorError("bad_anchor", "the body is not a JSON object")
        }
        if let unknown = Set(object.keys).subtracting(["position", "rotation", "handles"]).sorted().first {
            throw AnchorError("bad_anchor", "\(unknown): unknown key (expected position, rotation, handles)")
        }
        let b: Body
        do { b = try JSONDecoder().decode(Body.self, from: Data(body)) } catch {
            throw AnchorError("bad_anchor", "position must be [x, y, z] in metres, rotation [x, y, z, w], handles an object of strings")
        }
        let checked = try check(position: b.position, rotation: b.rotation ?? [0, 0, 0, 1], handles: b.handles ?? [:])
        return Anchor(id: id, position: checked.position, rotation: checked.rotation, handles: b.handles ?? [:], updatedMs: nowMs, updatedBy: user)
    }

    /// An anchor's pose and handles checked (the rotation normalized).
    static func check(position: [Double], rotation: [Double], handles: [String: String]) throws(AnchorError) -> (position: [Double], rotation: [Double]) {
        guard position.count == 3, position.allSatisfy({ $0.isFinite && abs($0) <= 100_000 }) else {
            throw AnchorError("bad_anchor", "position: expected [x, y, z] in metres, each within 100 km of the site's origin")
        }
        var q = rotation
        let norm = q.count == 4 && q.allSatisfy(\.isFinite) ? q.reduce(0) { $0 + $1 * $1 }.squareRoot() : 0
        guard norm > 1e-6 else { throw AnchorError("bad_anchor", "rotation: expected a quaternion [x, y, z, w] that is not zero") }
        q = q.map { $0 / norm }
        guard handles.count <= maxHandles else { throw AnchorError("bad_anchor", "handles: at most \(maxHandles)") }
        for (platform, value) in handles {
            let ok = !platform.isEmpty && platform.utf8.count <= 32
                && platform.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "." || $0 == "_" }
            guard ok else { throw AnchorError("bad_anchor", "handles.\(platform): a platform is 1–32 of a–z 0–9 . _ - (openxr, visionos, webxr, marker, …)") }
            guard !value.isEmpty, value.utf8.count <= 512 else { throw AnchorError("bad_anchor", "handles.\(platform): expected 1–512 bytes") }
        }
        return (position, q)
    }
}
