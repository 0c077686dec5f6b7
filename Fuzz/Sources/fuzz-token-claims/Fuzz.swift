import FuzzDriver
import SceneStreamServer

/// libFuzzer entry: a token's payload (its signature taken as checked) is accepted or refused, never a crash —
/// times of any size, any types, any lengths.

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = TokenClaimsCheck.check(payload: Array(UnsafeBufferPointer(start: data, count: size)), nowMs: 1_800_000_000_000)
    return 0
}

@_cdecl("fuzz_token_claims_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
