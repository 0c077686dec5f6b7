import SceneStreamProtocol
import SceneStreamReplica
import Testing

@testable import SceneStreamCore

@Suite struct DeltaEngineTests {
    func scene() throws -> (SceneGraph, DeltaEngine) {
        let g = SceneGraph(sceneId: "t", retainedVersions: 8)
        try g.add(NodeSpec(id: "root", anchor: "hall"))
        for k in 0..<20 {
            try g.add(NodeSpec(id: "root/n\(k)", translation: (Double(k), 0, 0), asset: "m.gltf", layer: k % 2 == 0 ? "even" : "odd"))
        }
        g.commit(timeMs: 1)
        return (g, try DeltaEngine(graph: g))
    }

    func apply(_ bytes: [UInt8], to r: inout Replica) throws {
        guard case .frame(let f) = try MessageDecoder().decodeServerMessage(bytes) else { throw ProtocolError(.invalidValue, "not a frame") }
        try r.apply(f)
    }

    func view(_ g: SceneGraph, _ e: DeltaEngine, _ f: InterestFilter) -> [UInt32: WireNode] {
        Dictionary(uniqueKeysWithValues: e.membership(f).members.map { ($0, g[$0]!) })
    }

    /// SPEC §6.7: a removal lists the node and every descendant, in ascending index order (parents first).
    @Test func aRemovalListsEveryDescendantParentsFirst() throws {
        let g = SceneGraph(sceneId: "t", retainedVersions: 8)
        try g.add(NodeSpec(id: "root", anchor: "hall"))
        try g.add(NodeSpec(id: "root/cell"))
        try g.add(NodeSpec(id: "root/keep"))
        try g.add(NodeSpec(id: "root/cell/robot"))
        try g.add(NodeSpec(id: "root/cell/robot/arm"))
        try g.add(NodeSpec(id: "root/cell/robot/arm/tool"))
        g.commit(timeMs: 1)
        let e = try DeltaEngine(graph: g)
        let v = try #require(e.encodedFrame(from: nil, filter: .everything)).version  // a client's keyframe
        let cell = try #require(g.index(of: "root/cell"))
        g.remove(cell)
        g.commit(timeMs: 2)
        let f = e.frame(from: ClientBaseline(version: v, filter: .everything), filter: .everything)
        #expect(!f.isKeyframe)
        let ids = ["root/cell", "root/cell/robot", "root/cell/robot/arm", "root/cell/robot/arm/tool"]
        #expect(f.removed.count == ids.count)
        #expect(f.removed == f.removed.sorted())
        #expect(f.removed.first == cell)
        #expect(g.index(of: "root/keep") != nil && !f.removed.contains(g.index(of: "root/keep")!))
    }

    @Test func keyframeThenDeltasKeepTheReplicaEqual() throws {
        let (g, e) = try scene()
        var r = Replica()
        let k = e.encodedFrame(from: nil, filter: .everything)!
        #expect(k.isKeyframe)
        try apply(k.bytes, to: &r)
        #expect(r.nodes == view(g, e, .everything))
        g.update(3) { $0.translation.x += 7 }
        g.update(4) { $0.label = "hot" }
        g.commit(timeMs: 2)
        let d = e.encodedFrame(from: ClientBaseline(version: k.version, filter: .everything), filter: .everything)!
        #expect(!d.isKeyframe)
        #expect(d.nodeRecords == 2)
        try apply(d.bytes, to: &r)
        #expect(r.nodes == view(g, e, .everything))
        // Nothing new: nothing to send.
        #expect(e.encodedFrame(from: ClientBaseline(version: d.version, filter: .everything), filter: .everything) == nil)
    }

    @Test func clientsInOneGroupShareOneEncoding() throws {
        let (g, e) = try scene()
        let k = e.encodedFrame(from: nil, filter: .everything)!
        g.update(5) { $0.visible = false }
        g.commit(timeMs: 2)
        let before = e.framesEncoded
        var frames: [[UInt8]] = []
        for _ in 0..<1000 { frames.append(e.encodedFrame(from: ClientBaseline(version: k.version, filter: .everything), filter: .everything)!.bytes) }
        #expect(e.framesEncoded == before + 1)
        #expect(e.framesShared >= 999)
        #expect(Set(frames).count == 1)
        // A different group is encoded separately.
        _ = e.encodedFrame(from: ClientBaseline(version: k.version, filter: .everything), filter: InterestFilter(layers: ["even"]))
        #expect(e.framesEncoded == before + 2)
    }

    @Test func versionOneAndVersionTwoClientsOfOneGroupShareTheFrameAndEachEncoding() throws {
        let (g, e) = try scene()
        let k = e.encodedFrame(from: nil, filter: .everything)!
        g.update(5) { $0.visible = false }
        g.update(7) { $0.label = "seven" }
        g.commit(timeMs: 2)
        // The first time version 2 is asked for, the group's frame is computed again (version 1 kept none).
        let first = ClientBaseline(version: k.version, filter: .everything)
        _ = e.encodedFrame(from: first, filter: .everything, version: 1)
        _ = e.encodedFrame(from: first, filter: .everything, version: 2)
        g.update(6) { $0.label = "six" }
        g.commit(timeMs: 3)
        let base = ClientBaseline(version: k.version, filter: .everything)
        let (computed, encoded) = (e.framesComputed, e.framesEncoded)
        var v1: Set<[UInt8]> = [], v2: Set<[UInt8]> = []
        for _ in 0..<50 {
            v1.insert(e.encodedFrame(from: base, filter: .everything, version: 1)!.bytes)
            v2.insert(e.encodedFrame(from: base, filter: .everything, version: 2)!.bytes)
        }
        // From then on: one frame computed, encoded once per protocol version; every client of a version gets the
        // same bytes.
        #expect(e.framesComputed == computed + 1 && e.framesEncoded == encoded + 2)
        #expect(v1.count == 1 && v2.count == 1 && v1 != v2)
        // Both say the same thing.
        let d = try MessageDecoder()
        #expect(try d.decodeServerMessage(v1.first!) == d.decodeServerMessage(v2.first!, version: 2))
        #expect(v2.first![1] == 0, "version-2 frames are never deflated")
    }

    @Test func aServerOfOneProtocolVersionKeepsNoComputedFrames() throws {
        let (g, e) = try scene()
        let k = e.encodedFrame(from: nil, filter: .everything, version: 2)!
        g.update(5) { $0.visible = false }
        g.commit(timeMs: 2)
        let base = ClientBaseline(version: k.version, filter: .everything)
        let computed = e.framesComputed
        for _ in 0..<10 { _ = e.encodedFrame(from: base, filter: .everything, version: 2) }
        #expect(e.framesComputed == computed + 1, "the encoded frame is shared")
        #expect(e.keptFrameCount == 0)
        _ = e.encodedFrame(from: base, filter: .everything, version: 1)
        #expect(e.framesComputed == computed + 2 && e.keptFrameCount == 1)
        // Once version-1 clients are gone, the tick after next keeps nothing again.
        for (k, expected) in [(3, 1), (4, 0)] {
            g.update(5) { $0.visible.toggle() }
            g.commit(timeMs: UInt64(k))
            _ = e.encodedFrame(from: base, filter: .everything, version: 2)
            #expect(e.keptFrameCount == expected, "tick \(k)")
        }
    }

    @Test func interestChangesSendEntriesAndRemovals() throws {
        let (g, e) = try scene()
        let even = InterestFilter(layers: ["", "even"])
        var r = Replica()
        let k = e.encodedFrame(from: nil, filter: even)!
        try apply(k.bytes, to: &r)
        #expect(r.nodes.count == 11)
        let odd = InterestFilter(layers: ["", "odd"])
        let d = e.encodedFrame(from: ClientBaseline(version: k.version, filter: even), filter: odd)!
        #expect(!d.isKeyframe, "an interest change inside the window is a delta, not a keyframe")
        try apply(d.bytes, to: &r)
        #expect(r.nodes == view(g, e, odd))
    }

    @Test func baseOutsideTheWindowGetsAKeyframe() throws {
        let (g, e) = try scene()
        let k = e.encodedFrame(from: nil, filter: .everything)!
        for v in 0..<10 {
            g.update(1) { $0.label = "\(v)" }
            g.commit(timeMs: UInt64(v + 2))
            _ = e.membership(.everything)
        }
        let f = e.encodedFrame(from: ClientBaseline(version: k.version, filter: .everything), filter: .everything)!
        #expect(f.isKeyframe)
    }

    @Test func unchangedNodesCostNothing() throws {
        let (g, e) = try scene()
        let k = e.encodedFrame(from: nil, filter: .everything)!
        g.update(7) { $0.translation.y += 1 }
        g.commit(timeMs: 2)
        let d = e.encodedFrame(from: ClientBaseline(version: k.version, filter: .everything), filter: .everything)!
        // Envelope (2) + version + baseDistance + time + nodeSpace + strings + removed + entered + updated count,
        // index mode, one gap, one mask, three translation deltas.
        #expect(d.bytes.count <= 20, "\(d.bytes.count) bytes for one small change")
    }

    @Test func membershipOfUncommittedChangesIsNotCached() throws {
        let (g, e) = try scene()
        var r = Replica()
        let k = e.encodedFrame(from: nil, filter: .everything)!
        try apply(k.bytes, to: &r)
        // A node added between ticks (a selection marker, an annotation) and looked at before the commit…
        try g.add(NodeSpec(id: "root/n3/~sel-ada", asset: "ring.gltf"))
        _ = e.membership(.everything)
        g.commit(timeMs: 5)
        // …still reaches the client as an entry.
        let d = e.encodedFrame(from: ClientBaseline(version: k.version, filter: .everything), filter: .everything)!
        try apply(d.bytes, to: &r)
        #expect(r.nodes == view(g, e, .everything))
        #expect(r.nodes.values.contains { $0.name == "~sel-ada" })
    }
}
