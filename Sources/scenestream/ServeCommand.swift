import ArgumentParser
import Dispatch
import Foundation
import Logging
import Metrics
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
