import ArgumentParser
import Foundation
import Logging
import SceneStreamMQTT
import SceneStreamServer
import SceneStreamSparkplug

struct IngestBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Publish property updates to a real mosquitto broker and measure how fast the server takes them in.",
        discussion: """
            Two phases in one run, same broker, same messages: first a subscriber that only counts (the ceiling of \
            broker + publisher on this machine), then the server (parse, map, dedupe, bind, commit, store).
            --format plain: one update per message on scenestream/TWIN/PROPERTY. --format sparkplug: NDATA per \
            edge node (a line's PLC), --metrics-per-message metrics each, aliases from an NBIRTH. --format opcua: OPC UA             PubSub JSON (Part 14, non-reversible) network messages, one DataSetWriter per line, --metrics-per-message             fields each named ROBOT/JOINT, mapped by one template.
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable { case plain, sparkplug, opcua }

    @Option(help: "Updates to publish.") var updates: Int = 300_000
    @Option(help: "plain, sparkplug or opcua.") var format: Format = .plain
    @Option(help: "Sparkplug and OPC UA: metrics (fields) per message.") var metricsPerMessage: Int = 144
    @Option(help: "Plant folder the server streams.") var plant: String = "Assets/plants/reference"
    @Option(help: "Server binary (default: the scenestream built next to this one).") var server: String?
    @Flag(help: "Print one JSON object.") var json = false

    /// One robot joint per update across the reference plant: 2 halls × 10 lines × 24 robots × 6 joints.
    struct Joint {
        var group: String
        var node: String
        var metric: String
        var topic: String
    }

    static func joints() -> [Joint] {
        var out: [Joint] = []
        for h in ["hall-a", "hall-b"] {
            for l in 1...10 {
                let line = "line-" + (l < 10 ? "0\(l)" : "\(l)")
                for r in 1...24 {
                    let robot = "robot-" + (r < 10 ? "0\(r)" : "\(r)")
                    for j in 1...6 { out.append(Joint(group: h, node: line, metric: "\(robot)/j\(j)", topic: "scenestream/\(h)/\(line)/\(robot)/j\(j)")) }
                }
            }
        }
        return out
    }

    /// The messages to publish (topic, payload, updates carried), births first.
    func messages(startMs: UInt64) -> [(String, [UInt8], Int)] {
        let joints = Self.joints()
        var out: [(String, [UInt8], Int)] = []
        switch format {
        case .plain:
            for k in 0..<updates {
                out.append((joints[k % joints.count].topic, Array(String(format: "%.3f", sin(Double(k) * 0.001)).utf8), 1))
            }
        case .opcua:
            // Publisher = hall, DataSetWriter = line; fields ROBOT/JOINT; SequenceNumber per writer.
            let lines = Dictionary(grouping: joints.indices, by: { "\(joints[$0].group)/\(joints[$0].node)" })
            let order = lines.keys.sorted()
            var seq: [String: Int] = [:]
            var sent = 0, k = 0
            // Each message a millisecond after the one before (one stamp for all would make repeated values duplicates).
            let iso = ISO8601DateFormatter()
            iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            while sent < updates {
                let key = order[k % order.count]
                let idx = lines[key]!
                let n = min(metricsPerMessage, idx.count, updates - sent)
                let (hall, line) = (joints[idx[0]].group, joints[idx[0]].node)
                let stamp = iso.string(from: Date(timeIntervalSince1970: Double(startMs + UInt64(k)) / 1000))
                let s = seq[key, default: 0] + 1
                seq[key] = s
                var j = "{\"MessageId\":\"\(k)\",\"MessageType\":\"ua-data\",\"PublisherId\":\"\(hall)\",\"WriterGroupName\":\"g\",\"Messages\":[{\"DataSetWriterId\":\(k % order.count + 1),\"DataSetWriterName\":\"\(line)\",\"SequenceNumber\":\(s),\"Timestamp\":\"\(stamp)\",\"MessageType\":\"ua-keyframe\",\"Payload\":{"
                for m in 0..<n {
                    let jt = joints[idx[(m + k) % idx.count]]
                    if m > 0 { j += "," }
                    j += "\"\(jt.metric)\":" + String(format: "%.4f", sin(Double(sent + m) * 0.001))
                }
                j += "}}]}"
                out.append(("opcua/json/data/\(hall)/g/\(line)", Array(j.utf8), n))
                sent += n
                k += 1
            }
        case .sparkplug:
            // Edge nodes = lines; each NBIRTH names its 144 joints with aliases; NDATA carries aliases only.
            let nodes = Dictionary(grouping: joints.indices, by: { "\(joints[$0].group)/\(joints[$0].node)" })
            let order = nodes.keys.sorted()
            var seq: [String: UInt64] = [:]
            for key in order {
                var b = SparkplugPayloadBuilder(seq: 0, timestampMs: startMs)
                b.add(name: "bdSeq", uint64: 0)
                for (a, i) in nodes[key]!.enumerated() { b.add(name: joints[i].metric, alias: UInt64(a), datatype: .double, value: .number(0)) }
                out.append(("spBv1.0/\(key.replacingOccurrences(of: "/", with: "/NBIRTH/"))", b.bytes(), nodes[key]!.count))
                seq[key] = 1
            }
            var sent = 0, k = 0, tick: UInt64 = 1
            while sent < updates - joints.count {
                let key = order[k % order.count]
                let idx = nodes[key]!
                let n = min(metricsPerMessage, idx.count, updates - joints.count - sent)
                var b = SparkplugPayloadBuilder(seq: seq[key]!, timestampMs: startMs + tick)
                seq[key] = (seq[key]! + 1) % 256
                for m in 0..<n { b.add(alias: UInt64((m + k) % idx.count), value: .number(sin(Double(sent + m) * 0.001))) }
                out.append(("spBv1.0/\(key.replacingOccurrences(of: "/", with: "/NDATA/"))", b.bytes(), n))
                sent += n
                k += 1
                if k % order.count == 0 { tick += 1 }
            }
        }
        return out
    }

    /// Publishes everything as fast as the client takes it; returns seconds spent publishing.
    static func publish(_ msgs: [(String, [UInt8], Int)], port: Int) throws -> Double {
        let connected = DispatchSemaphore(value: 0)
        let publisher = try MQTTClient(
            host: "127.0.0.1", port: port, clientId: "bench-pub-\(getpid())", logger: Self.quiet,
            onMessage: { _, _ in }, onConnection: { up in if up { connected.signal() } })
        try publisher.start()
        guard connected.wait(timeout: .now() + 10) == .success else { throw ValidationError("publisher could not connect") }
        let t0 = Date()
        for (topic, payload, _) in msgs {
            while !publisher.publish(topic, payload, qos: 0) { usleep(100) }
        }
        let s = Date().timeIntervalSince(t0)
        publisher.stop()
        return s
    }

    func run() throws {
        let dir = NSTemporaryDirectory() + "scenestream-ingest-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let brokerPort = try freeLoopbackPort()
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
        let msgs = messages(startMs: UInt64(Date().timeIntervalSince1970 * 1000))
        let total = msgs.reduce(0) { $0 + $1.2 }

        // Phase 1: the ceiling — a subscriber that only counts what it receives.
        let counted = Counter()
        let up = DispatchSemaphore(value: 0)
        let sink = try MQTTClient(
            host: "127.0.0.1", port: brokerPort, clientId: "bench-sink-\(getpid())", logger: Self.quiet,
            onMessage: { _, _ in counted.add(1) }, onConnection: { c in if c { up.signal() } })
        sink.subscribe(format == .plain ? "scenestream/#" : format == .opcua ? "opcua/#" : "spBv1.0/#", qos: 0)
        try sink.start()
        guard up.wait(timeout: .now() + 10) == .success else { throw ValidationError("broker did not start") }
        usleep(200_000)  // the SUBACK: no readiness signal from libmosquitto for it
        let b0 = Date()
        _ = try Self.publish(msgs, port: brokerPort)
        let bDeadline = Date().addingTimeInterval(60)
        while counted.value < msgs.count && Date() < bDeadline { usleep(5_000) }
        let baselineSeconds = Date().timeIntervalSince(b0)
        let baselineMessages = counted.value
        sink.stop()

        // Phase 2: the server.
        let sp = switch format {
        case .plain: ""
        case .sparkplug: ", \"sparkplug\": {}"
        case .opcua: ", \"opcua\": {\"map\": [{\"twin\": \"{publisher}/{writer}/{folder}\", \"property\": \"{leaf}\"}]}"
        }
        let cfg = "{\"simulator\": false, \"data\": \"\(dir)/data\", \"mqtt\": {\"port\": \(brokerPort), \"qos\": 0\(sp)}}"
        try cfg.write(toFile: "\(dir)/server.json", atomically: true, encoding: .utf8)
        let (proc, port) = try BenchServer.start(
            binary: server, arguments: ["--config", "\(dir)/server.json", "--plant", plant, "--log-level", "warning"])
        defer { BenchServer.stop(proc) }
        func counter() -> Double { Self.metric(port: port, name: "scenestream_ingest_mqtt_updates_total") }
        let until = Date().addingTimeInterval(20)
        while Self.metric(port: port, name: "scenestream_mqtt_connected") != 1 && Date() < until { usleep(50_000) }
        usleep(200_000)
        let base = counter()
        let t0 = Date()
        let published = try Self.publish(msgs, port: brokerPort)
        var got = counter() - base
        let deadline = Date().addingTimeInterval(60)
        while got < Double(total) && Date() < deadline {
            usleep(20_000)
            got = counter() - base
        }
        let elapsed = Date().timeIntervalSince(t0)
        let rejected = Self.metric(port: port, name: "scenestream_ingest_rejected_total")
        let baselineRate = Double(baselineMessages) / Double(max(1, msgs.count)) * Double(total) / baselineSeconds
        let rate = got / elapsed
        let result: [String: Any] = [
            "format": format.rawValue, "updates": total, "messages": msgs.count, "received": Int(got), "rejected": Int(rejected),
            "seconds": (elapsed * 1000).rounded() / 1000, "publish_seconds": (published * 1000).rounded() / 1000,
            "updates_per_s": Int(rate), "baseline_updates_per_s": Int(baselineRate),
            "baseline_messages_received": baselineMessages, "server_vs_baseline": (rate / baselineRate * 1000).rounded() / 1000, "plant": plant,
        ]
        if json {
            print(String(decoding: try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
        // A rate over lost updates would mean nothing.
        guard Int(got) == total, rejected == 0 else { throw ValidationError("the server took in \(Int(got)) of \(total) updates (\(Int(rejected)) refused)") }
    }

    static let quiet: Logger = {
        var l = Logger(label: "bench")
        l.logLevel = .warning
        return l
    }()

    /// A thread-safe message counter.
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func add(_ k: Int) {
            lock.lock()
            n += k
            lock.unlock()
        }
        var value: Int {
            lock.lock()
            defer { lock.unlock() }
            return n
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
