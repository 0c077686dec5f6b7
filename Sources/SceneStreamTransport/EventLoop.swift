import CSceneStreamLWS
import Foundation
import Logging

/// A WebSocket connection handled by an ``EventLoop``.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let raw: UInt64
    public init(raw: UInt64) { self.raw = raw }
    public var description: String { raw >= 1 << 40 ? "s\(raw - (1 << 40))" : "c\(raw)" }
}

/// An HTTP answer to a request on a callback path.
public struct HTTPResponse: Sendable {
    public var status: UInt32
    public var contentType: String
    public var body: [UInt8]
    /// Extra headers as "name: value".
    public var headers: [String]

    /// Creates a response.
    public init(status: UInt32 = 200, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [String] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    /// A plain-text response.
    public static func text(_ s: String, status: UInt32 = 200) -> HTTPResponse { HTTPResponse(status: status, body: Array(s.utf8)) }
}

/// An HTTP request on a callback path: GET (no body) or POST.
public struct HTTPRequest: Sendable {
    /// The path, with the query after `?`.
    public var path: String
    /// The body of a POST; nil for GET.
    public var body: [UInt8]?
    /// The Authorization header of a POST ("" when absent).
    public var authorization: String

    /// Creates a request.
    public init(path: String, body: [UInt8]?, authorization: String = "") {
        self.path = path
        self.body = body
        self.authorization = authorization
    }

    /// The path without the query.
    public var route: String { path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path }

    /// The value of query parameter `name`.
    public func query(_ name: String) -> String? {
        guard let q = path.split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.first.map(String.init) == name { return kv.count > 1 ? String(kv[1]).removingPercentEncoding ?? String(kv[1]) : "" }
        }
        return nil
    }
}

/// What to do with a connection after a message arrived.
public enum ReceiveAction: Sendable {
    case keep
    /// Close with a WebSocket close code (RFC 6455 §7.4) and a short reason.
    case close(code: Int, reason: String)
}

/// What to do when a connection can take a message.
public enum WriteAction: Sendable {
    /// Nothing to send now.
    case idle
    /// Send one binary message; `more` asks for another writable event.
    case send([UInt8], more: Bool)
    case close(code: Int, reason: String)
}

/// Receives an ``EventLoop``'s events, always on its service thread.
public protocol EventLoopHandler: AnyObject {
    /// A WebSocket upgrade arrives; return false to refuse it (wrong subprotocol, origin not allowed).
    func shouldAccept(subprotocols: String, origin: String) -> Bool
    /// A client connected to the server.
    func opened(_ c: ConnectionID, peer: String)
    /// An outgoing connection is up.
    func connected(_ c: ConnectionID)
    /// An outgoing connection could not be made; no `closed` follows.
    func connectFailed(_ c: ConnectionID, reason: String)
    /// A complete message arrived.
    func received(_ c: ConnectionID, message: [UInt8], binary: Bool) -> ReceiveAction
    /// The connection can take one message.
    func writable(_ c: ConnectionID) -> WriteAction
    /// The connection is gone.
    func closed(_ c: ConnectionID)
    /// An HTTP request on one of the callback paths.
    func http(_ request: HTTPRequest) -> HTTPResponse
    /// The timer set with ``EventLoop/schedule(afterMicroseconds:)`` fired.
    func timer()
    /// The loop is stopping: close connections now (they get `closeTimeout` to go).
    func stopping()
}

extension EventLoopHandler {
    public func shouldAccept(subprotocols: String, origin: String) -> Bool { true }
    public func opened(_ c: ConnectionID, peer: String) {}
    public func connected(_ c: ConnectionID) {}
    public func connectFailed(_ c: ConnectionID, reason: String) {}
    public func http(_ request: HTTPRequest) -> HTTPResponse { .text("not found\n", status: 404) }
    public func timer() {}
    public func stopping() {}
}

/// An error starting the transport.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// Creates an error.
    public init(description: String) { self.description = description }
}

/// Transport settings.
public struct TransportConfiguration: Sendable {
    /// TCP port; nil for no listening socket (clients only).
    public var port: Int?
    /// Interface or address to bind; nil for all.
    public var bindAddress: String?
    public var subprotocol = "scenestream.v1"
    /// URL path prefix → directory, served as static files.
    public var fileMounts: [(path: String, directory: String)] = []
    /// URL paths answered by ``EventLoopHandler/http(path:)``.
    public var callbackPaths: [String] = []
    /// PEM certificate and key for TLS; both or neither.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// WebSocket ping after this many idle seconds; hang up after `hangupSeconds`.
    public var pingSeconds = 20
    public var hangupSeconds = 40
    /// Largest message accepted; larger ones close the connection with 1009.
    public var maxMessageBytes = 1 << 20
    /// Receive buffer per connection: messages larger than this arrive in pieces (and are joined). Small keeps
    /// per-connection memory low.
    public var receiveChunkBytes = 4096
    /// libwebsockets' log mask (errors and warnings by default).
    public var lwsLogLevel: Int32 = 1 | 2

    /// Creates a configuration.
    public init(port: Int?, bindAddress: String? = nil) {
        self.port = port
        self.bindAddress = bindAddress
    }
}

/// One libwebsockets context and the thread that services it. Every lws object lives on that thread; other threads
/// reach it only through ``post(_:)`` and ``stop()``. No C pointer leaves this type.
public final class EventLoop: @unchecked Sendable {
    // Service-thread state.
    private var ctx: OpaquePointer?
    private var conns: [UInt64: Conn] = [:]
    private var nextClientId: UInt64 = 1
    private weak var handler: (any EventLoopHandler)?
    private var stopDeadline: DispatchTime?
    private let config: TransportConfiguration
    private let logger: Logger
    private var thread: Thread?

    // Cross-thread state, under `lock`.
    private let lock = NSLock()
    private var posted: [@Sendable () -> Void] = []
    private var stopRequested = false
    private var finished = false
    private let done = DispatchSemaphore(value: 0)

    final class Conn {
        let wsi: OpaquePointer
        var rx: [UInt8] = []
        var closing: (code: Int, reason: String)?
        init(wsi: OpaquePointer) { self.wsi = wsi }
    }

    /// Creates the context (binding the port now, so a port in use fails here).
    public init(configuration: TransportConfiguration, handler: any EventLoopHandler, logger: Logger) throws {
        self.config = configuration
        self.handler = handler
        self.logger = logger
        var cStrings: [UnsafeMutablePointer<CChar>?] = []
        func c(_ s: String) -> UnsafeMutablePointer<CChar>? {
            let p = strdup(s)
            cStrings.append(p)
            return p
        }
        defer { for p in cStrings { free(p) } }
        var points: [UnsafePointer<CChar>?] = configuration.fileMounts.map { UnsafePointer(c($0.path)) } + [nil]
        var dirs: [UnsafePointer<CChar>?] = configuration.fileMounts.map { UnsafePointer(c($0.directory)) } + [nil]
        var callbacks: [UnsafePointer<CChar>?] = configuration.callbackPaths.map { UnsafePointer(c($0)) } + [nil]
        var cfg = ss_config()
        cfg.port = Int32(configuration.port ?? -1)
        cfg.iface = configuration.bindAddress.map { UnsafePointer(c($0)) } ?? nil
        cfg.subprotocol = UnsafePointer(c(configuration.subprotocol))
        cfg.tls_cert = configuration.tlsCertificate.map { UnsafePointer(c($0)) } ?? nil
        cfg.tls_key = configuration.tlsKey.map { UnsafePointer(c($0)) } ?? nil
        cfg.ping_seconds = Int32(configuration.pingSeconds)
        cfg.hangup_seconds = Int32(configuration.hangupSeconds)
        cfg.rx_chunk = configuration.receiveChunkBytes
        cfg.log_level = configuration.lwsLogLevel
        let user = Unmanaged.passUnretained(self).toOpaque()
        let created: OpaquePointer? = points.withUnsafeMutableBufferPointer { pp in
            dirs.withUnsafeMutableBufferPointer { dp in
                callbacks.withUnsafeMutableBufferPointer { cp in
                    cfg.file_mount_points = UnsafePointer(pp.baseAddress)
                    cfg.file_mount_dirs = UnsafePointer(dp.baseAddress)
                    cfg.callback_mounts = UnsafePointer(cp.baseAddress)
                    return ss_create(&cfg, eventTrampoline, user)
                }
            }
        }
        guard let created else {
            throw TransportError(description: "could not start libwebsockets on \(configuration.bindAddress ?? "*"):\(configuration.port.map(String.init) ?? "-") (port in use, bad address or bad TLS files)")
        }
        ctx = created
    }

    deinit {
        if let ctx { ss_destroy(ctx) }
    }

    /// Starts the service thread.
    public func start(name: String = "scenestream-lws") {
        let t = Thread { [self] in self.runLoop() }
        t.name = name
        t.stackSize = 1 << 21
        thread = t
        t.start()
    }

    /// Runs `work` on the service thread soon. Any thread.
    public func post(_ work: @escaping @Sendable () -> Void) {
        lock.lock()
        let ok = !finished
        if ok { posted.append(work) }
        lock.unlock()
        if ok, let ctx { ss_wake(ctx) }
    }

    /// Asks the loop to stop: the handler's `stopping()` runs, connections get up to `closeTimeout` to close,
    /// then the context is destroyed. Any thread; returns at once. ``wait()`` waits for the end.
    public func stop() {
        lock.lock()
        let already = stopRequested || finished
        stopRequested = true
        lock.unlock()
        if !already, let ctx { ss_wake(ctx) }
    }

    /// Blocks until the loop has ended.
    public func wait() {
        done.wait()
        done.signal()
    }

    /// Whether the loop has ended.
    public var isFinished: Bool {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }

    private func runLoop() {
        guard let ctx else { return }
        while true {
            if ss_service(ctx) < 0 {
                logger.error("libwebsockets service failed; stopping")
                break
            }
            if let deadline = stopDeadline, conns.isEmpty || DispatchTime.now() >= deadline { break }
        }
        lock.lock()
        finished = true
        let leftovers = posted
        posted.removeAll()
        lock.unlock()
        _ = leftovers
        conns.removeAll()
        ss_destroy(ctx)
        self.ctx = nil
        done.signal()
    }

    // MARK: service-thread API

    /// Asks for a writable event on `c`.
    public func requestWrite(_ c: ConnectionID) {
        if let conn = conns[c.raw] { ss_request_write(conn.wsi) }
    }

    /// Closes `c` with a close code as soon as it is writable.
    public func close(_ c: ConnectionID, code: Int, reason: String) {
        guard let conn = conns[c.raw], conn.closing == nil else { return }
        conn.closing = (code, reason)
        ss_request_write(conn.wsi)
    }

    /// Whether `c` is open.
    public func isOpen(_ c: ConnectionID) -> Bool { conns[c.raw] != nil }

    /// The number of open connections.
    public var connectionCount: Int { conns.count }

    /// A fresh id for an outgoing connection (service thread).
    public func makeClientID() -> ConnectionID {
        defer { nextClientId += 1 }
        return ConnectionID(raw: nextClientId)
    }

    /// Opens an outgoing WebSocket to `ws[s]://host:port/path` as connection `c` (from ``makeClientID()``).
    /// Failure is reported through the handler's `connectFailed`, possibly before this returns.
    public func connect(_ c: ConnectionID, host: String, port: Int, path: String, tls: Bool = false, insecure: Bool = false) {
        if let ctx, ss_connect(ctx, c.raw, host, Int32(port), path, tls ? 1 : 0, insecure ? 1 : 0) != 0 {
            handler?.connectFailed(c, reason: "could not start connecting to \(host):\(port)")
        }
    }

    /// Fires the handler's `timer()` once after `us` microseconds.
    public func schedule(afterMicroseconds us: Int64) {
        if let ctx { ss_schedule(ctx, us) }
    }

    // MARK: events

    fileprivate func event(_ kind: Int32, _ raw: UInt64, _ wsi: OpaquePointer?, _ data: UnsafePointer<UInt8>?, _ len: Int, _ flags: Int32) -> Int32 {
        let c = ConnectionID(raw: raw)
        switch UInt32(kind) {
        case SS_EV_FILTER.rawValue:
            let text = data.map { String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self) } ?? ""
            let parts = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false)
            let ok = handler?.shouldAccept(subprotocols: parts.first.map(String.init) ?? "", origin: parts.count > 1 ? String(parts[1]) : "") ?? false
            return ok ? 0 : 1
        case SS_EV_OPEN.rawValue:
            guard let wsi else { return -1 }
            conns[raw] = Conn(wsi: wsi)
            let peer = data.map { String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self) } ?? ""
            handler?.opened(c, peer: peer)
            return 0
        case SS_EV_CLIENT_OPEN.rawValue:
            guard let wsi else { return -1 }
            conns[raw] = Conn(wsi: wsi)
            handler?.connected(c)
            return 0
        case SS_EV_CLIENT_ERROR.rawValue:
            conns[raw] = nil
            let reason = data.map { String(decoding: UnsafeBufferPointer(start: $0, count: len), as: UTF8.self) } ?? ""
            handler?.connectFailed(c, reason: reason.isEmpty ? "connection failed" : reason)
            return 0
        case SS_EV_RECEIVE.rawValue:
            guard let conn = conns[raw], let wsi else { return -1 }
            if flags & 1 != 0 { conn.rx.removeAll(keepingCapacity: true) }
            if conn.rx.count + len > config.maxMessageBytes {
                logger.notice("message too big; closing", metadata: ["conn": "\(c)", "limit": "\(config.maxMessageBytes)"])
                ss_close_reason(wsi, 1009, "message too big")
                return -1
            }
            if let data, len > 0 { conn.rx.append(contentsOf: UnsafeBufferPointer(start: data, count: len)) }
            guard flags & 2 != 0 else { return 0 }
            let message = conn.rx
            conn.rx.removeAll(keepingCapacity: conn.rx.capacity <= 65536)
            switch handler?.received(c, message: message, binary: flags & 4 != 0) ?? .keep {
            case .keep: return 0
            case .close(let code, let reason):
                ss_close_reason(wsi, Int32(code), reason)
                return -1
            }
        case SS_EV_WRITABLE.rawValue:
            guard let conn = conns[raw], let wsi, let ctx else { return -1 }
            if let closing = conn.closing {
                ss_close_reason(wsi, Int32(closing.code), closing.reason)
                return -1
            }
            switch handler?.writable(c) ?? .idle {
            case .idle: return 0
            case .send(let bytes, let more):
                let n = bytes.withUnsafeBufferPointer { ss_write(ctx, wsi, $0.baseAddress, $0.count, 1) }
                if n < 0 { return -1 }
                if more { ss_request_write(wsi) }
                return 0
            case .close(let code, let reason):
                ss_close_reason(wsi, Int32(code), reason)
                return -1
            }
        case SS_EV_CLOSED.rawValue:
            if conns.removeValue(forKey: raw) != nil { handler?.closed(c) }
            return 0
        case SS_EV_HTTP.rawValue:
            guard let wsi, let ctx else { return -1 }
            let raw = data.map { Array(UnsafeBufferPointer(start: $0, count: len)) } ?? []
            var r: HTTPResponse
            if flags & 1 != 0 {
                let cut = raw.firstIndex(of: 0) ?? raw.count
                let path = String(decoding: raw[..<cut], as: UTF8.self)
                let rest = cut < raw.count ? Array(raw[(cut + 1)...]) : []
                let cut2 = rest.firstIndex(of: 0) ?? rest.count
                let auth = String(decoding: rest[..<cut2], as: UTF8.self)
                let body = cut2 < rest.count ? Array(rest[(cut2 + 1)...]) : []
                r = flags & 2 != 0
                    ? .text("request body too large\n", status: 413)
                    : handler?.http(HTTPRequest(path: path, body: body, authorization: auth)) ?? .text("not found\n", status: 404)
            } else {
                r = handler?.http(HTTPRequest(path: String(decoding: raw, as: UTF8.self), body: nil)) ?? .text("not found\n", status: 404)
            }
            return r.body.withUnsafeBufferPointer { b in
                ss_http_respond(ctx, wsi, r.status, r.contentType, r.headers.joined(separator: "\n"), b.baseAddress, b.count)
            }
        case SS_EV_WAKE.rawValue:
            lock.lock()
            let work = posted
            posted.removeAll()
            let stopping = stopRequested && stopDeadline == nil
            lock.unlock()
            for w in work { w() }
            if stopping {
                stopDeadline = .now() + .seconds(2)
                handler?.stopping()
                // Make sure the loop comes round again to notice the deadline.
                schedule(afterMicroseconds: 50_000)
            }
            return 0
        case SS_EV_TIMER.rawValue:
            if stopDeadline != nil {
                schedule(afterMicroseconds: 50_000)
            }
            handler?.timer()
            return 0
        default:
            return 0
        }
    }
}

/// The one C entry point: routes every libwebsockets event to its loop.
private let eventTrampoline: ss_event_fn = { user, kind, conn, wsi, data, len, flags in
    guard let user else { return 0 }
    let loop = Unmanaged<EventLoop>.fromOpaque(user).takeUnretainedValue()
    return loop.event(kind, conn, wsi, data, len, flags)
}
