import Foundation
import SceneStreamProtocol

/// The node field a binding writes.
public enum BindingTarget: Hashable, Sendable {
    /// One translation component, in metres.
    case translation(axis: Int)
    /// The rotation, as an angle in radians about one axis.
    case rotation(axis: Int)
    /// Uniform scale factor.
    case uniformScale
    /// One scale component.
    case scale(axis: Int)
    case color
    case visible
    case label
    /// Translation and yaw from several properties.
    case pose

    static func parse(_ s: String) -> BindingTarget? {
        let axes = ["x": 0, "y": 1, "z": 2]
        switch s {
        case "color": return .color
        case "visible": return .visible
        case "label": return .label
        case "pose": return .pose
        case "scale": return .uniformScale
        default:
            let p = s.split(separator: ".")
            guard p.count == 2, let a = axes[String(p[1])] else { return nil }
            switch p[0] {
            case "translation": return .translation(axis: a)
            case "rotation": return .rotation(axis: a)
            case "scale": return .scale(axis: a)
            default: return nil
            }
        }
    }

    var isNumeric: Bool {
        switch self {
        case .translation, .rotation, .uniformScale, .scale: return true
        default: return false
        }
    }
}

/// A value a mapping produces.
public enum MappedValue: Hashable, Sendable {
    case number(Double)
    case color(UInt32)
    case bool(Bool)
    case text(String)
}

/// How a property's value becomes a field's value.
public enum BindingMap: Hashable, Sendable {
    /// `value * scale + offset`, clamped to `[min, max]` when given.
    case linear(scale: Double, offset: Double, min: Double?, max: Double?)
    /// Colour stops by value; blended between stops when `blend`, else the stop at or below.
    case rangeColor(stops: [Stop], blend: Bool)
    /// `then` when the value is at or above `threshold`, else `otherwise`.
    case threshold(threshold: Double, then: MappedValue, otherwise: MappedValue)
    /// A label: `{value}` (with `precision` decimals), `{twin}`, `{property}` and `{quality}` substituted.
    case format(String, precision: Int)
    /// Position from properties (metres) and yaw about +Y (degrees).
    case pose(x: String?, y: String?, z: String?, yawDegrees: String?)

    /// A colour stop.
    public struct Stop: Hashable, Sendable {
        public var value: Double
        public var color: UInt32
    }

    /// The property names a pose reads.
    var poseProperties: [String] {
        if case .pose(let x, let y, let z, let yaw) = self { return [x, y, z, yaw].compactMap { $0 } }
        return []
    }
}

/// One binding: a twin property (for every twin matching `twins`) drives a field of the node `node` names.
public struct Binding: Hashable, Sendable {
    public var twins: Glob
    /// The property; for poses, empty (the map names them).
    public var property: String
    /// Node id template; `{twin}` is the twin's id.
    public var node: String
    public var target: BindingTarget
    public var map: BindingMap
    /// Where it was defined, for messages.
    public var source: String

    /// The properties whose updates trigger this binding.
    public var triggers: [String] { property.isEmpty ? map.poseProperties : [property] }
}

/// A parsed bindings file.
public struct BindingSet: Sendable {
    public var bindings: [Binding]

    /// Creates a set.
    public init(_ bindings: [Binding] = []) { self.bindings = bindings }

    /// Parses a bindings file (`Assets/plants/*/bindings.json`); errors name the file, key path and reason.
    public static func parse(_ data: [UInt8], file: String) throws(ConfigError) -> BindingSet {
        let root = try JSONNode.parse(data, file: file).object()
        try root.checkKeys(["format", "bindings"])
        let format = try root["format"].string(default: "scenestream.bindings/1")
        guard format == "scenestream.bindings/1" else { throw root["format"].error("unsupported format '\(format)'") }
        var out: [Binding] = []
        for b in try root["bindings"].array() {
            _ = try b.object()
            try b.checkKeys(["twins", "property", "node", "field", "map"])
            let twins = try b["twins"].string()
            guard !twins.isEmpty else { throw b["twins"].error("empty pattern") }
            let node = try b["node"].string()
            let fieldName = try b["field"].string()
            guard let target = BindingTarget.parse(fieldName) else {
                throw b["field"].error("unknown field '\(fieldName)' (expected translation.x|y|z, rotation.x|y|z, scale, scale.x|y|z, color, visible, label, pose)")
            }
            let map = try parseMap(b["map"], target: target)
            var property = ""
            if target == .pose {
                if b["property"].exists { throw b["property"].error("a pose binding names its properties in map") }
            } else {
                property = try b["property"].string()
                guard !property.isEmpty else { throw b["property"].error("empty property name") }
            }
            out.append(Binding(twins: Glob(twins), property: property, node: node, target: target, map: map, source: "\(file): \(b.path)"))
        }
        return BindingSet(out)
    }

    static func parseMap(_ m: JSONNode, target: BindingTarget) throws(ConfigError) -> BindingMap {
        _ = try m.object()
        let kind = try m["kind"].string()
        func mapped(_ v: JSONNode) throws(ConfigError) -> MappedValue {
            switch target {
            case .color:
                let s = try v.string()
                guard let c = parseColor(s) else { throw v.error("expected a colour like #rrggbb, got '\(s)'") }
                return .color(c)
            case .visible: return .bool(try v.bool())
            case .label: return .text(try v.string())
            case .pose: throw v.error("threshold cannot drive a pose")
            default: return .number(try v.number())
            }
        }
        switch kind {
        case "linear":
            try m.checkKeys(["kind", "scale", "offset", "min", "max"])
            guard target.isNumeric else { throw m["kind"].error("linear needs a numeric field, not \(target)") }
            let lo: Double? = m["min"].exists ? try m["min"].number() : nil
            let hi: Double? = m["max"].exists ? try m["max"].number() : nil
            if let lo, let hi, lo > hi { throw m["min"].error("min \(lo) is above max \(hi)") }
            return .linear(scale: try m["scale"].number(default: 1), offset: try m["offset"].number(default: 0), min: lo, max: hi)
        case "rangeColor":
            try m.checkKeys(["kind", "stops", "blend"])
            guard target == .color else { throw m["kind"].error("rangeColor drives the color field only") }
            var stops: [BindingMap.Stop] = []
            for s in try m["stops"].array() {
                let pair = try s.array()
                guard pair.count == 2 else { throw s.error("expected [value, \"#rrggbb\"]") }
                let colorText = try pair[1].string()
                guard let c = parseColor(colorText) else { throw pair[1].error("expected a colour like #rrggbb, got '\(colorText)'") }
                let v = try pair[0].number()
                if let last = stops.last, last.value >= v { throw pair[0].error("stops must ascend (\(v) after \(last.value))") }
                stops.append(BindingMap.Stop(value: v, color: c))
            }
            guard !stops.isEmpty else { throw m["stops"].error("needs at least one stop") }
            return .rangeColor(stops: stops, blend: try m["blend"].bool(default: true))
        case "threshold":
            try m.checkKeys(["kind", "above", "then", "else"])
            return .threshold(threshold: try m["above"].number(), then: try mapped(m["then"]), otherwise: try mapped(m["else"]))
        case "format":
            try m.checkKeys(["kind", "format", "precision"])
            guard target == .label else { throw m["kind"].error("format drives the label field only") }
            let p = try m["precision"].number(default: 1)
            guard p >= 0, p <= 9, p == p.rounded() else { throw m["precision"].error("expected a whole number 0…9") }
            return .format(try m["format"].string(), precision: Int(p))
        case "pose":
            try m.checkKeys(["kind", "x", "y", "z", "yaw"])
            guard target == .pose else { throw m["kind"].error("pose drives the pose field only") }
            func opt(_ k: String) throws(ConfigError) -> String? { m[k].exists ? try m[k].string() : nil }
            let pose = BindingMap.pose(x: try opt("x"), y: try opt("y"), z: try opt("z"), yawDegrees: try opt("yaw"))
            guard !pose.poseProperties.isEmpty else { throw m.error("a pose needs at least one of x, y, z, yaw") }
            return pose
        default:
            throw m["kind"].error("unknown mapping kind '\(kind)' (expected linear, rangeColor, threshold, format, pose)")
        }
    }
}

extension BindingMap {
    /// Maps a numeric value (for every kind but pose).
    public func map(_ v: Double, twin: String = "", property: String = "", quality: Quality = .good) -> MappedValue {
        switch self {
        case .linear(let scale, let offset, let lo, let hi):
            var r = v * scale + offset
            if let lo { r = Swift.max(lo, r) }
            if let hi { r = Swift.min(hi, r) }
            return .number(r)
        case .rangeColor(let stops, let blend):
            guard v > stops[0].value else { return .color(stops[0].color) }
            for k in 1..<stops.count where v < stops[k].value {
                guard blend else { return .color(stops[k - 1].color) }
                let t = (v - stops[k - 1].value) / (stops[k].value - stops[k - 1].value)
                return .color(Self.blend(stops[k - 1].color, stops[k].color, t))
            }
            return .color(stops[stops.count - 1].color)
        case .threshold(let threshold, let then, let otherwise):
            return v >= threshold ? then : otherwise
        case .format(let f, let precision):
            let value = v.isFinite ? String(format: "%.\(precision)f", v) : "–"
            let q = quality == .good ? "" : String(describing: quality)
            return .text(Self.fill(f, value: value, twin: twin, property: property, quality: q))
        case .pose:
            return .number(v)
        }
    }

    /// `template` with `{value}`, `{twin}`, `{property}` and `{quality}` filled in, in one pass (labels are
    /// formatted for every update they show; Foundation's replacingOccurrences was most of that).
    static func fill(_ template: String, value: String, twin: String, property: String, quality: String) -> String {
        guard template.utf8.contains(UInt8(ascii: "{")) else { return template }
        var out = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            out += rest[..<open]
            let tail = rest[open...]
            if tail.hasPrefix("{value}") {
                out += value
                rest = tail.dropFirst(7)
            } else if tail.hasPrefix("{twin}") {
                out += twin
                rest = tail.dropFirst(6)
            } else if tail.hasPrefix("{property}") {
                out += property
                rest = tail.dropFirst(10)
            } else if tail.hasPrefix("{quality}") {
                out += quality
                rest = tail.dropFirst(9)
            } else {
                out += "{"
                rest = tail.dropFirst()
            }
        }
        return out + rest
    }

    static func blend(_ a: UInt32, _ b: UInt32, _ t: Double) -> UInt32 {
        var out: UInt32 = 0
        for shift in stride(from: 24, through: 0, by: -8) {
            let ca = Double((a >> UInt32(shift)) & 0xFF), cb = Double((b >> UInt32(shift)) & 0xFF)
            out |= UInt32((ca + (cb - ca) * t).rounded()) << UInt32(shift)
        }
        return out
    }
}

struct TwinProperty: Hashable {
    var twin: String
    var property: String
}

/// Applies bindings to a scene graph as twin properties change. Resolution of twin → node is cached.
public final class BindingEngine {
    public let set: BindingSet
    private var resolved: [TwinProperty: [(binding: Int, node: UInt32)]] = [:]
    private var resolvedNodeSpace: UInt32 = 0
    private var resolvedLive = 0
    private var boundNodes: [String: [UInt32]] = [:]
    /// Bindings whose node did not exist, by message, so each is counted once.
    public private(set) var unresolved: Set<String> = []
    private var byProperty: [String: [Int]] = [:]

    /// Creates an engine for `set`.
    public init(_ set: BindingSet) {
        self.set = set
        for (k, b) in set.bindings.enumerated() {
            for p in b.triggers { byProperty[p, default: []].append(k) }
        }
    }

    /// Drops the cached resolutions when the graph's nodes changed since they were made.
    private func checkCache(_ graph: SceneGraph) {
        if graph.nodeSpace != resolvedNodeSpace || graph.liveCount != resolvedLive {
            resolved.removeAll()
            boundNodes.removeAll()
            resolvedNodeSpace = graph.nodeSpace
            resolvedLive = graph.liveCount
        }
    }

    private func resolve(_ twin: String, _ property: String, _ graph: SceneGraph) -> [(binding: Int, node: UInt32)] {
        checkCache(graph)
        let key = TwinProperty(twin: twin, property: property)
        if let hit = resolved[key] { return hit }
        var out: [(binding: Int, node: UInt32)] = []
        for k in byProperty[property] ?? [] where set.bindings[k].twins.matches(twin) {
            let id = set.bindings[k].node.replacingOccurrences(of: "{twin}", with: twin)
            if let n = graph.index(of: id) {
                out.append((k, n))
            } else {
                unresolved.insert("\(set.bindings[k].source): node '\(id)' not in scene")
            }
        }
        resolved[key] = out
        return out
    }

    /// The nodes any binding writes for `twin` (whatever the property).
    /// Cached like the resolutions: a zone check over every twin matches each binding's glob once per twin, not
    /// once per request.
    public func nodes(boundTo twin: String, graph: SceneGraph) -> [UInt32] {
        checkCache(graph)
        if let hit = boundNodes[twin] { return hit }
        var out: [UInt32] = []
        for b in set.bindings where b.twins.matches(twin) {
            if let n = graph.index(of: b.node.replacingOccurrences(of: "{twin}", with: twin)), !out.contains(n) { out.append(n) }
        }
        boundNodes[twin] = out
        return out
    }

    /// Applies the bindings an update triggers. Returns the number of node writes.
    @discardableResult
    public func apply(_ u: PropertyUpdate, store: TwinStore, graph: SceneGraph) -> Int {
        var writes = 0
        for (k, node) in resolve(u.twin, u.property, graph) {
            let b = set.bindings[k]
            let q = graph.quantization
            if case .pose(let xp, let yp, let zp, let yawp) = b.map {
                func val(_ p: String?) -> Double? { p.flatMap { store.number(u.twin, $0) } }
                let x = val(xp), y = val(yp), z = val(zp), yaw = val(yawp)
                graph.update(node) { n in
                    let cur = q.metres(n.translation)
                    n.translation = q.position(x ?? cur.0, y ?? cur.1, z ?? cur.2)
                    if let yaw { n.rotation = q.rotation(Quaternion(axis: (0, 1, 0), angle: yaw * .pi / 180)) }
                }
                writes += 1
                continue
            }
            // A value that is not good (its source went away, or says it is wrong) is shown as such rather than
            // frozen: colours turn grey and labels say so; positions keep the last known value.
            if u.quality != .good {
                let note = "\(u.quality)"
                switch b.target {
                case .color:
                    graph.update(node) { $0.color = Self.staleColor }
                    writes += 1
                case .label:
                    let last = store.number(u.twin, u.property).map { b.map.map($0, twin: u.twin, property: u.property) }
                    graph.update(node) { n in
                        if case .text(let t)? = last { n.label = "\(t) (\(note))" } else if !n.label.hasSuffix("(\(note))") { n.label += " (\(note))" }
                    }
                    writes += 1
                default:
                    break
                }
                continue
            }
            guard let v = u.value.number else { continue }
            let mv = b.map.map(v, twin: u.twin, property: u.property, quality: u.quality)
            graph.update(node) { n in Self.write(mv, to: b.target, of: &n, q) }
            writes += 1
        }
        return writes
    }

    /// The colour of a node whose bound value is stale or bad.
    public static let staleColor: UInt32 = 0x7F7F7FFF

    /// `v` with component `axis` (0 x, 1 y, 2 z) replaced by `d`.
    static func setting(_ axis: Int, of v: (Double, Double, Double), to d: Double) -> (Double, Double, Double) {
        switch axis {
        case 0: return (d, v.1, v.2)
        case 1: return (v.0, d, v.2)
        default: return (v.0, v.1, d)
        }
    }

    static func write(_ v: MappedValue, to target: BindingTarget, of n: inout WireNode, _ q: Quantization) {
        switch (target, v) {
        case (.translation(let axis), .number(let d)):
            let t = setting(axis, of: q.metres(n.translation), to: d)
            n.translation = q.position(t.0, t.1, t.2)
        case (.rotation(let axis), .number(let d)):
            let ax: (Double, Double, Double) = axis == 0 ? (1, 0, 0) : axis == 1 ? (0, 1, 0) : (0, 0, 1)
            n.rotation = q.rotation(Quaternion(axis: ax, angle: d))
        case (.uniformScale, .number(let d)):
            n.scale = q.scale(d, d, d)
        case (.scale(let axis), .number(let d)):
            let s = setting(axis, of: q.scaleFactors(n.scale), to: d)
            n.scale = q.scale(s.0, s.1, s.2)
        case (.color, .color(let c)): n.color = c
        case (.visible, .bool(let b)): n.visible = b
        case (.label, .text(let s)): n.label = s
        default: break
        }
    }
}

@available(*, unavailable)
extension BindingEngine: Sendable {}
