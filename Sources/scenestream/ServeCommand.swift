import ArgumentParser
import Dispatch
import Foundation
import Logging
import Metrics
import SceneStreamCluster
import SceneStreamCore
import SceneStreamServer
import ServiceLifecycle

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a plant: the embedded demo (built-in simulator) unless a config file says otherwise.")

    @Option(help: "A JSON configuration file (see README).") var config: String?
    @Option(help: "TCP port (0 picks a free one).") var port: Int?
    @Option(help: "Address to bind (default: every interface).") var bind: String?
    @Option(help: "Plant folder with scene.json, bindings.json, rules.json, twins.json.") var plant: String?
    @Option(help: "Assets folder (models, plants, web viewer).") var assets: String?
    @Option(help: "Scene commits per second.") var tickHz: Int?
    @Flag(help: "Run without the built-in simulator.") var noSimulator = false
    @Option(help: "Folder for durable state (annotations).") var data: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"
    @Option(help: "Join a cluster: NATS servers, nats://HOST:PORT[,nats://…] (clustering is off without it).") var cluster: String?
    @Option(help: "Cluster role: owner (ingests and commits the scene) or fanout (serves copies of it).") var role: String?
    @Flag(help: "As an owner: wait for the active owner's lease and take over when it goes.") var standby = false
    @Option(help: "This node's name in the cluster (default: host name and process id).") var node: String?

    func run() async throws {
        var c = ServerConfiguration()
        if let config {
            guard let d = FileManager.default.contents(atPath: config) else {
                throw ValidationError("\(config): cannot read the configuration file")
            }
            c = try ServerConfiguration.load([UInt8](d), file: config)
        }
        if let port { c.port = port }
        if let bind { c.bindAddress = bind }
        if let plant { c.plantDirectory = plant }
        if let assets { c.assetsDirectory = assets }
        if let tickHz { c.tickHz = Double(tickHz) }
        if noSimulator { c.simulator = false }
        if let data { c.dataDirectory = data }
        if let cluster {
            let urls = cluster.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard !urls.isEmpty, urls.allSatisfy({ $0.hasPrefix("nats://") || $0.hasPrefix("tls://") }) else {
                throw ValidationError("--cluster takes nats://HOST:PORT[,nats://HOST:PORT…], not '\(cluster)'")
            }
            var cc = c.cluster ?? ClusterConfiguration(servers: urls, node: ClusterConfiguration.defaultNode)
            cc.servers = urls
            c.cluster = cc
        }
        if role != nil || standby || node != nil {
            guard var cc = c.cluster else { throw ValidationError("--role, --standby and --node need --cluster (or \"cluster\" in the config)") }
            if let role {
                guard let r = ClusterConfiguration.Role(rawValue: role) else { throw ValidationError("--role is owner or fanout, not '\(role)'") }
                cc.role = r
            }
            if standby { cc.standby = true }
            if let node { cc.node = node }
            guard !cc.standby || cc.role == .owner else { throw ValidationError("--standby is for an owner, not a fan-out node") }
            c.cluster = cc
        }
        guard (0...65535).contains(c.port) else { throw ValidationError("--port must be 0…65535") }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            return h
        }
        let logger = Logger(label: "scenestream")
        let bundle = try PlantBundle.load(directory: c.plantDirectory)
        let server = try StreamingServer(configuration: c, plant: bundle, logger: logger)
        // Metrics of any library go to the same Prometheus registry as the server's own.
        MetricsSystem.bootstrap(server.metricsFactory)
        let port = server.port
        let host = c.bindAddress.flatMap { $0 == "0.0.0.0" ? nil : $0 } ?? "127.0.0.1"
        let scheme = c.tlsCertificate == nil ? "http" : "https"
        let wsScheme = c.tlsCertificate == nil ? "ws" : "wss"
        if c.auth == nil {
            logger.warning("no authentication: anyone who can reach port \(port) sees this plant (open demo mode; configure \"auth\" to require tokens)")
        } else if c.tlsCertificate == nil {
            logger.warning("tokens travel without TLS: configure \"tls\" outside a lab")
        }
        var out = ""
        func say(_ s: String) { out += s + "\n" }
        say("SceneStream \(bundle.scene.name.isEmpty ? bundle.scene.id : bundle.scene.name): \(bundle.scene.nodes.count) nodes")
        say("viewer:  \(scheme)://\(host):\(port)/")
        say("stream:  \(wsScheme)://\(host):\(port)/stream  (subprotocol scenestream.v1)")
        say("health:  \(scheme)://\(host):\(port)/healthz   metrics: /metrics")
        if let cc = c.cluster {
            say("cluster: \(cc.role.rawValue)\(cc.standby ? " (standby)" : "") \(cc.node) on \(cc.servers.joined(separator: ","))")
        }
        say("listening on port \(port)")
        let banner = out
        // Storage, MQTT and streaming run as services; SIGTERM / SIGINT shut them down in reverse order: clients
        // closed with 1001, MQTT disconnected (Sparkplug STATE offline), storage flushed. The group installs its
        // signal handlers before starting any service, so a signal sent right after "listening on port" is not lost.
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: server.services(onReady: { FileHandle.standardOutput.write(Data(banner.utf8)) }).map { .init(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("stopped")
    }
}
