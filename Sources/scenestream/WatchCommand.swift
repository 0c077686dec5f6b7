import ArgumentParser
import Dispatch
import Foundation
import Logging
import SceneStreamClient
import SceneStreamProtocol
import SceneStreamReplica

/// A `ws://host:port/path` address.
struct StreamURL {
    var tls: Bool
    var host: String
    var port: Int
    var path: String

    init(_ s: String) throws {
        guard let u = URLComponents(string: s), let scheme = u.scheme, scheme == "ws" || scheme == "wss", let host = u.host else {
            throw ValidationError("expected ws://HOST:PORT/stream or wss://…, got \(s)")
        }
        tls = scheme == "wss"
        self.host = host
        port = u.port ?? (tls ? 443 : 80)
        path = u.path.isEmpty ? "/stream" : u.path
    }
}

struct WatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch", abstract: "Subscribe to a server and print decoded updates and live stats.")

    @Argument(help: "The stream URL, e.g. ws://127.0.0.1:8080/stream") var url: String
    @Option(help: "Scene to subscribe to (default: the server's first).") var scene: String?
    @Option(help: "Frames per second to ask for.") var rate: Int = 10
    @Option(help: "Only these layers (comma-separated).") var layers: String?
    @Option(help: "Stop after this many seconds (default: run until interrupted).") var seconds: Double?
    @Flag(help: "Print one JSON summary at the end instead of live lines.") var json = false
    @Flag(help: "Accept a self-signed or mismatched TLS certificate (labs and tests only).") var insecure = false

    func run() throws {
        let target = try StreamURL(url)
        let logger = Logger(label: "scenestream.watch")
        let done = DispatchSemaphore(value: 0)
        let stats = Stats()
        let pool = try ClientPool(
            logger: logger,
            onEvent: { conn, event in
                switch event {
                case .welcome(_, _, let scenes):
                    if let scene, !scenes.contains(scene) { stats.note("server has no scene \(scene); it has \(scenes)") }
                case .frame(let version, let timeMs, let keyframe, let change):
                    stats.frame(conn.session, version: version, timeMs: timeMs, keyframe: keyframe, change: change)
                case .alerts(let alerts):
                    for a in alerts { stats.note("alert \(a.state) [\(a.severity)] \(a.message)") }
                case .serverError(let code, _, let message):
                    stats.note("server error \(code): \(message)")
                    if code == .unknownScene { done.signal() }
                default:
                    break
                }
            },
            onClose: { conn in
                stats.note("connection closed\(conn.failure.map { ": \($0)" } ?? "")")
                done.signal()
            })
        let interest = InterestSpec(
            sceneId: scene ?? "demo", layers: layers.map { $0.split(separator: ",").map(String.init) } ?? [], rateHz: UInt32(rate))
        try pool.connect(host: target.host, port: target.port, path: target.path, tls: target.tls, insecure: insecure,
                         options: ClientOptions(name: "scenestream-watch", interest: interest))
        let started = Date()
        while true {
            let deadline: DispatchTime = .now() + .seconds(1)
            if done.wait(timeout: deadline) == .success { break }
            if !json { stats.printLine(elapsed: Date().timeIntervalSince(started)) }
            if let seconds, Date().timeIntervalSince(started) >= seconds { break }
        }
        pool.shutdown()
        if json {
            let s = stats.summary(elapsed: Date().timeIntervalSince(started))
            let data = try JSONSerialization.data(withJSONObject: s, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

/// Live counters for `watch`, written on the client thread and read by the main thread.
final class Stats: @unchecked Sendable {
    private let lock = NSLock()
    private var frames = 0
    private var keyframes = 0
    private var bytes = 0
    private var lastBytes = 0
    private var lastFrames = 0
    private var version: UInt64 = 0
    private var nodes = 0
    private var latencies: [Double] = []
    private var notes: [String] = []
    private var changed: [String] = []

    func frame(_ s: ClientSession, version: UInt64, timeMs: UInt64, keyframe: Bool, change: Replica.Change?) {
        let now = Date().timeIntervalSince1970 * 1000
        lock.lock()
        defer { lock.unlock() }
        frames += 1
        if keyframe { keyframes += 1 }
        bytes = s.bytesReceived
        self.version = version
        nodes = s.replica.nodes.count
        latencies.append(now - Double(timeMs))
        if let change, !change.keyframe, changed.count < 3 {
            for i in change.updated.prefix(3 - changed.count) {
                if let n = s.replica.nodes[i] { changed.append("\(s.replica.path(of: i) ?? "#\(i)")\(n.label.isEmpty ? "" : " “\(n.label)”")") }
            }
        }
    }

    func note(_ s: String) {
        lock.lock()
        notes.append(s)
        lock.unlock()
    }

    func printLine(elapsed: Double) {
        lock.lock()
        let line = String(
            format: "%6.1fs  version %llu  nodes %d  frames/s %d  kB/s %.1f  keyframes %d", elapsed, version, nodes,
            frames - lastFrames, Double(bytes - lastBytes) / 1000, keyframes)
        lastFrames = frames
        lastBytes = bytes
        let n = notes
        notes.removeAll()
        let c = changed
        changed.removeAll()
        lock.unlock()
        print(line + (c.isEmpty ? "" : "  changed: " + c.joined(separator: ", ")))
        for s in n { print("        " + s) }
    }

    func summary(elapsed: Double) -> [String: Any] {
        lock.lock()
        defer { lock.unlock() }
        let sorted = latencies.sorted()
        func pct(_ p: Double) -> Double { sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] }
        return [
            "frames": frames, "keyframes": keyframes, "bytes": bytes, "version": version, "nodes": nodes,
            "seconds": elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "notes": notes,
        ]
    }
}
