import FuzzDriver
import SceneStreamProtocol
import SceneStreamReplica

/// libFuzzer entry: server messages (what a client decodes) and applying frames to a replica never crash.

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let decoder = try? MessageDecoder(limits: DecodeLimits(maxMessageBytes: 1 << 16, maxInflatedBytes: 1 << 20)) else { return 0 }
    if case .frame(let f)? = try? decoder.decodeServerMessage(bytes) {
        var r = Replica()
        _ = try? r.apply(f)
        _ = try? r.apply(f)
    }
    return 0
}

@_cdecl("fuzz_server_frames_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
