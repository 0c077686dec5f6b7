import Testing

@testable import SceneStreamServer

/// Users in one room get different colours while the palette lasts; a user keeps theirs on every device.
@Suite struct PresenceColourTests {
    @Test func twoUsersWhoseNamesHashToOneColourStillGetTwo() throws {
        // Find two users whose first choice is the same colour (what put two users in one colour before).
        var first: [Int: String] = [:]
        var pair: (String, String)?
        for k in 0..<1000 {
            let u = "user-\(k)"
            let start = Session.paletteStart(u)
            if let other = first[start] { pair = (other, u); break }
            first[start] = u
        }
        let (a, b) = try #require(pair)
        let colourA = Session.distinctColor(for: a, taken: [:])
        let colourB = Session.distinctColor(for: b, taken: [a: colourA])
        #expect(colourA == Session.palette[Session.paletteStart(a)])
        #expect(colourB != colourA)
        #expect(Session.distinctColor(for: a, taken: [a: colourA, b: colourB]) == colourA, "a second device keeps the user's colour")
    }

    @Test func everyoneDiffersUntilThePaletteRunsOut() {
        var taken: [String: UInt32] = [:]
        for k in 0..<Session.palette.count { taken["u\(k)"] = Session.distinctColor(for: "u\(k)", taken: taken) }
        #expect(Set(taken.values).count == Session.palette.count)
        // The thirteenth user shares a colour: their own first choice.
        #expect(Session.distinctColor(for: "late", taken: taken) == Session.palette[Session.paletteStart("late")])
    }
}
