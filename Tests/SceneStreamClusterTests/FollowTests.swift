import SceneStreamCluster
import SceneStreamCore
import SceneStreamProtocol
import Testing

/// A fan-out node's copy: the owner's unfiltered frames, through the protocol's encoder and decoder, applied to
/// another graph give the same nodes at the same indices and versions.
@Suite struct GraphFollowTests {
    func owner() throws -> SceneGraph {
        let g = SceneGraph(sceneId: "s", retainedVersions: 50)
        try g.add(NodeSpec(id: "hall", anchor: "floor"))
        for k in 0..<6 { try g.add(NodeSpec(id: "hall/m\(k)", translation: (Double(k), 0, 0), zone: k % 2 == 0 ? "a" : "b")) }
        g.commit(timeMs: 1000)
        return g
    }

    struct NotAFrame: Error {}

    func roundTrip(_ f: SceneFrame) throws -> SceneFrame {
        let bytes = try MessageEncoder().encode(.frame(f))
        guard case .frame(let back) = try MessageDecoder().decodeServerMessage(bytes) else { throw NotAFrame() }
        return back
    }

    func same(_ a: SceneGraph, _ b: SceneGraph) {
        #expect(a.version == b.version)
        #expect(a.liveIndices == b.liveIndices)
        for i in a.liveIndices {
            #expect(a[i] == b[i], "node \(i)")
            #expect(a.id(of: i) == b.id(of: i))
        }
    }

    @Test func keyframeThenDeltasGiveTheOwnersGraph() throws {
        let g = try owner()
        let engine = try DeltaEngine(graph: g)
        let copy = SceneGraph(sceneId: "s", retainedVersions: 50)
        try copy.follow(try roundTrip(engine.frame(from: nil, filter: .everything)))
        same(g, copy)
        var base = ClientBaseline(version: g.version, filter: .everything)
        for step in 1...30 {
            // Moves, colour changes, adds and removes with subtrees.
            g.update(UInt32(1 + step % 6)) { $0.translation.x += Int32(step) }
            if step % 5 == 0 { try g.add(NodeSpec(id: "hall/m0/part\(step)", color: UInt32(step))) }
            if step % 7 == 0, let i = g.index(of: "hall/m\(step % 6)") { g.remove(i) }
            g.commit(timeMs: 1000 + UInt64(step) * 33)
            if g.version == base.version { continue }  // nothing changed (a removed node's update): no version
            let f = engine.frame(from: base, filter: .everything)
            #expect(!f.isKeyframe)
            try copy.follow(try roundTrip(f))
            base = ClientBaseline(version: g.version, filter: .everything)
            same(g, copy)
        }
        // The copy serves deltas of its own: a client at an older version of the owner gets one from the copy.
        let copyEngine = try DeltaEngine(graph: copy)
        _ = copyEngine.membership(.everything)
        #expect(copy.oldestRetainedVersion < copy.version)
    }

    @Test func aDeltaThatDoesNotStartAtTheCopysVersionIsRefusedAndChangesNothing() throws {
        let g = try owner()
        let engine = try DeltaEngine(graph: g)
        let copy = SceneGraph(sceneId: "s")
        try copy.follow(try roundTrip(engine.frame(from: nil, filter: .everything)))
        let base1 = ClientBaseline(version: g.version, filter: .everything)
        g.update(1) { $0.color = 7 }
        g.commit(timeMs: 2000)
        _ = engine.membership(.everything)
        let base2 = ClientBaseline(version: g.version, filter: .everything)
        g.update(2) { $0.color = 9 }
        g.commit(timeMs: 2033)
        let skipping = engine.frame(from: base2, filter: .everything)  // base 3, the copy is at 2
        #expect(throws: SceneGraphError.self) { try copy.follow(skipping) }
        #expect(copy.version == base1.version)
        #expect(copy[1]?.color != 7)
        // A keyframe after a gap brings it back, and older baselines become keyframes for its clients.
        try copy.follow(try roundTrip(engine.frame(from: nil, filter: .everything)))
        same(g, copy)
        #expect(copy.baseline(since: base1.version) == nil)
    }

    @Test func aScenesOwnNodesAreReplacedByTheFirstKeyframe() throws {
        let g = try owner()
        g.update(3) { $0.label = "owner's" }
        g.commit(timeMs: 5000)
        let engine = try DeltaEngine(graph: g)
        // A fan-out node loads the plant's scene file but never commits it: the keyframe is what counts.
        let copy = SceneGraph(sceneId: "s")
        try copy.add(NodeSpec(id: "hall", anchor: "floor"))
        try copy.add(NodeSpec(id: "hall/local-only"))
        try copy.follow(try roundTrip(engine.frame(from: nil, filter: .everything)))
        same(g, copy)
        #expect(copy.index(of: "hall/local-only") == nil)
    }
}

@Suite struct FollowStateTests {
    @Test func deltasBeforeTheFirstKeyframeAreSkipped() {
        var s = FollowState()
        #expect(s.decide(keyframe: false, base: 4, version: 5, current: 0) == .skip)
        #expect(s.decide(keyframe: true, base: 0, version: 5, current: 0) == .apply)
        #expect(s.synced)
        #expect(s.decide(keyframe: false, base: 5, version: 6, current: 5) == .apply)
        // The keyframe of a version the copy has is not needed; an old delta (a redelivery) is skipped.
        #expect(s.decide(keyframe: true, base: 0, version: 6, current: 6) == .skip)
        #expect(s.decide(keyframe: false, base: 4, version: 5, current: 6) == .skip)
    }

    @Test func aGapAsksForAResyncAndAKeyframeEndsIt() {
        var s = FollowState()
        _ = s.decide(keyframe: true, base: 0, version: 10, current: 0)
        #expect(s.decide(keyframe: false, base: 12, version: 13, current: 10) == .resync(missedFrom: 11, to: 12))
        #expect(!s.synced && s.gaps == 1)
        #expect(s.decide(keyframe: false, base: 13, version: 14, current: 10) == .skip)
        #expect(s.lag(current: 10) == 4)
        #expect(s.decide(keyframe: true, base: 0, version: 14, current: 10) == .apply)
        #expect(s.decide(keyframe: false, base: 14, version: 15, current: 14) == .apply)
    }

    @Test func aFailedApplyUnsyncs() {
        var s = FollowState()
        _ = s.decide(keyframe: true, base: 0, version: 3, current: 0)
        s.failed()
        #expect(!s.synced)
        #expect(s.decide(keyframe: false, base: 3, version: 4, current: 3) == .skip)
    }
}
