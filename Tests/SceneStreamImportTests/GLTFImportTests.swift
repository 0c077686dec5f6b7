import Foundation
import SceneStreamCore
import Testing

@testable import SceneStreamImport

/// glTF scenes made here (hierarchy, matrices, repeated meshes, .glb) become plant folders; bad files are refused
/// with the file, the JSON path and the reason.
@Suite struct GLTFImportTests {
    /// Two triangles' worth of data: positions A (3 × VEC3), indices (3 × u16, padded), positions B.
    static func buffer() -> [UInt8] {
        var b: [UInt8] = []
        func f(_ x: Float) { withUnsafeBytes(of: x.bitPattern.littleEndian) { b.append(contentsOf: $0) } }
        for v: Float in [0, 0, 0, 1, 0, 0, 0, 1, 0] { f(v) }  // 36 bytes
        for i: UInt16 in [0, 1, 2, 0] { withUnsafeBytes(of: i.littleEndian) { b.append(contentsOf: $0) } }  // 8 bytes (one pad)
        for v: Float in [0, 0, 0, 2, 0, 0, 0, 0, 2] { f(v) }  // 36 bytes
        return b
    }

    static let r = 0.5.squareRoot()  // cos 45°, sin 45°

    /// A scene: Line 1 (T) → Press (matrix: 90° about y, scale 2, T) + Press (mesh 1 = mesh 0's data); robot (mesh 2).
    static func json(bufferURI: String?, required: [String] = [], extraNode: String = "", children0: String = "[1, 2]") -> String {
        let uri = bufferURI.map { ",\"uri\":\"\($0)\"" } ?? ""
        return """
            {"asset":{"version":"2.0","generator":"test"},"scene":0,"scenes":[{"nodes":[0,3]}],
             "extensionsRequired":[\(required.map { "\"\($0)\"" }.joined(separator: ","))],
             "nodes":[
               {"name":"Line 1","translation":[1,2,3],"children":\(children0)},
               {"name":"Press","mesh":0,"matrix":[0,0,-2,0, 0,2,0,0, 2,0,0,0, 5,0,7,1]},
               {"name":"Press","mesh":1,"rotation":[0,\(r),0,\(r)],"scale":[1,1,3]},
               {"name":"robot/arm","mesh":2}\(extraNode)],
             "meshes":[
               {"name":"press","primitives":[{"attributes":{"POSITION":0},"indices":1,"material":0}]},
               {"name":"press copy","primitives":[{"attributes":{"POSITION":0},"indices":1,"material":1}]},
               {"name":"robot","primitives":[{"attributes":{"POSITION":2},"indices":1}]}],
             "materials":[{"pbrMetallicRoughness":{"baseColorFactor":[1,0,0,1]}},{"pbrMetallicRoughness":{"baseColorFactor":[0,0,1,1]}}],
             "accessors":[
               {"bufferView":0,"componentType":5126,"count":3,"type":"VEC3","min":[0,0,0],"max":[1,1,0]},
               {"bufferView":1,"componentType":5123,"count":3,"type":"SCALAR"},
               {"bufferView":2,"componentType":5126,"count":3,"type":"VEC3"}],
             "bufferViews":[{"buffer":0,"byteOffset":0,"byteLength":36},{"buffer":0,"byteOffset":36,"byteLength":6},{"buffer":0,"byteOffset":44,"byteLength":36}],
             "buffers":[{"byteLength":80\(uri)}]}
            """
    }

    static func embedded() -> [UInt8] { Array(json(bufferURI: "data:application/octet-stream;base64," + Data(buffer()).base64EncodedString()).utf8) }

    static func glb(_ json: String, bin: [UInt8]) -> [UInt8] {
        var j = Array(json.utf8)
        while j.count % 4 != 0 { j.append(0x20) }
        var out: [UInt8] = []
        func u32(_ v: Int) { for k in 0..<4 { out.append(UInt8((v >> (8 * k)) & 0xFF)) } }
        out += Array("glTF".utf8)
        u32(2)
        u32(12 + 8 + j.count + 8 + bin.count)
        u32(j.count)
        u32(0x4E4F_534A)
        out += j
        u32(bin.count)
        u32(0x004E_4942)
        out += bin
        return out
    }

    static let options: GLTFImport.Options = {
        var o = GLTFImport.Options(plantId: "mill", modelBase: "plants/mill/models")
        o.anchors = ["robot-arm": "cell-7"]
        return o
    }()

    func run(_ bytes: [UInt8], resolve: (String) -> [UInt8]? = { _ in nil }) throws(GLTFImport.Failure) -> GLTFImport.Result {
        try GLTFImport.run(bytes, file: "plant.gltf", options: Self.options, resolve: resolve)
    }

    func scene(_ r: GLTFImport.Result) throws -> SceneFile {
        try SceneFile.parse(r.files.first { $0.path == "scene.json" }!.bytes, file: "scene.json")
    }

    @Test func hierarchyTransformsRepeatedMeshesAndColours() throws {
        let r = try run(Self.embedded())
        let s = try scene(r)
        #expect(s.id == "mill" && s.anchors.map(\.id) == ["site", "cell-7"])
        let byId = Dictionary(uniqueKeysWithValues: s.nodes.map { ($0.id, $0) })
        #expect(s.nodes.map(\.id) == ["Line-1", "Line-1/Press", "Line-1/Press-2", "robot-arm"])
        #expect(byId["Line-1"]?.anchor == "site" && byId["robot-arm"]?.anchor == "cell-7")
        #expect(byId["Line-1"].map { $0.translation == (1, 2, 3) } == true)
        // The matrix: columns (0,0,-2), (0,2,0), (2,0,0) = scale 2 and 90° about y; translation (5, 0, 7).
        let p = try #require(byId["Line-1/Press"])
        #expect(p.translation == (5, 0, 7))
        #expect(abs(p.scale.0 - 2) < 1e-9 && abs(p.scale.1 - 2) < 1e-9 && abs(p.scale.2 - 2) < 1e-9)
        let q = p.rotation
        #expect(abs(q.x) < 1e-6 && abs(q.y - Self.r) < 1e-6 && abs(q.z) < 1e-6 && abs(q.w - Self.r) < 1e-6)
        // Repeated mesh data: one model file; the colours differ per node (red, blue).
        #expect(p.asset == "plants/mill/models/press.glb" && byId["Line-1/Press-2"]?.asset == p.asset)
        #expect(p.color == 0xFF0000FF && byId["Line-1/Press-2"]?.color == 0x0000FFFF)
        #expect(byId["robot-arm"]?.asset == "plants/mill/models/robot.glb" && byId["robot-arm"]?.color == 0xFFFFFFFF)
        #expect(r.report.nodes == 4 && r.report.meshes == 3 && r.report.modelsWritten == 2)
        #expect(r.files.map(\.path).sorted() == ["bindings.json", "import-report.json", "models/press.glb", "models/robot.glb", "rules.json", "scene.json", "twins.json"])
    }

    @Test func aGLBAndExternalBuffersGiveTheSamePlant() throws {
        let a = try run(Self.embedded())
        let b = try run(Self.glb(Self.json(bufferURI: nil), bin: Self.buffer()))
        var asked: [String] = []
        let c = try run(Array(Self.json(bufferURI: "data%20files/plant.bin").utf8)) { uri in
            asked.append(uri)
            return Self.buffer()
        }
        #expect(asked == ["data files/plant.bin"])
        for other in [b, c] {
            #expect(other.files.map(\.path) == a.files.map(\.path))
            #expect(zip(other.files, a.files).allSatisfy { $0.bytes == $1.bytes })
        }
    }

    @Test func aWrittenModelIsItselfAValidGLTF() throws {
        let r = try run(Self.embedded())
        let model = try #require(r.files.first { $0.path == "models/press.glb" }).bytes
        var o = GLTFImport.Options(plantId: "m", modelBase: "m")
        o.defaultAnchor = "a"
        let again = try GLTFImport.run(model, file: "press.glb", options: o) { _ in nil }
        #expect(again.report.nodes == 1 && again.report.modelsWritten == 1 && again.report.dropped.isEmpty)
        // The same geometry: re-exported byte for byte.
        #expect(again.files.first { $0.path.hasPrefix("models/") }?.bytes == model)
    }

    @Test(arguments: [
        (json(bufferURI: "x.bin", required: ["KHR_draco_mesh_compression"]), "$.extensionsRequired[0]", "KHR_draco_mesh_compression is not supported"),
        (json(bufferURI: "missing.bin"), "$.buffers[0].uri", "cannot read 'missing.bin'"),
        (json(bufferURI: "../secret.bin"), "$.buffers[0].uri", "leaves the file's folder"),
        (json(bufferURI: "short.bin"), "$.buffers[0].byteLength", "says 80 bytes, the data has 10"),
        (json(bufferURI: "x.bin", children0: "[1, 2, 0]"), "$.nodes[0].children[2]", "cannot be its own child"),
        (json(bufferURI: "x.bin", extraNode: #",{"name":"loop","children":[4]}"#), "$.nodes[4].children[0]", "cannot be its own child"),
        (json(bufferURI: "x.bin", children0: "[1, 3]"), "$.scenes[0].nodes[1]", "node 3 is a child of node 0, not a root"),
        (#"{"asset":{"version":"1.0"}}"#, "$.asset.version", "only 2.x"),
        (#"{"nodes":[]}"#, "$", "$.asset is missing"),
    ])
    func badFilesAreRefusedWithTheirPathAndReason(_ json: String, _ path: String, _ reason: String) {
        do {
            _ = try run(Array(json.utf8)) { name in name == "short.bin" ? [UInt8](repeating: 0, count: 10) : name == "x.bin" ? Self.buffer() : nil }
            Issue.record("accepted")
        } catch {
            #expect(error.file == "plant.gltf" && error.path == path, "\(error)")
            #expect(error.reason.contains(reason), "\(error)")
        }
    }

    @Test func aBrokenAccessorOrGLBIsRefused() {
        var bad = Self.json(bufferURI: "x.bin")
        bad = bad.replacingOccurrences(of: #"{"bufferView":2,"componentType":5126,"count":3"#, with: #"{"bufferView":2,"componentType":5126,"count":4"#)
        #expect(throws: GLTFImport.Failure.self) { try run(Array(bad.utf8)) { _ in Self.buffer() } }
        do {
            _ = try run(Array(bad.utf8)) { _ in Self.buffer() }
        } catch {
            #expect(error.path == "$.accessors[2]" && error.reason.contains("run past bufferView 2"))
        }
        var truncated = Self.glb(Self.json(bufferURI: nil), bin: Self.buffer())
        truncated.removeLast(40)
        #expect(throws: GLTFImport.Failure.self) { try run(truncated) }
    }

    @Test func whatCannotBeKeptIsReported() throws {
        var j = Self.json(bufferURI: "x.bin")
        j = j.replacingOccurrences(of: #"{"attributes":{"POSITION":2},"indices":1}"#, with: #"{"attributes":{"POSITION":2,"TEXCOORD_0":0},"indices":1},{"attributes":{"POSITION":2},"mode":1}"#)
        j = j.replacingOccurrences(of: #""extensionsRequired":[]"#, with: #""extensionsRequired":[],"extensionsUsed":["KHR_materials_pbrSpecularGlossiness"],"animations":[{}]"#)
        let r = try run(Array(j.utf8)) { _ in Self.buffer() }
        let d = r.report.dropped.joined(separator: "\n")
        #expect(d.contains("$.meshes[2].primitives[0]: attributes TEXCOORD_0") && d.contains("$.meshes[2].primitives[1]: mode 1"))
        #expect(d.contains("1 animation(s)") && d.contains("KHR_materials_pbrSpecularGlossiness: ignored"))
    }
}
