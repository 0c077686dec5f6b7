import Testing

@testable import SceneStreamCore
@testable import SceneStreamSparkplug

@Suite struct SparkplugTests {
    /// Protobuf bytes written by hand from the Sparkplug B field numbers (not by our encoder).
    enum PB {
        static func varint(_ v: UInt64) -> [UInt8] {
            var v = v, out: [UInt8] = []
            while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
            return out + [UInt8(v)]
        }
        static func field(_ n: UInt64, varint v: UInt64) -> [UInt8] { varint(n << 3) + varint(v) }
        static func field(_ n: UInt64, bytes b: [UInt8]) -> [UInt8] { varint(n << 3 | 2) + varint(UInt64(b.count)) + b }
        static func field(_ n: UInt64, double d: Double) -> [UInt8] {
            varint(n << 3 | 1) + withUnsafeBytes(of: d.bitPattern.littleEndian, Array.init)
        }
        static func metric(name: String? = nil, alias: UInt64? = nil, datatype: UInt64? = nil, _ value: [UInt8]) -> [UInt8] {
            var m: [UInt8] = []
            if let name { m += field(1, bytes: Array(name.utf8)) }
            if let alias { m += field(2, varint: alias) }
            if let datatype { m += field(4, varint: datatype) }
            return field(2, bytes: m + value)
        }
        static func payload(seq: UInt64?, ts: UInt64 = 5000, _ metrics: [UInt8]...) -> [UInt8] {
            field(1, varint: ts) + metrics.flatMap { $0 } + (seq.map { field(3, varint: $0) } ?? [])
        }
    }

    let g = "spBv1.0/hall-a"

    func updates(_ a: [SparkplugAction]) -> [PropertyUpdate] {
        a.flatMap { (x: SparkplugAction) -> [PropertyUpdate] in
            if case .updates(let u) = x { return u }
            return []
        }
    }
    func rejections(_ a: [SparkplugAction]) -> [String] {
        a.compactMap { (x: SparkplugAction) -> String? in
            if case .rejected(let r) = x { return r.code }
            return nil
        }
    }
    func publishes(_ a: [SparkplugAction]) -> [String] {
        a.compactMap { (x: SparkplugAction) -> String? in
            if case .publish(let t, _) = x { return t }
            return nil
        }
    }

    /// An edge node `line-01` with a device `press-01` that has born.
    func born() -> SparkplugHost {
        var h = SparkplugHost()
        _ = h.handle(
            topic: "\(g)/NBIRTH/line-01",
            payload: PB.payload(
                seq: 0, PB.metric(name: "bdSeq", datatype: 8, PB.field(11, varint: 3)),
                PB.metric(name: "Node Control/Rebirth", datatype: 11, PB.field(14, varint: 0)),
                PB.metric(name: "speed", alias: 1, datatype: 10, PB.field(13, double: 1.5))),
            nowMs: 1)
        let a = h.handle(
            topic: "\(g)/DBIRTH/line-01/press-01",
            payload: PB.payload(
                seq: 1, PB.metric(name: "temperature", alias: 10, datatype: 10, PB.field(13, double: 20)),
                PB.metric(name: "running", alias: 11, datatype: 11, PB.field(14, varint: 1)),
                PB.metric(name: "motor/current", alias: 12, datatype: 3, PB.field(10, varint: UInt64(UInt32(bitPattern: -4)))),
                PB.metric(name: "mode", alias: 13, datatype: 12, PB.field(15, bytes: Array("auto".utf8)))),
            nowMs: 2)
        #expect(rejections(a) == [])
        return h
    }

    @Test func topics() {
        #expect(SparkplugTopic("spBv1.0/g/DDATA/n/d") == SparkplugTopic(group: "g", kind: .ddata, node: "n", device: "d"))
        #expect(SparkplugTopic("spBv1.0/g/NDATA/n") == SparkplugTopic(group: "g", kind: .ndata, node: "n"))
        #expect(SparkplugTopic("spBv1.0/STATE/host")?.kind == .state)
        for bad in ["spBv1.0/g/NDATA/n/d", "spBv1.0/g/DDATA/n", "spBv1.0/g/XDATA/n", "spBv1.0//NDATA/n", "spAv1.0/g/NDATA/n", "spBv1.0/g"] {
            #expect(SparkplugTopic(bad) == nil, "\(bad)")
        }
        #expect(SparkplugTopic(group: "g", kind: .ncmd, node: "n").string == "spBv1.0/g/NCMD/n")
    }

    @Test func birthsAndAliasedDataBecomeTwinUpdates() {
        var h = SparkplugHost()
        let nb = h.handle(
            topic: "\(g)/NBIRTH/line-01",
            payload: PB.payload(seq: 0, PB.metric(name: "bdSeq", datatype: 8, PB.field(11, varint: 3)), PB.metric(name: "speed", alias: 1, datatype: 10, PB.field(13, double: 1.5))),
            nowMs: 1)
        #expect(updates(nb) == [PropertyUpdate(twin: "hall-a/line-01", property: "speed", value: .number(1.5), timestampMs: 5000, quality: .good)])
        h = born()
        let d = h.handle(
            topic: "\(g)/DDATA/line-01/press-01",
            payload: PB.payload(
                seq: 2, PB.metric(alias: 10, PB.field(13, double: 93.25)), PB.metric(alias: 11, PB.field(14, varint: 0)),
                PB.metric(alias: 12, PB.field(10, varint: 7)), PB.metric(alias: 13, PB.field(15, bytes: Array("manual".utf8)))),
            nowMs: 3)
        #expect(rejections(d) == [])
        let u = updates(d)
        #expect(u.map(\.twin) == ["hall-a/line-01/press-01", "hall-a/line-01/press-01", "hall-a/line-01/press-01/motor", "hall-a/line-01/press-01"])
        #expect(u.map(\.property) == ["temperature", "running", "current", "mode"])
        #expect(u.map(\.value) == [.number(93.25), .bool(false), .number(7), .text("manual")])
        #expect(u.allSatisfy { $0.timestampMs == 5000 && $0.quality == .good })
        let n = h.handle(topic: "\(g)/NDATA/line-01", payload: PB.payload(seq: 3, PB.metric(alias: 1, PB.field(13, double: 2))), nowMs: 4)
        #expect(updates(n).map(\.value) == [.number(2)])
    }

    @Test func signedIntegersFromTheBirth() {
        var k = born()
        // The birth carried motor/current = -4 as a two's-complement Int32.
        let a = k.handle(
            topic: "\(g)/DBIRTH/line-01/press-02",
            payload: PB.payload(seq: 2, PB.metric(name: "t", alias: 20, datatype: 3, PB.field(10, varint: UInt64(UInt32(bitPattern: -4))))),
            nowMs: 1)
        #expect(updates(a).map(\.value) == [.number(-4)])
    }

    @Test func smallSignedIntegersEitherWay() {
        var h = born()
        let a = h.handle(
            topic: "\(g)/DBIRTH/line-01/press-03",
            payload: PB.payload(
                seq: 2, PB.metric(name: "a", alias: 40, datatype: 1, PB.field(10, varint: 0xFF)),
                PB.metric(name: "b", alias: 41, datatype: 1, PB.field(10, varint: 0xFFFF_FFFF)),
                PB.metric(name: "c", alias: 42, datatype: 2, PB.field(10, varint: 0xFFFE))),
            nowMs: 1)
        #expect(updates(a).map(\.value) == [.number(-1), .number(-1), .number(-2)])
    }

    @Test func aNewNodeBirthMakesItsDevicesStaleUntilTheyAreBornAgain() {
        var h = born()
        let a = h.handle(topic: "\(g)/NBIRTH/line-01", payload: PB.payload(seq: 0, PB.metric(name: "bdSeq", datatype: 8, PB.field(11, varint: 4))), nowMs: 1)
        #expect(a.first == .stale(twins: ["hall-a/line-01/press-01", "hall-a/line-01/press-01/motor"]))
        #expect(rejections(h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 1, PB.metric(alias: 10, PB.field(13, double: 1))), nowMs: 1)) == ["data_before_birth"])
    }

    @Test func sequenceGapAsksForRebirthOnceAndStillApplies() {
        var h = born()
        let a = h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 5, PB.metric(alias: 10, PB.field(13, double: 50))), nowMs: 100)
        #expect(rejections(a) == ["sequence_gap"])
        #expect(publishes(a) == ["spBv1.0/hall-a/NCMD/line-01"])
        #expect(updates(a).map(\.value) == [.number(50)])
        // Another gap within the interval: counted, not asked again.
        let b = h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 9, PB.metric(alias: 10, PB.field(13, double: 51))), nowMs: 200)
        #expect(rejections(b) == ["sequence_gap"] && publishes(b) == [])
        #expect(h.rebirthRequests == 1)
        // seq wraps at 256.
        var w = born()
        for s in UInt64(2)...255 {
            #expect(rejections(w.handle(topic: "\(g)/NDATA/line-01", payload: PB.payload(seq: s, PB.metric(alias: 1, PB.field(13, double: 1))), nowMs: 1)) == [])
        }
        #expect(rejections(w.handle(topic: "\(g)/NDATA/line-01", payload: PB.payload(seq: 0, PB.metric(alias: 1, PB.field(13, double: 1))), nowMs: 1)) == [])
    }

    @Test func duplicateSeqIsDropped() {
        var h = born()
        let p = PB.payload(seq: 2, PB.metric(alias: 10, PB.field(13, double: 60)))
        #expect(updates(h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: p, nowMs: 1)).count == 1)
        let again = h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: p, nowMs: 1)
        #expect(updates(again).isEmpty && rejections(again) == ["duplicate"])
    }

    @Test func dataBeforeBirthIsCountedAndAsksForRebirth() {
        var h = SparkplugHost()
        let a = h.handle(topic: "\(g)/DDATA/line-09/press-01", payload: PB.payload(seq: 4, PB.metric(alias: 10, PB.field(13, double: 1))), nowMs: 1)
        #expect(rejections(a) == ["data_before_birth"] && publishes(a) == ["spBv1.0/hall-a/NCMD/line-09"] && updates(a).isEmpty)
        // A node that has born but a device that has not.
        var b = born()
        let d = b.handle(topic: "\(g)/DDATA/line-01/press-07", payload: PB.payload(seq: 2, PB.metric(alias: 10, PB.field(13, double: 1))), nowMs: 1)
        #expect(rejections(d) == ["data_before_birth"] && updates(d).isEmpty)
    }

    @Test func deathsMakeTwinsStale() {
        var h = born()
        let dd = h.handle(topic: "\(g)/DDEATH/line-01/press-01", payload: PB.payload(seq: 2), nowMs: 1)
        #expect(dd == [.stale(twins: ["hall-a/line-01/press-01", "hall-a/line-01/press-01/motor"])])
        // DDATA after DDEATH is data before (re)birth.
        #expect(rejections(h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 3, PB.metric(alias: 10, PB.field(13, double: 1))), nowMs: 1)) == ["data_before_birth"])
        var n = born()
        // An NDEATH from an older MQTT session (other bdSeq) is ignored; the matching one kills node and devices.
        #expect(n.handle(topic: "\(g)/NDEATH/line-01", payload: PB.payload(seq: nil, PB.metric(name: "bdSeq", datatype: 8, PB.field(11, varint: 2))), nowMs: 1) == [])
        let nd = n.handle(topic: "\(g)/NDEATH/line-01", payload: PB.payload(seq: nil, PB.metric(name: "bdSeq", datatype: 8, PB.field(11, varint: 3))), nowMs: 1)
        #expect(nd == [.stale(twins: ["hall-a/line-01", "hall-a/line-01/press-01", "hall-a/line-01/press-01/motor"])])
        #expect(rejections(n.handle(topic: "\(g)/NDATA/line-01", payload: PB.payload(seq: 2, PB.metric(alias: 1, PB.field(13, double: 1))), nowMs: 1)) == ["data_before_birth"])
    }

    @Test func aDeviceDeathWithoutSeqStillMarksItsTwinsStale() {
        // mqtt-spb-wrapper 2.1.2 sends DDEATH with no seq and no timestamp; the device is gone either way.
        var h = born()
        let dd = h.handle(topic: "\(g)/DDEATH/line-01/press-01", payload: PB.payload(seq: nil), nowMs: 9)
        #expect(dd == [.stale(twins: ["hall-a/line-01/press-01", "hall-a/line-01/press-01/motor"])])
        // Said once: a second one (the will after an explicit death) changes nothing.
        #expect(h.handle(topic: "\(g)/DDEATH/line-01/press-01", payload: PB.payload(seq: nil), nowMs: 10) == [])
        // Other messages still need their seq.
        #expect(rejections(h.handle(topic: "\(g)/NDATA/line-01", payload: PB.payload(seq: nil), nowMs: 11)) == ["malformed_payload"])
    }

    @Test func aDataNameThatIsNotTheBirthsIsRefusedNamingTheBirthsName() {
        var h = born()
        let a = h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 2, PB.metric(name: "current", PB.field(10, varint: 1))), nowMs: 1)
        #expect(rejections(a) == ["unknown_metric"])
        guard case .rejected(let r)? = a.first else { Issue.record("no rejection"); return }
        #expect("\(r)".contains("it has \"motor/current\""))
    }

    @Test func strippedBirthPrefixesNameTheTwinAndMatchTheDataNames() {
        // mqtt-spb-wrapper's births say DATA/temperature and CMD/Node Control/Rebirth; its data says temperature.
        var c = SparkplugConfiguration()
        c.stripPrefixes = ["DATA/", "CMD/"]
        var h = SparkplugHost(configuration: c)
        let nb = h.handle(
            topic: "\(g)/NBIRTH/line-01",
            payload: PB.payload(seq: 0, PB.metric(name: "bdSeq", datatype: 8, PB.field(11, varint: 1)), PB.metric(name: "CMD/Node Control/Rebirth", datatype: 11, PB.field(14, varint: 0))),
            nowMs: 1)
        #expect(nb == [])  // the control metric is the host's own, not a twin
        _ = h.handle(topic: "\(g)/DBIRTH/line-01/press-01", payload: PB.payload(seq: 1, PB.metric(name: "DATA/temperature", datatype: 10, PB.field(13, double: 20))), nowMs: 2)
        let d = h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 2, PB.metric(name: "temperature", datatype: 10, PB.field(13, double: 21))), nowMs: 3)
        #expect(updates(d).map(\.twin) == ["hall-a/line-01/press-01"] && updates(d).map(\.property) == ["temperature"] && rejections(d) == [])
        // Its own full name works too.
        let e = h.handle(topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 3, PB.metric(name: "DATA/temperature", datatype: 10, PB.field(13, double: 22))), nowMs: 4)
        #expect(updates(e).map(\.value) == [.number(22)])
    }

    @Test func badInputIsRefusedWithAReason() {
        var h = born()
        #expect(rejections(h.handle(topic: "\(g)/NDATA/line-01", payload: [0xFF, 0xFF, 0xFF], nowMs: 1)) == ["malformed_payload"])
        #expect(rejections(h.handle(topic: "\(g)/NDATA/line-01", payload: PB.payload(seq: nil), nowMs: 1)) == ["malformed_payload"])
        #expect(rejections(h.handle(topic: "spBv1.0/hall-a/NDATA", payload: [], nowMs: 1)) == ["malformed_topic"])
        // Wrong type for the birth's datatype (a string for a Double), an unknown alias, an unsupported datatype.
        let a = h.handle(
            topic: "\(g)/DDATA/line-01/press-01",
            payload: PB.payload(
                seq: 2, PB.metric(alias: 10, PB.field(15, bytes: Array("hot".utf8))), PB.metric(alias: 99, PB.field(13, double: 1)),
                PB.metric(alias: 11, PB.field(14, varint: 1))),
            nowMs: 1)
        #expect(rejections(a) == ["wrong_type", "unknown_alias"])
        // A data message that changes the birth's datatype is refused too.
        let c = h.handle(
            topic: "\(g)/DDATA/line-01/press-01", payload: PB.payload(seq: 3, PB.metric(alias: 10, datatype: 12, PB.field(15, bytes: Array("hot".utf8)))), nowMs: 1)
        #expect(rejections(c) == ["wrong_type"] && updates(c).isEmpty)
        #expect(updates(a).map(\.value) == [.bool(true)])  // the good metric in the same message still counts
        let b = h.handle(
            topic: "\(g)/DBIRTH/line-01/cam", payload: PB.payload(seq: 4, PB.metric(name: "image", alias: 30, datatype: 17, PB.field(16, bytes: [1, 2]))), nowMs: 1)
        #expect(rejections(b) == ["unsupported_datatype"])
        // Other hosts' STATE and commands are not data.
        #expect(h.handle(topic: "spBv1.0/STATE/other", payload: Array("{\"online\":true}".utf8), nowMs: 1) == [])
    }

    /// The rebirth request, byte for byte (field numbers from the Sparkplug B specification).
    @Test func rebirthRequestBytes() {
        let metric = PB.field(1, bytes: Array("Node Control/Rebirth".utf8)) + PB.field(3, varint: 1000) + PB.field(4, varint: 11) + PB.field(14, varint: 1)
        #expect(SparkplugHost.rebirthRequest(nowMs: 1000) == PB.field(1, varint: 1000) + PB.field(2, bytes: metric))
        #expect(SparkplugHost.statePayload(online: false, timestampMs: 7) == Array("{\"online\":false,\"timestamp\":7}".utf8))
    }

    /// What our builder writes decodes in the host the same way as the hand-written bytes.
    @Test func builderRoundTrip() {
        var h = SparkplugHost()
        var b = SparkplugPayloadBuilder(seq: 0, timestampMs: 9)
        b.add(name: "bdSeq", uint64: 0)
        b.add(name: "a/b", alias: 1, datatype: .double, value: .number(3))
        b.add(name: "on", alias: 2, datatype: .boolean, value: .bool(true))
        let u = updates(h.handle(topic: "\(g)/NBIRTH/n", payload: b.bytes(), nowMs: 1))
        #expect(u == [
            PropertyUpdate(twin: "hall-a/n/a", property: "b", value: .number(3), timestampMs: 9, quality: .good),
            PropertyUpdate(twin: "hall-a/n", property: "on", value: .bool(true), timestampMs: 9, quality: .good),
        ])
    }
}
