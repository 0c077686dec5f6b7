import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The real `scenestream` binary, started on a free loopback port and stopped when the test ends.
public final class ServerProcess {
    public let process = Process()
    /// The port the server listens on (its own pick, read from its output).
    public let port: Int
    private let output = Pipe()

    /// The binary: `SCENESTREAM_BIN`, or the debug build of this checkout.
    public static var binary: String {
        if let b = ProcessInfo.processInfo.environment["SCENESTREAM_BIN"] { return b }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/scenestream").path
    }

    /// The checkout the tests run in.
    public static var root: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    /// The server did not start (its output says why).
    public struct StartError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Starts `scenestream serve` with `args` on a port of its choosing and waits until it listens.
    public init(_ args: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: Self.binary)
        // Its own data folder unless the test brings a configuration: one server per data folder.
        let own = args.contains("--config") || args.contains("--data")
            ? [] : ["--data", NSTemporaryDirectory() + "scenestream-e2e-\(UUID().uuidString)"]
        process.arguments = ["serve", "--port", "0", "--bind", "127.0.0.1", "--log-level", "warning"] + own + args
        process.currentDirectoryURL = URL(fileURLWithPath: Self.root)
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Readiness: wait for the "listening on port N" line, not for a fixed time.
        var buffer = ""
        let handle = output.fileHandleForReading
        let deadline = Date().addingTimeInterval(60)
        var found: Int?
        while found == nil, Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            buffer += String(decoding: chunk, as: UTF8.self)
            if let r = buffer.range(of: "listening on port ") {
                let digits = buffer[r.upperBound...].prefix { $0.isNumber }
                if buffer[r.upperBound...].contains("\n") { found = Int(digits) }
            }
        }
        guard let found else {
            process.terminate()
            throw StartError(description: "server did not start: \(buffer)")
        }
        port = found
    }

    /// Stops the server (SIGTERM) and returns its exit status; removes its own data folder.
    @discardableResult
    public func stop() -> Int32 {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        if let args = process.arguments, let k = args.firstIndex(of: "--data"), k + 1 < args.count, args[k + 1].contains("scenestream-e2e-") {
            try? FileManager.default.removeItem(atPath: args[k + 1])
        }
        return process.terminationStatus
    }

    deinit { _ = stop() }

    /// GETs (or POSTs JSON to) `path` and returns the body.
    public func http(_ path: String, post: [UInt8]? = nil) throws -> [UInt8] {
        var req = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        if let post {
            req.httpMethod = "POST"
            req.httpBody = Data(post)
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let sem = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<[UInt8], any Error> = .failure(StartError(description: "no answer"))
        URLSession.shared.dataTask(with: req) { data, _, error in
            if let data { result = .success([UInt8](data)) } else if let error { result = .failure(error) }
            sem.signal()
        }.resume()
        sem.wait()
        return try result.get()
    }
}
