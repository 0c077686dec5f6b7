import SceneStreamCore
import Testing

@testable import SceneStreamOPCUA

/// OPC UA PubSub JSON (Part 14) as gateways send it: every field form, status severities, timestamps, metadata,
/// sequence numbers, mappings, and refusals by reason.
@Suite struct PubSubTests {
    static let t0: UInt64 = 1_767_323_045_678  // 2026-01-02T03:04:05.678Z

    func reader(_ mappings: [PubSubMapping] = [PubSubMapping(twin: "{publisher}/{writer}")]) -> PubSubReader {
        var c = PubSubConfiguration()
        c.mappings = mappings
        return PubSubReader(configuration: c)
    }

    func updates(_ a: [PubSubAction]) -> [PropertyUpdate] {
        a.flatMap { x -> [PropertyUpdate] in if case .updates(let u) = x { return u } else { return [] } }
    }

    func refusals(_ a: [PubSubAction]) -> [String] {
        a.compactMap { x in if case .rejected(let r) = x { return r.code } else { return nil } }
    }

    func data(_ payload: String, seq: Int = 1, writer: String = #""DataSetWriterId": 1, "DataSetWriterName": "pump1""#) -> [UInt8] {
        Array(#"{"MessageId": "m", "MessageType": "ua-data", "PublisherId": "gw1", "WriterGroupName": "line1", "Messages": [{\#(writer), "SequenceNumber": \#(seq), "Timestamp": "2026-01-02T03:04:05.678Z", "MessageType": "ua-keyframe", "Payload": {\#(payload)}}]}"#.utf8)
    }

    @Test func dateTimesToTheMillisecond() {
        #expect(PubSubJSON.dateTimeMs("2026-01-02T03:04:05.678Z") == Self.t0)
        #expect(PubSubJSON.dateTimeMs("2026-01-02T03:04:05Z") == Self.t0 - 678)
        #expect(PubSubJSON.dateTimeMs("2026-01-02T03:04:05.6781234Z") == Self.t0)  // .NET's seven digits
        #expect(PubSubJSON.dateTimeMs("2026-01-02T04:04:05.678+01:00") == Self.t0)
        #expect(PubSubJSON.dateTimeMs("1970-01-01T00:00:00Z") == 0)
        #expect(PubSubJSON.dateTimeMs("2024-02-29T00:00:00Z") == 1_709_164_800_000)
        for bad in ["2026-13-02T03:04:05Z", "2026-01-02 03:04:05Z", "2026-01-02T03:04:05", "1969-12-31T23:59:59Z", "2026-01-02T03:04:05.Z", ""] {
            #expect(PubSubJSON.dateTimeMs(bad) == nil, "\(bad)")
        }
    }

    @Test func everyFieldFormGivesItsValueQualityAndTime() {
        var r = reader()
        let a = r.handle(
            topic: "opcua/json/data/gw1/line1/pump1",
            payload: data(
                #""plain": 21.5, "flag": true, "name": "auto", "rev": {"Type": 11, "Body": 3.25}, "big": {"Type": 8, "Body": "9007199254740993"}, "# +
                    #""compact": {"UaType": 10, "Value": 1.5}, "dv": {"Value": 7, "SourceTimestamp": "2026-01-02T03:04:06Z"}, "# +
                    #""dvRev": {"Value": {"Type": 6, "Body": 8}, "Status": 1083179008}, "dvAzure": {"Value": 9, "StatusCode": {"Code": 2147811328, "Symbol": "BadCommunicationError"}}, "# +
                    #""flat": {"UaType": 11, "Value": 4.5, "Status": {"Code": 1073741824}}"#),
            nowMs: 99)
        #expect(refusals(a) == [])
        let byName = Dictionary(uniqueKeysWithValues: updates(a).map { ($0.property, $0) })
        #expect(byName.count == 10 && updates(a).allSatisfy { $0.twin == "gw1/pump1" })
        #expect(byName["plain"]?.value == .number(21.5) && byName["plain"]?.timestampMs == Self.t0 && byName["plain"]?.quality == .good)
        #expect(byName["flag"]?.value == .bool(true) && byName["name"]?.value == .text("auto"))
        #expect(byName["rev"]?.value == .number(3.25) && byName["big"]?.value == .number(9007199254740992) && byName["compact"]?.value == .number(1.5))
        #expect(byName["dv"]?.value == .number(7) && byName["dv"]?.timestampMs == Self.t0 + 322)  // its SourceTimestamp wins
        #expect(byName["dvRev"]?.quality == .uncertain && byName["dvAzure"]?.quality == .bad && byName["flat"]?.quality == .uncertain)
        #expect(byName["flat"]?.value == .number(4.5))
    }

    @Test func aBadValueWithoutValueMarksWhatIsStoredAndBadFieldsAreCounted() {
        var r = reader()
        let a = r.handle(
            topic: "opcua/json/data/gw1/line1",
            payload: data(#""gone": {"Status": {"Code": 2147811328}}, "nan": {"Type": 11, "Body": "NaN"}, "list": [1, 2], "ok": 1"#), nowMs: 5)
        #expect(a.contains(.mark(twin: "gw1/pump1", property: "gone", quality: .bad, atMs: Self.t0)))
        #expect(refusals(a) == ["bad_field", "bad_field"] && updates(a).map(\.property) == ["ok"])
    }

    @Test func malformedMessagesAreRefusedByReason() {
        var r = reader()
        func code(_ s: String) -> [String] { refusals(r.handle(topic: "opcua/json/data/gw1/line1", payload: Array(s.utf8), nowMs: 1)) }
        #expect(code("{not json") == ["not_json"])
        #expect(code("[1,2]") == ["not_network_message"])
        #expect(code(#"{"MessageType": "ua-status"}"#) == ["not_network_message"])
        #expect(code(#"{"MessageType": "ua-data", "PublisherId": "gw1"}"#) == ["bad_message"])
        #expect(code(#"{"MessageType": "ua-data", "Messages": [{"Payload": {"a": 1}}]}"#) == ["bad_message"])  // no writer
        #expect(code(#"{"MessageType": "ua-data", "Messages": [{"DataSetWriterId": 1, "SequenceNumber": -1, "Payload": {}}]}"#) == ["bad_message"])
        #expect(code(#"{"MessageType": "ua-data", "Messages": [{"DataSetWriterId": 1, "Payload": 5}]}"#) == ["bad_message"])
        #expect(code(#"{"MessageType": "ua-data", "Messages": [7]}"#) == ["bad_message"])
        // Status and connection topics carry no values: not refused, not read.
        #expect(r.handle(topic: "opcua/json/status/gw1", payload: Array("{}".utf8), nowMs: 1) == [])
        #expect(r.handle(topic: "elsewhere/x", payload: Array("{".utf8), nowMs: 1) == [])
    }

    @Test func lenientFormsOfOlderAndNewerEditions() {
        var r = reader([PubSubMapping(publisher: "7", writer: "1000", twin: "press", property: "{field}")])
        // 1.04: numeric PublisherId, string DataSetWriterId, a single Messages object, no MessageType on the DataSetMessage.
        let a = r.handle(
            topic: "opcua/json/data/7/g",
            payload: Array(#"{"MessageId": "x", "MessageType": "ua-data", "PublisherId": 7, "Messages": {"DataSetWriterId": "1000", "Payload": {"t": 1}}}"#.utf8),
            nowMs: 42)
        #expect(updates(a) == [PropertyUpdate(twin: "press", property: "t", value: .number(1), timestampMs: 42)])
        // 1.05 without the NetworkMessage header: a bare DataSetMessage; the publisher from the topic.
        let b = r.handle(topic: "opcua/json/data/7/g", payload: Array(#"{"DataSetWriterId": 1000, "MessageType": "ua-keyframe", "Payload": {"t": 2}}"#.utf8), nowMs: 43)
        #expect(updates(b).map(\.value) == [.number(2)])
    }

    @Test func sequenceNumbersCountGapsDropRepeatsAndFollowARestart() {
        var r = reader()
        func run(_ seq: Int) -> [PubSubAction] { r.handle(topic: "opcua/json/data/gw1/line1", payload: data(#""x": \#(seq)"#, seq: seq), nowMs: 1) }
        #expect(updates(run(100)).count == 1)
        #expect(updates(run(101)).count == 1)
        #expect(run(104).contains(.sequenceGap(missing: 2)))
        #expect(run(104) == [.duplicate(1)])
        #expect(run(102) == [.duplicate(1)])  // late (a few back)
        let restart = run(1)  // far back: the publisher restarted
        #expect(updates(restart).count == 1 && !restart.contains(.duplicate(1)))
        // A keep-alive carries the next number expected: 5 means 2…4 were lost.
        let k = r.handle(topic: "opcua/json/data/gw1/line1", payload: Array(#"{"MessageType": "ua-data", "PublisherId": "gw1", "Messages": [{"DataSetWriterId": 1, "SequenceNumber": 5, "MessageType": "ua-keepalive"}]}"#.utf8), nowMs: 2)
        #expect(k == [.sequenceGap(missing: 3)])
        #expect(run(5).count == 1 && !run(6).contains(.sequenceGap(missing: 1)))
    }

    @Test func metadataNamesWritersAndTypesFields() {
        var r = reader([PubSubMapping(publisher: "gw1", writer: "boiler", twin: "hall-a/{writer}", property: "{field}", scale: 2, offset: 1, periodMs: 500)])
        let md = #"{"MessageId": "m", "MessageType": "ua-metadata", "PublisherId": "gw1", "DataSetWriterId": 3, "MetaData": {"Name": "boiler", "Fields": [{"Name": "temp", "BuiltInType": 11}, {"Name": "on", "BuiltInType": 1}]}}"#
        #expect(r.handle(topic: "opcua/json/metadata/gw1/line1/3", payload: Array(md.utf8), nowMs: 1) == [])
        // Its data carries only the id: the metadata's name maps it (scaled); a String where the metadata says Boolean
        // is refused; a field the metadata does not list is taken as it comes.
        let a = r.handle(topic: "opcua/json/data/gw1/line1", payload: data(#""temp": 10, "on": "yes", "other": 1"#, writer: #""DataSetWriterId": 3"#), nowMs: 1)
        #expect(updates(a) == [
            PropertyUpdate(twin: "hall-a/boiler", property: "other", value: .number(3), timestampMs: Self.t0),
            PropertyUpdate(twin: "hall-a/boiler", property: "temp", value: .number(21), timestampMs: Self.t0),
        ])
        #expect(a.contains(.expect(twin: "hall-a/boiler", property: "temp", periodMs: 500)))
        #expect(refusals(a) == ["wrong_type"])
        // Unmapped writers are refused per field, with the field named.
        var r2 = reader([PubSubMapping(publisher: "other", twin: "x")])
        let b = r2.handle(topic: "opcua/json/data/gw1/line1", payload: data(#""a": 1"#), nowMs: 1)
        guard case .rejected(let why)? = b.first else { Issue.record("no refusal"); return }
        #expect(why.code == "unmapped" && why.detail.contains("gw1/pump1/a"))
    }

    @Test func browsePathFieldsSplitIntoFolderAndLeaf() {
        var r = reader([PubSubMapping(twin: "{publisher}/{writer}/{folder}", property: "{leaf}")])
        let a = r.handle(topic: "opcua/json/data/hall-a/g", payload: data(#""robot-01/j1": 0.5, "arm/robot-02/j6": 1"#, writer: #""DataSetWriterId": 1, "DataSetWriterName": "line-01""#), nowMs: 1)
        #expect(updates(a).map { "\($0.twin) \($0.property)" } == ["gw1/line-01/arm/robot-02 j6", "gw1/line-01/robot-01 j1"])  // the message's PublisherId, not the topic's
    }

    @Test func theFuzzEntryNeverTraps() {
        // Records of arbitrary bytes through one reader (the fuzz target's shape), including a truncated vector.
        var bytes: [UInt8] = []
        for m in [data(#""a": 1"#), Array(#"{"MessageType":"ua-metadata","PublisherId":1,"DataSetWriterId":1,"MetaData":{"Fields":[{"Name":"a"}]}}"#.utf8)] {
            bytes += [UInt8(m.count & 0xFF), UInt8(m.count >> 8)] + m
        }
        bytes += [200, 0, 1, 2, 3]
        #expect(PubSubFuzz.run(bytes) >= 1)
    }
}
