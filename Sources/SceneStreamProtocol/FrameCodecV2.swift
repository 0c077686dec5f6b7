/// Frame bodies of protocol version 2 (SPEC §11): the header and string table of version 1, then every block
/// range-coded (``RangeEncoder``) with models that start fresh in each frame, so one encoded frame still goes to
/// every client of a group and any frame decodes on its own.
///
/// The blocks and their order are version 1's (removed, entered, updated; within a block indices, masks, then one
/// column per field in bit order); what changes is how values are coded: index gaps in the context of the gaps
/// before (runs of consecutive indices), masks as "same as the record before" or bit by bit, string references as
/// adaptive integers, every number a signed adaptive integer per component whose zero pattern is modelled per run
/// position, colours byte by byte as trees, rotations in updates a delta flag then either component differences
/// or an absolute code.
public enum FrameCodecV2 {
    /// Per-frame models (all at p = 1/2 at the start of each frame).
    struct Models {
        var count = UIntModel()
        var removedGap = GapModel()
        var enteredGap = GapModel()
        var updatedGap = GapModel()
        var enteredMask = MaskModel()
        var updatedMask = MaskModel()
        var parent = UIntModel()
        var refs = [UIntModel](repeating: UIntModel(), count: 11)  // by field bit: name (0), anchor, label, …
        var entryTranslation = VecModel()
        var entryRotation = VecModel()
        var entryLargest = TreeModel(bits: 2)
        var entryScale = VecModel()
        var entryColor = [TreeModel](repeating: TreeModel(bits: 8), count: 4)
        var entryVisible = Prob()
        var updateTranslation = VecModel()
        var updateRotationIsDelta = Prob()
        var updateRotationDelta = VecModel()
        var updateRotation = VecModel()
        var updateLargest = TreeModel(bits: 2)
        var updateScale = VecModel()
        var updateColor = [TreeModel](repeating: TreeModel(bits: 8), count: 4)
        var updateVisible = Prob()
    }

    /// Index gaps, in the context of the gaps before: after a zero gap, how many zeros in a row (1…7, runs of
    /// consecutive indices such as the joints of a robot end after their length); else whether the gap before was
    /// 1…7 (or none yet) or larger.
    struct GapModel {
        var models = [UIntModel](repeating: UIntModel(), count: 9)
        var previous: UInt64 = 1
        var zeros = 0
        var context: Int { previous == 0 ? min(zeros, 7) - 1 : previous < 8 ? 7 : 8 }

        mutating func encode(_ gap: UInt64, _ e: inout RangeEncoder) {
            models[context].encode(gap, &e)
            seen(gap)
        }

        mutating func decode(_ d: inout RangeDecoder) -> UInt64? {
            let g = models[context].decode(&d)
            seen(g ?? 1)
            return g
        }

        private mutating func seen(_ gap: UInt64) {
            zeros = gap == 0 ? zeros + 1 : 0
            previous = gap
        }
    }

    /// Field masks: first whether the mask is the same as the record before's (in the context of whether this
    /// record follows the one before directly — its run position is above 0 — and whether the record before was the
    /// same), else bit by bit, each bit in the context of the same bit of the record before.
    struct MaskModel {
        var same = [Prob](repeating: Prob(), count: 4)
        var probs = [Prob](repeating: Prob(), count: 22)
        var previous: UInt32 = 0
        var previousSame = true

        mutating func encode(_ m: UInt32, from first: Int, follows: Bool, _ e: inout RangeEncoder) {
            let isSame = m == previous
            e.encode(isSame, &same[(follows ? 2 : 0) + (previousSame ? 1 : 0)])
            if !isSame {
                for k in first..<11 {
                    let ctx = k * 2 + Int((previous >> UInt32(k)) & 1)
                    e.encode((m >> UInt32(k)) & 1 == 1, &probs[ctx])
                }
            }
            previous = m
            previousSame = isSame
        }

        mutating func decode(from first: Int, follows: Bool, _ d: inout RangeDecoder) -> UInt32 {
            let isSame = d.decode(&same[(follows ? 2 : 0) + (previousSame ? 1 : 0)])
            var m = previous
            if !isSame {
                m = 0
                for k in first..<11 {
                    let ctx = k * 2 + Int((previous >> UInt32(k)) & 1)
                    if d.decode(&probs[ctx]) { m |= 1 << UInt32(k) }
                }
            }
            previous = m
            previousSame = isSame
            return m
        }
    }

    /// Each record's run position: how many records right before it have consecutive indices (at most 7).
    static func runPositions(_ indices: [UInt32]) -> [Int] {
        var out = [Int](repeating: 0, count: indices.count)
        for k in indices.indices.dropFirst() where indices[k] == indices[k - 1] &+ 1 {
            out[k] = min(out[k - 1] + 1, VecModel.runPositions - 1)
        }
        return out
    }


    /// A whole version-2 frame message: the envelope (keyframe 0x82 or delta 0x83, flags 0: a range-coded body is
    /// not deflated) and the body.
    public static func encodeMessage(_ f: SceneFrame) -> [UInt8] {
        var w = WireWriter(capacity: 256 + 4 * (f.entered.count + f.updated.count))
        w.writeU8(f.isKeyframe ? MessageType.keyframe.rawValue : MessageType.delta.rawValue)
        w.writeU8(0)
        encodeBody(f, into: &w)
        return w.bytes
    }

    /// Decodes a whole version-2 frame message.
    public static func decodeMessage(_ bytes: [UInt8]) throws(ProtocolError) -> SceneFrame {
        guard bytes.count >= 2 else { throw ProtocolError(.truncated, "envelope") }
        let type = MessageType(rawValue: bytes[0])
        guard type == .keyframe || type == .delta else { throw ProtocolError(.unknownMessageType(bytes[0]), "a version-2 frame") }
        guard bytes[1] == 0 else { throw ProtocolError(.reservedFlags(bytes[1]), "envelope(\(type)) of a version-2 frame") }
        var r = WireReader(bytes, range: 2..<bytes.count, context: type.description)
        return try decodeBody(&r, isKeyframe: type == .keyframe)
    }

    /// Encodes the body of `f` (what follows the envelope).
    public static func encodeBody(_ f: SceneFrame, into w: inout WireWriter) {
        let masks = f.entered.map { $0.node.differences(from: .defaults) }
        let strings = StringTable(canonicalFor: f, entryMasks: masks)
        FrameHead(kind: f.kind, version: f.version, timeMs: f.timeMs, nodeSpace: f.nodeSpace, strings: strings.strings).write(into: &w)

        var e = RangeEncoder(capacity: 64 + 4 * (f.entered.count + f.updated.count))
        var m = Models()
        if !f.isKeyframe {
            m.count.encode(UInt64(f.removed.count), &e)
            gaps(f.removed, &m.removedGap, &e)
        }
        // Entered: indices, masks, columns.
        m.count.encode(UInt64(f.entered.count), &e)
        let enteredIndices = f.entered.map(\.index)
        gaps(enteredIndices, &m.enteredGap, &e)
        let runs = runPositions(enteredIndices)
        for (k, mask) in masks.enumerated() { m.enteredMask.encode(mask.rawValue, from: 0, follows: runs[k] > 0, &e) }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.structure) {
            m.parent.encode(x.node.parent.map { zigzag(Int64(x.index) - Int64($0)) + 1 } ?? 0, &e)
            m.refs[0].encode(UInt64(strings.index[x.node.name]!), &e)
        }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.anchor) { m.refs[1].encode(UInt64(strings.index[x.node.anchor]!), &e) }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.translation) { vec(x.node.translation, runs[k], &m.entryTranslation, &e) }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.rotation) {
            let r = x.node.rotation
            m.entryLargest.encode(UInt32(r.largest & 3), &e)
            vec(QVec3(r.a, r.b, r.c), runs[k], &m.entryRotation, &e)
        }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.scale) {
            let s = x.node.scale
            let u = Quantization.scaleUnits
            vec(QVec3(s.x &- u, s.y &- u, s.z &- u), runs[k], &m.entryScale, &e)
        }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.color) { color(x.node.color, &m.entryColor, &e) }
        for (k, x) in f.entered.enumerated() where masks[k].contains(.visible) { e.encode(x.node.visible, &m.entryVisible) }
        for (field, bit) in NodeFields.stringFields where field != .anchor {
            for (k, x) in f.entered.enumerated() where masks[k].contains(field) {
                m.refs[bit].encode(UInt64(strings.index[x.node.string(field)]!), &e)
            }
        }
        // Updated: indices, masks (no structure bit), columns.
        if !f.isKeyframe {
            m.count.encode(UInt64(f.updated.count), &e)
            let updatedIndices = f.updated.map(\.index)
            gaps(updatedIndices, &m.updatedGap, &e)
            let runs = runPositions(updatedIndices)
            for (k, u) in f.updated.enumerated() { m.updatedMask.encode(u.fields.rawValue, from: 1, follows: runs[k] > 0, &e) }
            for u in f.updated where u.fields.contains(.anchor) { m.refs[1].encode(UInt64(strings.index[u.anchor]!), &e) }
            for (k, u) in f.updated.enumerated() where u.fields.contains(.translation) { vec(u.translation, runs[k], &m.updateTranslation, &e) }
            for (k, u) in f.updated.enumerated() where u.fields.contains(.rotation) {
                let r = u.rotation
                e.encode(r.isDelta, &m.updateRotationIsDelta)
                if r.isDelta {
                    vec(QVec3(r.a, r.b, r.c), runs[k], &m.updateRotationDelta, &e)
                } else {
                    m.updateLargest.encode(UInt32(r.largest & 3), &e)
                    vec(QVec3(r.a, r.b, r.c), runs[k], &m.updateRotation, &e)
                }
            }
            for (k, u) in f.updated.enumerated() where u.fields.contains(.scale) { vec(u.scale, runs[k], &m.updateScale, &e) }
            for u in f.updated where u.fields.contains(.color) { color(u.color, &m.updateColor, &e) }
            for u in f.updated where u.fields.contains(.visible) { e.encode(u.visible, &m.updateVisible) }
            for (field, bit) in NodeFields.stringFields where field != .anchor {
                for u in f.updated where u.fields.contains(field) { m.refs[bit].encode(UInt64(strings.index[u.string(field)]!), &e) }
            }
        }
        e.finish()
        w.writeBytes(e.bytes)
    }

    static func gaps(_ indices: [UInt32], _ model: inout GapModel, _ e: inout RangeEncoder) {
        var prev: Int64 = -1
        for i in indices {
            model.encode(UInt64(Int64(i) - prev - 1), &e)
            prev = Int64(i)
        }
    }

    static func vec(_ v: QVec3, _ run: Int, _ model: inout VecModel, _ e: inout RangeEncoder) {
        model.encode(v.x, v.y, v.z, run: run, &e)
    }

    static func color(_ c: UInt32, _ models: inout [TreeModel], _ e: inout RangeEncoder) {
        for k in 0..<4 { models[k].encode((c >> UInt32(24 - 8 * k)) & 0xFF, &e) }
    }

    /// Decodes a version-2 frame body. Counts are bounded by nodeSpace and by what the bytes could hold, before
    /// anything is allocated for them.
    public static func decodeBody(_ r: inout WireReader, isKeyframe: Bool) throws(ProtocolError) -> SceneFrame {
        let head = try FrameHead.read(&r, isKeyframe: isKeyframe)
        let (kind, version, time, nodeSpace, strings) = (head.kind, head.version, head.timeMs, head.nodeSpace, head.strings)
        let rest = try r.readBytes(r.remaining, "blocks")
        let context = r.context
        var d = RangeDecoder(Array(rest))
        var m = Models()
        // Each record costs at least one adaptive decision: ≥ 0.0106 bits at the most skewed probability (15/2048),
        // so at most ~755 records a byte.
        let most = min(Int(nodeSpace), 800 * (rest.count + 8))

        func count(_ field: String) throws(ProtocolError) -> Int {
            guard let n = m.count.decode(&d), n <= UInt64(most) else { throw ProtocolError(.invalidValue, "\(context).\(field) (count)") }
            return Int(n)
        }
        func indices(_ n: Int, _ model: inout GapModel, _ field: String) throws(ProtocolError) -> [UInt32] {
            var out: [UInt32] = []
            out.reserveCapacity(n)
            var prev: Int64 = -1
            for _ in 0..<n {
                guard let gap = model.decode(&d), gap < UInt64(nodeSpace), prev + 1 + Int64(gap) < Int64(nodeSpace) else {
                    throw ProtocolError(.invalidValue, "\(context).\(field) (index beyond nodeSpace \(nodeSpace))")
                }
                prev += 1 + Int64(gap)
                out.append(UInt32(prev))
            }
            return out
        }
        func ref(_ bit: Int, _ field: String) throws(ProtocolError) -> String {
            guard let i = m.refs[bit].decode(&d), i < UInt64(strings.count) else { throw ProtocolError(.invalidValue, "\(context).\(field) (string ref)") }
            return strings[Int(i)]
        }
        func vec(_ model: inout VecModel, _ run: Int, _ field: String) throws(ProtocolError) -> QVec3 {
            guard let (x, y, z) = model.decode(run: run, &d) else { throw ProtocolError(.invalidValue, "\(context).\(field) (beyond int32)") }
            return QVec3(x, y, z)
        }
        func color(_ models: inout [TreeModel]) -> UInt32 {
            var c: UInt32 = 0
            for k in 0..<4 { c = c << 8 | models[k].decode(&d) }
            return c
        }

        var removed: [UInt32] = []
        if !isKeyframe { removed = try indices(try count("removed.count"), &m.removedGap, "removed") }
        let enteredIdx = try indices(try count("entered.count"), &m.enteredGap, "entered")
        let runs = runPositions(enteredIdx)
        var masks: [NodeFields] = []
        masks.reserveCapacity(enteredIdx.count)
        for k in enteredIdx.indices { masks.append(NodeFields(rawValue: m.enteredMask.decode(from: 0, follows: runs[k] > 0, &d))) }
        var nodes = [WireNode](repeating: .defaults, count: enteredIdx.count)
        for (k, mask) in masks.enumerated() where mask.contains(.structure) {
            guard let p = m.parent.decode(&d) else { throw ProtocolError(.invalidValue, "\(context).entered.parent") }
            if p != 0 {
                let (parent, overflow) = Int64(enteredIdx[k]).subtractingReportingOverflow(unzigzag(p - 1))
                guard !overflow, parent >= 0, parent < Int64(nodeSpace), parent != Int64(enteredIdx[k]) else {
                    throw ProtocolError(.invalidValue, "\(context).entered.parent")
                }
                nodes[k].parent = UInt32(parent)
            }
            nodes[k].name = try ref(0, "entered.name")
        }
        for (k, mask) in masks.enumerated() where mask.contains(.anchor) {
            guard nodes[k].parent == nil else { throw ProtocolError(.invalidValue, "\(context).entered.anchor (only roots name an anchor)") }
            nodes[k].anchor = try ref(1, "entered.anchor")
        }
        for (k, mask) in masks.enumerated() where mask.contains(.translation) { nodes[k].translation = try vec(&m.entryTranslation, runs[k], "entered.translation") }
        for (k, mask) in masks.enumerated() where mask.contains(.rotation) {
            let largest = UInt8(m.entryLargest.decode(&d))
            let v = try vec(&m.entryRotation, runs[k], "entered.rotation")
            nodes[k].rotation = QRotation(largest: largest, v.x, v.y, v.z)
        }
        for (k, mask) in masks.enumerated() where mask.contains(.scale) {
            let v = try vec(&m.entryScale, runs[k], "entered.scale")
            let u = Quantization.scaleUnits
            nodes[k].scale = QVec3(v.x &+ u, v.y &+ u, v.z &+ u)
        }
        for (k, mask) in masks.enumerated() where mask.contains(.color) { nodes[k].color = color(&m.entryColor) }
        for (k, mask) in masks.enumerated() where mask.contains(.visible) { nodes[k].visible = d.decode(&m.entryVisible) }
        for (field, bit) in NodeFields.stringFields where field != .anchor {
            for (k, mask) in masks.enumerated() where mask.contains(field) { nodes[k].setString(field, try ref(bit, "entered.strings")) }
        }
        let entered = zip(enteredIdx, nodes).map { NodeEntry(index: $0, node: $1) }

        var updated: [NodeUpdate] = []
        if !isKeyframe {
            let idx = try indices(try count("updated.count"), &m.updatedGap, "updated")
            let runs = runPositions(idx)
            updated = idx.map { NodeUpdate(index: $0, fields: []) }
            for k in updated.indices { updated[k].fields = NodeFields(rawValue: m.updatedMask.decode(from: 1, follows: runs[k] > 0, &d)) }
            for k in updated.indices where updated[k].fields.contains(.anchor) { updated[k].anchor = try ref(1, "updated.anchor") }
            for k in updated.indices where updated[k].fields.contains(.translation) { updated[k].translation = try vec(&m.updateTranslation, runs[k], "updated.translation") }
            for k in updated.indices where updated[k].fields.contains(.rotation) {
                if d.decode(&m.updateRotationIsDelta) {
                    let v = try vec(&m.updateRotationDelta, runs[k], "updated.rotation")
                    updated[k].rotation = RotationCode(isDelta: true, largest: 0, v.x, v.y, v.z)
                } else {
                    let largest = UInt8(m.updateLargest.decode(&d))
                    let v = try vec(&m.updateRotation, runs[k], "updated.rotation")
                    updated[k].rotation = RotationCode(isDelta: false, largest: largest, v.x, v.y, v.z)
                }
            }
            for k in updated.indices where updated[k].fields.contains(.scale) { updated[k].scale = try vec(&m.updateScale, runs[k], "updated.scale") }
            for k in updated.indices where updated[k].fields.contains(.color) { updated[k].color = color(&m.updateColor) }
            for k in updated.indices where updated[k].fields.contains(.visible) { updated[k].visible = d.decode(&m.updateVisible) }
            for (field, bit) in NodeFields.stringFields where field != .anchor {
                for k in updated.indices where updated[k].fields.contains(field) { updated[k].setString(field, try ref(bit, "updated.strings")) }
            }
        }
        try d.checkEnd(context)
        return SceneFrame(kind: kind, version: version, timeMs: time, nodeSpace: nodeSpace, removed: removed, entered: entered, updated: updated)
    }
}
