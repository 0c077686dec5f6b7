import ArgumentParser
import Dispatch
import Foundation
import Logging
import SceneStreamCore
import SceneStreamServer

struct ServeCommand: ParsableCommand {
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

    func run() throws {
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
        // SIGTERM / SIGINT: close every client with 1001, then exit. Set up before readiness is announced: a
        // signal sent right after "listening on port" must not be lost.
        let stop = DispatchSemaphore(value: 0)
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
        let int = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        term.setEventHandler { stop.signal() }
        int.setEventHandler { stop.signal() }
        term.resume()
        int.resume()
        let server = try StreamingServer(configuration: c, plant: bundle, logger: logger)
        try server.start()
        let host = c.bindAddress.flatMap { $0 == "0.0.0.0" ? nil : $0 } ?? "127.0.0.1"
        let scheme = c.tlsCertificate == nil ? "http" : "https"
        let wsScheme = c.tlsCertificate == nil ? "ws" : "wss"
        if c.auth == nil {
            logger.warning("no authentication: anyone who can reach port \(server.port) sees this plant (open demo mode; configure \"auth\" to require tokens)")
        } else if c.tlsCertificate == nil {
            logger.warning("tokens travel without TLS: configure \"tls\" outside a lab")
        }
        var out = ""
        func say(_ s: String) { out += s + "\n" }
        say("SceneStream \(bundle.scene.name.isEmpty ? bundle.scene.id : bundle.scene.name): \(bundle.scene.nodes.count) nodes")
        say("viewer:  \(scheme)://\(host):\(server.port)/")
        say("stream:  \(wsScheme)://\(host):\(server.port)/stream  (subprotocol scenestream.v1)")
        say("health:  \(scheme)://\(host):\(server.port)/healthz   metrics: /metrics")
        say("listening on port \(server.port)")
        FileHandle.standardOutput.write(Data(out.utf8))

        stop.wait()
        logger.info("signal received; shutting down")
        server.stop()
        logger.info("stopped")
    }
}
