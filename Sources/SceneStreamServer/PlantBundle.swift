import Foundation
import SceneStreamCore
import SceneStreamSimulation
import SceneStreamTwinModels

/// A plant's files (scene, bindings, rules, twins) read from a folder or generated in memory.
public struct PlantBundle: Sendable {
    public var scene: SceneFile
    public var bindings: BindingSet
    public var rules: RuleSet
    public var twinsJSON: [UInt8]
    /// DTDL v3 twin models (`dtdl/*.json`) and the twin graph (`twin-graph.json`: twins and relationships); empty
    /// without them.
    public var models = TwinModels()
    /// Where it came from, for messages.
    public var source: String
    /// A folder's files as they were when it was read (``fingerprint(directory:)``), and the order of the read
    /// among others of the same folder (``PlantGeneration``): a reload never applies an older read over a newer one.
    public var fingerprint: [String] = []
    public var generation: UInt64 = 0

    static func read(_ path: String) throws(ConfigError) -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, location: "", reason: "cannot read the file")
        }
        return [UInt8](d)
    }

    /// Loads `scene.json`, `bindings.json`, `rules.json`, `twins.json` and the DTDL models (`dtdl/*.json`,
    /// `twin-graph.json`) from `directory`.
    /// `replacing` gives files' contents to use instead of what is on disk (by name, e.g. `bindings.json`): how
    /// an edit is checked before it is written.
    public static func load(directory dir: String, replacing: [String: [UInt8]] = [:]) throws(ConfigError) -> PlantBundle {
        func file(_ name: String) throws(ConfigError) -> [UInt8] {
            if let given = replacing[name] { return given }
            return try read("\(dir)/\(name)")
        }
        var b = PlantBundle(
            scene: try SceneFile.parse(try file("scene.json"), file: "\(dir)/scene.json"),
            bindings: try BindingSet.parse(try file("bindings.json"), file: "\(dir)/bindings.json"),
            rules: try RuleSet.parse(try file("rules.json"), file: "\(dir)/rules.json"),
            twinsJSON: (try? file("twins.json")) ?? Array("{\"twins\":[]}".utf8), source: dir)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/dtdl")) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let graph = "\(dir)/twin-graph.json"
        // twins.json is checked here, off the service thread, like the others.
        _ = try TwinCatalog(json: b.twinsJSON, file: "\(dir)/twins.json")
        if !names.isEmpty || FileManager.default.fileExists(atPath: graph) {
            var interfaces: [(name: String, bytes: [UInt8])] = []
            for n in names { interfaces.append(("\(dir)/dtdl/\(n)", try read("\(dir)/dtdl/\(n)"))) }
            let twins = FileManager.default.fileExists(atPath: graph) ? (graph, try read(graph)) : nil
            b.models = try TwinModels.load(interfaces: interfaces, twins: twins)
        }
        return b
    }

    /// Numbers the reads of a plant folder in the order they start (the watcher's) or end (an HTTP write's).
    final class Generations: @unchecked Sendable {
        private let lock = NSLock()
        private var last: UInt64 = 0
        func next() -> UInt64 {
            lock.lock()
            defer { lock.unlock() }
            last += 1
            return last
        }
    }

    /// The files a plant folder may hold, besides `dtdl/*.json`.
    public static let fileNames = ["scene.json", "bindings.json", "rules.json", "twins.json", "twin-graph.json"]

    /// What the plant folder's files are now (each one's inode, size and modification time): a different answer
    /// means some file changed, was replaced (an editor's or our own atomic write) or came or went.
    public static func fingerprint(directory dir: String) -> [String] {
        let dtdl = ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/dtdl")) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        return (fileNames + dtdl.map { "dtdl/\($0)" }).map { name in
            var st = stat()
            guard stat("\(dir)/\(name)", &st) == 0 else { return "\(name) -" }
            return "\(name) \(st.st_ino) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
        }
    }

    /// The twins' relationships, for the runtime.
    public var relationships: [RelationshipEdge] { models.relationships.map { RelationshipEdge(source: $0.source, name: $0.name, target: $0.target) } }

    /// The plant a layout generates, identical to its committed files.
    public static func generated(_ layout: PlantLayout) throws(ConfigError) -> PlantBundle {
        let files = Dictionary(uniqueKeysWithValues: layout.files().map { ($0.name, Array($0.text.utf8)) })
        return PlantBundle(
            scene: try SceneFile.parse(files["scene.json"]!, file: "\(layout.id)/scene.json"),
            bindings: try BindingSet.parse(files["bindings.json"]!, file: "\(layout.id)/bindings.json"),
            rules: try RuleSet.parse(files["rules.json"]!, file: "\(layout.id)/rules.json"),
            twinsJSON: files["twins.json"]!, source: "generated \(layout.id)")
    }
}
