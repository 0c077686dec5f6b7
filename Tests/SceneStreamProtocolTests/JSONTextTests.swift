import Foundation
import Testing

@testable import SceneStreamProtocol

/// The fast JSON writer says the same as Foundation's for every description (vectors, frames).
@Suite struct JSONTextTests {
    /// Both texts, parsed and written again by Foundation, are the same bytes.
    func same(_ v: Any) throws -> Bool {
        func canonical(_ text: Data) throws -> Data {
            try JSONSerialization.data(withJSONObject: JSONSerialization.jsonObject(with: text, options: [.fragmentsAllowed]), options: [.sortedKeys, .fragmentsAllowed])
        }
        return try canonical(Data(JSONText.serialize(v))) == canonical(JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .fragmentsAllowed]))
    }

    @Test func everyVectorDescribesTheSame() throws {
        for v in ProtocolVectors.all {
            let d = v.server.map { MessageDescription.describe($0) } ?? v.client.map { MessageDescription.describe($0) } ?? [:]
            #expect(try same(d), "\(v.name)")
        }
    }

    @Test func stringsAreEscaped() throws {
        let s = "a\"b\\c\nd\te\u{1}f/é🙂"
        #expect(try same(["k": s, "n": NSNull(), "x": [1, 2], "b": true, "d": 1.5] as [String: Any]))
        #expect(String(decoding: JSONText.serialize(["b": 1, "a": [Int]()] as [String: Any]), as: UTF8.self) == #"{"a":[],"b":1}"#)
        let none: Int? = nil
        #expect(String(decoding: JSONText.serialize(["p": none as Any]), as: UTF8.self) == #"{"p":null}"#)
    }
}
