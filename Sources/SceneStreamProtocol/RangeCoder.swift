/// An adaptive binary range coder (LZMA's: 32-bit range, 11-bit probabilities that move 1/16 of the way to each
/// bit seen) and the models frame bodies of protocol version 2 are built from. Every model starts at p = 1/2 for
/// each frame: no state is carried across messages.
///
/// Two byte-level choices save bytes without changing the arithmetic: the encoder leaves out LZMA's first output
/// byte (always 0) and the zero bytes at its end; the decoder starts from an implicit 0 and reads zeros past the end
/// (at most ``RangeDecoder/maxOverrun`` of them, else the input was cut short).
public struct RangeEncoder: Sendable {
    private var low: UInt64 = 0
    private var range: UInt32 = 0xFFFF_FFFF
    private var cache: UInt8 = 0
    private var cacheSize = 1
    private var first = true
    /// The bytes written so far (complete only after ``finish()``).
    public private(set) var bytes: [UInt8] = []

    /// An encoder with an empty output.
    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// Codes `bit` with the adaptive probability `p` (of a 0), then moves `p` towards it.
    public mutating func encode(_ bit: Bool, _ p: inout Prob) {
        let bound = (range >> 11) &* UInt32(p.value)
        if bit {
            low &+= UInt64(bound)
            range &-= bound
            p.value &-= p.value >> 4
        } else {
            range = bound
            p.value &+= (2048 &- p.value) >> 4
        }
        while range < 1 << 24 {
            range <<= 8
            shiftLow()
        }
    }

    /// Codes the low `count` bits of `value` at probability 1/2 each, most significant first.
    public mutating func encodeDirect(_ value: UInt64, count: Int) {
        var k = count
        while k > 0 {
            k -= 1
            range >>= 1
            if (value >> UInt64(k)) & 1 == 1 { low &+= UInt64(range) }
            while range < 1 << 24 {
                range <<= 8
                shiftLow()
            }
        }
    }

    mutating func shiftLow() {
        if low < 0xFF00_0000 || low >= 1 << 32 {
            let carry = UInt8(truncatingIfNeeded: low >> 32)
            var temp = cache
            repeat {
                if first { first = false } else { bytes.append(temp &+ carry) }
                temp = 0xFF
                cacheSize -= 1
            } while cacheSize != 0
            cache = UInt8(truncatingIfNeeded: low >> 24)
        }
        cacheSize += 1
        low = (low & 0x00FF_FFFF) << 8
    }

    /// Flushes the coder; `bytes` is then the whole output (up to ``RangeDecoder/maxOverrun`` trailing zero bytes
    /// left out: a run of likely bits leaves `low` at 0 and could end in many).
    public mutating func finish() {
        for _ in 0..<5 { shiftLow() }
        var trimmed = 0
        while bytes.last == 0, trimmed < RangeDecoder.maxOverrun {
            bytes.removeLast()
            trimmed += 1
        }
    }
}

/// The decoding side of ``RangeEncoder``, over `bytes[position..<end]`.
public struct RangeDecoder: Sendable {
    /// The most zero bytes a decoder may read past the end: the most the encoder leaves out.
    public static let maxOverrun = 8
    private let bytes: [UInt8]
    private var position: Int
    private let end: Int
    private var range: UInt32 = 0xFFFF_FFFF
    private var code: UInt32 = 0
    /// Zero bytes read past the end so far.
    public private(set) var overrun = 0

    /// A decoder of `bytes[range]` (all of `bytes` by default).
    public init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        position = start
        self.end = end ?? bytes.count
        // The encoder left out the first byte (always 0): four more make up the code.
        for _ in 0..<4 { code = code << 8 | UInt32(nextByte()) }
    }

    @inline(__always) private mutating func nextByte() -> UInt8 {
        if position < end {
            position += 1
            return bytes[position - 1]
        }
        overrun += 1
        return 0
    }

    /// Decodes one bit with the adaptive probability `p` (moved as the encoder moved it).
    public mutating func decode(_ p: inout Prob) -> Bool {
        let bound = (range >> 11) &* UInt32(p.value)
        let bit: Bool
        if code < bound {
            range = bound
            p.value &+= (2048 &- p.value) >> 4
            bit = false
        } else {
            code &-= bound
            range &-= bound
            p.value &-= p.value >> 4
            bit = true
        }
        while range < 1 << 24 {
            range <<= 8
            code = code << 8 | UInt32(nextByte())
        }
        return bit
    }

    /// Decodes `count` bits at probability 1/2, most significant first.
    public mutating func decodeDirect(count: Int) -> UInt64 {
        var v: UInt64 = 0
        for _ in 0..<count {
            range >>= 1
            var bit: UInt64 = 0
            if code >= range {
                code &-= range
                bit = 1
            }
            v = v << 1 | bit
            while range < 1 << 24 {
                range <<= 8
                code = code << 8 | UInt32(nextByte())
            }
        }
        return v
    }

    /// Throws when the decoder read further past the end than the encoder could have left out.
    public func checkEnd(_ context: String) throws(ProtocolError) {
        guard overrun <= Self.maxOverrun else { throw ProtocolError(.truncated, "\(context) (range-coded data ends early)") }
    }
}

/// An adaptive probability of a 0 bit, in 1/2048ths; starts at 1/2.
public struct Prob: Sendable, Hashable {
    public var value: UInt16 = 1024
    public init() {}
}

/// An unsigned integer model: the bit length of `v + 1` in unary (each step its own probability), then the bits
/// under the leading one — the top three with probabilities per length, the rest direct. Small values cost a few
/// tenths of a bit once the model has seen them.
public struct UIntModel: Sendable {
    /// Bits under the leading one coded with probabilities (as a tree per length); the rest are direct.
    static let adaptiveBits = 3
    static let treeSize = 1 << adaptiveBits
    var length = [Prob](repeating: Prob(), count: 65)
    var top = [Prob](repeating: Prob(), count: 65 * treeSize)
    public init() {}

    /// Codes `v` (any UInt64 but the largest).
    public mutating func encode(_ v: UInt64, _ e: inout RangeEncoder) {
        let x = v &+ 1
        let n = 63 - x.leadingZeroBitCount  // bits under the leading one
        for k in 0..<n { e.encode(true, &length[k]) }
        if n < 64 { e.encode(false, &length[n]) }
        let t = min(n, Self.adaptiveBits)
        var node = 1
        for k in 0..<t {
            let bit = (x >> UInt64(n - 1 - k)) & 1
            e.encode(bit == 1, &top[n * Self.treeSize + node])
            node = node << 1 | Int(bit)
        }
        e.encodeDirect(x, count: n - t)
    }

    /// Decodes a value; nil when its length exceeds 63 bits (not a value the encoder writes).
    public mutating func decode(_ d: inout RangeDecoder) -> UInt64? {
        var n = 0
        while n < 64, d.decode(&length[n]) { n += 1 }
        guard n < 64 else { return nil }
        let t = min(n, Self.adaptiveBits)
        var node = 1
        var x: UInt64 = 1
        for _ in 0..<t {
            let bit = d.decode(&top[n * Self.treeSize + node])
            node = node << 1 | (bit ? 1 : 0)
            x = x << 1 | (bit ? 1 : 0)
        }
        x = x << UInt64(n - t) | d.decodeDirect(count: n - t)
        return x &- 1
    }
}

/// Three int32 components (a position, a scale, a rotation's a, b, c, or differences of them): which are non-zero
/// (x, y, z as the bits 4, 2, 1 of a 3-bit tree, one tree per run position), then each non-zero one's sign (one
/// probability per component) and magnitude − 1 (one ``UIntModel`` per component). Joints turn about one axis and
/// vehicles move in a plane: the zero components cost a fraction of a bit together. The run position — how many
/// records right before this one in the block have consecutive indices, at most 7 — tells the joints of a robot
/// apart (each turns about its own axis). (Magnitudes by run position, and a "same as the record before" flag, were
/// tried: both cost more than they saved on the benchmark scenes.)
public struct VecModel: Sendable {
    /// Run positions are counted up to this, and the pattern trees are one per position.
    public static let runPositions = 8
    var pattern = [TreeModel](repeating: TreeModel(bits: 3), count: runPositions)
    var sign = [Prob](repeating: Prob(), count: 3)
    var magnitude = [UIntModel](repeating: UIntModel(), count: 3)
    public init() {}

    /// Codes the three components of a record at run position `run` (0…7).
    public mutating func encode(_ x: Int32, _ y: Int32, _ z: Int32, run: Int, _ e: inout RangeEncoder) {
        pattern[run].encode((x != 0 ? 4 : 0) | (y != 0 ? 2 : 0) | (z != 0 ? 1 : 0), &e)
        if x != 0 { component(0, x, &e) }
        if y != 0 { component(1, y, &e) }
        if z != 0 { component(2, z, &e) }
    }

    @inline(__always) private mutating func component(_ k: Int, _ v: Int32, _ e: inout RangeEncoder) {
        e.encode(v < 0, &sign[k])
        magnitude[k].encode(UInt64(v.magnitude) - 1, &e)
    }

    /// Decodes three components of a record at run position `run`; nil when one does not fit an int32.
    public mutating func decode(run: Int, _ d: inout RangeDecoder) -> (Int32, Int32, Int32)? {
        let p = pattern[run].decode(&d)
        var v: (Int32, Int32, Int32) = (0, 0, 0)
        if p & 4 != 0 { guard let c = component(0, &d) else { return nil }; v.0 = c }
        if p & 2 != 0 { guard let c = component(1, &d) else { return nil }; v.1 = c }
        if p & 1 != 0 { guard let c = component(2, &d) else { return nil }; v.2 = c }
        return v
    }

    @inline(__always) private mutating func component(_ k: Int, _ d: inout RangeDecoder) -> Int32? {
        let negative = d.decode(&sign[k])
        guard let m = magnitude[k].decode(&d), m < 1 << 31 else { return nil }
        return Int32(exactly: negative ? -Int64(m) - 1 : Int64(m) + 1)
    }
}

/// A model of `bits`-bit values as a binary tree of probabilities (one per prefix), most significant bit first.
public struct TreeModel: Sendable {
    let bits: Int
    var probs: [Prob]
    /// A tree for values of `bits` bits (at most 12).
    public init(bits: Int) {
        self.bits = bits
        probs = [Prob](repeating: Prob(), count: 1 << bits)
    }

    /// Codes the low `bits` bits of `v`.
    public mutating func encode(_ v: UInt32, _ e: inout RangeEncoder) {
        var node = 1
        for k in stride(from: bits - 1, through: 0, by: -1) {
            let b = (v >> UInt32(k)) & 1
            e.encode(b == 1, &probs[node])
            node = node << 1 | Int(b)
        }
    }

    /// Decodes a value.
    public mutating func decode(_ d: inout RangeDecoder) -> UInt32 {
        var node = 1
        for _ in 0..<bits { node = node << 1 | (d.decode(&probs[node]) ? 1 : 0) }
        return UInt32(node - (1 << bits))
    }
}
