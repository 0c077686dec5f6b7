import ArgumentParser
import Foundation
import SceneStreamImport
import SceneStreamServer

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import", abstract: "Import a glTF 2.0 scene (.gltf or .glb) as a plant folder.",
        discussion: """
            Writes scene.json (one node per glTF node; ids from names, hierarchy and transforms kept), one model file \
            per distinct mesh under models/ (repeated meshes share one), base colours as node colours, empty \
            bindings.json, rules.json and twins.json, and import-report.json (what was kept and dropped). The folder \
            must be under --assets so the viewer can load the models from /assets/. Then: scenestream serve --plant DIR.
            """)

    @Argument(help: "The .gltf or .glb file.") var file: String
    @Option(help: "The plant folder to write (e.g. Assets/plants/NAME); it must not exist or be empty.") var out: String
    @Option(help: "ROOT=ANCHOR: the anchor a root node hangs from (repeatable; others use --default-anchor).") var anchor: [String] = []
    @Option(help: "The anchor of roots not named with --anchor.") var defaultAnchor = "site"
    @Option(help: "The server's Assets folder (models are served from under it).") var assets = "Assets"
    @Flag(help: "Write into a folder that already has files (they are replaced).") var force = false

    func run() throws {
        let fm = FileManager.default
        guard let bytes = fm.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let outURL = URL(fileURLWithPath: out).standardizedFileURL
        let assetsURL = URL(fileURLWithPath: assets).standardizedFileURL
        let outPath = outURL.path, assetsPath = assetsURL.path + "/"
        guard outPath.hasPrefix(assetsPath) else {
            throw ValidationError("--out \(out) is not under --assets \(assets): the viewer loads models from /assets/")
        }
        if !force, let existing = try? fm.contentsOfDirectory(atPath: outPath), !existing.isEmpty {
            throw ValidationError("\(out) already has files (use --force to replace them)")
        }
        var options = GLTFImport.Options(plantId: outURL.lastPathComponent, modelBase: String(outPath.dropFirst(assetsPath.count)) + "/models")
        options.defaultAnchor = defaultAnchor
        for a in anchor {
            let parts = a.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { throw ValidationError("--anchor \(a): expected ROOT=ANCHOR") }
            options.anchors[parts[0]] = parts[1]
        }
        let base = URL(fileURLWithPath: file).deletingLastPathComponent()
        let started = Date()
        let result = try GLTFImport.run([UInt8](bytes), file: file, options: options) { uri in
            fm.contents(atPath: base.appendingPathComponent(uri).path).map { [UInt8]($0) }
        }
        try fm.createDirectory(atPath: "\(outPath)/models", withIntermediateDirectories: true)
        for (path, data) in result.files { try Data(data).write(to: URL(fileURLWithPath: "\(outPath)/\(path)"), options: .atomic) }
        // It must load as a plant: the same check the server makes at start.
        let plant = try PlantBundle.load(directory: outPath)
        let r = result.report
        print("imported \(file) → \(out) in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        print("  \(r.nodes) nodes, \(r.meshes) meshes, \(r.modelsWritten) model files (repeated meshes share one), anchors: \(plant.scene.anchors.map(\.id).joined(separator: ", "))")
        for d in r.dropped.prefix(50) { print("  dropped: \(d)") }
        if r.dropped.count > 50 { print("  … and \(r.dropped.count - 50) more in import-report.json") }
        print("serve it: scenestream serve --plant \(out)")
    }
}
