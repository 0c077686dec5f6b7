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

    static func read(_ path: String) throws(ConfigError) -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, location: "", reason: "cannot read the file")
        }
        return [UInt8](d)
    }

    /// Loads `scene.json`, `bindings.json`, `rules.json`, `twins.json` and the DTDL models (`dtdl/*.json`,
    /// `twin-graph.json`) from `directory`.
    public static func load(directory dir: String) throws(ConfigError) -> PlantBundle {
        var b = PlantBundle(
            scene: try SceneFile.parse(try read("\(dir)/scene.json"), file: "\(dir)/scene.json"),
            bindings: try BindingSet.parse(try read("\(dir)/bindings.json"), file: "\(dir)/bindings.json"),
            rules: try RuleSet.parse(try read("\(dir)/rules.json"), file: "\(dir)/rules.json"),
            twinsJSON: (try? read("\(dir)/twins.json")) ?? Array("{\"twins\":[]}".utf8), source: dir)
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: "\(dir)/dtdl")) ?? []).filter { $0.hasSuffix(".json") }.sorted()
        let graph = "\(dir)/twin-graph.json"
        if !names.isEmpty || FileManager.default.fileExists(atPath: graph) {
            var interfaces: [(name: String, bytes: [UInt8])] = []
            for n in names { interfaces.append(("\(dir)/dtdl/\(n)", try read("\(dir)/dtdl/\(n)"))) }
            let twins = FileManager.default.fileExists(atPath: graph) ? (graph, try read(graph)) : nil
            b.models = try TwinModels.load(interfaces: interfaces, twins: twins)
        }
        return b
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
