import SceneStreamProtocol

/// The part of an interest that decides which nodes a client sees. Clients with equal filters share frames.
public struct InterestFilter: Hashable, Sendable {
    /// Only nodes with an asset whose anchor-frame position is inside this box; groups are never culled.
    public var region: Region?
    /// Only nodes whose (inherited) layer is one of these; empty for all.
    public var layers: Set<String>
    /// Only nodes whose (inherited) zone is one of these; empty for all.
    public var zones: Set<String>

    /// Creates a filter; the default sees the whole scene.
    public init(region: Region? = nil, layers: Set<String> = [], zones: Set<String> = []) {
        self.region = region
        self.layers = layers
        self.zones = zones
    }

    /// Everything.
    public static let everything = InterestFilter()

    /// The filter part of a subscribe message.
    public init(_ spec: InterestSpec) {
        self.init(region: spec.region, layers: Set(spec.layers), zones: Set(spec.zones))
    }
}

extension SceneGraph {
    /// The nodes `filter` lets through at the current version.
    ///
    /// A node is in when its parent is in (or it is a root), its inherited layer and zone pass, and, with a region,
    /// either it has no asset or its position in its anchor's frame is inside the region. With a zone filter, the
    /// unzoned ancestors of nodes in those zones are in too (as structure, whatever their layer), so that a zone
    /// deep in the tree keeps its place in the anchor's frame; nothing in another zone is.
    public func membership(_ filter: InterestFilter) -> Bitset {
        let n = nodes.count
        var out = Bitset(count: n)
        var layer = [String](repeating: "", count: n)
        var zone = [String](repeating: "", count: n)
        let region = filter.region
        var anchorOf = region == nil ? [] : [String](repeating: "", count: n)
        var pos = region == nil ? [] : [(Double, Double, Double)](repeating: (0, 0, 0), count: n)
        var rot = region == nil ? [] : [Quaternion](repeating: .identity, count: n)
        var scl = region == nil ? [] : [(Double, Double, Double)](repeating: (1, 1, 1), count: n)
        let q = quantization
        // With a zone filter: which unzoned nodes have a node of an allowed zone below them.
        var structural = [Bool]()
        if !filter.zones.isEmpty {
            var effZone = [String](repeating: "", count: n)
            for i in 0..<n {
                guard let node = nodes[i] else { continue }
                effZone[i] = node.zone.isEmpty ? (node.parent.map { effZone[Int($0)] } ?? "") : node.zone
            }
            structural = [Bool](repeating: false, count: n)
            var below = [Bool](repeating: false, count: n)
            for i in stride(from: n - 1, through: 0, by: -1) {
                guard let node = nodes[i] else { continue }
                let allowedHere = filter.zones.contains(effZone[i])
                if let p = node.parent, below[i] || allowedHere { below[Int(p)] = true }
                structural[i] = effZone[i].isEmpty && below[i]
            }
        }
        for i in 0..<n {
            guard let node = nodes[i] else { continue }
            if let p = node.parent {
                let pi = Int(p)
                guard out.contains(pi) else { continue }
                layer[i] = node.layer.isEmpty ? layer[pi] : node.layer
                zone[i] = node.zone.isEmpty ? zone[pi] : node.zone
                if region != nil {
                    anchorOf[i] = anchorOf[pi]
                    let t = q.metres(node.translation)
                    let s = scl[pi]
                    let r = rot[pi].rotate((t.0 * s.0, t.1 * s.1, t.2 * s.2))
                    pos[i] = (pos[pi].0 + r.0, pos[pi].1 + r.1, pos[pi].2 + r.2)
                    rot[i] = rot[pi] * q.quaternion(node.rotation)
                    let ls = q.scaleFactors(node.scale)
                    scl[i] = (s.0 * ls.0, s.1 * ls.1, s.2 * ls.2)
                }
            } else {
                layer[i] = node.layer
                zone[i] = node.zone
                if region != nil {
                    anchorOf[i] = node.anchor
                    pos[i] = q.metres(node.translation)
                    rot[i] = q.quaternion(node.rotation)
                    scl[i] = q.scaleFactors(node.scale)
                }
            }
            if !filter.zones.isEmpty && structural[i] {
                out.insert(i)
                continue
            }
            if !filter.layers.isEmpty && !filter.layers.contains(layer[i]) { continue }
            if !filter.zones.isEmpty && !filter.zones.contains(zone[i]) { continue }
            if let region, !node.asset.isEmpty {
                guard anchorOf[i] == region.anchor else { continue }
                let p = Pose.quantization.position(pos[i].0, pos[i].1, pos[i].2)
                guard p.x >= region.min.x, p.x <= region.max.x, p.y >= region.min.y, p.y <= region.max.y,
                    p.z >= region.min.z, p.z <= region.max.z
                else { continue }
            }
            out.insert(i)
        }
        return out
    }
}
