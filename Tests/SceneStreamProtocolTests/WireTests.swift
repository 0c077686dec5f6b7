import Testing

@testable import SceneStreamProtocol

@Suite struct WireTests {
    @Test(arguments: [0, 1, 127, 128, 255, 300, 16383, 16384, UInt64(UInt32.max), UInt64.max])
    func varintRoundTrip(_ v: UInt64) throws {
        var w = WireWriter()
        w.writeVarint(v)
        #expect(w.bytes.count == varintSize(v))
        var r = WireReader(w.bytes, context: "t")
        #expect(try r.readVarint("v") == v)
        try r.expectEnd()
    }

    @Test func varintKnownBytes() {
        var w = WireWriter()
        w.writeVarint(300 as UInt64)
        #expect(w.bytes == [0xAC, 0x02])
    }

    @Test(arguments: [0, -1, 1, -2, 2, Int64.min, Int64.max, -300])
    func zigzagRoundTrip(_ v: Int64) {
        #expect(unzigzag(zigzag(v)) == v)
    }

    @Test func zigzagOrder() {
        #expect([0, -1, 1, -2, 2].map { zigzag($0) } == [0, 1, 2, 3, 4])
    }

    @Test func overlongVarintIsAnError() {
        var r = WireReader([UInt8](repeating: 0x80, count: 11) + [0], context: "t")
        #expect(throws: ProtocolError(.malformedVarint, "t.v")) { try r.readVarint("v") }
    }

    @Test func varintOverflowingTheTenthByte() {
        var r = WireReader([UInt8](repeating: 0xFF, count: 9) + [0x02], context: "t")
        #expect(throws: ProtocolError(.malformedVarint, "t.v")) { try r.readVarint("v") }
    }

    @Test func countsLargerThanTheInputAreRejected() {
        var w = WireWriter()
        w.writeVarint(1_000_000 as UInt64)
        var r = WireReader(w.bytes + [1, 2, 3], context: "t")
        #expect(throws: ProtocolError(.truncated, "t.n")) { try r.readCount("n") }
    }

    @Test func rotationQuantizationRoundTrip() {
        let q = Quantization(positionUnitsPerMetre: 1000, rotationBits: 12)
        for angle in stride(from: -3.0, through: 3.0, by: 0.37) {
            for axis in [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.577, 0.577, 0.577)] {
                let n = (axis.0 * axis.0 + axis.1 * axis.1 + axis.2 * axis.2).squareRoot()
                let orig = Quaternion(axis: (axis.0 / n, axis.1 / n, axis.2 / n), angle: angle)
                let back = q.quaternion(q.rotation(orig))
                let dot = abs(orig.x * back.x + orig.y * back.y + orig.z * back.z + orig.w * back.w)
                #expect(dot > 0.99999, "angle \(angle) axis \(axis)")
                // Re-quantizing a dequantized rotation gives the same rotation (the largest index may differ on ties).
                let again = q.quaternion(q.rotation(back))
                #expect(abs(again.x * back.x + again.y * back.y + again.z * back.z + again.w * back.w) > 0.99999)
            }
        }
    }

    @Test func identityQuantizesToIdentity() {
        #expect(Quantization().rotation(.identity) == .identity)
        #expect(Quantization().position(1.25, -0.0004, 3) == QVec3(1250, 0, 3000))
    }
}
