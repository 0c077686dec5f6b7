import ArgumentParser
import Foundation
import SceneStreamCore
import SceneStreamServer
import SceneStreamSimulation

struct AggregateBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregate",
        abstract: "What aggregates over relationships cost per tick: the reference plant with one aggregate per line.",
        discussion: """
            Two runtimes of the reference plant fed the same simulator ticks (30 Hz): the baseline as shipped, and one \
            where every line `contains` its robots and a rule and a binding read max(contains.j1) on each line. \
            Prints the ingest time per tick of both, and the difference.
            """)

    @Option(help: "Ticks to run (30 a second of plant time).") var ticks = 900
    @Option(help: "What reads the aggregate: rule, binding or both.") var readers = "both"
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let bundle = try PlantBundle.generated(.reference)
        let robots = bundle.scene.nodes.map(\.id).filter { $0.split(separator: "/").count == 3 && $0.split(separator: "/")[2].hasPrefix("robot-") }
        let edges = robots.map { RelationshipEdge(source: $0.split(separator: "/").prefix(2).joined(separator: "/"), name: "contains", target: $0) }
        let lines = Set(edges.map(\.source))
        var rules = bundle.rules
        if readers != "binding" { rules.rules += try RuleSet.parse(
            Array(#"{"rules":[{"id":"line-reach","twins":"*/line-*","property":"max(contains.j1)","above":2.5,"clear":2.0,"message":"{twin}: a robot reaches far"}]}"#.utf8),
            file: "bench-rules.json"
        ).rules }
        var bindings = bundle.bindings
        if readers != "rule" { bindings.bindings += try BindingSet.parse(
            Array(#"{"bindings":[{"twins":"*/line-*","property":"max(contains.j1)","node":"{twin}","field":"label","map":{"kind":"format","format":"reach {value}","precision":2}}]}"#.utf8),
            file: "bench-bindings.json"
        ).bindings }
        let start: UInt64 = 1_795_000_000_000
        let base = try SceneRuntime(scene: bundle.scene, bindings: bundle.bindings, rules: bundle.rules, retainedVersions: 64)
        let agg = try SceneRuntime(scene: bundle.scene, bindings: bindings, rules: rules, relationships: edges, retainedVersions: 64)
        var sim = try PlantSimulator(twinsJSON: bundle.twinsJSON, file: "twins.json", startMs: start)
        var baseNs: UInt64 = 0, aggNs: UInt64 = 0, updates = 0
        for k in 1...ticks {
            let now = start + UInt64(k) * 33
            let ups = sim.step(to: now)
            updates += ups.count
            // Alternate which runs first, so that neither always finds the caches warm.
            for which in (k % 2 == 0 ? [0, 1] : [1, 0]) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = (which == 0 ? base : agg).ingest(ups)
                let dt = DispatchTime.now().uptimeNanoseconds - t0
                if which == 0 { baseNs += dt } else { aggNs += dt }
            }
            base.commit(timeMs: now)
            agg.commit(timeMs: now)
        }
        let derived = lines.filter { agg.twins.state($0, "max(contains.j1)") != nil }.count
        guard derived == lines.count else { throw ValidationError("only \(derived) of \(lines.count) lines have their aggregate") }
        let perTick = { (ns: UInt64) in Double(ns) / Double(ticks) / 1000 }
        let result: [String: Any] = [
            "ticks": ticks, "readers": readers, "updates_per_tick": updates / ticks, "lines": lines.count, "relationships": edges.count,
            "baseline_us_per_tick": (perTick(baseNs) * 10).rounded() / 10, "with_aggregates_us_per_tick": (perTick(aggNs) * 10).rounded() / 10,
            "aggregate_cost_us_per_tick": ((perTick(aggNs) - perTick(baseNs)) * 10).rounded() / 10,
            "with_vs_baseline": (Double(aggNs) / Double(baseNs) * 1000).rounded() / 1000,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
    }
}
