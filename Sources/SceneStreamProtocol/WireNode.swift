/// The fields of a scene node, as bits of a node record's field mask (`Protocol/SPEC.md` §6).
public struct NodeFields: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Parent and local name; set only when a node enters.
    public static let structure = NodeFields(rawValue: 1 << 0)
    /// Anchor name (root nodes).
    public static let anchor = NodeFields(rawValue: 1 << 1)
    public static let translation = NodeFields(rawValue: 1 << 2)
    public static let rotation = NodeFields(rawValue: 1 << 3)
    public static let scale = NodeFields(rawValue: 1 << 4)
    public static let color = NodeFields(rawValue: 1 << 5)
    public static let visible = NodeFields(rawValue: 1 << 6)
    public static let label = NodeFields(rawValue: 1 << 7)
    public static let asset = NodeFields(rawValue: 1 << 8)
    public static let layer = NodeFields(rawValue: 1 << 9)
    public static let zone = NodeFields(rawValue: 1 << 10)

    /// Every field this version defines.
    public static let all = NodeFields(rawValue: (1 << 11) - 1)
}

/// One scene node as the wire carries it: every value already quantized.
public struct WireNode: Hashable, Sendable {
    /// Index of the parent node, or nil for a root.
    public var parent: UInt32?
    /// The node's name among its siblings; the full id is the parent's id + "/" + name.
    public var name: String
    /// For roots: the anchor whose frame the transform is in. Empty for children.
    public var anchor: String
    public var translation: QVec3
    public var rotation: QRotation
    public var scale: QVec3
    /// RGBA colour override; 0 means "the asset's own material".
    public var color: UInt32
    public var visible: Bool
    public var label: String
    /// glTF asset path under `Assets/`, or empty for a group.
    public var asset: String
    /// Layer name; empty means inherited from the parent.
    public var layer: String
    /// Zone name; empty means inherited from the parent.
    public var zone: String

    /// Creates a node; every field defaults to its wire default.
    public init(
        parent: UInt32? = nil, name: String = "", anchor: String = "", translation: QVec3 = .zero,
        rotation: QRotation = .identity, scale: QVec3 = .unitScale, color: UInt32 = 0, visible: Bool = true,
        label: String = "", asset: String = "", layer: String = "", zone: String = ""
    ) {
        self.parent = parent
        self.name = name
        self.anchor = anchor
        self.translation = translation
        self.rotation = rotation
        self.scale = scale
        self.color = color
        self.visible = visible
        self.label = label
        self.asset = asset
        self.layer = layer
        self.zone = zone
    }

    /// The fields whose values differ from `other`'s.
    public func differences(from other: WireNode) -> NodeFields {
        var f: NodeFields = []
        if parent != other.parent || name != other.name { f.insert(.structure) }
        if anchor != other.anchor { f.insert(.anchor) }
        if translation != other.translation { f.insert(.translation) }
        if rotation != other.rotation { f.insert(.rotation) }
        if scale != other.scale { f.insert(.scale) }
        if color != other.color { f.insert(.color) }
        if visible != other.visible { f.insert(.visible) }
        if label != other.label { f.insert(.label) }
        if asset != other.asset { f.insert(.asset) }
        if layer != other.layer { f.insert(.layer) }
        if zone != other.zone { f.insert(.zone) }
        return f
    }

    /// The node with every field at its default.
    public static let defaults = WireNode()
}

/// A node entering the client's view: every non-default field, coded absolutely.
public struct NodeEntry: Hashable, Sendable {
    public var index: UInt32
    public var node: WireNode

    /// Creates an entry for node `index`.
    public init(index: UInt32, node: WireNode) {
        self.index = index
        self.node = node
    }
}

/// How a rotation field of an update is coded: relative to the replica's value or absolutely.
public struct RotationCode: Hashable, Sendable {
    /// True when `a`, `b`, `c` are differences from the replica's components (same largest index).
    public var isDelta: Bool
    /// Largest-component index; meaningful only when `isDelta` is false.
    public var largest: UInt8
    public var a: Int32
    public var b: Int32
    public var c: Int32

    /// Creates a rotation code.
    public init(isDelta: Bool, largest: UInt8, _ a: Int32, _ b: Int32, _ c: Int32) {
        self.isDelta = isDelta
        self.largest = isDelta ? 0 : largest
        self.a = a
        self.b = b
        self.c = c
    }

    /// Codes `current` against `base`: a delta when their largest index agrees.
    public init(from base: QRotation, to current: QRotation) {
        if base.largest == current.largest {
            self.init(
                isDelta: true, largest: 0, current.a &- base.a, current.b &- base.b, current.c &- base.c)
        } else {
            self.init(isDelta: false, largest: current.largest, current.a, current.b, current.c)
        }
    }

    /// The rotation this code gives when applied to `base`.
    public func applied(to base: QRotation) -> QRotation {
        isDelta ? QRotation(largest: base.largest, base.a &+ a, base.b &+ b, base.c &+ c) : QRotation(largest: largest, a, b, c)
    }
}

/// A change to a node the client already has: translation and scale as differences, the rest absolute.
public struct NodeUpdate: Hashable, Sendable {
    public var index: UInt32
    /// The fields present; never contains ``NodeFields/structure``.
    public var fields: NodeFields
    /// Difference from the replica's translation.
    public var translation: QVec3 = .zero
    public var rotation: RotationCode = RotationCode(isDelta: true, largest: 0, 0, 0, 0)
    /// Difference from the replica's scale.
    public var scale: QVec3 = .zero
    public var anchor: String = ""
    public var color: UInt32 = 0
    public var visible: Bool = true
    public var label: String = ""
    public var asset: String = ""
    public var layer: String = ""
    public var zone: String = ""

    /// Creates an update of node `index` with only `fields` meaningful.
    public init(index: UInt32, fields: NodeFields) {
        self.index = index
        self.fields = fields
    }

    /// The update that turns `base` into `current`, or nil when they are equal. Structure changes are not updates.
    public init?(index: UInt32, from base: WireNode, to current: WireNode) {
        let f = current.differences(from: base).subtracting(.structure)
        guard !f.isEmpty else { return nil }
        self.init(index: index, fields: f)
        if f.contains(.anchor) { anchor = current.anchor }
        if f.contains(.translation) {
            translation = QVec3(
                current.translation.x &- base.translation.x, current.translation.y &- base.translation.y,
                current.translation.z &- base.translation.z)
        }
        if f.contains(.rotation) { rotation = RotationCode(from: base.rotation, to: current.rotation) }
        if f.contains(.scale) {
            scale = QVec3(current.scale.x &- base.scale.x, current.scale.y &- base.scale.y, current.scale.z &- base.scale.z)
        }
        if f.contains(.color) { color = current.color }
        if f.contains(.visible) { visible = current.visible }
        if f.contains(.label) { label = current.label }
        if f.contains(.asset) { asset = current.asset }
        if f.contains(.layer) { layer = current.layer }
        if f.contains(.zone) { zone = current.zone }
    }

    /// Applies this update to `node`.
    public func apply(to node: inout WireNode) {
        if fields.contains(.anchor) { node.anchor = anchor }
        if fields.contains(.translation) {
            node.translation = QVec3(
                node.translation.x &+ translation.x, node.translation.y &+ translation.y,
                node.translation.z &+ translation.z)
        }
        if fields.contains(.rotation) { node.rotation = rotation.applied(to: node.rotation) }
        if fields.contains(.scale) {
            node.scale = QVec3(node.scale.x &+ scale.x, node.scale.y &+ scale.y, node.scale.z &+ scale.z)
        }
        if fields.contains(.color) { node.color = color }
        if fields.contains(.visible) { node.visible = visible }
        if fields.contains(.label) { node.label = label }
        if fields.contains(.asset) { node.asset = asset }
        if fields.contains(.layer) { node.layer = layer }
        if fields.contains(.zone) { node.zone = zone }
    }
}
