/// A property computed over a relationship, named in bindings and rules like any property:
/// `max(contains.temperature)` on a line is the largest `temperature` of the twins the line `contains`. Kinds:
/// `any` and `all` (1 or 0: whether any / every related value is true or non-zero), `count` (how many are), `min`,
/// `max`, `avg`. Its quality is good only when every related value is; otherwise the worst of theirs.
public struct Aggregate: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable, CaseIterable { case any, all, count, min, max, avg }
    public let kind: Kind
    public let relationship: String
    public let property: String
    /// The property name it stands for: `KIND(RELATIONSHIP.PROPERTY)`.
    public let name: String

    /// An aggregate of `property` over `relationship`.
    public init(kind: Kind, relationship: String, property: String) {
        self.kind = kind
        self.relationship = relationship
        self.property = property
        name = "\(kind.rawValue)(\(relationship).\(property))"
    }

    /// Reads `KIND(RELATIONSHIP.PROPERTY)`; nil for a plain property name.
    public static func parse(_ s: String) -> Aggregate? {
        guard s.hasSuffix(")"), let open = s.firstIndex(of: "("), let kind = Kind(rawValue: String(s[..<open])) else { return nil }
        let inner = s[s.index(after: open)..<s.index(before: s.endIndex)]
        guard let dot = inner.firstIndex(of: "."), dot != inner.startIndex, inner.index(after: dot) != inner.endIndex else { return nil }
        return Aggregate(kind: kind, relationship: String(inner[..<dot]), property: String(inner[inner.index(after: dot)...]))
    }

    /// The value over `inputs` (each related twin's state of `property`), or nil when none has it.
    public func value(of inputs: [PropertyState]) -> (TwinValue, Quality)? {
        guard !inputs.isEmpty else { return nil }
        let numbers = inputs.compactMap { s -> Double? in
            switch s.value {
            case .number(let d): d
            case .bool(let b): b ? 1 : 0
            case .text: nil
            }
        }
        let worst = inputs.map(\.quality).filter { $0 != .good }.max { Self.rank($0) < Self.rank($1) } ?? .good
        let v: Double
        switch kind {
        case .any: v = numbers.contains { $0 != 0 } ? 1 : 0
        case .all: v = !numbers.isEmpty && numbers.allSatisfy { $0 != 0 } ? 1 : 0
        case .count: v = Double(numbers.filter { $0 != 0 }.count)
        case .min:
            guard let m = numbers.min() else { return nil }
            v = m
        case .max:
            guard let m = numbers.max() else { return nil }
            v = m
        case .avg:
            guard !numbers.isEmpty else { return nil }
            v = numbers.reduce(0, +) / Double(numbers.count)
        }
        return (.number(v), worst)
    }

    static func rank(_ q: Quality) -> Int {
        switch q {
        case .good: 0
        case .stale: 1
        case .uncertain: 2
        case .bad: 3
        }
    }
}

/// One relationship between twins (`source` —name→ `target`).
public struct RelationshipEdge: Hashable, Sendable {
    public var source: String
    public var name: String
    public var target: String

    public init(source: String, name: String, target: String) {
        self.source = source
        self.name = name
        self.target = target
    }
}
