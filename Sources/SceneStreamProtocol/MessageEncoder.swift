import SceneStreamDeflate

/// Limits a decoder enforces before it allocates (`SPEC.md` §2.3).
public struct DecodeLimits: Hashable, Sendable {
    /// Largest message accepted, as received.
    public var maxMessageBytes: Int
    /// Largest body accepted after inflating.
    public var maxInflatedBytes: Int

    /// Creates limits; defaults allow 1 MiB on the wire and 16 MiB inflated.
    public init(maxMessageBytes: Int = 1 << 20, maxInflatedBytes: Int = 16 << 20) {
        self.maxMessageBytes = maxMessageBytes
        self.maxInflatedBytes = maxInflatedBytes
    }
}

/// Envelope flag bits (`SPEC.md` §2.2).
public enum EnvelopeFlags {
    /// The body is one raw DEFLATE stream.
    public static let deflated: UInt8 = 0x01
}

/// Encodes messages into envelopes, compressing bodies when that makes them smaller. One owner at a time.
public final class MessageEncoder {
    private let deflater: Deflater
    /// Bodies shorter than this are never compressed.
    public var compressionThreshold: Int

    /// Creates an encoder; `level` is zlib's (1 fastest … 9 smallest).
    public init(level: Int32 = 6, compressionThreshold: Int = 64) throws(DeflateError) {
        deflater = try Deflater(level: level)
        self.compressionThreshold = compressionThreshold
    }

    /// Wraps `body` in an envelope of `type`, deflating it if `compress` and that saves bytes.
    public func envelope(_ type: MessageType, body: [UInt8], compress: Bool) -> [UInt8] {
        if compress && body.count >= compressionThreshold {
            let packed = deflater.compress(body)
            if packed.count < body.count {
                var out = [UInt8]()
                out.reserveCapacity(packed.count + 2)
                out.append(type.rawValue)
                out.append(EnvelopeFlags.deflated)
                out.append(contentsOf: packed)
                return out
            }
        }
        var out = [UInt8]()
        out.reserveCapacity(body.count + 2)
        out.append(type.rawValue)
        out.append(0)
        out.append(contentsOf: body)
        return out
    }

    /// Encodes a server message; frames and other large bodies are compressed when it helps.
    public func encode(_ message: ServerMessage, compress: Bool = true, version: UInt32 = 1) -> [UInt8] {
        let (type, body) = message.encodedBody(version: version)
        // A version-2 frame is range-coded: deflate would only cost time.
        if version >= 2, case .frame = message { return envelope(type, body: body, compress: false) }
        return envelope(type, body: body, compress: compress)
    }

    /// Encodes a client message; client messages are small and sent uncompressed.
    public func encode(_ message: ClientMessage) -> [UInt8] {
        let (type, body) = message.encodedBody()
        return envelope(type, body: body, compress: false)
    }
}

@available(*, unavailable)
extension MessageEncoder: Sendable {}
