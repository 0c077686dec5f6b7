/// A message or frame that breaks `Protocol/SPEC.md`, with what was being read when it was found.
public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public enum Kind: Hashable, Sendable {
        /// The input ended inside a field.
        case truncated
        /// A varint ran past 10 bytes or past 64 bits.
        case malformedVarint
        /// A field holds a value the spec does not allow.
        case invalidValue
        /// The message type byte is not one this version knows.
        case unknownMessageType(UInt8)
        /// Reserved flag bits are set.
        case reservedFlags(UInt8)
        /// The message (or its inflated body) exceeds the configured limit.
        case tooLarge(limit: Int)
        /// The deflated body could not be inflated.
        case compression
        /// Bytes remain after the message's last field.
        case trailingBytes(Int)
        /// A delta does not apply to the replica's version.
        case baseMismatch(expected: UInt64, got: UInt64)
        /// A frame names a node the replica does not have.
        case unknownNode(UInt32)
    }

    /// What went wrong.
    public var kind: Kind
    /// Where: the message and field being read.
    public var context: String

    /// Creates an error of `kind` found while reading `context`.
    public init(_ kind: Kind, _ context: String) {
        self.kind = kind
        self.context = context
    }

    public var description: String {
        let what: String
        switch kind {
        case .truncated: what = "input ends early"
        case .malformedVarint: what = "malformed varint"
        case .invalidValue: what = "invalid value"
        case .unknownMessageType(let t): what = "unknown message type 0x\(String(t, radix: 16))"
        case .reservedFlags(let f): what = "reserved flag bits set (0x\(String(f, radix: 16)))"
        case .tooLarge(let limit): what = "larger than the limit of \(limit) bytes"
        case .compression: what = "deflate body could not be inflated"
        case .trailingBytes(let n): what = "\(n) bytes after the last field"
        case .baseMismatch(let expected, let got): what = "delta base \(got) does not match replica version \(expected)"
        case .unknownNode(let index): what = "unknown node index \(index)"
        }
        return context.isEmpty ? what : "\(what) in \(context)"
    }
}
