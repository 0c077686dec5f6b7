import Foundation
import SceneStreamProtocol
import Testing

@testable import SceneStreamCore

/// The site's anchor registry: what an admin may set, how it is sent, how it is stored.
@Suite struct AnchorTests {
    func parse(_ body: String, id: String = "yard") throws(AnchorError) -> AnchorRegistry.Anchor {
        try AnchorRegistry.parse(body: Array(body.utf8), id: id, declared: ["hall-a", "yard"], by: "boss", nowMs: 42)
    }

    @Test func aGoodBodyIsNormalizedAndSentInMillimetresAndMillionths() throws {
        let a = try parse(#"{"position": [12.5, 0, -3.25], "rotation": [0, 2, 0, 2], "handles": {"webxr": "b1", "openxr": "6f1c"}}"#)
        #expect(a.updatedBy == "boss" && a.updatedMs == 42)
        #expect(abs(a.rotation[1] - 0.5.squareRoot()) < 1e-12 && abs(a.rotation[3] - 0.5.squareRoot()) < 1e-12)
        var r = AnchorRegistry()
        r.set(a)
        r.set(try parse(#"{"position": [0, 0, 0]}"#, id: "hall-a"))
        let records = r.records
        #expect(records.map(\.id) == ["hall-a", "yard"])
        #expect(records[0].rotation == SIMD4(0, 0, 0, 1_000_000))
        #expect(records[1].position == QVec3(12_500, 0, -3_250) && records[1].rotation == SIMD4(0, 707_107, 0, 707_107))
        #expect(records[1].handles.map(\.platform) == ["openxr", "webxr"])
        #expect(r.remove("hall-a") && !r.remove("hall-a") && r.records.map(\.id) == ["yard"])
    }

    @Test(arguments: [
        (#"{"position": [1, 2, 3]}"#, "nowhere", "unknown_anchor", "declares no anchor 'nowhere' (it declares: hall-a, yard)"),
        (#"[1]"#, "yard", "bad_anchor", "not a JSON object"),
        (#"{"position": [1, 2]}"#, "yard", "bad_anchor", "position: expected [x, y, z]"),
        (#"{"position": [1, 2, 200000]}"#, "yard", "bad_anchor", "within 100 km"),
        (#"{"position": [1, 2, 3], "rotation": [0, 0, 0, 0]}"#, "yard", "bad_anchor", "rotation: expected a quaternion"),
        (#"{"position": [1, 2, 3], "rotation": [0, 0, 1]}"#, "yard", "bad_anchor", "rotation: expected a quaternion"),
        (#"{"position": [1, 2, 3], "pose": 1}"#, "yard", "bad_anchor", "pose: unknown key"),
        (#"{"position": [1, 2, 3], "handles": {"Open XR": "x"}}"#, "yard", "bad_anchor", "handles.Open XR: a platform is"),
        (#"{"position": [1, 2, 3], "handles": {"webxr": ""}}"#, "yard", "bad_anchor", "handles.webxr: expected 1–512 bytes"),
        (#"{"position": [1, 2, 3], "handles": {"webxr": 5}}"#, "yard", "bad_anchor", "handles an object of strings"),
    ])
    func badBodiesAreRefusedWithTheReason(body: String, id: String, code: String, reason: String) {
        #expect {
            try parse(body, id: id)
        } throws: { e in
            guard let e = e as? AnchorError else { return false }
            return e.code == code && e.reason.contains(reason)
        }
    }

    @Test func recordsAreCanonicalSortedByUTF8BytesWithWNotNegative() throws {
        var r = AnchorRegistry()
        // "Z" (0x5A) before "a" (0x61) before "é" (0xC3 0xA9): byte order, whatever Swift's string order says.
        for id in ["é", "a", "Z"] { r.set(try AnchorRegistry.parse(body: Array(#"{"position": [0, 0, 0], "rotation": [0, -1, 0, -1]}"#.utf8), id: id, declared: ["é", "a", "Z"], by: "x", nowMs: 1)) }
        #expect(r.records.map(\.id) == ["Z", "a", "é"])
        // −q is q: sent with w ≥ 0.
        #expect(r.records[0].rotation == SIMD4(0, 707_107, 0, 707_107))
        #expect(r.declared(["a"]).records.map(\.id) == ["a"])
    }

    @Test func aHandEditedFileIsCheckedLikeAPut() {
        let bad = #"{"format": "scenestream.anchors/1", "anchors": [{"id": "yard", "position": [1, 2], "rotation": [0, 0, 0, 1], "handles": {}, "updatedMs": 1, "updatedBy": "x"}]}"#
        do {
            _ = try AnchorRegistry(file: Array(bad.utf8), path: "data/anchors-demo.json")
            Issue.record("a position of two numbers was read")
        } catch {
            #expect("\(error)".contains("data/anchors-demo.json") && "\(error)".contains("anchors[0]") && "\(error)".contains("position"))
        }
    }

    @Test func theStoredFileRoundTripsAndABadOneSaysWhere() throws {
        var r = AnchorRegistry()
        r.set(try parse(#"{"position": [1, 2, 3], "handles": {"marker": "qr:1"}}"#))
        let back = try AnchorRegistry(file: r.fileBytes(), path: "anchors.json")
        #expect(back == r)
        #expect(throws: ConfigError.self) { try AnchorRegistry(file: Array(#"{"format": "other/1", "anchors": []}"#.utf8), path: "a.json") }
        do {
            _ = try AnchorRegistry(file: Array("{".utf8), path: "data/anchors-demo.json")
            Issue.record("a broken file was read")
        } catch {
            #expect("\(error)".contains("data/anchors-demo.json") && "\(error)".contains("not an anchors file"))
        }
    }
}
