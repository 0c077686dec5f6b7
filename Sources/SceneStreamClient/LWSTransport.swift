#if os(Linux)
import DequeModule
import Foundation
import Logging
import SceneStreamTransport

/// libwebsockets transport (Linux): one service thread for all of this transport's connections.
public final class LWSTransport: WebSocketTransport, @unchecked Sendable {
    private let core: Core
    private let loop: EventLoop

    /// Starts the transport's service thread.
    public init(logger: Logger = Logger(label: "scenestream.client")) throws {
        core = Core()
        var t = TransportConfiguration(port: nil)
        t.maxMessageBytes = 64 << 20
        t.receiveChunkBytes = 16384
        loop = try EventLoop(configuration: t, handler: core, logger: logger)
        core.loop = loop
        loop.start(name: "scenestream-client")
    }

    deinit {
        loop.stop()
    }

    public func connect(to url: StreamEndpoint, subprotocol: String) async throws -> any WebSocketConnection {
        let conn = Connection(loop: loop, core: core)
        try await withCheckedThrowingContinuation { (k: CheckedContinuation<Void, any Error>) in
            let box = Box(k)
            loop.post { [core, loop] in
                let id = loop.makeClientID()
                conn.id = id
                conn.opening = box
                core.connections[id] = conn
                loop.connect(id, host: url.host, port: url.port, path: url.path, tls: url.tls, insecure: url.insecure)
            }
        }
        return conn
    }

    final class Box: @unchecked Sendable {
        var k: CheckedContinuation<Void, any Error>?
        init(_ k: CheckedContinuation<Void, any Error>) { self.k = k }
        func resume(_ r: Result<Void, any Error>) {
            k?.resume(with: r)
            k = nil
        }
    }

    /// One connection; its state lives on the service thread, its inbox is shared under a lock.
    final class Connection: WebSocketConnection, @unchecked Sendable {
        let loop: EventLoop
        unowned let core: Core
        var id = ConnectionID(raw: 0)
        var opening: Box?
        var outbox = Deque<[UInt8]>()
        var closeRequest: (Int, String)?
        // Inbound, under `lock`.
        private let lock = NSLock()
        private var inbox = Deque<[UInt8]>()
        private var waiter: CheckedContinuation<[UInt8]?, any Error>?
        private var ended = false

        init(loop: EventLoop, core: Core) {
            self.loop = loop
            self.core = core
        }

        func deliver(_ m: [UInt8]) {
            lock.lock()
            if let w = waiter {
                waiter = nil
                lock.unlock()
                w.resume(returning: m)
                return
            }
            inbox.append(m)
            lock.unlock()
        }

        func end() {
            lock.lock()
            ended = true
            let w = waiter
            waiter = nil
            lock.unlock()
            w?.resume(returning: nil)
        }

        func receive() async throws -> [UInt8]? {
            try await withCheckedThrowingContinuation { (k: CheckedContinuation<[UInt8]?, any Error>) in
                lock.lock()
                if let m = inbox.popFirst() {
                    lock.unlock()
                    k.resume(returning: m)
                } else if ended {
                    lock.unlock()
                    k.resume(returning: nil)
                } else {
                    waiter = k
                    lock.unlock()
                }
            }
        }

        func send(_ bytes: [UInt8]) async throws {
            loop.post { [self] in
                outbox.append(bytes)
                loop.requestWrite(id)
            }
        }

        func close(code: Int, reason: String) async {
            loop.post { [self] in loop.close(id, code: code, reason: reason) }
        }
    }

    final class Core: EventLoopHandler, @unchecked Sendable {
        var connections: [ConnectionID: Connection] = [:]
        weak var loop: EventLoop?

        func connected(_ c: ConnectionID) {
            connections[c]?.opening?.resume(.success(()))
            connections[c]?.opening = nil
        }

        func connectFailed(_ c: ConnectionID, reason: String) {
            guard let conn = connections.removeValue(forKey: c) else { return }
            conn.opening?.resume(.failure(TransportFailure("could not connect: \(reason)")))
            conn.opening = nil
            conn.end()
        }

        func received(_ c: ConnectionID, message: [UInt8], binary: Bool) -> ReceiveAction {
            connections[c]?.deliver(message)
            return .keep
        }

        func writable(_ c: ConnectionID) -> WriteAction {
            guard let conn = connections[c], let m = conn.outbox.popFirst() else { return .idle }
            return .send(m, more: !conn.outbox.isEmpty)
        }

        func closed(_ c: ConnectionID) {
            connections.removeValue(forKey: c)?.end()
        }

        func stopping() {
            for c in connections.keys { loop?.close(c, code: 1001, reason: "client going away") }
        }
    }
}
#endif
