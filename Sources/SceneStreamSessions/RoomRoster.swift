import SceneStreamProtocol

/// A room's members (one entry per session whose device is subscribed) and what changed since the room was last
/// told. Joins, leaves and device switches are kept as per-user changes, so each tick the room gets one
/// `roomMembers` delta naming only those users — O(changes), not O(n) lists to O(n) members — and a session whose
/// own state changed gets its whole `sessionState`. Pure.
public struct RoomRoster: Sendable {
    /// What the room must be told.
    public struct Changes: Sendable, Equatable {
        /// Sessions (members) that get their whole state, member list included.
        public var fullState: Set<String>
        /// For each user whose entries changed, their entries now (empty: the user left), by user id.
        public var delta: [MemberChange]
        /// Whether there is nothing to tell.
        public var isEmpty: Bool { fullState.isEmpty && delta.isEmpty }
    }

    /// Sessions at most (a newcomer over it is refused; members are never pushed out).
    public let capacity: Int
    private var entries: [String: Member] = [:]
    private var sessionsByUser: [String: Set<String>] = [:]
    private var sorted: [String]?
    private var changedUsers: Set<String> = []
    private var changedStates: Set<String> = []

    /// An empty room of `capacity` sessions.
    public init(capacity: Int) { self.capacity = capacity }

    /// Members now.
    public var count: Int { entries.count }

    /// Whether session `id` is a member.
    public func contains(session id: String) -> Bool { entries[id] != nil }

    /// Whether user `id` has a member session.
    public func contains(user id: String) -> Bool { sessionsByUser[id] != nil }

    /// Whether session `id` may join: it is in already, or there is a free place.
    public func hasRoom(for id: String) -> Bool { entries[id] != nil || entries.count < capacity }

    /// Member session ids in a stable order (by id).
    public mutating func sessionIds() -> [String] {
        if let sorted { return sorted }
        let s = entries.keys.sorted()
        sorted = s
        return s
    }

    /// The member list, in ``sessionIds()`` order.
    public mutating func members() -> [Member] { sessionIds().compactMap { entries[$0] } }

    /// Sets session `id`'s entry (nil: not a member). A join, a leave or a changed entry (device, name) is a change
    /// for its user; a joining session also gets its whole state.
    public mutating func set(_ id: String, _ member: Member?) {
        let old = entries[id]
        guard old != member else { return }
        if let old {
            sessionsByUser[old.userId]?.remove(id)
            if sessionsByUser[old.userId]?.isEmpty == true { sessionsByUser[old.userId] = nil }
            changedUsers.insert(old.userId)
        }
        entries[id] = member
        if let member {
            sessionsByUser[member.userId, default: []].insert(id)
            changedUsers.insert(member.userId)
            if old == nil { changedStates.insert(id) }
        }
        if (old == nil) != (member == nil) { sorted = nil }
        if member == nil { changedStates.remove(id) }
    }

    /// Session `id`'s own state changed (selection, follow, takeover): its devices get the whole state.
    public mutating func stateChanged(_ id: String) {
        if entries[id] != nil { changedStates.insert(id) }
    }

    /// What changed since the last call, and forgets it.
    public mutating func takeChanges() -> Changes {
        guard !changedUsers.isEmpty || !changedStates.isEmpty else { return Changes(fullState: [], delta: []) }
        let delta = changedUsers.sorted().map { user in
            MemberChange(userId: user, members: (sessionsByUser[user] ?? []).sorted().compactMap { entries[$0] })
        }
        let full = changedStates
        changedUsers.removeAll(keepingCapacity: true)
        changedStates.removeAll(keepingCapacity: true)
        return Changes(fullState: full, delta: delta)
    }
}
