import SceneStreamDeflate

/// Decodes envelopes into messages, enforcing ``DecodeLimits``. One owner at a time.
public final class MessageDecoder {
    private let inflater: Inflater
    /// The limits applied to every message.
    public var limits: DecodeLimits

    /// Creates a decoder.
    public init(limits: DecodeLimits = DecodeLimits()) throws(DeflateError) {
        inflater = try Inflater()
        self.limits = limits
    }

    /// Checks the envelope and returns the message type and inflated body.
    public func open(_ message: [UInt8]) throws(ProtocolError) -> (MessageType, [UInt8]) {
        guard message.count <= limits.maxMessageBytes else {
            throw ProtocolError(.tooLarge(limit: limits.maxMessageBytes), "message")
        }
        guard message.count >= 2 else { throw ProtocolError(.truncated, "envelope") }
        let type = MessageType(rawValue: message[0])
        let flags = message[1]
        guard flags & ~EnvelopeFlags.deflated == 0 else { throw ProtocolError(.reservedFlags(flags), "envelope(\(type))") }
        if flags & EnvelopeFlags.deflated != 0 {
            do {
                let body = try inflater.decompress(message[2...], limit: limits.maxInflatedBytes)
                return (type, body)
            } catch {
                if case .outputLimitExceeded(let limit) = error.kind {
                    throw ProtocolError(.tooLarge(limit: limit), "\(type) body")
                }
                throw ProtocolError(.compression, "\(type) body: \(error)")
            }
        }
        return (type, Array(message[2...]))
    }

    /// Decodes a message the server sent.
    public func decodeServerMessage(_ message: [UInt8], version: UInt32 = 1) throws(ProtocolError) -> ServerMessage {
        let (type, body) = try open(message)
        return try ServerMessage.decode(type: type, body: body, version: version)
    }

    /// Decodes a message a client sent.
    public func decodeClientMessage(_ message: [UInt8]) throws(ProtocolError) -> ClientMessage {
        let (type, body) = try open(message)
        return try ClientMessage.decode(type: type, body: body)
    }
}

@available(*, unavailable)
extension MessageDecoder: Sendable {}
