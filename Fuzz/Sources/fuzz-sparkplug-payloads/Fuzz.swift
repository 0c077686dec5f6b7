import FuzzDriver
import SceneStreamSparkplug

/// libFuzzer entry: a sequence of Sparkplug messages through one host (births, data, deaths in any order, any
/// bytes as payload) gives actions or refusals, never a crash. Input: records of [kind byte][length byte][payload].
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    SparkplugFuzz.run(bytes)
    return 0
}

@_cdecl("fuzz_sparkplug_payloads_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
