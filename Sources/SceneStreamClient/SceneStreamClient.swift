import Foundation
import SceneStreamProtocol
import SceneStreamReplica

/// What a ``SceneStreamClient`` reports.
public enum ClientUpdate: Sendable {
    /// A frame was applied: the replica after it, and what changed.
    case frame(Replica, Replica.Change)
    case alerts([AlertRecord])
    case session(SessionState)
    case handoff(HandoffNotice)
    /// The site's spatial anchors (protocol version 3).
    case anchors([AnchorRecord])
    case serverError(code: ErrorCode, requestId: UInt32, message: String)
    /// The connection dropped; the client is reconnecting (and will resume the session).
    case reconnecting(attempt: Int)
}

/// A live replica of a SceneStream scene.
///
/// ```swift
/// let client = SceneStreamClient(endpoint: StreamEndpoint("ws://plant:8080/stream")!,
///                                options: ClientOptions(device: .headset, interest: InterestSpec(sceneId: "demo")))
/// for try await update in await client.updates() {
///     if case .frame(let replica, let change) = update { render(replica, change) }
/// }
/// ```
///
/// The client says hello, subscribes, applies keyframes and deltas to its ``Replica``, acknowledges them, and on a
/// dropped connection reconnects with backoff and resumes the session (a delta when the server still has the
/// version). A frame that breaks the protocol ends the stream with a ``ProtocolError`` after closing with 1008.
public actor SceneStreamClient {
    public let endpoint: StreamEndpoint
    private let transport: any WebSocketTransport
    private let session: ClientSession
    private var connection: (any WebSocketConnection)?
    private var continuation: AsyncThrowingStream<ClientUpdate, any Error>.Continuation?
    private var runner: Task<Void, Never>?
    /// Reconnect after a dropped connection (not after a protocol error or ``stop()``).
    public var reconnects: Bool
    private var stopped = false

    /// Creates a client; nothing happens until ``updates()`` is called.
    public init(endpoint: StreamEndpoint, options: ClientOptions, transport: (any WebSocketTransport)? = nil, reconnects: Bool = true) throws {
        self.endpoint = endpoint
        self.session = try ClientSession(options: options)
        self.reconnects = reconnects
        if let transport {
            self.transport = transport
        } else {
            #if os(Linux)
            self.transport = try LWSTransport()
            #elseif canImport(Darwin)
            self.transport = URLSessionTransport()
            #else
            throw TransportFailure("no WebSocket transport on this platform")
            #endif
        }
    }

    /// The replica now.
    public var replica: Replica { session.replica }
    /// The session id the server gave.
    public var sessionId: String { session.sessionId }

    /// Connects (once) and returns the stream of updates.
    public func updates() -> AsyncThrowingStream<ClientUpdate, any Error> {
        let (stream, k) = AsyncThrowingStream<ClientUpdate, any Error>.makeStream(bufferingPolicy: .bufferingNewest(256))
        continuation = k
        runner = Task { await self.run() }
        return stream
    }

    /// Sends a message (presence, select, annotate, handoff, playback, follow…).
    public func send(_ m: ClientMessage) async throws {
        guard let connection else { throw TransportFailure("not connected") }
        try await connection.send(session.encode(m))
    }

    /// Closes the connection and ends the stream.
    public func stop() async {
        stopped = true
        await connection?.close(code: 1000, reason: "bye")
        runner?.cancel()
        continuation?.finish()
    }

    /// Drops the connection as a network failure would (for testing resume).
    public func dropConnection() async {
        await connection?.close(code: 1001, reason: "going away")
    }

    private func run() async {
        var attempt = 0
        while !stopped {
            do {
                let conn = try await transport.connect(to: endpoint, subprotocol: ProtocolVersion.subprotocol)
                connection = conn
                try await conn.send(attempt == 0 || session.sessionToken.isEmpty ? session.start() : session.resumeHello())
                while let message = try await conn.receive() {
                    let (out, events): ([[UInt8]], [ClientEvent])
                    do {
                        (out, events) = try session.receive(message)
                    } catch {
                        await conn.close(code: 1008, reason: "protocol error")
                        continuation?.finish(throwing: error)
                        return
                    }
                    for o in out { try await conn.send(o) }
                    for e in events { publish(e) }
                    attempt = 1
                }
            } catch {
                if !reconnects || stopped {
                    continuation?.finish(throwing: error)
                    return
                }
            }
            connection = nil
            guard reconnects, !stopped else { break }
            attempt += 1
            continuation?.yield(.reconnecting(attempt: attempt))
            try? await Task.sleep(nanoseconds: UInt64(min(5.0, 0.1 * pow(2, Double(min(attempt, 6)))) * 1e9))
        }
        continuation?.finish()
    }

    private func publish(_ e: ClientEvent) {
        switch e {
        case .frame(_, _, _, let change):
            if let change { continuation?.yield(.frame(session.replica, change)) }
        case .alerts(let a): continuation?.yield(.alerts(a))
        case .anchors(let a): continuation?.yield(.anchors(a))
        case .serverError(let code, let requestId, let message): continuation?.yield(.serverError(code: code, requestId: requestId, message: message))
        case .other(.sessionState(let s)): continuation?.yield(.session(s))
        case .other(.handoff(let h)): continuation?.yield(.handoff(h))
        default: break
        }
    }
}
