import Foundation
import SceneStreamCore

/// The shape of a generated plant: halls of production lines with robots, conveyors, presses, tanks and AGVs.
///
/// Generates the files under `Assets/plants/<name>/` (scene, bindings, rules, twins) as JSON text, so the files
/// and the in-memory plant of tests and benchmarks come from the same code and the same parser.
public struct PlantLayout: Sendable {
    public var id: String
    public var name: String
    public var halls: Int
    public var linesPerHall: Int
    public var robotsPerLine: Int
    public var pressesPerLine: Int
    public var tanksPerLine: Int
    public var conveyorSegments: Int
    public var itemsPerLine: Int
    public var cabinetsPerLine: Int
    public var agvsPerHall: Int
    public var columnsPerSide: Int

    /// The reference factory of `DESIGN.md`: about 10,000 nodes in two halls.
    public static let reference = PlantLayout(
        id: "reference", name: "Reference factory", halls: 2, linesPerHall: 10, robotsPerLine: 24, pressesPerLine: 10,
        tanksPerLine: 12, conveyorSegments: 60, itemsPerLine: 100, cabinetsPerLine: 40, agvsPerHall: 30, columnsPerSide: 8)

    /// The small demo plant the server runs by default.
    public static let demo = PlantLayout(
        id: "demo", name: "Demo plant", halls: 1, linesPerHall: 2, robotsPerLine: 6, pressesPerLine: 3, tanksPerLine: 3,
        conveyorSegments: 20, itemsPerLine: 20, cabinetsPerLine: 4, agvsPerHall: 3, columnsPerSide: 3)

    static let hallNames = ["hall-a", "hall-b", "hall-c", "hall-d"]

    static func two(_ i: Int) -> String { i < 9 ? "0\(i + 1)" : "\(i + 1)" }
    static func three(_ i: Int) -> String { String(repeating: "0", count: max(0, 3 - String(i + 1).count)) + String(i + 1) }

    /// Line length in metres.
    public var lineLength: Double { Double(conveyorSegments) * 2 }
    /// Hall extent (x and z) in metres.
    public var hallSize: Double { max(lineLength + 4, Double(linesPerHall) * 12 + 8) }

    struct Twin {
        var id: String
        var model: String
        var rateHz: Double
    }

    /// The scene file, as JSON text.
    public func sceneJSON() -> String {
        var nodes: [String] = []
        func node(_ id: String, _ extra: String = "") { nodes.append("{\"id\":\"\(id)\"\(extra)}") }
        func f(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(format: "%.3f", d) }
        func t(_ x: Double, _ y: Double, _ z: Double) -> String { ",\"t\":[\(f(x)),\(f(y)),\(f(z))]" }
        for h in 0..<halls {
            let hall = Self.hallNames[h]
            node(hall, ",\"anchor\":\"\(hall)\",\"layer\":\"structure\"")
            node("\(hall)/floor", t(hallSize / 2, -0.05, hallSize / 2) + ",\"s\":[\(f(hallSize)),0.1,\(f(hallSize))],\"asset\":\"models/floor.gltf\"")
            for cx in 0..<columnsPerSide {
                for cz in 0..<columnsPerSide {
                    let step = hallSize / Double(columnsPerSide)
                    node("\(hall)/column-\(Self.two(cx))\(Self.two(cz))", t(step * (Double(cx) + 0.5), 4, step * (Double(cz) + 0.5)) + ",\"asset\":\"models/column.gltf\"")
                }
            }
            for l in 0..<linesPerHall {
                let line = "\(hall)/line-\(Self.two(l))"
                let zone = "\(hall)-line-\(Self.two(l))"
                node(line, t(2, 0, 8 + Double(l) * 12) + ",\"layer\":\"equipment\",\"zone\":\"\(zone)\",\"label\":\"Line \(l + 1)\"")
                node("\(line)/conveyor")
                for k in 0..<conveyorSegments {
                    node("\(line)/conveyor/seg-\(Self.two(k))", t(Double(k) * 2 + 1, 0.4, 0) + ",\"asset\":\"models/conveyor.gltf\"")
                }
                for k in 0..<itemsPerLine {
                    let s = Double(k) * lineLength / Double(itemsPerLine)
                    node("\(line)/item-\(Self.three(k))", t(s, 0.95, 0) + ",\"asset\":\"models/crate.gltf\",\"layer\":\"material\"")
                }
                for k in 0..<robotsPerLine {
                    let r = "\(line)/robot-\(Self.two(k))"
                    let side = k % 2 == 0 ? -2.2 : 2.2
                    let x = 2.5 + Double(k / 2) * lineLength / Double(max(1, (robotsPerLine + 1) / 2))
                    node(r, t(x, 0, side) + ",\"ry\":\(side < 0 ? 0 : 180),\"asset\":\"models/robot-base.gltf\"")
                    node("\(r)/light", t(0.45, 0.3, 0.45) + ",\"asset\":\"models/status-light.gltf\",\"color\":\"#22cc44ff\",\"layer\":\"status\"")
                    var j = "\(r)/j1"
                    node(j, t(0, 0.5, 0) + ",\"asset\":\"models/robot-link.gltf\"")
                    let offsets: [(Double, Double, Double)] = [(0, 0.35, 0), (0, 0.9, 0), (0, 0.8, 0), (0, 0.25, 0), (0, 0.2, 0)]
                    for (n, o) in offsets.enumerated() {
                        j += "/j\(n + 2)"
                        node(j, t(o.0, o.1, o.2) + ",\"s\":[\(f(1 - Double(n) * 0.12)),\(f(1 - Double(n) * 0.12)),\(f(1 - Double(n) * 0.12))],\"asset\":\"models/robot-link.gltf\"")
                    }
                    node("\(j)/tool", t(0, 0.2, 0) + ",\"asset\":\"models/gripper.gltf\"")
                }
                for k in 0..<pressesPerLine {
                    let p = "\(line)/press-\(Self.two(k))"
                    node(p, t(6 + Double(k) * lineLength / Double(pressesPerLine), 0, 5.5) + ",\"asset\":\"models/press-body.gltf\"")
                    node("\(p)/ram", t(0, 2.6, 0) + ",\"asset\":\"models/press-ram.gltf\"")
                    node("\(p)/temp", t(0, 4.2, 0) + ",\"label\":\"– °C\",\"layer\":\"labels\"")
                    node("\(p)/light", t(0.9, 3.4, 0.9) + ",\"asset\":\"models/status-light.gltf\",\"color\":\"#22cc44ff\",\"layer\":\"status\"")
                }
                for k in 0..<tanksPerLine {
                    let tk = "\(line)/tank-\(Self.two(k))"
                    node(tk, t(4 + Double(k) * lineLength / Double(tanksPerLine), 0, -5.5) + ",\"asset\":\"models/tank.gltf\"")
                    node("\(tk)/level", t(0, 0.05, 0) + ",\"s\":[1,0.5,1],\"asset\":\"models/tank-level.gltf\"")
                    node("\(tk)/gauge", t(0, 3.3, 0) + ",\"label\":\"– %\",\"layer\":\"labels\"")
                }
                for k in 0..<cabinetsPerLine {
                    node("\(line)/cabinet-\(Self.two(k))", t(Double(k) * lineLength / Double(cabinetsPerLine), 0, -8) + ",\"asset\":\"models/cabinet.gltf\",\"layer\":\"structure\"")
                }
            }
            for a in 0..<agvsPerHall {
                let agv = "\(hall)/agv-\(Self.two(a))"
                node(agv, t(1, 0, 1 + Double(a)) + ",\"asset\":\"models/agv.gltf\",\"layer\":\"vehicles\"")
                node("\(agv)/load", t(0, 0.45, 0) + ",\"asset\":\"models/crate.gltf\",\"visible\":false")
                node("\(agv)/light", t(0.5, 0.5, 0) + ",\"asset\":\"models/status-light.gltf\",\"color\":\"#2288ffff\",\"layer\":\"status\"")
            }
        }
        let anchors = (0..<halls).map { "{\"id\":\"\(Self.hallNames[$0])\",\"description\":\"Floor marker at the south-west corner of \(Self.hallNames[$0]); x east, y up, z south\"}" }
        return """
            {"format":"scenestream.scene/1","id":"\(id)","name":"\(name)",
            "quantization":{"positionUnitsPerMetre":1000,"rotationBits":12},
            "anchors":[\(anchors.joined(separator: ","))],
            "nodes":[
            \(nodes.joined(separator: ",\n"))
            ]}

            """
    }

    /// The bindings file, as JSON text (patterns, not one binding per twin).
    public func bindingsJSON() -> String {
        let axes = ["y", "z", "z", "x", "z", "x"]
        var b: [String] = []
        for (k, axis) in axes.enumerated() {
            let path = (1...(k + 1)).map { "j\($0)" }.joined(separator: "/")
            b.append("{\"twins\":\"*/*/robot-*\",\"property\":\"j\(k + 1)\",\"node\":\"{twin}/\(path)\",\"field\":\"rotation.\(axis)\",\"map\":{\"kind\":\"linear\",\"scale\":1}}")
        }
        b.append(contentsOf: [
            "{\"twins\":\"*/*/robot-*\",\"property\":\"state\",\"node\":\"{twin}/light\",\"field\":\"color\",\"map\":{\"kind\":\"rangeColor\",\"stops\":[[0,\"#888888ff\"],[1,\"#22cc44ff\"],[2,\"#ff2222ff\"]],\"blend\":false}}",
            "{\"twins\":\"*/*/item-*\",\"property\":\"s\",\"node\":\"{twin}\",\"field\":\"translation.x\",\"map\":{\"kind\":\"linear\",\"scale\":1}}",
            "{\"twins\":\"*/*/press-*\",\"property\":\"ram\",\"node\":\"{twin}/ram\",\"field\":\"translation.y\",\"map\":{\"kind\":\"linear\",\"scale\":-1,\"offset\":2.6,\"min\":1.2,\"max\":2.6}}",
            "{\"twins\":\"*/*/press-*\",\"property\":\"temperature\",\"node\":\"{twin}\",\"field\":\"color\",\"map\":{\"kind\":\"rangeColor\",\"stops\":[[40,\"#3a7bd5ff\"],[70,\"#f2c94cff\"],[90,\"#eb3b2fff\"]]}}",
            "{\"twins\":\"*/*/press-*\",\"property\":\"temperature\",\"node\":\"{twin}/temp\",\"field\":\"label\",\"map\":{\"kind\":\"format\",\"format\":\"{value} °C\",\"precision\":0}}",
            "{\"twins\":\"*/*/press-*\",\"property\":\"temperature\",\"node\":\"{twin}/light\",\"field\":\"color\",\"map\":{\"kind\":\"threshold\",\"above\":90,\"then\":\"#ff2222ff\",\"else\":\"#22cc44ff\"}}",
            "{\"twins\":\"*/*/tank-*\",\"property\":\"level\",\"node\":\"{twin}/level\",\"field\":\"scale.y\",\"map\":{\"kind\":\"linear\",\"scale\":0.01,\"min\":0.01,\"max\":1}}",
            "{\"twins\":\"*/*/tank-*\",\"property\":\"level\",\"node\":\"{twin}/gauge\",\"field\":\"label\",\"map\":{\"kind\":\"format\",\"format\":\"{value} %\",\"precision\":0}}",
            "{\"twins\":\"*/agv-*\",\"field\":\"pose\",\"node\":\"{twin}\",\"map\":{\"kind\":\"pose\",\"x\":\"x\",\"z\":\"z\",\"yaw\":\"heading\"}}",
            "{\"twins\":\"*/agv-*\",\"property\":\"loaded\",\"node\":\"{twin}/load\",\"field\":\"visible\",\"map\":{\"kind\":\"threshold\",\"above\":0.5,\"then\":true,\"else\":false}}",
            "{\"twins\":\"*/agv-*\",\"property\":\"battery\",\"node\":\"{twin}/light\",\"field\":\"color\",\"map\":{\"kind\":\"rangeColor\",\"stops\":[[10,\"#ff2222ff\"],[30,\"#f2c94cff\"],[60,\"#2288ffff\"]]}}",
        ])
        return "{\"format\":\"scenestream.bindings/1\",\"bindings\":[\n" + b.joined(separator: ",\n") + "\n]}\n"
    }

    /// The rules file, as JSON text.
    public func rulesJSON() -> String {
        """
        {"format":"scenestream.rules/1","rules":[
        {"id":"press-overheat","twins":"*/*/press-*","property":"temperature","above":90,"clear":85,"severity":"critical","message":"{twin}: temperature {value} °C","node":"{twin}"},
        {"id":"tank-high","twins":"*/*/tank-*","property":"level","above":95,"clear":90,"severity":"warning","message":"{twin}: level {value} %","node":"{twin}"},
        {"id":"tank-low","twins":"*/*/tank-*","property":"level","below":5,"clear":10,"severity":"warning","message":"{twin}: level {value} %","node":"{twin}"},
        {"id":"robot-fault","twins":"*/*/robot-*","property":"state","above":1.5,"clear":1.5,"severity":"critical","message":"{twin}: fault","node":"{twin}"},
        {"id":"agv-battery","twins":"*/agv-*","property":"battery","below":15,"clear":20,"severity":"warning","message":"{twin}: battery {value} %","node":"{twin}"}
        ]}

        """
    }

    var twinList: [Twin] {
        var out: [Twin] = []
        for h in 0..<halls {
            let hall = Self.hallNames[h]
            for l in 0..<linesPerHall {
                let line = "\(hall)/line-\(Self.two(l))"
                for k in 0..<itemsPerLine { out.append(Twin(id: "\(line)/item-\(Self.three(k))", model: "item", rateHz: 2)) }
                for k in 0..<robotsPerLine { out.append(Twin(id: "\(line)/robot-\(Self.two(k))", model: "robot6", rateHz: 5)) }
                for k in 0..<pressesPerLine { out.append(Twin(id: "\(line)/press-\(Self.two(k))", model: "press", rateHz: 5)) }
                for k in 0..<tanksPerLine { out.append(Twin(id: "\(line)/tank-\(Self.two(k))", model: "tank", rateHz: 1)) }
            }
            for a in 0..<agvsPerHall { out.append(Twin(id: "\(hall)/agv-\(Self.two(a))", model: "agv", rateHz: 10)) }
        }
        return out
    }

    /// The twins file, as JSON text: what the simulator drives, with each twin's model and rate.
    public func twinsJSON() -> String {
        let list = twinList.map { "{\"id\":\"\($0.id)\",\"model\":\"\($0.model)\",\"rateHz\":\($0.rateHz)}" }
        return """
            {"format":"scenestream.twins/1","lineLength":\(lineLength),"hallSize":\(hallSize),
            "units":\(Self.unitsJSON),
            "twins":[
            \(list.joined(separator: ",\n"))
            ]}

            """
    }

    /// The units of the simulated models' properties (robot joints in radians, state a code).
    static let unitsJSON = """
        {"robot6":{"j1":"rad","j2":"rad","j3":"rad","j4":"rad","j5":"rad","j6":"rad"},\
        "item":{"s":"m"},"press":{"ram":"m","temperature":"°C"},"tank":{"level":"%"},\
        "agv":{"x":"m","z":"m","heading":"°","battery":"%"}}
        """

    /// Every file of the plant, by name.
    public func files() -> [(name: String, text: String)] {
        [("scene.json", sceneJSON()), ("bindings.json", bindingsJSON()), ("rules.json", rulesJSON()), ("twins.json", twinsJSON())]
    }
}
