import CZlib

/// An error from zlib, with the operation that failed and zlib's own message.
public struct DeflateError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// zlib could not set up a stream.
        case initialization
        /// The input is not a valid raw DEFLATE stream.
        case corruptInput
        /// The input ended before the DEFLATE stream's final block.
        case truncatedInput
        /// The output would exceed the configured limit.
        case outputLimitExceeded(limit: Int)
    }

    /// What went wrong.
    public var kind: Kind
    /// zlib's message or the operation's context.
    public var detail: String

    public var description: String {
        switch kind {
        case .initialization: return "zlib initialization failed: \(detail)"
        case .corruptInput: return "corrupt deflate data: \(detail)"
        case .truncatedInput: return "truncated deflate data: \(detail)"
        case .outputLimitExceeded(let limit): return "inflated data exceeds \(limit) bytes"
        }
    }
}

/// A reusable raw-DEFLATE (RFC 1951) compressor. Each call produces one complete, independent stream.
///
/// Reusing one `z_stream` (reset between calls) avoids zlib's allocation per message. Not thread-safe: one owner.
public final class Deflater {
    private var stream = z_stream()
    private var scratch: [UInt8]

    /// Creates a compressor at `level` (1 fastest … 9 smallest) with a 32 KiB window.
    public init(level: Int32 = 6) throws(DeflateError) {
        scratch = [UInt8](repeating: 0, count: 64 * 1024)
        let rc = scenestream_deflateInit2(&stream, level, -15, 8)
        guard rc == Z_OK else { throw DeflateError(kind: .initialization, detail: "deflateInit2 returned \(rc)") }
    }

    deinit { deflateEnd(&stream) }

    /// Compresses `input` into one raw DEFLATE stream ending in a final block.
    public func compress(_ input: [UInt8]) -> [UInt8] {
        input.withUnsafeBufferPointer { compress($0) }
    }

    /// Compresses the bytes in `input` into one raw DEFLATE stream ending in a final block.
    public func compress(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        deflateReset(&stream)
        var output: [UInt8] = []
        output.reserveCapacity(Int(deflateBound(&stream, uLong(input.count))))
        let base = UnsafeMutablePointer(mutating: input.baseAddress)
        stream.next_in = base
        stream.avail_in = uInt(input.count)
        var rc: Int32 = Z_OK
        repeat {
            rc = scratch.withUnsafeMutableBufferPointer { out -> Int32 in
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                let r = deflate(&stream, Z_FINISH)
                output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
                return r
            }
        } while rc == Z_OK || (rc == Z_BUF_ERROR && stream.avail_out == 0)
        stream.next_in = nil
        stream.next_out = nil
        precondition(rc == Z_STREAM_END, "deflate with Z_FINISH and output space must end the stream (rc \(rc))")
        return output
    }
}

@available(*, unavailable)
extension Deflater: Sendable {}

/// A reusable raw-DEFLATE (RFC 1951) decompressor with an output limit.
public final class Inflater {
    private var stream = z_stream()
    private var scratch: [UInt8]

    /// Creates a decompressor for raw DEFLATE streams with windows up to 32 KiB.
    public init() throws(DeflateError) {
        scratch = [UInt8](repeating: 0, count: 64 * 1024)
        let rc = scenestream_inflateInit2(&stream, -15)
        guard rc == Z_OK else { throw DeflateError(kind: .initialization, detail: "inflateInit2 returned \(rc)") }
    }

    deinit { inflateEnd(&stream) }

    /// Decompresses one complete raw DEFLATE stream; trailing bytes after its final block are an error.
    public func decompress(_ input: ArraySlice<UInt8>, limit: Int) throws(DeflateError) -> [UInt8] {
        inflateReset(&stream)
        var output: [UInt8] = []
        let result: Result<Void, DeflateError> = input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = uInt(inBuf.count)
            defer {
                stream.next_in = nil
                stream.next_out = nil
            }
            while true {
                var rc: Int32 = Z_OK
                scratch.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    rc = inflate(&stream, Z_NO_FLUSH)
                    output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
                }
                if output.count > limit {
                    return .failure(DeflateError(kind: .outputLimitExceeded(limit: limit), detail: ""))
                }
                switch rc {
                case Z_STREAM_END:
                    if stream.avail_in != 0 {
                        return .failure(DeflateError(kind: .corruptInput, detail: "\(stream.avail_in) bytes after the final block"))
                    }
                    return .success(())
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    if stream.avail_in == 0 {
                        return .failure(DeflateError(kind: .truncatedInput, detail: "stream ended without a final block"))
                    }
                    continue
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "inflate returned \(rc)"
                    return .failure(DeflateError(kind: .corruptInput, detail: message))
                }
            }
        }
        try result.get()
        return output
    }
}

@available(*, unavailable)
extension Inflater: Sendable {}

/// One continuous raw-DEFLATE stream with context takeover, flushed to a byte boundary after each message
/// (as permessage-deflate, RFC 7692, carries it). Used to measure what a browser's compression would give.
public final class DeflateStream {
    private var stream = z_stream()
    private var scratch = [UInt8](repeating: 0, count: 64 * 1024)

    /// Creates a stream at `level` with a 32 KiB window.
    public init(level: Int32 = 6) throws(DeflateError) {
        let rc = scenestream_deflateInit2(&stream, level, -15, 8)
        guard rc == Z_OK else { throw DeflateError(kind: .initialization, detail: "deflateInit2 returned \(rc)") }
    }

    deinit { deflateEnd(&stream) }

    /// Compresses one message in the running context; returns its bytes without the trailing 00 00 FF FF.
    public func compress(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = uInt(inBuf.count)
            repeat {
                scratch.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    _ = deflate(&stream, Z_SYNC_FLUSH)
                    output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
                }
            } while stream.avail_out == 0
            stream.next_in = nil
            stream.next_out = nil
        }
        if output.count >= 4 && output.suffix(4) == [0, 0, 0xFF, 0xFF] { output.removeLast(4) }
        return output
    }
}

@available(*, unavailable)
extension DeflateStream: Sendable {}
