#if os(Linux)
import DequeModule
import Dispatch
import Foundation
import Logging
import SceneStreamProtocol
import SceneStreamReplica
import SceneStreamTransport

/// Many client connections on one libwebsockets service thread (Linux transport). Used by `scenestream watch`,
/// `scenestream bench fanout` and the end-to-end tests. Events are delivered on the service thread.
public final class ClientPool: EventLoopHandler, @unchecked Sendable {
    /// One connection's state, readable from the `onEvent` callback.
    public final class Connection {
        public let id: ConnectionID
        public let session: ClientSession
        public fileprivate(set) var open = false
        public fileprivate(set) var closed = false
        public fileprivate(set) var failure: String?
        fileprivate var outbox = Deque<[UInt8]>()
        init(id: ConnectionID, session: ClientSession) {
            self.id = id
            self.session = session
        }
    }

    private var loop: EventLoop!
    private var connections: [ConnectionID: Connection] = [:]
    private let onEvent: (Connection, ClientEvent) -> Void
    private let onClose: (Connection) -> Void
    private let logger: Logger

    /// Creates a pool; `onEvent` and `onClose` run on the service thread.
    public init(
        logger: Logger, onEvent: @escaping (Connection, ClientEvent) -> Void = { _, _ in },
        onClose: @escaping (Connection) -> Void = { _ in }
    ) throws {
        self.logger = logger
        self.onEvent = onEvent
        self.onClose = onClose
        var t = TransportConfiguration(port: nil)
        t.maxMessageBytes = 64 << 20
        t.receiveChunkBytes = 16384
        loop = try EventLoop(configuration: t, handler: self, logger: logger)
        loop.start(name: "scenestream-clients")
    }

    /// Opens a connection to `ws[s]://host:port/path`. Any thread. `insecure` accepts self-signed and mismatched
    /// certificates (for tests and labs only).
    public func connect(
        host: String, port: Int, path: String = "/stream", tls: Bool = false, insecure: Bool = false, options: ClientOptions,
        replica: Replica = Replica()
    ) throws {
        let session = try ClientSession(options: options, replica: replica)
        let box = UncheckedSendable(session)
        loop.post { [self] in
            let id = loop.makeClientID()
            connections[id] = Connection(id: id, session: box.value)
            loop.connect(id, host: host, port: port, path: path, tls: tls, insecure: insecure)
        }
    }

    /// Sends a message on a connection (service thread, e.g. from `onEvent`).
    public func send(_ c: Connection, _ m: ClientMessage) {
        c.outbox.append(c.session.encode(m))
        loop.requestWrite(c.id)
    }

    /// Drops a connection (service thread), as a network failure would: close code 1001.
    public func disconnect(_ c: Connection) {
        loop.close(c.id, code: 1001, reason: "going away")
    }

    /// Runs `work` on the service thread.
    public func post(_ work: @escaping @Sendable () -> Void) { loop.post(work) }

    /// Closes every connection and stops the thread.
    public func shutdown() {
        loop.stop()
        loop.wait()
    }

    /// Snapshot of all connections (service thread).
    public var all: [Connection] { Array(connections.values) }

    // MARK: EventLoopHandler

    public func connected(_ c: ConnectionID) {
        guard let conn = connections[c] else { return }
        conn.open = true
        conn.outbox.append(conn.session.start())
        loop.requestWrite(c)
    }

    public func connectFailed(_ c: ConnectionID, reason: String) {
        guard let conn = connections[c] else { return }
        conn.failure = reason
        conn.closed = true
        onClose(conn)
    }

    public func received(_ c: ConnectionID, message: [UInt8], binary: Bool) -> ReceiveAction {
        guard let conn = connections[c] else { return .close(code: 1011, reason: "unknown") }
        do {
            let (send, events) = try conn.session.receive(message)
            for m in send { conn.outbox.append(m) }
            if !send.isEmpty { loop.requestWrite(c) }
            for e in events { onEvent(conn, e) }
            return .keep
        } catch {
            conn.failure = "\(error)"
            logger.error("bad message from server: \(error)")
            return .close(code: 1008, reason: "bad frame")
        }
    }

    public func writable(_ c: ConnectionID) -> WriteAction {
        guard let conn = connections[c], let m = conn.outbox.popFirst() else { return .idle }
        return .send(m, more: !conn.outbox.isEmpty)
    }

    public func closed(_ c: ConnectionID) {
        guard let conn = connections[c] else { return }
        conn.closed = true
        conn.open = false
        onClose(conn)
    }

    public func stopping() {
        for c in connections.keys { loop.close(c, code: 1000, reason: "bye") }
    }
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
#endif
