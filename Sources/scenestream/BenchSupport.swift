import ArgumentParser
import Foundation

/// A `scenestream serve` child process for the benchmarks: started on a free loopback port, ready when it prints
/// its port, stopped with SIGTERM.
enum BenchServer {
    /// Starts the server with `arguments` (after `serve --port 0 --bind 127.0.0.1`); returns it and its port.
    static func start(binary: String?, arguments: [String], quiet: Bool = true) throws -> (Process, Int) {
        let bin = binary ?? (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: bin)
        proc.arguments = ["serve", "--port", "0", "--bind", "127.0.0.1"] + arguments
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

    /// Stops a server started by ``start(binary:arguments:quiet:)``.
    static func stop(_ proc: Process) {
        if proc.isRunning {
            proc.terminate()
            proc.waitUntilExit()
        }
    }
}
