import Testing

@testable import SceneStreamProtocol

/// Version 2 frame bodies: every frame round-trips exactly, re-encodes to the same bytes, and broken input is refused
/// (or decodes to some frame) without crashing or reading past its end.
@Suite struct FrameCodecV2Tests {
    func roundTrip(_ f: SceneFrame) throws -> [UInt8] {
        var w = WireWriter()
        FrameCodecV2.encodeBody(f, into: &w)
        var r = WireReader(w.bytes, context: "v2")
        let back = try FrameCodecV2.decodeBody(&r, isKeyframe: f.isKeyframe)
        #expect(back == f)
        var again = WireWriter()
        FrameCodecV2.encodeBody(back, into: &again)
        #expect(again.bytes == w.bytes, "re-encoding is byte-exact")
        return w.bytes
    }

    @Test func everyFrameVectorRoundTrips() throws {
        var frames = 0
        for v in ProtocolVectors.all {
            guard case .frame(let f)? = v.server else { continue }
            _ = try roundTrip(f)
            frames += 1
        }
        #expect(frames >= 8)
    }

    /// A deterministic generator (no clock, no system randomness): the same frames every run.
    struct LCG {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        mutating func int(_ r: ClosedRange<Int64>) -> Int64 { r.lowerBound + Int64(next() % UInt64(r.upperBound - r.lowerBound + 1)) }
        mutating func bool() -> Bool { next() & 1 == 1 }
    }

    func randomFrame(_ g: inout LCG, keyframe: Bool) -> SceneFrame {
        let space = UInt32(g.int(1...300))
        let words = ["", "a", "robot", "line-01", "models/x.gltf", "équipement", "zone-7"]
        func word() -> String { words[Int(g.int(1...Int64(words.count - 1)))] }
        func i32() -> Int32 {
            switch g.int(0...3) {
            case 0: return 0
            case 1: return Int32(g.int(-40...40))
            case 2: return Int32(g.int(-100_000...100_000))
            default: return Int32(truncatingIfNeeded: Int64(bitPattern: g.next() << 11))
            }
        }
        var picked: [UInt32] = []
        for i in 0..<space where g.int(0...3) == 0 { picked.append(i) }
        var entered: [NodeEntry] = []
        for i in picked where g.bool() {
            var n = WireNode(name: word())
            if i > 0, g.bool() { n.parent = UInt32(g.int(0...Int64(i - 1))) }
            if n.parent == nil, g.bool() { n.anchor = word() }
            if g.bool() { n.translation = QVec3(i32(), i32(), i32()) }
            if g.bool() { n.rotation = QRotation(largest: UInt8(g.int(0...3)), i32(), i32(), i32()) }
            if g.bool() { n.scale = QVec3(i32(), i32(), i32()) }
            if g.bool() { n.color = UInt32(truncatingIfNeeded: g.next()) }
            if g.bool() { n.visible = false }
            if g.bool() { n.label = word() }
            if g.bool() { n.asset = word() }
            if g.bool() { n.layer = word() }
            if g.bool() { n.zone = word() }
            entered.append(NodeEntry(index: i, node: n))
        }
        guard !keyframe else {
            return SceneFrame(kind: .keyframe(sceneId: "s", quantization: Quantization()), version: g.next() % 1000, timeMs: g.next(), nodeSpace: space, entered: entered)
        }
        let enteredSet = Set(entered.map(\.index))
        let rest = picked.filter { !enteredSet.contains($0) }
        var removed: [UInt32] = []
        var updated: [NodeUpdate] = []
        for i in rest {
            if g.int(0...4) == 0 {
                removed.append(i)
                continue
            }
            var u = NodeUpdate(index: i, fields: [])
            if g.bool() { u.fields.insert(.translation); u.translation = QVec3(i32(), i32(), i32()) }
            if g.bool() { u.fields.insert(.rotation); u.rotation = RotationCode(isDelta: g.bool(), largest: 0, i32(), i32(), i32()) }
            if u.fields.contains(.rotation), !u.rotation.isDelta { u.rotation = RotationCode(isDelta: false, largest: UInt8(g.int(0...3)), u.rotation.a, u.rotation.b, u.rotation.c) }
            if g.int(0...3) == 0 { u.fields.insert(.scale); u.scale = QVec3(i32(), i32(), i32()) }
            if g.int(0...3) == 0 { u.fields.insert(.color); u.color = UInt32(truncatingIfNeeded: g.next()) }
            if g.int(0...3) == 0 { u.fields.insert(.visible); u.visible = g.bool() }
            if g.int(0...5) == 0 { u.fields.insert(.anchor); u.anchor = word() }
            if g.int(0...5) == 0 { u.fields.insert(.label); u.label = word() }
            if g.int(0...7) == 0 { u.fields.insert(.asset); u.asset = word() }
            if g.int(0...7) == 0 { u.fields.insert(.layer); u.layer = word() }
            if g.int(0...7) == 0 { u.fields.insert(.zone); u.zone = word() }
            updated.append(u)
        }
        let version = 10 + g.next() % 1000
        return SceneFrame(kind: .delta(base: version - g.next() % 10), version: version, timeMs: g.next(), nodeSpace: space, removed: removed, entered: entered, updated: updated)
    }

    @Test func randomFramesRoundTripExactly() throws {
        var g = LCG(state: 42)
        for k in 0..<400 { _ = try roundTrip(randomFrame(&g, keyframe: k % 3 == 0)) }
    }

    @Test func brokenInputIsRefusedOrDecodesWithoutCrashing() throws {
        var g = LCG(state: 7)
        var refused = 0
        for k in 0..<60 {
            let f = randomFrame(&g, keyframe: k % 2 == 0)
            var w = WireWriter()
            FrameCodecV2.encodeBody(f, into: &w)
            // Every cut, and single-byte changes: a typed error or some frame, never a crash.
            for cut in stride(from: 0, to: w.bytes.count, by: max(1, w.bytes.count / 12)) {
                var r = WireReader(Array(w.bytes[..<cut]), context: "cut")
                if (try? FrameCodecV2.decodeBody(&r, isKeyframe: f.isKeyframe)) == nil { refused += 1 }
            }
            for _ in 0..<8 where !w.bytes.isEmpty {
                var b = w.bytes
                b[Int(g.next() % UInt64(b.count))] ^= UInt8(1 + g.next() % 255)
                var r = WireReader(b, context: "flip")
                _ = try? FrameCodecV2.decodeBody(&r, isKeyframe: f.isKeyframe)
            }
        }
        #expect(refused > 0)
    }

    @Test func aFrameThatClaimsMoreRecordsThanItsBytesCouldHoldIsRefused() throws {
        // A delta whose range-coded blocks claim a huge count: refused before anything is allocated for it.
        var e = RangeEncoder()
        var count = UIntModel()
        count.encode(1 << 30, &e)
        e.finish()
        var w = WireWriter()
        w.writeVarint(2 as UInt64)  // version
        w.writeVarint(1 as UInt64)  // baseDistance
        w.writeVarint(0 as UInt64)  // timeMs
        w.writeVarint(UInt64(UInt32.max))  // nodeSpace
        w.writeVarint(0 as UInt64)  // strings
        w.writeBytes(e.bytes)
        var r = WireReader(w.bytes, context: "huge")
        #expect(throws: ProtocolError.self) { _ = try FrameCodecV2.decodeBody(&r, isKeyframe: false) }
    }

    @Test func aLargeRemovalOfConsecutiveNodesStaysUnderTheRecordBound() throws {
        // 60,000 consecutive removals cost about 0.0106 bits each (the most skewed probability): ~80 bytes for the
        // block, ~750 records a byte. A bound of 400 records a byte refused this valid frame.
        let f = SceneFrame(
            kind: .delta(base: 1), version: 2, timeMs: 0, nodeSpace: 70_000, removed: Array(0..<60_000), entered: [], updated: [])
        let bytes = try roundTrip(f)
        #expect(bytes.count < 150)
    }

    @Test func theRangeCoderRoundTripsSkewedAndUniformBits() {
        var g = LCG(state: 3)
        var bits: [Bool] = []
        for k in 0..<20_000 { bits.append(k < 10_000 ? g.int(0...99) == 0 : g.bool()) }
        var e = RangeEncoder()
        var p = Prob()
        for b in bits { e.encode(b, &p) }
        e.encodeDirect(0xDEAD_BEEF, count: 32)
        e.finish()
        var d = RangeDecoder(e.bytes)
        var q = Prob()
        let back = bits.map { _ in d.decode(&q) }
        #expect(back == bits)
        #expect(d.decodeDirect(count: 32) == 0xDEAD_BEEF)
        #expect(d.overrun <= RangeDecoder.maxOverrun)
        // 10,000 bits at p(1) = 1/100 cost about 0.08 bits each, 10,000 fair ones a bit each.
        #expect(e.bytes.count < (10_000 / 8) + 150 + 4 + 200)
    }

    @Test func aRunOfLikelyBitsEndsInZerosTheDecoderReadsBack() {
        var e = RangeEncoder()
        var p = Prob()
        for _ in 0..<5000 { e.encode(false, &p) }
        e.finish()
        var d = RangeDecoder(e.bytes)
        var q = Prob()
        #expect((0..<5000).allSatisfy { _ in !d.decode(&q) })
        #expect(d.overrun <= RangeDecoder.maxOverrun)
    }
}
