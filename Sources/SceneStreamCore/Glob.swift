/// A twin-id pattern: `*` matches any run of characters other than `/`; everything else matches itself.
public struct Glob: Hashable, Sendable, CustomStringConvertible {
    public let pattern: String
    private let parts: [Substring]

    /// Creates a pattern.
    public init(_ pattern: String) {
        self.pattern = pattern
        parts = pattern.split(separator: "*", omittingEmptySubsequences: false)
    }

    /// Whether `s` matches the whole pattern.
    public func matches(_ s: String) -> Bool {
        if parts.count == 1 { return s == pattern }
        var rest = Substring(s)
        guard rest.hasPrefix(parts[0]) else { return false }
        rest = rest.dropFirst(parts[0].count)
        for (k, part) in parts.enumerated().dropFirst() {
            let isLast = k == parts.count - 1
            if isLast {
                guard rest.hasSuffix(part) else { return false }
                let middle = rest.dropLast(part.count)
                return !middle.contains("/")
            }
            // Find the earliest occurrence of `part` not crossing a "/".
            guard let r = part.isEmpty ? rest.startIndex..<rest.startIndex : rest.firstRange(of: part) else { return false }
            if rest[rest.startIndex..<r.lowerBound].contains("/") { return false }
            rest = rest[r.upperBound...]
        }
        return true
    }

    public var description: String { pattern }
}
