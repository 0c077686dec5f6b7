/// A message or frame that breaks `Protocol/SPEC.md`, with what was being read when it was found.
///
/// A struct over a package-internal enum: callers match ``code`` (an open set, like ``ErrorCode``), so new kinds
/// can be added without breaking anyone's `switch`.
public struct ProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, with its details (inside the package).
    package enum Kind: Hashable, Sendable {
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

    /// What went wrong, in detail.
    package var kind: Kind
    /// Where: the message and field being read.
    public var context: String

    /// Creates an error of `kind` found while reading `context`.
    package init(_ kind: Kind, _ context: String) {
        self.kind = kind
        self.context = context
    }

    /// Which kind of error this is: compare with the static members (`error.code == .tooLarge`).
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let description: String
        private init(_ name: String) { description = name }
        public static let truncated = Code("truncated")
        public static let malformedVarint = Code("malformedVarint")
        public static let invalidValue = Code("invalidValue")
        public static let unknownMessageType = Code("unknownMessageType")
        public static let reservedFlags = Code("reservedFlags")
        public static let tooLarge = Code("tooLarge")
        public static let compression = Code("compression")
        public static let trailingBytes = Code("trailingBytes")
        public static let baseMismatch = Code("baseMismatch")
        public static let unknownNode = Code("unknownNode")
    }

    /// Which kind of error this is.
    public var code: Code {
        switch kind {
        case .truncated: .truncated
        case .malformedVarint: .malformedVarint
        case .invalidValue: .invalidValue
        case .unknownMessageType: .unknownMessageType
        case .reservedFlags: .reservedFlags
        case .tooLarge: .tooLarge
        case .compression: .compression
        case .trailingBytes: .trailingBytes
        case .baseMismatch: .baseMismatch
        case .unknownNode: .unknownNode
        }
    }

    /// The limit a ``Code/tooLarge`` message broke.
    public var limit: Int? {
        if case .tooLarge(let l) = kind { return l }
        return nil
    }

    /// The type byte of an ``Code/unknownMessageType`` message.
    public var messageType: UInt8? {
        if case .unknownMessageType(let t) = kind { return t }
        return nil
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
