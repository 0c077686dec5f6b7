import FuzzDriver
import SceneStreamCore

/// libFuzzer entry: scene, bindings and rules files (configuration from outside) parse or give a ConfigError.

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let scene = try? SceneFile.parse(bytes, file: "fuzz") {
        _ = try? scene.makeGraph()
    }
    if let b = try? BindingSet.parse(bytes, file: "fuzz") {
        let engine = BindingEngine(b)
        _ = engine.set.bindings.count
    }
    _ = try? RuleSet.parse(bytes, file: "fuzz")
    return 0
}

@_cdecl("fuzz_plant_files_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
