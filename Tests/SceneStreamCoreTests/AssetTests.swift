import Foundation
import SceneStreamProtocol
import SceneStreamReplica
import SceneStreamSimulation
import Testing

@testable import SceneStreamCore

/// The committed plant files are what the generator writes, they load, and every binding finds its node.
@Suite struct AssetTests {
    static let assets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Assets")

    func read(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: Self.assets.appendingPathComponent(path))) }

    @Test(arguments: ["reference", "demo"])
    func committedFilesMatchTheGenerator(_ id: String) throws {
        let layout = id == "demo" ? PlantLayout.demo : PlantLayout.reference
        for (name, text) in layout.files() {
            #expect(try read("plants/\(id)/\(name)") == Array(text.utf8), "\(id)/\(name) is stale: run `scenestream assets`")
        }
    }

    @Test(arguments: ["reference", "demo"])
    func plantLoadsAndEveryBindingResolves(_ id: String) throws {
        let scene = try SceneFile.parse(try read("plants/\(id)/scene.json"), file: "scene.json")
        if id == "reference" { #expect((9_500...11_000).contains(scene.nodes.count)) }
        #expect(scene.anchors.count >= (id == "reference" ? 2 : 1))
        let runtime = try SceneRuntime(
            scene: scene, bindings: try BindingSet.parse(try read("plants/\(id)/bindings.json"), file: "bindings.json"),
            rules: try RuleSet.parse(try read("plants/\(id)/rules.json"), file: "rules.json"))
        var sim = try PlantSimulator(twinsJSON: try read("plants/\(id)/twins.json"), file: "twins.json", startMs: 1_000_000)
        var changed = 0
        for tick in 1...60 {
            _ = runtime.ingest(sim.step(to: 1_000_000 + UInt64(tick) * 100))
            runtime.commit(timeMs: 1_000_000 + UInt64(tick) * 100)
            changed += runtime.graph.lastChangeCount
        }
        #expect(runtime.bindings.unresolved.isEmpty, "\(runtime.bindings.unresolved.prefix(3))")
        #expect(changed > 100)
        // Every asset a node names exists.
        for asset in Set(scene.nodes.map(\.asset)) where !asset.isEmpty {
            #expect(FileManager.default.fileExists(atPath: Self.assets.appendingPathComponent(asset).path), "\(asset)")
        }
    }

    /// A runtime rebuilt at a past moment (checkpoint + the last value of each property after it) shows exactly
    /// the scene the live runtime showed then.
    @Test func rebuiltAtAPastMomentEqualsTheLiveSceneThen() throws {
        let id = "demo"
        let scene = try SceneFile.parse(try read("plants/\(id)/scene.json"), file: "scene.json")
        let runtime = try SceneRuntime(
            scene: scene, bindings: try BindingSet.parse(try read("plants/\(id)/bindings.json"), file: "bindings.json"),
            rules: try RuleSet.parse(try read("plants/\(id)/rules.json"), file: "rules.json"))
        runtime.twins.history.checkpointIntervalMs = 2_000
        var sim = try PlantSimulator(twinsJSON: try read("plants/\(id)/twins.json"), file: "twins.json", startMs: 1_000_000)
        var seen: [UInt64: [WireNode?]] = [:]
        let probes: Set<Int> = [7, 23, 40, 41, 59, 77]
        for tick in 1...80 {
            let now = 1_000_000 + UInt64(tick) * 100
            _ = runtime.ingest(sim.step(to: now))
            runtime.commit(timeMs: now)
            if probes.contains(tick) { seen[now] = (0..<UInt32(scene.nodes.count)).map { runtime.graph[$0] } }
        }
        for (t, nodes) in seen {
            let r = try #require(try runtime.rebuilt(at: t))
            let got = (0..<UInt32(scene.nodes.count)).map { r.graph[$0] }
            let differing = zip(got, nodes).filter { $0 != $1 }.map { $0.0?.name ?? "?" }
            #expect(differing.isEmpty, "scene rebuilt at \(t) differs in \(differing.count) nodes, e.g. \(differing.prefix(3))")
        }
    }

    @Test func simulatorIsDeterministic() throws {
        let twins = Array(PlantLayout.demo.twinsJSON().utf8)
        var a = try PlantSimulator(twinsJSON: twins, file: "t", startMs: 0)
        var b = try PlantSimulator(twinsJSON: twins, file: "t", startMs: 0)
        for t in stride(from: 100 as UInt64, through: 5000, by: 100) { #expect(a.step(to: t) == b.step(to: t)) }
    }

    @Test(arguments: [10, 11])
    func cubeFilesRoundTripInBothLayoutsAndTheLayoutIsDetected(frameCount: Int) throws {
        var sim = CubeSimulation()
        let initial = sim.snapshot()
        var frames: [[CubeState]] = []
        for _ in 0..<frameCount {
            sim.step()
            frames.append(sim.snapshot())
        }
        // 10 frames: 11 blocks (odd: only initial-then-frames); 11 frames: 12 blocks, told apart by content.
        for layout in CubeDataFile.Layout.allCases {
            let bytes = CubeDataFile.serialize(initial: initial, frames: frames, layout: layout)
            #expect(bytes.count == (layout == .pairs ? frameCount * 901 * 64 : (frameCount + 1) * 901 * 32))
            let read = try CubeDataFile.parse(bytes)
            #expect(read.layout == layout)
            #expect(read.initial == initial)
            #expect(read.frames == frames)
            #expect(throws: ConfigError.self) { try CubeDataFile.parse(Array(bytes.dropLast())) }
        }
        #expect(throws: ConfigError.self) { try CubeDataFile.parse(Array(repeating: 0, count: 901 * 32)) }
        for s in frames.last! { #expect(CubeState(s.wireNode(name: "c", parent: 0)) == s) }
    }

    @Test func theCubeSimulationIsDeterministicAndPhysical() throws {
        var a = CubeSimulation(seed: 7)
        var b = CubeSimulation(seed: 7)
        var other = CubeSimulation(seed: 8)
        let start = a.snapshot()
        var differs = false
        var everAwake = 0
        var interacting = 0
        for _ in 0..<600 {
            a.step()
            b.step()
            other.step()
            let s = a.snapshot()
            #expect(s == b.snapshot())
            differs = differs || s != other.snapshot()
            everAwake = max(everAwake, a.awakeCount)
            interacting = max(interacting, s.filter { $0.interacting != 0 }.count)
        }
        #expect(differs, "another seed is another run")
        let end = a.snapshot()
        let q = CubeState.quantization
        let moved = (1..<end.count).filter { end[$0].positionX != start[$0].positionX || end[$0].positionY != start[$0].positionY }
        // The player pushed cubes around (piles, chain reactions), some cubes were hit while others touched them,
        // and most of the field is at rest again.
        #expect(moved.count > 100 && everAwake > 50 && interacting > 5, "moved \(moved.count), awake \(everAwake), interacting \(interacting)")
        #expect(a.awakeCount < 300, "\(a.awakeCount) cubes still awake")
        for (c, s) in end.enumerated().dropFirst() {
            // Nothing sinks into the floor (z up, a small cube's half size 0.25 m at 512 per metre, less rounding).
            #expect(s.positionZ >= 127, "cube \(c) at z \(s.positionZ)")
        }
        // A cube at rest (unchanged over a step, on the floor, after being moved) lies on a face: one of its axes
        // points straight up or down.
        a.step()
        let after = a.snapshot()
        let resting = moved.filter { after[$0] == end[$0] && end[$0].positionZ <= 130 }
        #expect(resting.count > 50)
        for c in resting {
            let r = q.quaternion(end[c].wireNode(name: "c", parent: 0).rotation)
            let up = [r.rotate((1, 0, 0)).2, r.rotate((0, 1, 0)).2, r.rotate((0, 0, 1)).2].map(abs).max()!
            #expect(up > 0.99, "cube \(c) rests tilted: \(up)")
        }
    }
}
