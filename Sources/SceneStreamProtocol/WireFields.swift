/// Field helpers shared by the message bodies (`SPEC.md` §3).
extension WireWriter {
    mutating func writePose(_ p: Pose) {
        writeString(p.anchor)
        writeZigZag(Int64(p.position.x))
        writeZigZag(Int64(p.position.y))
        writeZigZag(Int64(p.position.z))
        SceneFrame.writeRotation(
            RotationCode(isDelta: false, largest: p.rotation.largest, p.rotation.a, p.rotation.b, p.rotation.c), &self)
    }

    mutating func writeOptionalIndex(_ i: UInt32?) { writeVarint(i.map { UInt64($0) + 1 } ?? 0) }
}

extension WireReader {
    mutating func readPose(_ field: String) throws(ProtocolError) -> Pose {
        let anchor = try readString("\(field).anchor")
        let pos = try SceneFrame.readVec(&self, "\(field).position")
        let rot = try SceneFrame.readRotation(&self, "\(field).rotation")
        guard !rot.isDelta else { throw ProtocolError(.invalidValue, "\(context).\(field).rotation") }
        return Pose(anchor: anchor, position: pos, rotation: rot.applied(to: .identity))
    }

    mutating func readOptionalIndex(_ field: String) throws(ProtocolError) -> UInt32? {
        let v = try readVarint(field)
        if v == 0 { return nil }
        guard v - 1 <= UInt64(UInt32.max) else { throw ProtocolError(.invalidValue, "\(context).\(field)") }
        return UInt32(v - 1)
    }

    mutating func readEnum<E: RawRepresentable>(_ field: String, _: E.Type) throws(ProtocolError) -> E where E.RawValue == UInt8 {
        guard let e = E(rawValue: try readU8(field)) else { throw ProtocolError(.invalidValue, "\(context).\(field)") }
        return e
    }
}
