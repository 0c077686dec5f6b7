import SceneStreamProtocol
import Testing

@testable import SceneStreamSessions

/// Room joins and leaves as member-list deltas: the newcomer gets the whole list, everyone else only the change.
@Suite struct RoomRosterTests {
    func member(_ user: String, _ device: DeviceKind = .desktop) -> Member {
        Member(userId: user, displayName: user, device: device, role: .participant, color: 0x3A7BD5FF)
    }

    @Test func joinGivesTheNewcomerItsStateAndOthersADelta() {
        var r = RoomRoster(capacity: 10)
        r.set("s-1", member("ana"))
        _ = r.takeChanges()
        r.set("s-2", member("bob"))
        let c = r.takeChanges()
        #expect(c.fullState == ["s-2"])
        #expect(c.delta == [MemberChange(userId: "bob", members: [member("bob")])])
        #expect(r.members() == [member("ana"), member("bob")])
        // Nothing more until something changes.
        #expect(r.takeChanges().isEmpty)
    }

    @Test func leaveIsAnEmptyEntryForTheUser() {
        var r = RoomRoster(capacity: 10)
        r.set("s-1", member("ana"))
        r.set("s-2", member("bob"))
        _ = r.takeChanges()
        r.set("s-2", nil)
        let c = r.takeChanges()
        #expect(c.fullState.isEmpty && c.delta == [MemberChange(userId: "bob", members: [])])
        #expect(!r.contains(user: "bob") && r.count == 1)
    }

    @Test func deviceSwitchIsOneChangeNotALeaveAndAJoin() {
        var r = RoomRoster(capacity: 10)
        r.set("s-1", member("ana", .mobile))
        _ = r.takeChanges()
        r.set("s-1", nil)
        r.set("s-1", member("ana", .headset))
        let c = r.takeChanges()
        #expect(c.delta == [MemberChange(userId: "ana", members: [member("ana", .headset)])])
    }

    @Test func oneUserWithTwoSessionsIsListedWhole() {
        var r = RoomRoster(capacity: 10)
        r.set("s-1", member("ana", .mobile))
        r.set("s-2", member("ana", .desktop))
        _ = r.takeChanges()
        r.set("s-1", nil)
        #expect(r.takeChanges().delta == [MemberChange(userId: "ana", members: [member("ana", .desktop)])])
        #expect(r.contains(user: "ana"))
    }

    @Test func sameEntryAgainIsNoChange() {
        var r = RoomRoster(capacity: 10)
        r.set("s-1", member("ana"))
        _ = r.takeChanges()
        r.set("s-1", member("ana"))
        #expect(r.takeChanges().isEmpty)
    }

    @Test func ownStateChangeGoesOnlyToThatSession() {
        var r = RoomRoster(capacity: 10)
        r.set("s-1", member("ana"))
        r.set("s-2", member("bob"))
        _ = r.takeChanges()
        r.stateChanged("s-1")
        r.stateChanged("s-9")  // not a member: nothing to send
        let c = r.takeChanges()
        #expect(c.fullState == ["s-1"] && c.delta.isEmpty)
    }

    @Test func capacityRefusesNewcomersOnly() {
        var r = RoomRoster(capacity: 2)
        r.set("s-1", member("ana"))
        r.set("s-2", member("bob"))
        #expect(!r.hasRoom(for: "s-3"))
        #expect(r.hasRoom(for: "s-1"))
        r.set("s-1", nil)
        #expect(r.hasRoom(for: "s-3"))
    }

    @Test func thousandJoinsCostOneDeltaEachNotTheList() {
        // Joins in one tick come out as one delta of the users that joined, with each user's entries only.
        var r = RoomRoster(capacity: 2000)
        for k in 0..<1000 { r.set("s-\(k)", member("u\(k)")) }
        let c = r.takeChanges()
        #expect(c.delta.count == 1000 && c.delta.allSatisfy { $0.members.count == 1 })
        #expect(c.fullState.count == 1000)
        r.set("s-1000", member("u1000"))
        let next = r.takeChanges()
        #expect(next.delta.count == 1 && next.fullState == ["s-1000"])
        #expect(r.sessionIds().count == 1001)
    }
}
