import ArgumentParser
import Dispatch
import Foundation
import Logging
import SceneStreamClient
import SceneStreamProtocol

struct FanoutBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout",
        abstract: "Start a server process, open many real WebSocket clients, report throughput, latency, CPU and memory.")

    @Option(help: "Client counts to step through, comma-separated (e.g. 100,1000,5000).") var clients: String = "100,1000"
    @Option(help: "Frames per second each client asks for.") var rate: Int = 30
    @Option(help: "Seconds measured at each step.") var seconds: Double = 10
    @Option(help: "Plant folder the server streams.") var plant: String = "Assets/plants/reference"
    @Option(help: "Clients that keep a full replica and measure change→frame latency.") var probes: Int = 20
    @Option(help: "Server binary (default: the scenestream built next to this one).") var server: String?
    @Option(help: "After each step, this many load clients also seek into the past every --seek-interval-ms while the probes measure again (0: no such phase).") var seekers: Int = 0
    @Option(help: "Milliseconds between one seeker's seeks.") var seekIntervalMs: Int = 250
    @Flag(help: "Print one JSON object.") var json = false

    func say(_ s: String) {
        if !json { print(s) } else { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }

    func run() throws {
        let steps = clients.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.sorted()
        guard let maxClients = steps.last, maxClients > 0 else { throw ValidationError("--clients needs positive numbers") }
        // Every client comes from this one address and shares one room: lift the per-address limit and the room
        // capacity (50 sessions by default), or most clients would be refused and the numbers would mean nothing.
        let dir = NSTemporaryDirectory() + "scenestream-fanout-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // One room, one address: lift the room capacity and the per-address limits (count and rate) for this load.
        let cfg = "{\"roomCapacity\": 10000, \"maxConnectionsPerAddress\": 1000000, \"connectionsPerSecondPerAddress\": 100000, \"connectionBurstPerAddress\": 100000, \"data\": \"\(dir)/data\"}"
        try cfg.write(toFile: "\(dir)/config.json", atomically: true, encoding: .utf8)
        let (proc, port) = try BenchServer.start(binary: server, arguments: ["--config", "\(dir)/config.json", "--plant", plant, "--log-level", "warning"])
        defer { BenchServer.stop(proc) }
        let pid = proc.processIdentifier
        let startedMs = UInt64(Date().timeIntervalSince1970 * 1000)
        Thread.sleep(forTimeInterval: 2)
        let rss0 = Self.rssKB(pid)
        say("server pid \(pid) on port \(port), RSS \(rss0 / 1024) MB before clients; plant \(plant)")

        let metrics = FanoutMetrics()
        let sceneId = Self.sceneId(plant)
        let pool = try ClientPool(
            logger: Logger(label: "bench"),
            onEvent: { conn, event in
                if case .frame(_, let timeMs, let keyframe, _) = event {
                    metrics.frame(probe: conn.session.options.keepReplica, timeMs: timeMs, keyframe: keyframe, session: ObjectIdentifier(conn.session), total: conn.session.bytesReceived)
                }
            },
            onClose: { conn in metrics.closed(failure: conn.failure) })
        var opened = 0
        // When each client was asked to connect (the k-th client's join is its connect → its keyframe).
        var connectTimes: [Double] = []
        var results: [[String: Any]] = []
        for n in steps {
            while opened < n {
                let batch = min(200, n - opened)
                for k in 0..<batch {
                    let probe = opened + k < probes
                    var o = ClientOptions(
                        name: probe ? "probe" : "load", interest: InterestSpec(sceneId: sceneId, rateHz: UInt32(rate)), keepReplica: probe)
                    o.ackEvery = 4
                    connectTimes.append(metrics.elapsed)
                    try pool.connect(host: "127.0.0.1", port: port, options: o)
                }
                opened += batch
                let target = opened
                let until = Date().addingTimeInterval(30)
                while metrics.keyframes < target && Date() < until { Thread.sleep(forTimeInterval: 0.05) }
            }
            guard metrics.keyframes >= n else {
                throw ValidationError(
                    "only \(metrics.keyframes) of \(n) clients got their keyframe (\(metrics.snapshot().closed) closed: \(metrics.failureSummary))")
            }
            Thread.sleep(forTimeInterval: 1)
            let cpu0 = Self.cpuSeconds(pid)
            let myCpu0 = Self.cpuSeconds(getpid())
            metrics.reset()
            let t0 = Date()
            Thread.sleep(forTimeInterval: seconds)
            let wall = Date().timeIntervalSince(t0)
            let cpu = (Self.cpuSeconds(pid) - cpu0) / wall * 100
            let myCpu = (Self.cpuSeconds(getpid()) - myCpu0) / wall * 100
            let s = metrics.snapshot()
            let rss = Self.rssKB(pid)
            var r: [String: Any] = [
                "clients": n, "rate_hz": rate, "frames_per_s": Int(Double(s.frames) / wall), "bytes_per_s": Int(Double(s.bytes) / wall),
                "p50_ms": s.p50, "p99_ms": s.p99, "server_cpu_percent": (cpu * 10).rounded() / 10, "server_rss_mb": (Double(rss) / 1024 * 10).rounded() / 10,
                "memory_per_client_kb": ((Double(rss - rss0) / Double(n)) * 10).rounded() / 10, "closed": s.closed,
                "latency_samples": s.samples, "load_generator_cpu_percent": (myCpu * 10).rounded() / 10,
            ]
            r["expected_frames_per_s"] = n * rate
            // Joining a room of k costs O(k) (room changes are deltas): the time from asking to connect to the
            // keyframe for the 100th and the n-th member (keyframes arrive in about the order clients connect; a
            // batch of 200 connects at once, so a join also waits for the batch ahead of it).
            let times = metrics.keyframeTimes
            if n >= 100, times.count >= n, connectTimes.count >= n {
                r["join_100th_s"] = ((times[99] - connectTimes[99]) * 1000).rounded() / 1000
                r["join_last_s"] = ((times[n - 1] - connectTimes[n - 1]) * 1000).rounded() / 1000
            }
            if seekers > 0 {
                // The same step again while some clients scrub the timeline: do the others' frames wait for it?
                let (sp50, sp99, seeks) = try measureWhileSeeking(pool, metrics: metrics, startedMs: startedMs)
                r["seekers"] = seekers
                r["seeks"] = seeks
                r["p50_ms_while_seeking"] = sp50
                r["p99_ms_while_seeking"] = sp99
                say(String(format: "  while %d clients seek every %d ms (%d seeks): p50 %5.1f ms  p99 %5.1f ms", seekers, seekIntervalMs, seeks, sp50, sp99))
            }
            results.append(r)
            say(String(format: "clients %5d  frames/s %7d (of %d)  MB/s %6.2f  p50 %5.1f ms  p99 %5.1f ms  server CPU %5.1f%%  RSS %6.1f MB  %.1f KB/client  load generator CPU %5.1f%%",
                       n, r["frames_per_s"] as! Int, n * rate, Double(s.bytes) / wall / 1e6, s.p50, s.p99, cpu, Double(rss) / 1024, (Double(rss - rss0) / Double(n)), myCpu))
        }
        pool.shutdown()
        if json {
            var top = results.last!
            top["steps"] = results
            top["plant"] = plant
            let ok = results.filter { ($0["p99_ms"] as! Double) <= 50 }.map { $0["clients"] as! Int }
            top["max_clients_p99_under_50ms"] = ok.max() ?? 0
            let data = try JSONSerialization.data(withJSONObject: top, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    /// Measures the probes for `seconds` while `seekers` load clients seek to random past moments; then sends them
    /// back live. Returns p50, p99 and the number of seeks sent.
    func measureWhileSeeking(_ pool: ClientPool, metrics: FanoutMetrics, startedMs: UInt64) throws -> (Double, Double, Int) {
        let k = seekers
        let done = Date().addingTimeInterval(seconds)
        var seeks = 0
        metrics.reset()
        while Date() < done {
            let now = UInt64(Date().timeIntervalSince1970 * 1000)
            guard now > startedMs + 3000 else { break }
            let target = startedMs + 1000 + UInt64.random(in: 0...(now - startedMs - 2000))
            pool.post {  // the pool's own thread: connections are touched only there
                for c in pool.all.filter({ !$0.session.options.keepReplica }).prefix(k) {
                    pool.send(c, .playback(op: .seek, timeMs: target, speedMilli: 1000))
                }
            }
            seeks += k
            Thread.sleep(forTimeInterval: Double(seekIntervalMs) / 1000)
        }
        let s = metrics.snapshot()
        pool.post {
            for c in pool.all.filter({ !$0.session.options.keepReplica }).prefix(k) { pool.send(c, .playback(op: .live, timeMs: 0, speedMilli: 1000)) }
        }
        Thread.sleep(forTimeInterval: 1)
        return (s.p50, s.p99, seeks)
    }

    static func sceneId(_ plant: String) -> String {
        guard let d = FileManager.default.contents(atPath: "\(plant)/scene.json"),
            let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any], let id = o["id"] as? String
        else { return "demo" }
        return id
    }

    static func rssKB(_ pid: Int32) -> Int {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]) ?? 0
        }
        return 0
    }

    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = s.lastIndex(of: ")") else { return 0 }
        let f = s[s.index(after: close)...].split(separator: " ")
        // After the command: state(0) … utime is field 14 overall → index 11 here, stime index 12.
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((Double(f[11]) ?? 0) + (Double(f[12]) ?? 0)) / ticks
    }
}

/// Counters shared between the client thread and the bench's main thread.
final class FanoutMetrics: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var keyframes = 0
    /// When each keyframe arrived (seconds since the bench started), in order: the k-th member's join.
    private(set) var keyframeTimes: [Double] = []
    let started = Date()
    /// Seconds since these metrics were made (the clock of `keyframeTimes`).
    var elapsed: Double { Date().timeIntervalSince(started) }
    private var frames = 0
    private var bytes = 0
    private var latencies: [Double] = []
    private var closedCount = 0

    private var lastTotal: [ObjectIdentifier: Int] = [:]

    func frame(probe: Bool, timeMs: UInt64, keyframe: Bool, session: ObjectIdentifier, total: Int) {
        lock.lock()
        bytes += total - (lastTotal[session] ?? 0)
        lastTotal[session] = total
        frames += 1
        if keyframe {
            keyframes += 1
            keyframeTimes.append(Date().timeIntervalSince(started))
        }
        if probe && !keyframe { latencies.append(Date().timeIntervalSince1970 * 1000 - Double(timeMs)) }
        lock.unlock()
    }

    func closed(failure: String?) {
        lock.lock()
        closedCount += 1
        if let failure { failures[failure, default: 0] += 1 }
        lock.unlock()
    }

    /// Why connections closed, most common first.
    var failureSummary: String {
        lock.lock()
        defer { lock.unlock() }
        return failures.sorted { $0.value > $1.value }.prefix(3).map { "\($0.value)× \($0.key)" }.joined(separator: "; ")
    }
    private var failures: [String: Int] = [:]

    func reset() {
        lock.lock()
        frames = 0
        bytes = 0
        latencies.removeAll()
        lock.unlock()
    }

    struct Snapshot {
        var frames: Int
        var bytes: Int
        var p50: Double
        var p99: Double
        var closed: Int
        var samples: Int
    }

    func snapshot() -> Snapshot {
        lock.lock()
        defer { lock.unlock() }
        let sorted = latencies.sorted()
        func pct(_ p: Double) -> Double {
            sorted.isEmpty ? 0 : (sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 10).rounded() / 10
        }
        return Snapshot(frames: frames, bytes: bytes, p50: pct(0.5), p99: pct(0.99), closed: closedCount, samples: sorted.count)
    }
}
