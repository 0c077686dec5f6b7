import Foundation

/// Real nats-server processes on loopback for tests: `count` servers joined in one cluster. Client ports are picked
/// and reported by the servers. Without JetStream the route ports are too (the first server seeds the others'
/// routes). A JetStream cluster in 2.9 refuses to start before its routes are configured, so with `jetStream`
/// every server is given every route up front: random ports, and the whole cluster is started again on others if
/// one is taken (a server that cannot listen says so and exits — nothing is bound and released to guess a port).
/// Stopped when done.
public final class NATSCluster {
    /// A server of the cluster.
    public final class Node {
        public let process = Process()
        /// Its client port.
        public fileprivate(set) var port = 0
        /// Its route (cluster) port.
        public fileprivate(set) var clusterPort = 0
        /// `nats://127.0.0.1:PORT`.
        public var url: String { "nats://127.0.0.1:\(port)" }
        fileprivate var log = ""
    }

    /// Why the cluster did not start.
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    public private(set) var nodes: [Node] = []
    private let folder: String

    /// `NATS_SERVER_BIN`, or nats-server where Debian puts it (`/usr/sbin`), or on the PATH.
    public static var defaultBinary: String {
        if let b = ProcessInfo.processInfo.environment["NATS_SERVER_BIN"] { return b }
        for d in ["/usr/sbin", "/usr/bin", "/usr/local/bin"] where FileManager.default.isExecutableFile(atPath: "\(d)/nats-server") {
            return "\(d)/nats-server"
        }
        return "nats-server"
    }

    /// Every server's URL.
    public var urls: [String] { nodes.map(\.url) }

    /// Starts `count` servers and waits until each is ready (with `jetStream`, file storage in a temporary folder).
    public init(count: Int = 3, jetStream: Bool = false, binary: String = NATSCluster.defaultBinary) throws {
        folder = NSTemporaryDirectory() + "scenestream-nats-\(UUID().uuidString)"
        guard jetStream else {
            for k in 0..<count {
                let seed = nodes.first.map { "nats://127.0.0.1:\($0.clusterPort)" }
                nodes.append(try Self.start(binary: binary, name: "n\(k)", routes: seed.map { [$0] } ?? [], clusterPort: -1, store: nil))
            }
            return
        }
        var lastError: (any Error)?
        for _ in 0..<5 {
            let base = Int.random(in: 20_000...60_000)
            let ports = (0..<count).map { base + $0 }
            do {
                for k in 0..<count {
                    let routes = ports.enumerated().filter { $0.offset != k }.map { "nats://127.0.0.1:\($0.element)" }
                    nodes.append(try Self.start(binary: binary, name: "n\(k)", routes: routes, clusterPort: ports[k], store: "\(folder)/n\(k)"))
                }
                return
            } catch {
                lastError = error
                for k in nodes.indices { stop(k) }
                nodes = []
            }
        }
        throw lastError ?? StartError(description: "nats cluster did not start")
    }

    private static func start(binary: String, name: String, routes: [String], clusterPort: Int, store: String?) throws -> Node {
        let node = Node()
        node.process.executableURL = URL(fileURLWithPath: binary)
        var args = ["-a", "127.0.0.1", "-p", "-1", "-n", name, "--cluster_name", "scenestream-test", "--cluster", "nats://127.0.0.1:\(clusterPort)"]
        if !routes.isEmpty { args += ["--routes", routes.joined(separator: ",")] }
        if let store { args += ["-js", "-sd", store] }
        node.process.arguments = args
        let err = Pipe()
        node.process.standardError = err
        node.process.standardOutput = FileHandle.nullDevice
        try node.process.run()
        // Readiness: the server says where it listens and that it is ready (not a fixed wait).
        let deadline = Date().addingTimeInterval(30)
        let handle = err.fileHandleForReading
        while Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            node.log += String(decoding: chunk, as: UTF8.self)
            if node.port == 0, let p = port(after: "Listening for client connections on 127.0.0.1:", in: node.log) { node.port = p }
            if node.clusterPort == 0, let p = port(after: "Listening for route connections on 127.0.0.1:", in: node.log) { node.clusterPort = p }
            if node.port > 0, node.clusterPort > 0, node.log.contains("Server is ready") { break }
        }
        guard node.port > 0, node.clusterPort > 0, node.log.contains("Server is ready") else {
            node.process.terminate()
            throw StartError(description: "nats-server \(name) did not start: \(node.log.suffix(600))")
        }
        // Keep draining its log so that it never blocks on a full pipe.
        DispatchQueue.global().async { while !handle.availableData.isEmpty {} }
        return node
    }

    private static func port(after marker: String, in log: String) -> Int? {
        guard let r = log.range(of: marker) else { return nil }
        let digits = log[r.upperBound...].prefix { $0.isNumber }
        return log[r.upperBound...].dropFirst(digits.count).first.map { _ in Int(digits) } ?? nil
    }

    /// Stops server `k` (SIGKILL when `kill`, else SIGTERM) and waits for it.
    public func stop(_ k: Int, kill: Bool = false) {
        let p = nodes[k].process
        guard p.isRunning else { return }
        if kill { Foundation.kill(p.processIdentifier, SIGKILL) } else { p.terminate() }
        p.waitUntilExit()
    }

    /// Stops every server and removes their storage.
    public func stop() {
        for k in nodes.indices { stop(k) }
        try? FileManager.default.removeItem(atPath: folder)
    }

    deinit { stop() }
}
