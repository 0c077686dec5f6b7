import ArgumentParser
import Foundation

struct ImportBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Time and memory of `scenestream import` on a generated glTF (default 10,000 nodes, 500 distinct meshes).",
        discussion: """
            Writes a .glb with one root, --lines line nodes and the rest machines under them, each machine's mesh one \
            of --meshes distinct boxes (half with a matrix, half with TRS); runs `scenestream import` on it as a child \
            process and reads its peak RSS. Baselines from the same run: reading the same file's JSON with \
            JSONSerialization in this process (time), and the peak RSS of `scenestream --help` (the binary's floor).
            """)

    @Option(help: "Nodes in all.") var nodes = 10_000
    @Option(help: "Distinct meshes.") var meshes = 500
    @Option(help: "Line nodes (machines are spread over them).") var lines = 100
    @Option(help: "Server binary (default: the scenestream built next to this one).") var server: String?
    @Flag(help: "Print one JSON object.") var json = false

    /// The glTF JSON and binary chunk.
    func scene() -> (json: [UInt8], bin: [UInt8]) {
        var bin: [UInt8] = []
        var accessors: [String] = [], views: [String] = [], meshList: [String] = []
        func put(_ bytes: [UInt8], target: Int) -> Int {
            while bin.count % 4 != 0 { bin.append(0) }
            views.append("{\"buffer\":0,\"byteOffset\":\(bin.count),\"byteLength\":\(bytes.count),\"target\":\(target)}")
            bin += bytes
            return views.count - 1
        }
        let corners: [(Float, Float, Float)] = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
        let tris: [UInt16] = [0, 1, 2, 0, 2, 3, 4, 6, 5, 4, 7, 6, 0, 4, 5, 0, 5, 1, 3, 2, 6, 3, 6, 7, 0, 3, 7, 0, 7, 4, 1, 5, 6, 1, 6, 2]
        for m in 0..<meshes {
            // Each mesh its own proportions: distinct bytes, so none is deduplicated.
            let sx = 1 + Float(m % 10) * 0.1, sy = 1 + Float(m / 10 % 10) * 0.1, sz = 1 + Float(m / 100) * 0.1
            var pos: [UInt8] = []
            for c in corners {
                for v in [c.0 * sx, c.1 * sy, c.2 * sz] { withUnsafeBytes(of: v.bitPattern.littleEndian) { pos += $0 } }
            }
            var ind: [UInt8] = []
            for i in tris { withUnsafeBytes(of: i.littleEndian) { ind += $0 } }
            let pv = put(pos, target: 34962), iv = put(ind, target: 34963)
            accessors.append("{\"bufferView\":\(pv),\"componentType\":5126,\"count\":8,\"type\":\"VEC3\",\"min\":[0,0,0],\"max\":[\(sx),\(sy),\(sz)]}")
            accessors.append("{\"bufferView\":\(iv),\"componentType\":5123,\"count\":36,\"type\":\"SCALAR\"}")
            meshList.append("{\"name\":\"m\(m)\",\"primitives\":[{\"attributes\":{\"POSITION\":\(2 * m)},\"indices\":\(2 * m + 1),\"material\":\(m % 8)}]}")
        }
        let machines = nodes - 1 - lines
        var nodeList = ["{\"name\":\"site\",\"children\":[\((1...lines).map(String.init).joined(separator: ","))]}"]
        var children = [[Int]](repeating: [], count: lines)
        for k in 0..<machines { children[k % lines].append(1 + lines + k) }
        for l in 0..<lines {
            nodeList.append("{\"name\":\"line \(l + 1)\",\"translation\":[\(l * 4),0,0],\"children\":[\(children[l].map(String.init).joined(separator: ","))]}")
        }
        for k in 0..<machines {
            let a = Double(k % 360) * .pi / 180
            if k % 2 == 0 {
                nodeList.append("{\"name\":\"machine \(k)\",\"mesh\":\(k % meshes),\"translation\":[0,0,\(k / lines * 2)],\"rotation\":[0,\(sin(a / 2)),0,\(cos(a / 2))]}")
            } else {
                let c = cos(a), s = sin(a)
                nodeList.append("{\"name\":\"machine \(k)\",\"mesh\":\(k % meshes),\"matrix\":[\(c),0,\(-s),0,0,1,0,0,\(s),0,\(c),0,0,0,\(k / lines * 2),1]}")
            }
        }
        let mats = (0..<8).map { "{\"pbrMetallicRoughness\":{\"baseColorFactor\":[\(Double($0) / 8),0.5,0.5,1]}}" }
        let text = "{\"asset\":{\"version\":\"2.0\"},\"scene\":0,\"scenes\":[{\"nodes\":[0]}],\"nodes\":[\(nodeList.joined(separator: ","))],"
            + "\"meshes\":[\(meshList.joined(separator: ","))],\"materials\":[\(mats.joined(separator: ","))],\"accessors\":[\(accessors.joined(separator: ","))],"
            + "\"bufferViews\":[\(views.joined(separator: ","))],\"buffers\":[{\"byteLength\":\(bin.count)}]}"
        return (Array(text.utf8), bin)
    }

    static func glb(_ json: [UInt8], _ bin: [UInt8]) -> [UInt8] {
        var j = json
        while j.count % 4 != 0 { j.append(0x20) }
        var out: [UInt8] = Array("glTF".utf8)
        func u32(_ v: Int) { for k in 0..<4 { out.append(UInt8((v >> (8 * k)) & 0xFF)) } }
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

    /// Runs the binary with `args`; returns seconds, and the peak RSS (KiB) of the largest child so far.
    static func child(_ bin: String, _ args: [String]) throws -> (Double, Int, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let t0 = Date()
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        let s = Date().timeIntervalSince(t0)
        guard p.terminationStatus == 0 else { throw ValidationError("\(bin) \(args.joined(separator: " ")) failed: \(text)") }
        var u = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &u)
        return (s, u.ru_maxrss, text)
    }

    func run() throws {
        guard nodes > lines + 1, meshes > 0, lines > 0 else { throw ValidationError("need nodes > lines + 1") }
        let dir = NSTemporaryDirectory() + "scenestream-import-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: "\(dir)/Assets/plants", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (j, b) = scene()
        let file = Self.glb(j, b)
        try Data(file).write(to: URL(fileURLWithPath: "\(dir)/plant.glb"))
        let bin = server ?? BenchServer.defaultServer
        // Baselines: the binary's floor (peak RSS of --help), and reading the JSON alone.
        let (_, floorKiB, _) = try Self.child(bin, ["--help"])
        let p0 = Date()
        _ = try JSONSerialization.jsonObject(with: Data(j))
        let parseSeconds = Date().timeIntervalSince(p0)
        let (seconds, peakKiB, text) = try Self.child(bin, ["import", "\(dir)/plant.glb", "--out", "\(dir)/Assets/plants/bench", "--assets", "\(dir)/Assets"])
        let models = (try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/Assets/plants/bench/models").count) ?? 0
        let sceneBytes = (try? FileManager.default.attributesOfItem(atPath: "\(dir)/Assets/plants/bench/scene.json")[.size] as? Int) ?? 0
        let result: [String: Any] = [
            "nodes": nodes, "meshes": meshes, "file_bytes": file.count, "models_written": models, "scene_json_bytes": sceneBytes,
            "import_seconds": (seconds * 1000).rounded() / 1000, "peak_rss_mb": Double(peakKiB / 102) / 10,
            "baseline_json_parse_seconds": (parseSeconds * 1000).rounded() / 1000, "import_vs_json_parse": (seconds / parseSeconds * 10).rounded() / 10,
            "baseline_binary_rss_mb": Double(floorKiB / 102) / 10, "rss_over_floor_mb": Double((peakKiB - floorKiB) / 102) / 10,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
        guard models == meshes else { throw ValidationError("expected \(meshes) model files, got \(models): \(text)") }
    }
}
