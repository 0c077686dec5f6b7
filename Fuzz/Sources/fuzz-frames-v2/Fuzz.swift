import FuzzDriver
import SceneStreamProtocol
import SceneStreamReplica

/// libFuzzer entry: version-2 frame bodies (what a v2 client decodes) never crash, and whatever decodes re-encodes
/// to a frame that decodes to itself.

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let f = try? FrameCodecV2.decodeMessage(bytes) else { return 0 }
    // A decoded frame re-encodes canonically; that encoding decodes to the same frame.
    let again = FrameCodecV2.encodeMessage(f)
    guard let back = try? FrameCodecV2.decodeMessage(again), back == f else { fatalError("v2 re-encoding did not decode back") }
    var r = Replica()
    _ = try? r.apply(f)
    _ = try? r.apply(f)
    return 0
}

@_cdecl("fuzz_frames_v2_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
