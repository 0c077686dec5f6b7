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

// SwiftPM links executables with `main` aliased to `<module>_main`; hand libFuzzer's driver our entry point.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("fuzz_plant_files_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { data, size in
        guard let data else { return 0 }
        return fuzz(data, size)
    }
}
