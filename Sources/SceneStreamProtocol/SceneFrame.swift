/// A keyframe (the whole view) or a delta (changes since `baseVersion`), before compression (`SPEC.md` §6).
public struct SceneFrame: Hashable, Sendable {
    /// Whether the frame replaces the replica or updates it.
    public enum Kind: Hashable, Sendable {
        /// The complete view; the replica is cleared first.
        case keyframe(sceneId: String, quantization: Quantization)
        /// Changes that turn a replica at `base` into one at ``SceneFrame/version``.
        case delta(base: UInt64)
    }

    public var kind: Kind
    /// The scene version the replica is at after applying this frame. The client acknowledges it.
    public var version: UInt64
    /// Scene time in milliseconds since the Unix epoch (in playback, the recorded time).
    public var timeMs: UInt64
    /// One more than the largest node index the scene has used; sizes the update bitmask.
    public var nodeSpace: UInt32
    /// Nodes that leave the view (deltas only), ascending.
    public var removed: [UInt32]
    /// Nodes that enter the view, ascending.
    public var entered: [NodeEntry]
    /// Nodes in view whose fields changed (deltas only), ascending.
    public var updated: [NodeUpdate]

    /// Creates a frame.
    public init(
        kind: Kind, version: UInt64, timeMs: UInt64, nodeSpace: UInt32, removed: [UInt32] = [],
        entered: [NodeEntry] = [], updated: [NodeUpdate] = []
    ) {
        self.kind = kind
        self.version = version
        self.timeMs = timeMs
        self.nodeSpace = nodeSpace
        self.removed = removed
        self.entered = entered
        self.updated = updated
    }

    /// True for keyframes.
    public var isKeyframe: Bool {
        if case .keyframe = kind { return true }
        return false
    }
}

/// What comes before a frame's blocks (§6.1–6.2): the same in protocol versions 1 and 2.
struct FrameHead {
    var kind: SceneFrame.Kind
    var version: UInt64
    var timeMs: UInt64
    var nodeSpace: UInt32
    var strings: [String]

    func write(into w: inout WireWriter) {
        w.writeVarint(version)
        switch kind {
        case .keyframe(let sceneId, let q):
            w.writeString(sceneId)
            w.writeVarint(q.positionUnitsPerMetre)
            w.writeU8(q.rotationBits)
        case .delta(let base):
            w.writeVarint(version &- base)
        }
        w.writeVarint(timeMs)
        w.writeVarint(nodeSpace)
        w.writeVarint(strings.count)
        for s in strings { w.writeString(s) }
    }

    static func read(_ r: inout WireReader, isKeyframe: Bool) throws(ProtocolError) -> FrameHead {
        let version = try r.readVarint("version")
        let kind: SceneFrame.Kind
        if isKeyframe {
            let sceneId = try r.readString("sceneId")
            let units = try r.readVarint("positionUnitsPerMetre", as: UInt32.self)
            let bits = try r.readU8("rotationBits")
            guard units > 0, (2...31).contains(bits) else { throw ProtocolError(.invalidValue, "\(r.context).quantization") }
            kind = .keyframe(sceneId: sceneId, quantization: Quantization(positionUnitsPerMetre: units, rotationBits: bits))
        } else {
            let back = try r.readVarint("baseDistance")
            guard back <= version else { throw ProtocolError(.invalidValue, "\(r.context).baseDistance") }
            kind = .delta(base: version - back)
        }
        let time = try r.readVarint("timeMs")
        let nodeSpace = try r.readVarint("nodeSpace", as: UInt32.self)
        let stringCount = try r.readCount("strings.count")
        var strings: [String] = []
        strings.reserveCapacity(stringCount)
        for _ in 0..<stringCount { strings.append(try r.readString("strings")) }
        return FrameHead(kind: kind, version: version, timeMs: time, nodeSpace: nodeSpace, strings: strings)
    }
}

/// Collects a frame's strings in order of first use.
struct StringTable {
    var strings: [String] = []
    var index: [String: UInt32] = [:]

    /// The table of `f` in its canonical order (SPEC §6.8), for both frame encodings: records in frame order
    /// (entered, then updated), each record's strings in field-bit order (name, anchor, label, asset, layer, zone),
    /// each string once, where it first occurs. `entryMasks` are the entries' fields that differ from the defaults.
    init(canonicalFor f: SceneFrame, entryMasks: [NodeFields]) {
        for (e, m) in zip(f.entered, entryMasks) {
            if m.contains(.structure) { add(e.node.name) }
            for (field, _) in NodeFields.stringFields where m.contains(field) { add(e.node.string(field)) }
        }
        for u in f.updated where !u.fields.isDisjoint(with: .strings) {
            for (field, _) in NodeFields.stringFields where u.fields.contains(field) { add(u.string(field)) }
        }
    }

    private mutating func add(_ s: String) {
        guard index[s] == nil else { return }
        index[s] = UInt32(strings.count)
        strings.append(s)
    }

    /// The reference of a string of the frame the table was made for.
    func ref(_ s: String) -> UInt32 { index[s]! }
}

/// Per-field columns of a node block; written separately and concatenated so that deflate sees like next to like.
struct Columns {
    var masks = WireWriter(capacity: 1024)
    var structure = WireWriter()
    var anchor = WireWriter()
    var translation = WireWriter(capacity: 4096)
    var rotation = WireWriter(capacity: 4096)
    var scale = WireWriter()
    var color = WireWriter()
    var visible = WireWriter()
    var label = WireWriter()
    var asset = WireWriter()
    var layer = WireWriter()
    var zone = WireWriter()

    func write(to w: inout WireWriter) {
        for c in [masks, structure, anchor, translation, rotation, scale, color, visible, label, asset, layer, zone] {
            w.writeBytes(c.bytes)
        }
    }
}

extension SceneFrame {
    /// Encodes the frame body (without envelope or compression).
    public func encodeBody(into w: inout WireWriter) {
        let entryMasks = entered.map { $0.node.differences(from: .defaults) }
        let strings = StringTable(canonicalFor: self, entryMasks: entryMasks)
        var entryCols = Columns()
        var updateCols = Columns()
        // Entered nodes, absolute values, fields that differ from defaults.
        for (e, f) in zip(entered, entryMasks) {
            let n = e.node
            entryCols.masks.writeVarint(f.rawValue)
            if f.contains(.structure) {
                if let p = n.parent {
                    entryCols.structure.writeVarint(zigzag(Int64(e.index) - Int64(p)) + 1)
                } else {
                    entryCols.structure.writeVarint(0 as UInt64)
                }
                entryCols.structure.writeVarint(strings.ref(n.name))
            }
            if f.contains(.anchor) { entryCols.anchor.writeVarint(strings.ref(n.anchor)) }
            if f.contains(.translation) { Self.writeVec(n.translation, &entryCols.translation) }
            if f.contains(.rotation) {
                Self.writeRotation(RotationCode(isDelta: false, largest: n.rotation.largest, n.rotation.a, n.rotation.b, n.rotation.c), &entryCols.rotation)
            }
            if f.contains(.scale) {
                Self.writeVec(QVec3(n.scale.x &- Quantization.scaleUnits, n.scale.y &- Quantization.scaleUnits, n.scale.z &- Quantization.scaleUnits), &entryCols.scale)
            }
            if f.contains(.color) { entryCols.color.writeU32BE(n.color) }
            if f.contains(.visible) { entryCols.visible.writeU8(n.visible ? 1 : 0) }
            if f.contains(.label) { entryCols.label.writeVarint(strings.ref(n.label)) }
            if f.contains(.asset) { entryCols.asset.writeVarint(strings.ref(n.asset)) }
            if f.contains(.layer) { entryCols.layer.writeVarint(strings.ref(n.layer)) }
            if f.contains(.zone) { entryCols.zone.writeVarint(strings.ref(n.zone)) }
        }
        for u in updated {
            let f = u.fields
            updateCols.masks.writeVarint(f.rawValue)
            if f.contains(.anchor) { updateCols.anchor.writeVarint(strings.ref(u.anchor)) }
            if f.contains(.translation) { Self.writeVec(u.translation, &updateCols.translation) }
            if f.contains(.rotation) { Self.writeRotation(u.rotation, &updateCols.rotation) }
            if f.contains(.scale) { Self.writeVec(u.scale, &updateCols.scale) }
            if f.contains(.color) { updateCols.color.writeU32BE(u.color) }
            if f.contains(.visible) { updateCols.visible.writeU8(u.visible ? 1 : 0) }
            if f.contains(.label) { updateCols.label.writeVarint(strings.ref(u.label)) }
            if f.contains(.asset) { updateCols.asset.writeVarint(strings.ref(u.asset)) }
            if f.contains(.layer) { updateCols.layer.writeVarint(strings.ref(u.layer)) }
            if f.contains(.zone) { updateCols.zone.writeVarint(strings.ref(u.zone)) }
        }

        FrameHead(kind: kind, version: version, timeMs: timeMs, nodeSpace: nodeSpace, strings: strings.strings).write(into: &w)
        // Removals.
        if !isKeyframe {
            w.writeVarint(removed.count)
            Self.writeGaps(removed, &w)
        }
        // Entered block.
        w.writeVarint(entered.count)
        Self.writeGaps(entered.map(\.index), &w)
        entryCols.write(to: &w)
        // Updated block.
        if !isKeyframe {
            w.writeVarint(updated.count)
            if !updated.isEmpty {
                let indices = updated.map(\.index)
                var gapBytes = 0
                var prev: Int64 = -1
                for i in indices {
                    gapBytes += varintSize(UInt64(Int64(i) - prev - 1))
                    prev = Int64(i)
                }
                let maskBytes = (Int(nodeSpace) + 7) / 8
                if maskBytes < gapBytes {
                    w.writeU8(1)
                    var bits = [UInt8](repeating: 0, count: maskBytes)
                    for i in indices { bits[Int(i) >> 3] |= 1 << (UInt8(i & 7)) }
                    w.writeBytes(bits)
                } else {
                    w.writeU8(0)
                    Self.writeGaps(indices, &w)
                }
            }
            updateCols.write(to: &w)
        }
    }

    static func writeGaps(_ indices: [UInt32], _ w: inout WireWriter) {
        var prev: Int64 = -1
        for i in indices {
            w.writeVarint(UInt64(Int64(i) - prev - 1))
            prev = Int64(i)
        }
    }

    static func writeVec(_ v: QVec3, _ w: inout WireWriter) {
        w.writeZigZag(Int64(v.x))
        w.writeZigZag(Int64(v.y))
        w.writeZigZag(Int64(v.z))
    }

    static func writeRotation(_ r: RotationCode, _ w: inout WireWriter) {
        if r.isDelta {
            w.writeVarint(zigzag(Int64(r.a)) << 1 | 1)
        } else {
            w.writeVarint(zigzag(Int64(r.a)) << 3 | UInt64(r.largest & 3) << 1)
        }
        w.writeZigZag(Int64(r.b))
        w.writeZigZag(Int64(r.c))
    }

    /// Decodes a frame body of the given kind (`isKeyframe` comes from the message type).
    public static func decodeBody(_ r: inout WireReader, isKeyframe: Bool) throws(ProtocolError) -> SceneFrame {
        let head = try FrameHead.read(&r, isKeyframe: isKeyframe)
        let (kind, version, time, nodeSpace, strings) = (head.kind, head.version, head.timeMs, head.nodeSpace, head.strings)
        func str(_ r: inout WireReader, _ field: String) throws(ProtocolError) -> String {
            let i = try r.readVarint(field)
            guard i < UInt64(strings.count) else { throw ProtocolError(.invalidValue, "\(r.context).\(field) (string ref \(i))") }
            return strings[Int(i)]
        }
        func indices(_ r: inout WireReader, count: Int, _ field: String) throws(ProtocolError) -> [UInt32] {
            var out: [UInt32] = []
            out.reserveCapacity(count)
            var prev: Int64 = -1
            for _ in 0..<count {
                let gap = try r.readVarint(field)
                // Check the gap before adding: a huge varint must not overflow the sum (found by fuzz-server-frames).
                guard gap < UInt64(nodeSpace), prev + 1 + Int64(gap) < Int64(nodeSpace) else {
                    throw ProtocolError(.invalidValue, "\(r.context).\(field) (index beyond nodeSpace \(nodeSpace))")
                }
                let i = prev + 1 + Int64(gap)
                out.append(UInt32(i))
                prev = i
            }
            return out
        }

        var removed: [UInt32] = []
        if !isKeyframe {
            let n = try r.readCount("removed.count")
            removed = try indices(&r, count: n, "removed")
        }
        let enteredCount = try r.readCount("entered.count")
        let enteredIdx = try indices(&r, count: enteredCount, "entered.index")
        var masks: [NodeFields] = []
        masks.reserveCapacity(enteredCount)
        for _ in 0..<enteredCount {
            let m = try r.readVarint("entered.mask", as: UInt32.self)
            guard m & ~NodeFields.all.rawValue == 0 else { throw ProtocolError(.invalidValue, "\(r.context).entered.mask") }
            masks.append(NodeFields(rawValue: m))
        }
        var nodes = [WireNode](repeating: .defaults, count: enteredCount)
        for (k, m) in masks.enumerated() where m.contains(.structure) {
            let p = try r.readVarint("entered.parent")
            if p != 0 {
                let (parent, overflow) = Int64(enteredIdx[k]).subtractingReportingOverflow(unzigzag(p - 1))
                guard !overflow, parent >= 0, parent < Int64(nodeSpace), parent != Int64(enteredIdx[k]) else {
                    throw ProtocolError(.invalidValue, "\(r.context).entered.parent")
                }
                nodes[k].parent = UInt32(parent)
            }
            nodes[k].name = try str(&r, "entered.name")
        }
        for (k, m) in masks.enumerated() where m.contains(.anchor) {
            guard nodes[k].parent == nil else { throw ProtocolError(.invalidValue, "\(r.context).entered.anchor (only roots name an anchor)") }
            nodes[k].anchor = try str(&r, "entered.anchor")
        }
        for (k, m) in masks.enumerated() where m.contains(.translation) { nodes[k].translation = try readVec(&r, "entered.translation") }
        for (k, m) in masks.enumerated() where m.contains(.rotation) {
            let code = try readRotation(&r, "entered.rotation")
            guard !code.isDelta else { throw ProtocolError(.invalidValue, "\(r.context).entered.rotation (delta in an entry)") }
            nodes[k].rotation = code.applied(to: .identity)
        }
        for (k, m) in masks.enumerated() where m.contains(.scale) {
            let d = try readVec(&r, "entered.scale")
            nodes[k].scale = QVec3(d.x &+ Quantization.scaleUnits, d.y &+ Quantization.scaleUnits, d.z &+ Quantization.scaleUnits)
        }
        for (k, m) in masks.enumerated() where m.contains(.color) { nodes[k].color = try r.readU32BE("entered.color") }
        for (k, m) in masks.enumerated() where m.contains(.visible) { nodes[k].visible = try r.readBool("entered.visible") }
        for (k, m) in masks.enumerated() where m.contains(.label) { nodes[k].label = try str(&r, "entered.label") }
        for (k, m) in masks.enumerated() where m.contains(.asset) { nodes[k].asset = try str(&r, "entered.asset") }
        for (k, m) in masks.enumerated() where m.contains(.layer) { nodes[k].layer = try str(&r, "entered.layer") }
        for (k, m) in masks.enumerated() where m.contains(.zone) { nodes[k].zone = try str(&r, "entered.zone") }
        let entered = zip(enteredIdx, nodes).map { NodeEntry(index: $0, node: $1) }

        var updated: [NodeUpdate] = []
        if !isKeyframe {
            let count = try r.readCount("updated.count")
            var idx: [UInt32] = []
            if count > 0 {
                let mode = try r.readU8("updated.indexMode")
                switch mode {
                case 0:
                    idx = try indices(&r, count: count, "updated.index")
                case 1:
                    let bytes = try r.readBytes((Int(nodeSpace) + 7) / 8, "updated.bitmask")
                    idx.reserveCapacity(count)
                    for (k, b) in bytes.enumerated() where b != 0 {
                        for bit in 0..<8 where b & (1 << UInt8(bit)) != 0 {
                            let i = k * 8 + bit
                            guard i < Int(nodeSpace) else { throw ProtocolError(.invalidValue, "\(r.context).updated.bitmask (bit beyond nodeSpace)") }
                            idx.append(UInt32(i))
                        }
                    }
                    guard idx.count == count else { throw ProtocolError(.invalidValue, "\(r.context).updated.bitmask (\(idx.count) bits set, count \(count))") }
                default:
                    throw ProtocolError(.invalidValue, "\(r.context).updated.indexMode")
                }
            }
            updated.reserveCapacity(count)
            for i in idx {
                let m = try r.readVarint("updated.mask", as: UInt32.self)
                guard m & ~NodeFields.all.rawValue == 0, m & NodeFields.structure.rawValue == 0 else {
                    throw ProtocolError(.invalidValue, "\(r.context).updated.mask")
                }
                updated.append(NodeUpdate(index: i, fields: NodeFields(rawValue: m)))
            }
            for k in updated.indices where updated[k].fields.contains(.anchor) { updated[k].anchor = try str(&r, "updated.anchor") }
            for k in updated.indices where updated[k].fields.contains(.translation) { updated[k].translation = try readVec(&r, "updated.translation") }
            for k in updated.indices where updated[k].fields.contains(.rotation) { updated[k].rotation = try readRotation(&r, "updated.rotation") }
            for k in updated.indices where updated[k].fields.contains(.scale) { updated[k].scale = try readVec(&r, "updated.scale") }
            for k in updated.indices where updated[k].fields.contains(.color) { updated[k].color = try r.readU32BE("updated.color") }
            for k in updated.indices where updated[k].fields.contains(.visible) { updated[k].visible = try r.readBool("updated.visible") }
            for k in updated.indices where updated[k].fields.contains(.label) { updated[k].label = try str(&r, "updated.label") }
            for k in updated.indices where updated[k].fields.contains(.asset) { updated[k].asset = try str(&r, "updated.asset") }
            for k in updated.indices where updated[k].fields.contains(.layer) { updated[k].layer = try str(&r, "updated.layer") }
            for k in updated.indices where updated[k].fields.contains(.zone) { updated[k].zone = try str(&r, "updated.zone") }
        }
        return SceneFrame(
            kind: kind, version: version, timeMs: time, nodeSpace: nodeSpace, removed: removed, entered: entered,
            updated: updated)
    }

    static func readVec(_ r: inout WireReader, _ field: String) throws(ProtocolError) -> QVec3 {
        QVec3(try r.readZigZag32(field), try r.readZigZag32(field), try r.readZigZag32(field))
    }

    static func readRotation(_ r: inout WireReader, _ field: String) throws(ProtocolError) -> RotationCode {
        let first = try r.readVarint(field)
        let b = try r.readZigZag32(field)
        let c = try r.readZigZag32(field)
        if first & 1 == 1 {
            guard let a = Int32(exactly: unzigzag(first >> 1)) else { throw ProtocolError(.invalidValue, "\(r.context).\(field)") }
            return RotationCode(isDelta: true, largest: 0, a, b, c)
        }
        guard let a = Int32(exactly: unzigzag(first >> 3)) else { throw ProtocolError(.invalidValue, "\(r.context).\(field)") }
        return RotationCode(isDelta: false, largest: UInt8((first >> 1) & 3), a, b, c)
    }
}

extension NodeFields {
    /// The string fields of a node in bit order, with their bits (both frame encodings and the string table).
    static let stringFields: [(NodeFields, Int)] = [(.anchor, 1), (.label, 7), (.asset, 8), (.layer, 9), (.zone, 10)]
    /// The same fields as one set.
    static let strings: NodeFields = [.anchor, .label, .asset, .layer, .zone]
}

/// The string fields a node and an update share, by their mask bit.
protocol StringFields {
    var anchor: String { get set }
    var label: String { get set }
    var asset: String { get set }
    var layer: String { get set }
    var zone: String { get set }
}

extension StringFields {
    static func keyPath(_ f: NodeFields) -> WritableKeyPath<Self, String> {
        switch f {
        case .anchor: return \.anchor
        case .label: return \.label
        case .asset: return \.asset
        case .layer: return \.layer
        default: return \.zone
        }
    }

    func string(_ f: NodeFields) -> String { self[keyPath: Self.keyPath(f)] }
    mutating func setString(_ f: NodeFields, _ s: String) { self[keyPath: Self.keyPath(f)] = s }
}

extension WireNode: StringFields {}
extension NodeUpdate: StringFields {}
