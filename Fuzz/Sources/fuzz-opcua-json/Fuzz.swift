import FuzzDriver
import SceneStreamOPCUA

/// libFuzzer entry: a sequence of OPC UA PubSub JSON messages (data and metadata, any bytes) through one reader
/// gives updates or refusals, never a crash. Input: records of [length, 2 bytes little-endian][payload].
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    PubSubFuzz.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

@_cdecl("fuzz_opcua_json_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
