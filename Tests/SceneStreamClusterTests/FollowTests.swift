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
    func key(_ v: UInt64) -> SceneFrame {
        SceneFrame(kind: .keyframe(sceneId: "s", quantization: Quantization()), version: v, timeMs: v, nodeSpace: 0)
    }

    func delta(_ base: UInt64, _ v: UInt64) -> SceneFrame { SceneFrame(kind: .delta(base: base), version: v, timeMs: v, nodeSpace: 0) }

    /// Runs the machine like the server does, "applying" a frame by moving to its version; returns the versions
    /// applied and the catch-ups asked for.
    func run(_ s: inout FollowState, _ current: inout UInt64) -> (applied: [UInt64], catchUps: [FollowState.Step]) {
        var applied: [UInt64] = []
        var asked: [FollowState.Step] = []
        while let step = s.step(current: current) {
            switch step {
            case .apply(let f):
                current = f.version
                applied.append(f.version)
            case .catchUp: asked.append(step)
            }
        }
        return (applied, asked)
    }

    @Test func deltasBeforeTheFirstKeyframeWaitAndThoseAfterItApply() {
        var s = FollowState()
        var v: UInt64 = 1
        s.catchUpStarted()
        // Live deltas arrive before the catch-up's keyframe: held, then applied after it; older ones dropped.
        s.offer(delta(5, 6))
        s.offer(delta(6, 7))
        #expect(run(&s, &v).applied == [])
        s.offer(key(5))
        s.offer(delta(4, 5))
        #expect(run(&s, &v).applied == [5, 6, 7])
        #expect(s.synced && !s.catchingUp)
        // A keyframe of a version the copy has is not needed; a redelivered delta is dropped.
        s.offer(key(7))
        s.offer(delta(6, 7))
        s.offer(delta(7, 8))
        #expect(run(&s, &v).applied == [8])
    }

    @Test func aGapAsksForOneCatchUpAndTheStreamsCommitsFillIt() {
        var s = FollowState()
        var v: UInt64 = 0
        s.offer(key(10))
        _ = run(&s, &v)
        s.offer(delta(12, 13))
        s.offer(delta(13, 14))
        let r = run(&s, &v)
        #expect(r.applied == [] && r.catchUps == [.catchUp(from: 11, to: 12)])
        #expect(!s.synced && s.gaps == 1 && s.lag(current: v) == 4)
        // The catch-up reads back the last keyframe (10) and the commits after it; live ones keep coming.
        s.offer(delta(14, 15))
        s.offer(key(10))
        for k in 10..<13 { s.offer(delta(UInt64(k), UInt64(k + 1))) }
        // The keyframe of the copy's own version makes it whole again; the stream's commits and the held live ones
        // follow in version order.
        #expect(run(&s, &v).applied == [11, 12, 13, 14, 15])
        #expect(s.synced && !s.catchingUp)
    }

    @Test func aNewerKeyframeResyncsAndHeldDeltasFollow() {
        var s = FollowState()
        var v: UInt64 = 0
        s.offer(key(10))
        _ = run(&s, &v)
        s.offer(delta(12, 13))
        _ = run(&s, &v)
        s.offer(delta(13, 14))
        s.offer(key(12))
        #expect(run(&s, &v).applied == [12, 13, 14])
        #expect(s.synced)
    }

    @Test func aFailedApplyAsksForOneCatchUp() {
        var s = FollowState()
        var v: UInt64 = 0
        s.offer(key(3))
        _ = run(&s, &v)
        let first = s.failed()
        let second = s.failed()
        #expect(first && !second)  // one catch-up at a time
        #expect(!s.synced)
        s.offer(delta(3, 4))
        #expect(run(&s, &v).applied == [])
        s.catchUpFailed()
        s.offer(key(5))
        #expect(run(&s, &v).applied == [5])
    }
}
