import SceneStreamProtocol
import Testing

@testable import SceneStreamCore

/// SPEC §4.2, the rule as written: structural ancestors under a zone filter, and a layer filter that is not relaxed
/// for ancestors.
@Suite struct InterestRuleTests {
    func plant() throws -> SceneGraph {
        let g = SceneGraph(sceneId: "t", retainedVersions: 4)
        try g.add(NodeSpec(id: "hall", anchor: "hall", layer: "structure"))
        try g.add(NodeSpec(id: "hall/floor", asset: "floor.gltf"))
        try g.add(NodeSpec(id: "hall/line-1", layer: "equipment", zone: "z1"))
        try g.add(NodeSpec(id: "hall/line-1/robot", asset: "robot.gltf"))
        try g.add(NodeSpec(id: "hall/line-2", layer: "equipment", zone: "z2"))
        try g.add(NodeSpec(id: "hall/line-2/press", asset: "press.gltf"))
        g.commit(timeMs: 1)
        return g
    }

    func ids(_ g: SceneGraph, _ f: InterestFilter) -> Set<String> {
        Set(g.membership(f).members.compactMap { g.id(of: $0) })
    }

    @Test func aZoneFilterKeepsUnzonedAncestorsAsStructureWhateverTheirLayer() throws {
        let g = try plant()
        #expect(ids(g, InterestFilter(zones: ["z1"])) == ["hall", "hall/line-1", "hall/line-1/robot"])
        // Structural nodes pass whatever the layer filter says; the zone's own nodes must pass it.
        #expect(ids(g, InterestFilter(layers: ["equipment"], zones: ["z1"])) == ["hall", "hall/line-1", "hall/line-1/robot"])
        #expect(ids(g, InterestFilter(layers: ["labels"], zones: ["z1"])) == ["hall"])
    }

    @Test func aLayerFilterIsNotRelaxedForAncestors() throws {
        let g = try plant()
        #expect(ids(g, InterestFilter(layers: ["equipment"])).isEmpty)
        #expect(ids(g, InterestFilter(layers: ["structure", "equipment"])) == Set(["hall", "hall/floor", "hall/line-1", "hall/line-1/robot", "hall/line-2", "hall/line-2/press"]))
        #expect(ids(g, InterestFilter(layers: ["structure"])) == ["hall", "hall/floor"])
    }
}
