import ArgumentParser
import Foundation
import SceneStreamCore
import SceneStreamSimulation

struct AssetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "assets", abstract: "Generate or check the plant files under Assets/plants.")

    @Option(help: "The Assets folder.") var assets = "Assets"
    @Flag(help: "Check that the files on disk equal what the generator writes, and that they load.") var check = false

    func run() throws {
        var stale: [String] = []
        for layout in [PlantLayout.reference, PlantLayout.demo] {
            let dir = "\(assets)/plants/\(layout.id)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (name, text) in layout.files() {
                let path = "\(dir)/\(name)"
                if check {
                    let onDisk = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                    if onDisk != text { stale.append(path) }
                } else {
                    try text.write(toFile: path, atomically: true, encoding: .utf8)
                    print("wrote \(path)")
                }
            }
            let plant = try PlantFiles.load(directory: dir)
            print("\(layout.id): \(plant.scene.nodes.count) nodes, \(plant.bindings.bindings.count) bindings, \(plant.rules.rules.count) rules")
        }
        if !stale.isEmpty {
            throw ValidationError("out of date (run `scenestream assets`): \(stale.joined(separator: ", "))")
        }
    }
}

/// A plant's files loaded from a directory.
struct PlantFiles {
    var scene: SceneFile
    var bindings: BindingSet
    var rules: RuleSet
    var twinsJSON: [UInt8]

    static func read(_ path: String) throws -> [UInt8] {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw ConfigError(file: path, location: "", reason: "cannot read the file")
        }
        return [UInt8](d)
    }

    static func load(directory dir: String) throws -> PlantFiles {
        PlantFiles(
            scene: try SceneFile.parse(try read("\(dir)/scene.json"), file: "\(dir)/scene.json"),
            bindings: try BindingSet.parse(try read("\(dir)/bindings.json"), file: "\(dir)/bindings.json"),
            rules: try RuleSet.parse(try read("\(dir)/rules.json"), file: "\(dir)/rules.json"),
            twinsJSON: try read("\(dir)/twins.json"))
    }

    /// The plant generated in memory, identical to the committed files.
    static func generated(_ layout: PlantLayout) throws -> PlantFiles {
        let files = Dictionary(uniqueKeysWithValues: layout.files().map { ($0.name, Array($0.text.utf8)) })
        return PlantFiles(
            scene: try SceneFile.parse(files["scene.json"]!, file: "\(layout.id)/scene.json"),
            bindings: try BindingSet.parse(files["bindings.json"]!, file: "\(layout.id)/bindings.json"),
            rules: try RuleSet.parse(files["rules.json"]!, file: "\(layout.id)/rules.json"),
            twinsJSON: files["twins.json"]!)
    }
}
