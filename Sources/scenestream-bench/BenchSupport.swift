import ArgumentParser
import Foundation

/// A `scenestream serve` child process for the benchmarks: started on a free loopback port, ready when it prints
/// its port, stopped with SIGTERM.
enum BenchServer {
    /// Starts the server with `arguments` (after `serve --port 0 --bind 127.0.0.1`); returns it and its port.
    static func start(binary: String?, arguments: [String], quiet: Bool = true) throws -> (Process, Int) {
        let bin = binary ?? defaultServer
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: bin)
        // Its own data folder unless the benchmark brings a configuration: one server per data folder.
        let own = arguments.contains("--config") || arguments.contains("--data")
            ? [] : ["--data", NSTemporaryDirectory() + "scenestream-bench-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"]
        proc.arguments = ["serve", "--port", "0", "--bind", "127.0.0.1"] + own + arguments
        let out = Pipe()
        proc.standardOutput = out
        if quiet { proc.standardError = FileHandle.nullDevice }
        try proc.run()
        var text = ""
        while true {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { throw ValidationError("server exited: \(text)") }
            text += String(decoding: d, as: UTF8.self)
            if let r = text.range(of: "listening on port "), text[r.upperBound...].contains("\n"),
                let p = Int(text[r.upperBound...].prefix { $0.isNumber })
            {
                return (proc, p)
            }
        }
    }

    /// The `scenestream` built next to this benchmark binary.
    static var defaultServer: String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("scenestream").path
    }

    /// Stops a server started by ``start(binary:arguments:quiet:)``.
    static func stop(_ proc: Process) {
        if proc.isRunning {
            proc.terminate()
            proc.waitUntilExit()
        }
        // The data folder ``start`` made for it.
        if let args = proc.arguments, let k = args.firstIndex(of: "--data"), k + 1 < args.count, args[k + 1].contains("scenestream-bench-") {
            try? FileManager.default.removeItem(atPath: args[k + 1])
        }
    }
}

/// A free TCP port on loopback for a broker the benchmark starts (mosquitto cannot listen on port 0 and report it).
/// Bound and released, so another process could take it in between: good enough for a benchmark, never used by
/// SceneStream itself (libwebsockets listens on port 0 and reports the port).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ValidationError("socket() failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0 else { throw ValidationError("could not find a free port") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Waits (polling every 200 µs) until `cond` holds, or fails after `timeout` seconds naming `what`.
func waitUntil(_ what: String, _ timeout: Double = 20, _ cond: () -> Bool) throws {
    let end = Date().addingTimeInterval(timeout)
    while !cond() {
        if Date() > end { throw ValidationError("timed out waiting for \(what)") }
        usleep(200)
    }
}
