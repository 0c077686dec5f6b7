import ArgumentParser
import Foundation
import SceneStreamCore
import SceneStreamProtocol
import SceneStreamServer
import SceneStreamStorage
import SceneStreamSimulation

struct PlaybackBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "playback",
        abstract: "Record simulated plant history, then time seeks into it; report disk bytes per hour in SQLite.",
        discussion: """
            --source memory: seeks rebuild from the in-memory history (checkpoint + last value of each property after \
            it). --source disk: from SQLite the way the server does for moments older than memory holds (checkpoint \
            every 5 s + rows after it); memory then holds no history, so an hour of a large plant fits. Baseline in \
            the same run: rebuilding the scene from the current state (what a live keyframe of a new runtime costs).
            """)

    enum Source: String, ExpressibleByArgument, CaseIterable { case memory, disk }

    @Option(help: "Hours of history to record.") var hours: Double = 1
    @Option(help: "demo or reference.") var plant: String = "demo"
    @Option(help: "Seeks to time.") var seeks: Int = 50
    @Option(help: "memory or disk.") var source: Source = .memory
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let layout = plant == "reference" ? PlantLayout.reference : PlantLayout.demo
        let bundle = try PlantBundle.generated(layout)
        let start: UInt64 = 1_795_000_000_000
        let runtime = try SceneRuntime(
            scene: bundle.scene, bindings: bundle.bindings, rules: bundle.rules,
            history: TwinHistory(capacity: source == .memory ? 100_000_000 : 1, windowMs: UInt64(hours * 3_600_000) + 60_000), retainedVersions: 64)
        var sim = try PlantSimulator(twinsJSON: bundle.twinsJSON, file: "twins.json", startMs: start)
        let dir = NSTemporaryDirectory() + "scenestream-playback-\(getpid())"
        let storage = try Storage(path: "\(dir)/history.sqlite")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ticks = Int(hours * 3600 * 10)  // record at 10 Hz: the simulator's updates keep their own times
        var updates = 0
        let t0 = Date()
        var pending: [PropertyUpdate] = []
        for k in 1...ticks {
            let now = start + UInt64(k) * 100
            let ups = sim.step(to: now)
            updates += ups.count
            _ = runtime.ingest(ups)
            pending.append(contentsOf: ups)
            // One transaction every 5 s of history (the server writes one per tick), before the checkpoint.
            if k % 50 == 0 {
                try storage.append(pending)
                pending.removeAll(keepingCapacity: true)
            }
            runtime.commit(timeMs: now)
            if k % Int(Storage.checkpointIntervalMs / 100) == 0 { storage.checkpointLater(at: now, state: runtime.twins.snapshot()) }
            if !json && k % 6000 == 0 { print(String(format: "recorded %.0f of %.0f minutes", Double(k) / 600, hours * 60)) }
        }
        let recordSeconds = Date().timeIntervalSince(t0)
        let end = start + UInt64(ticks) * 100
        var rng = SplitMix64(seed: 7)
        var times: [Double] = []
        var keyframeBytes = 0
        let encoder = try MessageEncoder()
        for _ in 0..<seeks {
            let at = start + 10_000 + UInt64(rng.unit() * Double(end - start - 20_000))
            let s0 = DispatchTime.now().uptimeNanoseconds
            let r: SceneRuntime
            switch source {
            case .memory:
                guard let m = try runtime.rebuilt(at: at) else { throw ValidationError("no history at \(at)") }
                r = m
            case .disk:
                guard let state = try storage.state(at: at) else { throw ValidationError("no checkpoint before \(at)") }
                r = try runtime.rebuilt(state: state, at: at)
            }
            let engine = try DeltaEngine(graph: r.graph)
            let frame = engine.keyframe(for: .everything)
            let bytes = encoder.encode(.frame(frame))
            times.append(Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e6)
            keyframeBytes = bytes.count
        }
        times.sort()
        // Baseline: a new runtime from the current state and its keyframe.
        var baseline: [Double] = []
        let now = runtime.twins.snapshot()
        for _ in 0..<5 {
            let s0 = DispatchTime.now().uptimeNanoseconds
            let r = try runtime.rebuilt(state: now, at: end)
            _ = encoder.encode(.frame(try DeltaEngine(graph: r.graph).keyframe(for: .everything)))
            baseline.append(Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e6)
        }
        let baselineMs = baseline.sorted()[2]
        func pct(_ p: Double) -> Double { (times[min(times.count - 1, Int(Double(times.count) * p))] * 100).rounded() / 100 }
        let result: [String: Any] = [
            "plant": layout.id, "hours": hours, "updates": updates, "updates_per_s": Int(Double(updates) / (hours * 3600)),
            "seeks": seeks, "seek_p50_ms": pct(0.5), "seek_p99_ms": pct(0.99), "keyframe_bytes": keyframeBytes, "source": source.rawValue,
            "baseline_rebuild_now_ms": (baselineMs * 100).rounded() / 100, "seek_p99_vs_baseline": (pct(0.99) / baselineMs * 100).rounded() / 100,
            "sqlite_bytes": storage.sizeBytes, "disk_bytes_per_hour": Int(Double(storage.sizeBytes) / hours),
            "bytes_per_update": (Double(storage.sizeBytes) / Double(max(1, updates)) * 10).rounded() / 10,
            "record_seconds": (recordSeconds * 10).rounded() / 10,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
    }
}
