/// A WebSocket connection as the client needs it: binary messages in and out. Implemented with libwebsockets on
/// Linux (``LWSTransport``) and `URLSessionWebSocketTask` on Apple platforms (``URLSessionTransport``).
public protocol WebSocketConnection: Sendable {
    /// Sends one binary message.
    func send(_ bytes: [UInt8]) async throws
    /// The next message, or nil once the connection is closed.
    func receive() async throws -> [UInt8]?
    /// Closes with a WebSocket close code.
    func close(code: Int, reason: String) async
}

/// Opens WebSocket connections.
public protocol WebSocketTransport: Sendable {
    /// Connects to `url` (`ws://` or `wss://`), offering `subprotocol`.
    func connect(to url: StreamEndpoint, subprotocol: String) async throws -> any WebSocketConnection
}

/// Where a server's stream is.
public struct StreamEndpoint: Sendable, Hashable, CustomStringConvertible {
    public var tls: Bool
    public var host: String
    public var port: Int
    public var path: String
    /// Accept self-signed certificates (labs and tests only).
    public var insecure: Bool

    /// Creates an endpoint.
    public init(host: String, port: Int, path: String = "/stream", tls: Bool = false, insecure: Bool = false) {
        self.tls = tls
        self.host = host
        self.port = port
        self.path = path
        self.insecure = insecure
    }

    /// Parses `ws://host:port/path` or `wss://…`.
    public init?(_ url: String) {
        let tls: Bool
        var rest: Substring
        if url.hasPrefix("ws://") {
            tls = false
            rest = url.dropFirst(5)
        } else if url.hasPrefix("wss://") {
            tls = true
            rest = url.dropFirst(6)
        } else {
            return nil
        }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let hostPort = rest[..<slash]
        let path = slash < rest.endIndex ? String(rest[slash...]) : "/stream"
        rest = hostPort
        var host = String(rest)
        var port = tls ? 443 : 80
        if let colon = rest.lastIndex(of: ":"), let p = Int(rest[rest.index(after: colon)...]) {
            host = String(rest[..<colon])
            port = p
        }
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port, path: path, tls: tls)
    }

    public var description: String { "\(tls ? "wss" : "ws")://\(host):\(port)\(path)" }
}

/// A transport failure.
public struct TransportFailure: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// Creates a failure.
    public init(_ description: String) { self.description = description }
}
