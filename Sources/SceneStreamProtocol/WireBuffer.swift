/// Appends wire primitives (varints, zigzag, strings) to a byte array.
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public var bytes: [UInt8]

    /// Creates an empty writer with room for `capacity` bytes.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Writes one byte.
    @inlinable public mutating func writeU8(_ v: UInt8) { bytes.append(v) }

    /// Writes an unsigned LEB128 varint.
    @inlinable public mutating func writeVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Writes an unsigned LEB128 varint.
    @inlinable public mutating func writeVarint<I: BinaryInteger>(_ value: I) { writeVarint(UInt64(value)) }

    /// Writes a signed value as a zigzag varint.
    @inlinable public mutating func writeZigZag(_ value: Int64) { writeVarint(zigzag(value)) }

    /// Writes a length-prefixed UTF-8 string.
    public mutating func writeString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            writeVarint(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    /// Writes a 32-bit value big-endian (used for RGBA colours).
    @inlinable public mutating func writeU32BE(_ v: UInt32) {
        bytes.append(UInt8(truncatingIfNeeded: v >> 24))
        bytes.append(UInt8(truncatingIfNeeded: v >> 16))
        bytes.append(UInt8(truncatingIfNeeded: v >> 8))
        bytes.append(UInt8(truncatingIfNeeded: v))
    }

    /// Writes raw bytes.
    @inlinable public mutating func writeBytes<C: Collection>(_ b: C) where C.Element == UInt8 {
        bytes.append(contentsOf: b)
    }
}

/// Maps a signed integer to an unsigned one so that small magnitudes stay small (0, -1, 1, -2 → 0, 1, 2, 3).
@inlinable public func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }

/// Inverse of ``zigzag(_:)``.
@inlinable public func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

/// The number of bytes ``WireWriter/writeVarint(_:)-(UInt64)`` uses for `v`.
@inlinable public func varintSize(_ v: UInt64) -> Int {
    var n = 1
    var x = v >> 7
    while x != 0 {
        n += 1
        x >>= 7
    }
    return n
}

/// Reads wire primitives from a byte array, throwing ``ProtocolError`` with the field's name on bad input.
public struct WireReader: Sendable {
    @usableFromInline let bytes: [UInt8]
    /// The index of the next byte to read.
    public private(set) var position: Int
    @usableFromInline let end: Int
    /// The message being read, for error context.
    public var context: String

    /// Creates a reader over `bytes[range]`.
    public init(_ bytes: [UInt8], range: Range<Int>? = nil, context: String) {
        self.bytes = bytes
        let r = range ?? 0..<bytes.count
        position = r.lowerBound
        end = r.upperBound
        self.context = context
    }

    /// The number of unread bytes.
    public var remaining: Int { end - position }

    /// Reads one byte.
    public mutating func readU8(_ field: String) throws(ProtocolError) -> UInt8 {
        guard position < end else { throw ProtocolError(.truncated, "\(context).\(field)") }
        defer { position += 1 }
        return bytes[position]
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    public mutating func readVarint(_ field: String) throws(ProtocolError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw ProtocolError(.truncated, "\(context).\(field)") }
            let b = bytes[position]
            position += 1
            if shift == 63 && b > 1 { throw ProtocolError(.malformedVarint, "\(context).\(field)") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 {
                // The shortest form only (one value, one encoding): a last byte of 0 after others is overlong.
                if b == 0 && shift > 0 { throw ProtocolError(.malformedVarint, "\(context).\(field) (overlong)") }
                return result
            }
            shift += 7
            if shift > 63 { throw ProtocolError(.malformedVarint, "\(context).\(field)") }
        }
    }

    /// Reads a varint that must fit in `T`.
    public mutating func readVarint<T: FixedWidthInteger>(_ field: String, as: T.Type) throws(ProtocolError) -> T {
        let v = try readVarint(field)
        guard let t = T(exactly: v) else { throw ProtocolError(.invalidValue, "\(context).\(field)") }
        return t
    }

    /// Reads a zigzag varint.
    public mutating func readZigZag(_ field: String) throws(ProtocolError) -> Int64 {
        unzigzag(try readVarint(field))
    }

    /// Reads a zigzag varint that must fit in an Int32.
    public mutating func readZigZag32(_ field: String) throws(ProtocolError) -> Int32 {
        let v = try readZigZag(field)
        guard let t = Int32(exactly: v) else { throw ProtocolError(.invalidValue, "\(context).\(field)") }
        return t
    }

    /// Reads a length-prefixed UTF-8 string; invalid UTF-8 is an error.
    public mutating func readString(_ field: String) throws(ProtocolError) -> String {
        let n = try readVarint(field)
        guard n <= UInt64(remaining) else { throw ProtocolError(.truncated, "\(context).\(field)") }
        let count = Int(n)
        let slice = bytes[position..<(position + count)]
        position += count
        guard let s = String(validating: slice, as: UTF8.self) else {
            throw ProtocolError(.invalidValue, "\(context).\(field) (not UTF-8)")
        }
        return s
    }

    /// Reads a 32-bit big-endian value.
    public mutating func readU32BE(_ field: String) throws(ProtocolError) -> UInt32 {
        guard remaining >= 4 else { throw ProtocolError(.truncated, "\(context).\(field)") }
        defer { position += 4 }
        return UInt32(bytes[position]) << 24 | UInt32(bytes[position + 1]) << 16 | UInt32(bytes[position + 2]) << 8
            | UInt32(bytes[position + 3])
    }

    /// Reads `count` raw bytes.
    public mutating func readBytes(_ count: Int, _ field: String) throws(ProtocolError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw ProtocolError(.truncated, "\(context).\(field)") }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    /// Reads an element count, rejecting counts that cannot fit in the rest of the input (`minBytes` each).
    public mutating func readCount(_ field: String, minBytes: Int = 1) throws(ProtocolError) -> Int {
        let n = try readVarint(field)
        guard n <= UInt64(remaining / max(minBytes, 1)) else { throw ProtocolError(.truncated, "\(context).\(field)") }
        return Int(n)
    }

    /// Reads a 0/1 byte as a Bool; other values are an error.
    public mutating func readBool(_ field: String) throws(ProtocolError) -> Bool {
        switch try readU8(field) {
        case 0: return false
        case 1: return true
        default: throw ProtocolError(.invalidValue, "\(context).\(field)")
        }
    }

    /// Throws unless every byte was read.
    public func expectEnd() throws(ProtocolError) {
        if remaining != 0 { throw ProtocolError(.trailingBytes(remaining), context) }
    }
}
