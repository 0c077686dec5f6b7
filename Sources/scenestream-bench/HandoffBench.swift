import ArgumentParser
import Dispatch
import Foundation
import Logging
import SceneStreamClient
import SceneStreamProtocol
import SceneStreamReplica

struct HandoffBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "handoff",
        abstract: "Hand a session from device to device many times; time claim → complete state; compare resume and keyframe bytes.")

    @Option(help: "Number of handoffs.") var handoffs: Int = 100
    @Option(help: "Plant folder the server streams.") var plant: String = "Assets/plants/reference"
    @Option(help: "Server binary (default: the scenestream built next to this one).") var server: String?
    @Flag(help: "Print one JSON object.") var json = false

    /// What the client thread saw, per connection name.
    final class Seen: @unchecked Sendable {
        let lock = NSLock()
        var connections: [String: ClientPool.Connection] = [:]
        var offers: [String: String] = [:]
        var welcomed: Set<String> = []
        var keyframeAt: [String: UInt64] = [:]
        var firstFrameBytes: [String: Int] = [:]
        var welcomeBytes: [String: Int] = [:]
        var firstFrameKind: [String: Bool] = [:]
        var frames: [String: Int] = [:]
        var errors: [String] = []

        func with<T>(_ f: (Seen) -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return f(self)
        }
    }

    func run() throws {
        let (proc, port) = try Self.startServer(binary: server, plant: plant)
        defer { BenchServer.stop(proc) }
        let scene = FanoutBenchCommand.sceneId(plant)
        let seen = Seen()
        let pool = try ClientPool(
            logger: Logger(label: "bench"),
            onEvent: { conn, event in
                let name = conn.session.options.name
                seen.with { s in
                    s.connections[name] = conn
                    switch event {
                    case .welcome:
                        s.welcomed.insert(name)
                        s.welcomeBytes[name] = conn.session.bytesReceived
                    case .frame(_, _, let keyframe, _):
                        s.frames[name, default: 0] += 1
                        if s.firstFrameBytes[name] == nil {
                            s.firstFrameBytes[name] = conn.session.bytesReceived - (s.welcomeBytes[name] ?? 0)
                            s.firstFrameKind[name] = keyframe
                        }
                        if keyframe { s.keyframeAt[name] = DispatchTime.now().uptimeNanoseconds }
                    case .other(.handoff(.offer(_, let code, _, _))):
                        s.offers[name] = code
                    case .serverError(let code, _, let message):
                        s.errors.append("\(name): \(code) \(message)")
                    default:
                        break
                    }
                }
            })
        func options(_ name: String, subscribe: Bool) -> ClientOptions {
            var o = ClientOptions(device: .desktop, name: name, token: "demo:bench", interest: InterestSpec(sceneId: scene, rateHz: 30))
            o.subscribeOnWelcome = subscribe
            return o
        }
        var holder = "device-0"
        try pool.connect(host: "127.0.0.1", port: port, options: options(holder, subscribe: true))
        try waitUntil("first keyframe") { seen.with { $0.keyframeAt[holder] != nil } }
        var latencies: [Double] = []
        for round in 1...handoffs {
            let h = holder
            let conn = UncheckedBox(seen.with { $0.connections[h]! })
            pool.post { pool.send(conn.value, .handoffOffer(requestId: UInt32(round), keepOldDevice: false)) }
            try waitUntil("offer \(round)") { seen.with { $0.offers[h] != nil } }
            let code = seen.with { $0.offers[h]! }
            let next = "device-\(round)"
            try pool.connect(host: "127.0.0.1", port: port, options: options(next, subscribe: false))
            try waitUntil("welcome \(round)") { seen.with { $0.welcomed.contains(next) } }
            let claimer = UncheckedBox(seen.with { $0.connections[next]! })
            let t0 = DispatchTime.now().uptimeNanoseconds
            pool.post { pool.send(claimer.value, .handoffClaim(requestId: UInt32(round), code: code, sessionId: "")) }
            try waitUntil("keyframe on the new device \(round)") { seen.with { $0.keyframeAt[next] != nil } }
            let t1 = seen.with { $0.keyframeAt[next]! }
            latencies.append(Double(t1 - t0) / 1e6)
            holder = next
            if !json && round % 20 == 0 { print("handoffs: \(round)/\(handoffs)") }
        }
        // A keyframe of the same interest, as the last claimer got it (with the claimed and sessionState messages).
        let keyframeBytes = seen.with { $0.firstFrameBytes[holder] ?? 0 }
        // Resume: drop the holder and reconnect with its token and version at once.
        let h = holder
        try waitUntil("frames after the last handoff") { seen.with { $0.frames[h, default: 0] > 10 } }
        let holderConn = seen.with { $0.connections[h]! }
        let box = UncheckedBox(holderConn)
        let state = Locked<(String, UInt64?, Replica)>(("", nil, Replica()))
        pool.post {
            let s = box.value.session
            state.set((s.sessionToken, s.replica.version, s.replica))
            pool.disconnect(box.value)
        }
        try waitUntil("holder state") { state.get().1 != nil }
        let (token, version, replica) = state.get()
        var ro = options("resumed", subscribe: true)
        ro.resumeToken = token
        ro.resumeVersion = version ?? 0
        try pool.connect(host: "127.0.0.1", port: port, options: ro, replica: replica)
        try waitUntil("resumed frame") { seen.with { $0.firstFrameBytes["resumed"] != nil } }
        let resumeBytes = seen.with { $0.firstFrameBytes["resumed"]! }
        let resumeWasDelta = seen.with { $0.firstFrameKind["resumed"] == false }
        pool.shutdown()

        let sorted = latencies.sorted()
        func pct(_ p: Double) -> Double { (sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 100).rounded() / 100 }
        let result: [String: Any] = [
            "handoffs": handoffs, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": (sorted.last! * 100).rounded() / 100,
            "resume_bytes": resumeBytes, "resume_was_delta": resumeWasDelta, "keyframe_bytes": keyframeBytes, "plant": plant,
            "errors": seen.with { $0.errors },
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
    }

    static func startServer(binary: String?, plant: String) throws -> (Process, Int) {
        let data = NSTemporaryDirectory() + "scenestream-bench-\(getpid())"
        return try BenchServer.start(
            binary: binary, arguments: ["--plant", plant, "--log-level", ProcessInfo.processInfo.environment["BENCH_LOG"] ?? "warning", "--data", data],
            quiet: ProcessInfo.processInfo.environment["BENCH_LOG"] == nil)
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: T
    init(_ v: T) { value = v }
    func get() -> T {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
    func set(_ v: T) {
        lock.lock()
        value = v
        lock.unlock()
    }
}
