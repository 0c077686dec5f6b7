/// A fixed-universe set of node indices, stored as 64-bit words.
public struct Bitset: Hashable, Sendable {
    public private(set) var words: [UInt64]
    /// The universe size.
    public private(set) var count: Int

    /// Creates an empty set over `0..<count`.
    public init(count: Int) {
        self.count = count
        words = [UInt64](repeating: 0, count: (count + 63) / 64)
    }

    /// Whether `i` is in the set.
    public func contains(_ i: Int) -> Bool {
        i < count && words[i >> 6] & (1 << UInt64(i & 63)) != 0
    }

    /// Adds `i`.
    public mutating func insert(_ i: Int) { words[i >> 6] |= 1 << UInt64(i & 63) }

    /// Grows the universe to `n` (new bits clear).
    public mutating func grow(to n: Int) {
        guard n > count else { return }
        count = n
        let need = (n + 63) / 64
        if need > words.count { words.append(contentsOf: [UInt64](repeating: 0, count: need - words.count)) }
    }

    /// The number of members.
    public var population: Int { words.reduce(0) { $0 + $1.nonzeroBitCount } }

    /// Members of `self` not in `other`, ascending.
    public func subtracting(_ other: Bitset) -> [UInt32] {
        var out: [UInt32] = []
        for w in 0..<words.count {
            var bits = words[w] & ~(w < other.words.count ? other.words[w] : 0)
            while bits != 0 {
                let t = bits.trailingZeroBitCount
                out.append(UInt32(w * 64 + t))
                bits &= bits - 1
            }
        }
        return out
    }

    /// All members, ascending.
    public var members: [UInt32] { subtracting(Bitset(count: 0)) }
}
