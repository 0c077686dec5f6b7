/// A twin-id pattern: `*` matches any run of characters other than `/`; everything else matches itself.
public struct Glob: Hashable, Sendable, CustomStringConvertible {
    public let pattern: String
    private let bytes: [UInt8]

    /// Creates a pattern.
    public init(_ pattern: String) {
        self.pattern = pattern
        bytes = Array(pattern.utf8)
    }

    /// Whether `s` matches the whole pattern.
    public func matches(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { Self.match(bytes[...], $0[...]) }
    }

    private static func match(_ p: ArraySlice<UInt8>, _ s: Slice<UnsafeBufferPointer<UInt8>>) -> Bool {
        var pi = p.startIndex
        var si = s.startIndex
        while pi < p.endIndex {
            if p[pi] == UInt8(ascii: "*") {
                let rest = p[(pi + 1)...]
                // Try every split that does not cross a "/".
                var k = si
                while true {
                    if match(rest, s[k...]) { return true }
                    if k == s.endIndex || s[k] == UInt8(ascii: "/") { return false }
                    k += 1
                }
            }
            guard si < s.endIndex, s[si] == p[pi] else { return false }
            pi += 1
            si += 1
        }
        return si == s.endIndex
    }

    public var description: String { pattern }
}
