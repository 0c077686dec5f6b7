import ArgumentParser
import Foundation
import SceneStreamCore
import SceneStreamServer
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
            let plant = try PlantBundle.load(directory: dir)
            print("\(layout.id): \(plant.scene.nodes.count) nodes, \(plant.bindings.bindings.count) bindings, \(plant.rules.rules.count) rules")
        }
        if !stale.isEmpty {
            throw ValidationError("out of date (run `scenestream assets`): \(stale.joined(separator: ", "))")
        }
    }
}
