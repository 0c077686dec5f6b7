import ArgumentParser
import Foundation
import Logging
import SceneStreamMQTT
import SceneStreamServer

struct IngestBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Publish property updates to a real mosquitto broker and measure how fast the server takes them in.")

    @Option(help: "Updates to publish.") var updates: Int = 300_000
    @Option(help: "Plant folder the server streams.") var plant: String = "Assets/plants/reference"
    @Option(help: "Server binary (default: this one).") var server: String?
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let dir = NSTemporaryDirectory() + "scenestream-ingest-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let brokerPort = try StreamingServer.freePort("127.0.0.1")
        try "listener \(brokerPort) 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 0\n"
            .write(toFile: "\(dir)/mosquitto.conf", atomically: true, encoding: .utf8)
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: FileManager.default.fileExists(atPath: "/usr/sbin/mosquitto") ? "/usr/sbin/mosquitto" : "/usr/bin/mosquitto")
        broker.arguments = ["-c", "\(dir)/mosquitto.conf"]
        broker.standardError = FileHandle.nullDevice
        try broker.run()
        defer {
            broker.terminate()
            broker.waitUntilExit()
        }
        let cfg = "{\"simulator\": false, \"data\": \"\(dir)/data\", \"mqtt\": {\"port\": \(brokerPort), \"qos\": 0}}"
        try cfg.write(toFile: "\(dir)/server.json", atomically: true, encoding: .utf8)
        let (proc, port) = try BenchServer.start(
            binary: server, arguments: ["--config", "\(dir)/server.json", "--plant", plant, "--log-level", "warning"])
        defer { BenchServer.stop(proc) }
        func counter() -> Double { Self.metric(port: port, name: "scenestream_ingest_mqtt_updates_total") }
        let until = Date().addingTimeInterval(20)
        while Self.metric(port: port, name: "scenestream_mqtt_connected") != 1 && Date() < until { usleep(50_000) }

        let connected = DispatchSemaphore(value: 0)
        let publisher = try MQTTClient(host: "127.0.0.1", port: brokerPort, clientId: "bench-\(getpid())", logger: Logger(label: "bench"),
                                       onMessage: { _, _ in }, onConnection: { up in if up { connected.signal() } })
        try publisher.start()
        _ = connected.wait(timeout: .now() + 10)
        // Robot joint angles across the reference plant: every update moves a node.
        var topics: [String] = []
        for h in ["hall-a", "hall-b"] {
            for l in 1...10 {
                for r in 1...24 {
                    for j in 1...6 { topics.append("scenestream/\(h)/line-\(l < 10 ? "0\(l)" : "\(l)")/robot-\(r < 10 ? "0\(r)" : "\(r)")/j\(j)") }
                }
            }
        }
        let base = counter()
        let t0 = Date()
        for k in 0..<updates {
            let value = String(format: "%.3f", sin(Double(k) * 0.001))
            while !publisher.publish(topics[k % topics.count], Array(value.utf8), qos: 0) { usleep(100) }
            if !json && k % 100_000 == 99_999 { print("published \(k + 1)") }
        }
        let published = Date().timeIntervalSince(t0)
        var got = counter() - base
        let deadline = Date().addingTimeInterval(60)
        while got < Double(updates) && Date() < deadline {
            usleep(20_000)
            got = counter() - base
        }
        let elapsed = Date().timeIntervalSince(t0)
        publisher.stop()
        let result: [String: Any] = [
            "updates": updates, "received": Int(got), "seconds": (elapsed * 1000).rounded() / 1000,
            "publish_seconds": (published * 1000).rounded() / 1000, "updates_per_s": Int(got / elapsed), "plant": plant,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
    }

    /// GET /metrics over a plain socket (no HTTP client library needed for one request).
    static func metric(port: Int, name: String) -> Double {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return 0 }
        let req = Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
        _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var data: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data.append(contentsOf: buf[0..<n])
        }
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ")[1]) ?? 0
        }
        return 0
    }

}
