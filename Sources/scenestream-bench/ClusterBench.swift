import ArgumentParser
import Dispatch
import Foundation
import Logging
import SceneStreamClient
import SceneStreamProtocol
import SceneStreamTestSupport

/// `scenestream-bench cluster`: a real 3-server nats-server cluster and SceneStream processes on this machine,
/// each figure next to the single node measured in the same run.
struct ClusterBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Owner + fan-out nodes on a local NATS cluster: change→frame latency, cross-node handoff, failover gap, clients per process.")

    @Option(help: "Seconds each latency and load phase measures.") var seconds: Double = 5
    @Option(help: "Probe clients (full replica, change→frame latency) per node.") var probes: Int = 10
    @Option(help: "Clients in the load phase (on one fan-out node, then split over two).") var clients: Int = 300
    @Option(help: "Handoffs timed in each way (one node; owner → fan-out node).") var handoffs: Int = 20
    @Option(help: "Plant folder the nodes stream.") var plant: String = "Assets/plants/demo"
    @Option(help: "Server binary (default: the scenestream built next to this one).") var server: String?
    @Flag(help: "Print one JSON object.") var json = false

    func say(_ s: String) {
        if !json { print(s) } else { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }

    /// Frames seen per connection group.
    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var latencies: [String: [Double]] = [:]
        var arrivals: [String: [(Double, UInt64, Bool)]] = [:]
        var connections: [String: ClientPool.Connection] = [:]
        var welcomed: Set<String> = []
        var offers: [String: String] = [:]
        var keyframeAt: [String: UInt64] = [:]
        var errors: [String] = []
        var recordArrivals = false

        func with<T>(_ f: (Seen) -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return f(self)
        }
    }

    static func pct(_ xs: [Double], _ p: Double) -> Double {
        guard !xs.isEmpty else { return .nan }
        let s = xs.sorted()
        return (s[min(s.count - 1, Int(Double(s.count) * p))] * 100).rounded() / 100
    }

    func run() throws {
        let dir = NSTemporaryDirectory() + "scenestream-cluster-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let nats = try NATSCluster(count: 3, jetStream: true)
        defer { nats.stop() }
        func config(_ node: String, role: String, standby: Bool = false) throws -> String {
            let cfg: [String: Any] = [
                "roomCapacity": 10000, "maxConnectionsPerAddress": 1_000_000, "connectionsPerSecondPerAddress": 100_000,
                "connectionBurstPerAddress": 100_000, "maxConnectionsPerUser": 1_000_000, "data": "\(dir)/data-\(node)", "plant": plant,
                "cluster": ["nats": nats.urls, "role": role, "node": node, "replicas": 3, "standby": standby, "keyframeSeconds": 5],
            ]
            let path = "\(dir)/\(node).json"
            try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: path))
            return path
        }
        var procs: [String: (Process, Int)] = [:]
        defer { for (p, _) in procs.values { BenchServer.stop(p) } }
        func start(_ node: String, role: String, standby: Bool = false) throws -> Int {
            let r = try BenchServer.start(binary: server, arguments: ["--config", try config(node, role: role, standby: standby), "--log-level", "warning"])
            procs[node] = r
            return r.1
        }
        let ownerPort = try start("owner", role: "owner")
        let fan1 = try start("fan-1", role: "fanout")
        let fan2 = try start("fan-2", role: "fanout")
        for p in [fan1, fan2] { try waitUntil("fan-out node synced", 30) { (Self.health(p)?["synced"] as? Bool) == true } }
        say("NATS cluster \(nats.urls.joined(separator: ",")); owner :\(ownerPort), fan-out :\(fan1) :\(fan2); plant \(plant)")

        let scene = FanoutBenchCommand.sceneId(plant)
        let seen = Seen()
        let pool = try ClientPool(
            logger: Logger(label: "bench"),
            onEvent: { conn, event in
                let name = conn.session.options.name
                let group = String(name.prefix { $0 != "#" })
                seen.with { s in
                    s.connections[name] = conn
                    switch event {
                    case .welcome: s.welcomed.insert(name)
                    case .frame(let version, let timeMs, let keyframe, _):
                        let now = Date().timeIntervalSince1970 * 1000
                        if conn.session.options.keepReplica && !keyframe { s.latencies[group, default: []].append(now - Double(timeMs)) }
                        if keyframe { s.keyframeAt[name] = DispatchTime.now().uptimeNanoseconds }
                        if s.recordArrivals && group == "watch" { s.arrivals[name, default: []].append((now, version, keyframe)) }
                    case .other(.handoff(.offer(_, let code, _, _))): s.offers[name] = code
                    case .serverError(let code, _, let message): s.errors.append("\(name): \(code) \(message)")
                    default: break
                    }
                }
            })
        defer { pool.shutdown() }
        func open(_ name: String, port: Int, probe: Bool, token: String = "demo:bench", subscribe: Bool = true) throws {
            var o = ClientOptions(device: .desktop, name: name, token: token, interest: InterestSpec(sceneId: scene, rateHz: 30), keepReplica: probe)
            o.subscribeOnWelcome = subscribe
            o.ackEvery = probe ? 1 : 4
            try pool.connect(host: "127.0.0.1", port: port, options: o)
        }

        // 1. Change → frame latency: probes on the owner and on a fan-out node at once.
        for k in 0..<probes {
            try open("owner#\(k)", port: ownerPort, probe: true)
            try open("fanout#\(k)", port: fan1, probe: true)
        }
        try waitUntil("probe keyframes", 30) { seen.with { $0.keyframeAt.count >= 2 * probes } }
        Thread.sleep(forTimeInterval: 1)
        seen.with { $0.latencies = [:] }
        Thread.sleep(forTimeInterval: seconds)
        let lat = seen.with { $0.latencies }
        let ownerLat = lat["owner"] ?? [], fanLat = lat["fanout"] ?? []
        let latency: [String: Any] = [
            "owner_p50_ms": Self.pct(ownerLat, 0.5), "owner_p99_ms": Self.pct(ownerLat, 0.99),
            "fanout_p50_ms": Self.pct(fanLat, 0.5), "fanout_p99_ms": Self.pct(fanLat, 0.99),
            "fanout_minus_owner_p99_ms": ((Self.pct(fanLat, 0.99) - Self.pct(ownerLat, 0.99)) * 100).rounded() / 100,
            "samples": ownerLat.count + fanLat.count, "goal": "fan-out p99 <= owner p99 + 5 ms",
        ]
        say("latency: \(latency)")
        for c in seen.with({ Array($0.connections.values) }).map(UncheckedBox.init) { pool.post { pool.disconnect(c.value) } }

        // 2. Handoff claim → full state: both devices on one node, then phone on the owner and desktop on a fan-out node.
        func timeHandoffs(_ label: String, phonePort: Int, deskPort: Int) throws -> [Double] {
            var out: [Double] = []
            for round in 0..<handoffs {
                let token = "demo:\(label)-\(round)"
                let phone = "\(label)-phone#\(round)", desk = "\(label)-desk#\(round)"
                try open(phone, port: phonePort, probe: false, token: token)
                try waitUntil("phone keyframe", 30) { seen.with { $0.keyframeAt[phone] != nil } }
                let pc = UncheckedBox(seen.with { $0.connections[phone]! })
                pool.post { pool.send(pc.value, .handoffOffer(requestId: 1, keepOldDevice: false)) }
                try waitUntil("offer", 30) { seen.with { $0.offers[phone] != nil } }
                let code = seen.with { $0.offers[phone]! }
                try open(desk, port: deskPort, probe: false, token: token, subscribe: false)
                try waitUntil("desk welcome", 30) { seen.with { $0.welcomed.contains(desk) } }
                let dc = UncheckedBox(seen.with { $0.connections[desk]! })
                let t0 = DispatchTime.now().uptimeNanoseconds
                pool.post { pool.send(dc.value, .handoffClaim(requestId: 2, code: code, sessionId: "")) }
                try waitUntil("desk keyframe", 30) { seen.with { $0.keyframeAt[desk] != nil } }
                out.append(Double(seen.with { $0.keyframeAt[desk]! } - t0) / 1e6)
                pool.post { pool.disconnect(dc.value) }
            }
            return out
        }
        let local = try timeHandoffs("local", phonePort: ownerPort, deskPort: ownerPort)
        let crossNode = try timeHandoffs("cross", phonePort: ownerPort, deskPort: fan1)
        let handoff: [String: Any] = [
            "one_node_p50_ms": Self.pct(local, 0.5), "one_node_p99_ms": Self.pct(local, 0.99),
            "cross_node_p50_ms": Self.pct(crossNode, 0.5), "cross_node_p99_ms": Self.pct(crossNode, 0.99),
            "handoffs": handoffs, "goal": "cross-node p99 <= 100 ms",
        ]
        say("handoff: \(handoff)")

        // 3. Clients per process: all on one fan-out node, then split over two; latency from probes among them.
        func load(_ ports: [Int], tag: String) throws -> [String: Any] {
            seen.with { $0.latencies = [:] }
            let before = seen.with { $0.keyframeAt.count }
            for k in 0..<clients {
                try open("\(tag)#\(k)", port: ports[k % ports.count], probe: k < probes * ports.count)
            }
            try waitUntil("load keyframes", 60) { seen.with { $0.keyframeAt.count >= before + clients } }
            Thread.sleep(forTimeInterval: 1)
            let cpu0 = ports.map { p in procs.values.first { $0.1 == p }!.0.processIdentifier }.map(FanoutBenchCommand.cpuSeconds)
            seen.with { $0.latencies = [:] }
            Thread.sleep(forTimeInterval: seconds)
            let l = seen.with { $0.latencies[tag] ?? [] }
            let cpu1 = ports.map { p in procs.values.first { $0.1 == p }!.0.processIdentifier }.map(FanoutBenchCommand.cpuSeconds)
            let cpu = zip(cpu0, cpu1).map { (($1 - $0) / seconds * 1000).rounded() / 10 }
            for c in seen.with({ $0.connections.filter { $0.key.hasPrefix(tag + "#") }.map(\.value) }).map(UncheckedBox.init) {
                pool.post { pool.disconnect(c.value) }
            }
            Thread.sleep(forTimeInterval: 1)
            return ["processes": ports.count, "clients": clients, "p50_ms": Self.pct(l, 0.5), "p99_ms": Self.pct(l, 0.99), "cpu_percent_per_process": cpu]
        }
        let oneFan = try load([fan1], tag: "one")
        let twoFans = try load([fan1, fan2], tag: "two")
        let scale: [String: Any] = ["one_fanout": oneFan, "two_fanouts": twoFans, "goal": "p99 <= 50 ms"]
        say("clients per process: \(scale)")

        // 4. Failover: a standby follows; the owner is killed (-9); a client on a fan-out node watches.
        let standbyPort = try start("standby", role: "owner", standby: true)
        try waitUntil("standby synced", 30) { (Self.health(standbyPort)?["synced"] as? Bool) == true }
        try open("watch#0", port: fan1, probe: true)
        try waitUntil("watcher keyframe", 30) { seen.with { $0.keyframeAt["watch#0"] != nil } }
        Thread.sleep(forTimeInterval: 1)
        seen.with { $0.recordArrivals = true }
        Thread.sleep(forTimeInterval: 1)
        let killedAt = Date().timeIntervalSince1970 * 1000
        let owner = procs["owner"]!.0
        kill(owner.processIdentifier, SIGKILL)
        owner.waitUntilExit()
        procs["owner"] = nil
        var ownedAfterMs = Double.nan
        try waitUntil("standby owns the scene", 20) {
            if (Self.health(standbyPort)?["owner"] as? String) == "standby" {
                ownedAfterMs = Date().timeIntervalSince1970 * 1000 - killedAt
                return true
            }
            return false
        }
        Thread.sleep(forTimeInterval: 3)
        let arrivals = seen.with { $0.arrivals["watch#0"] ?? [] }
        let after = arrivals.filter { $0.0 >= killedAt }
        let before = arrivals.filter { $0.0 < killedAt }
        var gap = 0.0
        var last = before.last?.0 ?? killedAt
        for a in after {
            gap = max(gap, a.0 - last)
            last = a.0
        }
        let keyframesAfter = after.filter { $0.2 }.count
        let versions = arrivals.map(\.1)
        let failover: [String: Any] = [
            "standby_owner_after_ms": (ownedAfterMs).rounded(), "largest_frame_gap_ms": gap.rounded(),
            "keyframes_after_kill": keyframesAfter, "versions_increasing": versions == versions.sorted() && Set(versions).count == versions.count,
            "frames_after_kill": after.count, "goal": "gap <= 5 s, versions lost 0 (no keyframe, deltas continue)",
        ]
        say("failover: \(failover)")

        let result: [String: Any] = [
            "latency": latency, "handoff": handoff, "clients_per_process": scale, "failover": failover, "plant": plant,
            "errors": Array(seen.with { $0.errors }.prefix(10)), "cores": ProcessInfo.processInfo.activeProcessorCount,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        }
    }

    /// `GET /healthz` of a node on loopback, as JSON.
    static func health(_ port: Int) -> [String: Any]? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return nil }
        let req = Array("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            data += buf[0..<n]
        }
        guard let r = data.firstRange(of: Array("\r\n\r\n".utf8)) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(data[r.upperBound...]))) as? [String: Any]
    }
}
