import FuzzDriver
import SceneStreamProtocol

/// libFuzzer entry: every byte string a client could send must decode or give a typed error, never crash.

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let decoder = try? MessageDecoder(limits: DecodeLimits(maxMessageBytes: 1 << 16, maxInflatedBytes: 1 << 20)) else { return 0 }
    if let m = try? decoder.decodeClientMessage(bytes) {
        // What decodes re-encodes and decodes to the same message.
        let again = try? MessageDecoder().decodeClientMessage(try! MessageEncoder().encode(m))
        precondition(again == m, "round trip changed \(m)")
    }
    return 0
}

@_cdecl("fuzz_client_messages_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
