import Foundation
import SceneStreamProtocol

/// A rule: an alert is raised while a property of every matching twin is above (or below) a threshold,
/// and cleared once it passes back over `clear` (hysteresis).
public struct Rule: Hashable, Sendable {
    /// Which side of the threshold raises the alert.
    public enum Condition: Hashable, Sendable {
        case above(Double)
        case below(Double)
    }

    public var id: String
    public var twins: Glob
    public var property: String
    public var condition: Condition
    /// The level that clears a raised alert; equal to the threshold when not given.
    public var clear: Double
    public var severity: Severity
    /// Message template: `{twin}`, `{property}`, `{value}`.
    public var message: String
    /// Node id template the alert is pinned to; `{twin}` substituted. Empty for none.
    public var node: String
}

/// An alert raised or cleared.
public struct AlertEvent: Hashable, Sendable {
    /// `ruleId@twin`.
    public var id: String
    public var ruleId: String
    public var twin: String
    /// The node the alert is pinned to, if any.
    public var nodeId: String?
    public var severity: Severity
    public var state: AlertRecord.State
    public var timeMs: UInt64
    public var message: String
}

/// A parsed rules file.
public struct RuleSet: Sendable {
    public var rules: [Rule]

    /// Creates a set.
    public init(_ rules: [Rule] = []) { self.rules = rules }

    /// Parses a rules file (`Assets/plants/*/rules.json`); errors name the file, key path and reason.
    public static func parse(_ data: [UInt8], file: String) throws(ConfigError) -> RuleSet {
        let root = try JSONNode.parse(data, file: file).object()
        try root.checkKeys(["format", "rules"])
        let format = try root["format"].string(default: "scenestream.rules/1")
        guard format == "scenestream.rules/1" else { throw root["format"].error("unsupported format '\(format)'") }
        var out: [Rule] = []
        var seen: Set<String> = []
        for r in try root["rules"].array() {
            _ = try r.object()
            try r.checkKeys(["id", "twins", "property", "above", "below", "clear", "severity", "message", "node"])
            let id = try r["id"].string()
            guard !id.isEmpty, !id.contains("@") else { throw r["id"].error("ids are non-empty and contain no '@'") }
            guard seen.insert(id).inserted else { throw r["id"].error("duplicate rule id '\(id)'") }
            let condition: Rule.Condition
            switch (r["above"].exists, r["below"].exists) {
            case (true, false): condition = .above(try r["above"].number())
            case (false, true): condition = .below(try r["below"].number())
            default: throw r.error("give exactly one of 'above' or 'below'")
            }
            let threshold: Double
            switch condition {
            case .above(let t), .below(let t): threshold = t
            }
            let clear = try r["clear"].number(default: threshold)
            switch condition {
            case .above(let t) where clear > t: throw r["clear"].error("clear \(clear) must be at or below the threshold \(t)")
            case .below(let t) where clear < t: throw r["clear"].error("clear \(clear) must be at or above the threshold \(t)")
            default: break
            }
            let sevName = try r["severity"].string(default: "warning")
            guard let severity = ["info": Severity.info, "warning": .warning, "critical": .critical][sevName] else {
                throw r["severity"].error("unknown severity '\(sevName)' (expected info, warning, critical)")
            }
            out.append(
                Rule(
                    id: id, twins: Glob(try r["twins"].string()), property: try r["property"].string(), condition: condition,
                    clear: clear, severity: severity, message: try r["message"].string(default: "{twin} {property} = {value}"),
                    node: try r["node"].string(default: "")))
        }
        return RuleSet(out)
    }
}

/// Evaluates rules against property updates and tracks which alerts are active.
public final class AlertEngine {
    public let set: RuleSet
    /// Active alerts by id.
    public private(set) var active: [String: AlertEvent] = [:]
    private var byProperty: [String: [Int]] = [:]

    /// Creates an engine for `set`.
    public init(_ set: RuleSet) {
        self.set = set
        for (k, r) in set.rules.enumerated() { byProperty[r.property, default: []].append(k) }
    }

    /// Takes over another engine's active alerts (a reload): each whose rule (by id) is still here and still
    /// covers its twin stays active as it was, so a value inside the rule's hysteresis band keeps it. Returns the
    /// ids kept, and a `raised` event for each kept one whose severity changed.
    public func carry(_ before: [String: AlertEvent]) -> (kept: Set<String>, changed: [AlertEvent]) {
        var kept: Set<String> = []
        var changed: [AlertEvent] = []
        for (id, e) in before {
            guard let rule = set.rules.first(where: { $0.id == e.ruleId }), rule.twins.matches(e.twin) else { continue }
            var now = e
            now.severity = rule.severity
            now.nodeId = rule.node.isEmpty ? nil : rule.node.replacingOccurrences(of: "{twin}", with: e.twin)
            active[id] = now
            kept.insert(id)
            if now.severity != e.severity || now.nodeId != e.nodeId { changed.append(now) }
        }
        return (kept, changed)
    }

    /// Evaluates the rules an update triggers; returns alerts raised or cleared by it, at the update's time or at
    /// `timeMs` when given (a reload: the change is the rules', made then).
    public func evaluate(_ u: PropertyUpdate, at timeMs: UInt64? = nil) -> [AlertEvent] {
        guard let v = u.value.number, let ks = byProperty[u.property] else { return [] }
        var out: [AlertEvent] = []
        for k in ks {
            let rule = set.rules[k]
            guard rule.twins.matches(u.twin) else { continue }
            let id = "\(rule.id)@\(u.twin)"
            let isActive = active[id] != nil
            let raise: Bool
            let clear: Bool
            switch rule.condition {
            case .above(let t):
                raise = v > t
                clear = v <= rule.clear && !(v > t)
            case .below(let t):
                raise = v < t
                clear = v >= rule.clear && !(v < t)
            }
            guard (!isActive && raise) || (isActive && clear) else { continue }
            let text = rule.message.replacingOccurrences(of: "{twin}", with: u.twin)
                .replacingOccurrences(of: "{property}", with: u.property)
                .replacingOccurrences(of: "{value}", with: String(format: "%.1f", v))
            if !isActive && raise {
                let e = AlertEvent(
                    id: id, ruleId: rule.id, twin: u.twin,
                    nodeId: rule.node.isEmpty ? nil : rule.node.replacingOccurrences(of: "{twin}", with: u.twin),
                    severity: rule.severity, state: .raised, timeMs: timeMs ?? u.timestampMs, message: text)
                active[id] = e
                out.append(e)
            } else if isActive && clear {
                var e = active.removeValue(forKey: id)!
                e.state = .cleared
                e.timeMs = timeMs ?? u.timestampMs
                e.message = text
                out.append(e)
            }
        }
        return out
    }
}

@available(*, unavailable)
extension AlertEngine: Sendable {}
