import Foundation
import SceneStreamCore

/// Turns a glTF 2.0 scene (`.gltf` with embedded or external buffers, or `.glb`) into a SceneStream plant folder:
/// `scene.json` (one node per glTF node, hierarchy and TRS kept, matrices decomposed), one model file per distinct
/// mesh (deduplicated by content, so repeated machines share an asset the viewer instances), base colours as node
/// colours, empty bindings and rules, and a report of what was kept and dropped. Pure: external files come through
/// `resolve`; the result is a list of files for the caller to write.
public enum GLTFImport {
    /// A refusal: the file, the JSON path and the reason.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var file: String
        public var path: String
        public var reason: String
        public var description: String { "\(file): \(path): \(reason)" }
    }

    /// What to import and where it will be served from.
    public struct Options: Sendable {
        /// The plant's id (scene id, first level of node ids is the glTF's roots).
        public var plantId: String
        /// Where model files are found under the server's `/assets/` (`plants/NAME/models`).
        public var modelBase: String
        /// Anchor for roots not named in `anchors`.
        public var defaultAnchor = "site"
        /// Root node id → anchor id.
        public var anchors: [String: String] = [:]

        public init(plantId: String, modelBase: String) {
            self.plantId = plantId
            self.modelBase = modelBase
        }
    }

    /// What an import made.
    public struct Result: Sendable {
        /// Relative path in the plant folder → bytes.
        public var files: [(path: String, bytes: [UInt8])]
        public var report: Report
    }

    /// Counts and what was dropped, with why.
    public struct Report: Sendable, Codable, Equatable {
        public var nodes = 0
        public var meshes = 0
        public var modelsWritten = 0
        public var dropped: [String] = []
    }

    // MARK: the glTF subset read

    struct Doc: Decodable {
        struct Asset: Decodable { var version: String }
        struct Scene: Decodable { var nodes: [Int]? }
        struct Node: Decodable {
            var name: String?
            var children: [Int]?
            var mesh: Int?
            var matrix: [Double]?
            var translation: [Double]?
            var rotation: [Double]?
            var scale: [Double]?
            var skin: Int?
            var camera: Int?
        }
        struct Primitive: Decodable {
            var attributes: [String: Int]
            var indices: Int?
            var material: Int?
            var mode: Int?
            var targets: [[String: Int]]?
        }
        struct Mesh: Decodable {
            var name: String?
            var primitives: [Primitive]
        }
        struct PBR: Decodable {
            var baseColorFactor: [Double]?
            var metallicFactor: Double?
            var roughnessFactor: Double?
            var baseColorTexture: Texture?
        }
        struct Texture: Decodable { var index: Int }
        struct Material: Decodable {
            var pbrMetallicRoughness: PBR?
        }
        struct Accessor: Decodable {
            var bufferView: Int?
            var byteOffset: Int?
            var componentType: Int
            var count: Int
            var type: String
            var normalized: Bool?
            var sparse: Sparse?
            var min: [Double]?
            var max: [Double]?
        }
        struct Sparse: Decodable { var count: Int }
        struct BufferView: Decodable {
            var buffer: Int
            var byteOffset: Int?
            var byteLength: Int
            var byteStride: Int?
        }
        struct Buffer: Decodable {
            var uri: String?
            var byteLength: Int
        }
        var asset: Asset
        var scene: Int?
        var scenes: [Scene]?
        var nodes: [Node]?
        var meshes: [Mesh]?
        var materials: [Material]?
        var accessors: [Accessor]?
        var bufferViews: [BufferView]?
        var buffers: [Buffer]?
        var extensionsRequired: [String]?
        var extensionsUsed: [String]?
        var skins: [AnyDecodable]?
        var animations: [AnyDecodable]?
        var cameras: [AnyDecodable]?
        var textures: [AnyDecodable]?
        var images: [AnyDecodable]?
    }

    struct AnyDecodable: Decodable { init(from decoder: any Decoder) throws {} }

    /// Extensions whose absence changes nothing we keep (materials' looks, lights, metadata).
    static let harmless: Set<String> = [
        "KHR_materials_emissive_strength", "KHR_materials_ior", "KHR_materials_specular", "KHR_materials_unlit",
        "KHR_lights_punctual", "KHR_texture_transform", "KHR_materials_variants", "KHR_materials_clearcoat",
        "KHR_materials_transmission", "KHR_materials_volume", "KHR_materials_sheen", "KHR_xmp_json_ld",
    ]

    // MARK: entry

    /// Imports `bytes` (named `file`, for messages); `resolve` reads an external buffer URI relative to the file.
    public static func run(_ bytes: [UInt8], file: String, options: Options, resolve: (String) -> [UInt8]?) throws(Failure) -> Result {
        func fail(_ path: String, _ reason: String) -> Failure { Failure(file: file, path: path, reason: reason) }
        var json = bytes
        var glbBin: [UInt8]?
        if bytes.count >= 12, bytes[0] == 0x67, bytes[1] == 0x6C, bytes[2] == 0x54, bytes[3] == 0x46 {
            (json, glbBin) = try readGLB(bytes, fail: fail)
        }
        let doc: Doc
        do { doc = try JSONDecoder().decode(Doc.self, from: Data(json)) } catch {
            throw fail("$", "not a glTF 2.0 JSON document (\(describe(error)))")
        }
        guard doc.asset.version.hasPrefix("2.") else { throw fail("$.asset.version", "glTF \(doc.asset.version) (only 2.x)") }
        for (k, e) in (doc.extensionsRequired ?? []).enumerated() where !harmless.contains(e) {
            throw fail("$.extensionsRequired[\(k)]", "required extension \(e) is not supported (export without it, e.g. without Draco or mesh quantization)")
        }
        var report = Report()
        for e in (doc.extensionsUsed ?? []) where !harmless.contains(e) && !(doc.extensionsRequired ?? []).contains(e) {
            report.dropped.append("extension \(e): ignored (optional)")
        }
        if let n = doc.skins?.count, n > 0 { report.dropped.append("\(n) skin(s): skinning is not streamed (meshes kept in their bind pose)") }
        if let n = doc.animations?.count, n > 0 { report.dropped.append("\(n) animation(s): motion comes from twin bindings") }
        if let n = doc.cameras?.count, n > 0 { report.dropped.append("\(n) camera(s)") }
        if let n = doc.textures?.count, n > 0 { report.dropped.append("\(n) texture(s): base colours are kept, images are not") }

        // Buffers.
        var buffers: [[UInt8]] = []
        for (k, b) in (doc.buffers ?? []).enumerated() {
            let path = "$.buffers[\(k)]"
            var data: [UInt8]
            if let uri = b.uri {
                if uri.hasPrefix("data:") {
                    guard let comma = uri.firstIndex(of: ","), uri[..<comma].hasSuffix(";base64"),
                        let d = Data(base64Encoded: String(uri[uri.index(after: comma)...]))
                    else { throw fail("\(path).uri", "a data URI that is not base64") }
                    data = [UInt8](d)
                } else {
                    let name = uri.removingPercentEncoding ?? uri
                    guard !name.hasPrefix("/"), !name.split(separator: "/").contains("..") else {
                        throw fail("\(path).uri", "'\(uri.prefix(100))' leaves the file's folder")
                    }
                    guard let d = resolve(name) else { throw fail("\(path).uri", "cannot read '\(name.prefix(200))'") }
                    data = d
                }
            } else {
                guard k == 0, let bin = glbBin else { throw fail(path, "no uri and no GLB binary chunk") }
                data = bin
            }
            guard data.count >= b.byteLength else {
                throw fail("\(path).byteLength", "says \(b.byteLength) bytes, the data has \(data.count)")
            }
            buffers.append(data)
        }

        // Hierarchy: every node at most one parent, no cycles.
        let nodes = doc.nodes ?? []
        var parent = [Int?](repeating: nil, count: nodes.count)
        for (i, n) in nodes.enumerated() {
            for (c, child) in (n.children ?? []).enumerated() {
                guard child >= 0, child < nodes.count else { throw fail("$.nodes[\(i)].children[\(c)]", "no node \(child)") }
                guard child != i else { throw fail("$.nodes[\(i)].children[\(c)]", "a node cannot be its own child (a cycle)") }
                if let p = parent[child] { throw fail("$.nodes[\(i)].children[\(c)]", "node \(child) already has parent \(p) (a node has one parent; a cycle?)") }
                parent[child] = i
            }
        }
        for i in nodes.indices {
            var seen: Set<Int> = [i]
            var p = parent[i]
            while let q = p {
                guard seen.insert(q).inserted else { throw fail("$.nodes[\(i)]", "its parents form a cycle") }
                p = parent[q]
            }
        }
        let sceneIndex = doc.scene ?? 0
        var roots: [Int]
        if let scenes = doc.scenes, !scenes.isEmpty {
            guard sceneIndex >= 0, sceneIndex < scenes.count else { throw fail("$.scene", "no scene \(sceneIndex)") }
            roots = scenes[sceneIndex].nodes ?? []
            for (k, r) in roots.enumerated() {
                guard r >= 0, r < nodes.count else { throw fail("$.scenes[\(sceneIndex)].nodes[\(k)]", "no node \(r)") }
                guard parent[r] == nil else { throw fail("$.scenes[\(sceneIndex)].nodes[\(k)]", "node \(r) is a child of node \(parent[r]!), not a root") }
            }
        } else {
            roots = nodes.indices.filter { parent[$0] == nil }
        }

        // Meshes → model files, deduplicated by content.
        var writer = ModelWriter(doc: doc, buffers: buffers, fail: fail)
        var meshAsset: [Int: (asset: String, color: UInt32?)] = [:]
        var files: [(String, [UInt8])] = []
        var byContent: [[UInt8]: String] = [:]
        var usedNames: Set<String> = []
        for (m, mesh) in (doc.meshes ?? []).enumerated() {
            report.meshes += 1
            guard let made = try writer.model(mesh: m, report: &report) else { continue }
            if let existing = byContent[made.glb] {
                meshAsset[m] = (existing, made.color)
                continue
            }
            var name = safeName(mesh.name ?? "", fallback: "mesh-\(m)")
            var k = 2
            while !usedNames.insert(name).inserted {
                name = "\(safeName(mesh.name ?? "", fallback: "mesh-\(m)"))-\(k)"
                k += 1
            }
            let asset = "\(options.modelBase)/\(name).glb"
            byContent[made.glb] = asset
            files.append(("models/\(name).glb", made.glb))
            meshAsset[m] = (asset, made.color)
            report.modelsWritten += 1
        }

        // Nodes: ids from names, path-safe and unique among siblings; TRS kept or decomposed.
        var lines: [String] = []
        var anchors: [String] = []
        var usedAnchor: Set<String> = []
        var remainingAnchors = options.anchors
        func emit(_ i: Int, parentId: String?, siblings: inout Set<String>, path: String) throws(Failure) {
            let n = nodes[i]
            var name = safeName(n.name ?? "", fallback: "node-\(i)")
            let base = name
            var k = 2
            while !siblings.insert(name).inserted {
                name = "\(base)-\(k)"
                k += 1
            }
            let id = parentId.map { "\($0)/\(name)" } ?? name
            let (t, r, s, mirrored) = try transform(n, path: "$.nodes[\(i)]", fail: fail)
            if mirrored { report.dropped.append("node \(id): a mirroring matrix (negative determinant) kept as a negative x scale") }
            var fields = ["\"id\":\(quote(id))"]
            if parentId == nil {
                let anchor = remainingAnchors.removeValue(forKey: id) ?? options.defaultAnchor
                fields.append("\"anchor\":\(quote(anchor))")
                if usedAnchor.insert(anchor).inserted { anchors.append(anchor) }
            }
            if t != (0, 0, 0) { fields.append("\"t\":[\(num(t.0)),\(num(t.1)),\(num(t.2))]") }
            if r != (0, 0, 0, 1) { fields.append("\"r\":[\(num(r.0)),\(num(r.1)),\(num(r.2)),\(num(r.3))]") }
            if s != (1, 1, 1) { fields.append("\"s\":[\(num(s.0)),\(num(s.1)),\(num(s.2))]") }
            if let m = n.mesh {
                guard m >= 0, m < (doc.meshes?.count ?? 0) else { throw fail("$.nodes[\(i)].mesh", "no mesh \(m)") }
                if let a = meshAsset[m] {
                    fields.append("\"asset\":\(quote(a.asset))")
                    if let c = a.color { fields.append("\"color\":\"#\(hex(c))\"") }
                }
            }
            if n.skin != nil { report.dropped.append("node \(id): its skin") }
            lines.append("{" + fields.joined(separator: ",") + "}")
            report.nodes += 1
            var mine: Set<String> = []
            for c in n.children ?? [] { try emit(c, parentId: id, siblings: &mine, path: path) }
        }
        var rootNames: Set<String> = []
        for r in roots { try emit(r, parentId: nil, siblings: &rootNames, path: "$") }
        if let (node, _) = remainingAnchors.sorted(by: { $0.key < $1.key }).first {
            throw Failure(file: file, path: "--anchor \(node)", reason: "no root node '\(node)' (roots: \(rootNames.sorted().prefix(10).joined(separator: ", ")))")
        }
        guard report.nodes > 0 else { throw fail("$.scenes", "no nodes to import") }
        let anchorJSON = anchors.map { "{\"id\":\(quote($0)),\"description\":\"set by scenestream import; register its platform handles with the anchor API\"}" }
        let scene = "{\"format\":\"scenestream.scene/1\",\"id\":\(quote(options.plantId)),\"name\":\(quote(options.plantId)),\n"
            + "\"quantization\":{\"positionUnitsPerMetre\":1000,\"rotationBits\":12},\n"
            + "\"anchors\":[\(anchorJSON.joined(separator: ","))],\n\"nodes\":[\n" + lines.joined(separator: ",\n") + "\n]}\n"
        files.insert(("scene.json", Array(scene.utf8)), at: 0)
        files.append(("bindings.json", Array("{\"format\":\"scenestream.bindings/1\",\"bindings\":[]}\n".utf8)))
        files.append(("rules.json", Array("{\"format\":\"scenestream.rules/1\",\"rules\":[]}\n".utf8)))
        files.append(("twins.json", Array("{\"format\":\"scenestream.twins/1\",\"twins\":[]}\n".utf8)))
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        files.append(("import-report.json", [UInt8]((try? enc.encode(report)) ?? Data())))
        return Result(files: files.map { (path: $0.0, bytes: $0.1) }, report: report)
    }

    // MARK: pieces

    static func describe(_ e: any Error) -> String {
        if case DecodingError.keyNotFound(let k, let c) = e { return "\(path(c.codingPath + [k])) is missing" }
        if case DecodingError.typeMismatch(_, let c) = e { return "\(path(c.codingPath)): wrong type" }
        if case DecodingError.dataCorrupted(let c) = e { return "\(path(c.codingPath)): \(c.debugDescription)" }
        if case DecodingError.valueNotFound(_, let c) = e { return "\(path(c.codingPath)) is null" }
        return "\(e)"
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.reduce("$") { acc, k in k.intValue.map { "\(acc)[\($0)]" } ?? "\(acc).\(k.stringValue)" }
    }

    static func readGLB(_ b: [UInt8], fail: (String, String) -> Failure) throws(Failure) -> ([UInt8], [UInt8]?) {
        func u32(_ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 | Int(b[o + 2]) << 16 | Int(b[o + 3]) << 24 }
        guard u32(4) == 2 else { throw fail("GLB header", "version \(u32(4)) (only 2)") }
        guard u32(8) <= b.count else { throw fail("GLB header", "says \(u32(8)) bytes, the file has \(b.count)") }
        var o = 12
        var json: [UInt8]?
        var bin: [UInt8]?
        while o + 8 <= min(b.count, u32(8)) {
            let len = u32(o), type = u32(o + 4)
            guard len >= 0, o + 8 + len <= b.count else { throw fail("GLB chunk at byte \(o)", "length \(len) runs past the end") }
            let body = Array(b[(o + 8)..<(o + 8 + len)])
            if type == 0x4E4F_534A, json == nil { json = body } else if type == 0x004E_4942, bin == nil { bin = body }
            o += 8 + len
        }
        guard let json else { throw fail("GLB", "no JSON chunk") }
        return (json, bin)
    }

    /// Translation, rotation (x, y, z, w) and scale of a node: its TRS, or its matrix decomposed.
    static func transform(_ n: Doc.Node, path: String, fail: (String, String) -> Failure) throws(Failure)
        -> ((Double, Double, Double), (Double, Double, Double, Double), (Double, Double, Double), Bool)
    {
        func finite(_ v: [Double], _ count: Int, _ key: String) throws(Failure) -> [Double] {
            guard v.count == count, v.allSatisfy(\.isFinite) else { throw fail("\(path).\(key)", "expected \(count) finite numbers") }
            return v
        }
        if let m0 = n.matrix {
            let m = try finite(m0, 16, "matrix")
            // Column-major: columns 0–2 are the scaled axes, column 3 the translation.
            var sx = (m[0] * m[0] + m[1] * m[1] + m[2] * m[2]).squareRoot()
            let sy = (m[4] * m[4] + m[5] * m[5] + m[6] * m[6]).squareRoot()
            let sz = (m[8] * m[8] + m[9] * m[9] + m[10] * m[10]).squareRoot()
            guard sx > 1e-12, sy > 1e-12, sz > 1e-12 else { throw fail("\(path).matrix", "a degenerate (zero-scale) matrix") }
            let det = m[0] * (m[5] * m[10] - m[9] * m[6]) - m[4] * (m[1] * m[10] - m[9] * m[2]) + m[8] * (m[1] * m[6] - m[5] * m[2])
            let mirrored = det < 0
            if mirrored { sx = -sx }
            // The rotation matrix r[row][col].
            let r00 = m[0] / sx, r10 = m[1] / sx, r20 = m[2] / sx
            let r01 = m[4] / sy, r11 = m[5] / sy, r21 = m[6] / sy
            let r02 = m[8] / sz, r12 = m[9] / sz, r22 = m[10] / sz
            var q: (Double, Double, Double, Double)
            let trace = r00 + r11 + r22
            if trace > 0 {
                let s = (trace + 1).squareRoot() * 2
                q = ((r21 - r12) / s, (r02 - r20) / s, (r10 - r01) / s, s / 4)
            } else if r00 > r11 && r00 > r22 {
                let s = (1 + r00 - r11 - r22).squareRoot() * 2
                q = (s / 4, (r01 + r10) / s, (r02 + r20) / s, (r21 - r12) / s)
            } else if r11 > r22 {
                let s = (1 + r11 - r00 - r22).squareRoot() * 2
                q = ((r01 + r10) / s, s / 4, (r12 + r21) / s, (r02 - r20) / s)
            } else {
                let s = (1 + r22 - r00 - r11).squareRoot() * 2
                q = ((r02 + r20) / s, (r12 + r21) / s, s / 4, (r10 - r01) / s)
            }
            let len = (q.0 * q.0 + q.1 * q.1 + q.2 * q.2 + q.3 * q.3).squareRoot()
            q = (q.0 / len, q.1 / len, q.2 / len, q.3 / len)
            if q.3 < 0 { q = (-q.0, -q.1, -q.2, -q.3) }
            return ((m[12], m[13], m[14]), q, (sx, sy, sz), mirrored)
        }
        let t = try n.translation.map { v throws(Failure) in try finite(v, 3, "translation") } ?? [0, 0, 0]
        var r = try n.rotation.map { v throws(Failure) in try finite(v, 4, "rotation") } ?? [0, 0, 0, 1]
        let s = try n.scale.map { v throws(Failure) in try finite(v, 3, "scale") } ?? [1, 1, 1]
        let len = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2] + r[3] * r[3]).squareRoot()
        guard len > 1e-9 else { throw fail("\(path).rotation", "a zero quaternion") }
        r = r.map { $0 / len }
        return ((t[0], t[1], t[2]), (r[0], r[1], r[2], r[3]), (s[0], s[1], s[2]), false)
    }

    /// A path-safe name: letters, digits, `.`, `_` and `-`; others become `-`.
    static func safeName(_ s: String, fallback: String) -> String {
        var out = ""
        for ch in s.unicodeScalars.prefix(64) {
            let ok = (ch >= "a" && ch <= "z") || (ch >= "A" && ch <= "Z") || (ch >= "0" && ch <= "9") || ch == "." || ch == "_" || ch == "-"
            out.unicodeScalars.append(ok ? ch : "-")
        }
        while out.hasPrefix(".") || out.hasPrefix("-") { out.removeFirst() }
        return out.isEmpty ? fallback : out
    }

    static func quote(_ s: String) -> String {
        String(decoding: (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8), as: UTF8.self)
            .dropFirst().dropLast().description
    }

    static func num(_ d: Double) -> String {
        let r = (d * 1_000_000).rounded() / 1_000_000
        return r == r.rounded() && abs(r) < 1e15 ? String(Int64(r)) : String(r)
    }

    static func hex(_ c: UInt32) -> String {
        let s = String(c, radix: 16)
        return String(repeating: "0", count: max(0, 8 - s.count)) + s
    }
}
