import CSceneStreamLWS
import Foundation
import HTTPTypes
import Logging

/// A WebSocket connection handled by an ``EventLoop``.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let raw: UInt64
    public init(raw: UInt64) { self.raw = raw }
    public var description: String { raw >= 1 << 40 ? "s\(raw - (1 << 40))" : "c\(raw)" }
}

/// One HTTP request in flight; answer it with ``EventLoop/respond(_:_:)``.
public struct HTTPRequestID: Hashable, Sendable, CustomStringConvertible {
    public let raw: UInt64
    public init(raw: UInt64) { self.raw = raw }
    public var description: String { "h\(raw)" }
}

/// An HTTP request as the transport read it. Only the headers SceneStream uses are carried: Authorization and
/// Content-Type.
public struct HTTPServerRequest: Sendable {
    /// What the transport found wrong before the handler saw it.
    public enum Problem: Sendable, Equatable {
        /// The body was larger than ``TransportConfiguration/maxBodyBytes`` (and was cut).
        case bodyTooLarge
        /// Two Content-Length headers, or one that is not a number.
        case badContentLength
    }

    public var id: HTTPRequestID
    /// Method, path (with the query after `?`) and header fields.
    public var head: HTTPRequest
    /// The peer's address.
    public var peer: String
    /// The body, for methods that carry one.
    public var body: [UInt8]?
    public var problem: Problem?

    /// Creates a request (tests build them by hand).
    public init(id: HTTPRequestID = HTTPRequestID(raw: 0), head: HTTPRequest, peer: String = "", body: [UInt8]? = nil, problem: Problem? = nil) {
        self.id = id
        self.head = head
        self.peer = peer
        self.body = body
        self.problem = problem
    }

    /// The path without the query.
    public var route: String {
        let p = head.path ?? "/"
        return p.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? p
    }

    /// The value of query parameter `name`, percent-decoded.
    public func query(_ name: String) -> String? {
        guard let q = (head.path ?? "").split(separator: "?", maxSplits: 1).dropFirst().first else { return nil }
        for pair in q.split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.first.map(String.init) == name { return kv.count > 1 ? String(kv[1]).removingPercentEncoding ?? String(kv[1]) : "" }
        }
        return nil
    }

    /// The bearer token of the Authorization header, or "" when there is none.
    public var bearerToken: String {
        guard let v = head.headerFields[.authorization] else { return "" }
        let prefix = "bearer "
        guard v.count > prefix.count, v.prefix(prefix.count).lowercased() == prefix else { return "" }
        return String(v.dropFirst(prefix.count)).trimmingCharacters(in: .whitespaces)
    }
}

/// An HTTP answer.
public struct HTTPServerResponse: Sendable {
    public var status: HTTPResponse.Status
    public var headerFields: HTTPFields
    public var body: [UInt8]

    /// Creates a response; the content type is a header field.
    public init(status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headerFields: HTTPFields = [:]) {
        self.status = status
        self.headerFields = headerFields
        self.headerFields[.contentType] = contentType
        self.body = body
    }

    /// A plain-text response.
    public static func text(_ s: String, status: HTTPResponse.Status = .ok) -> HTTPServerResponse { HTTPServerResponse(status: status, body: Array(s.utf8)) }

    /// A JSON response.
    public static func json(_ body: [UInt8], status: HTTPResponse.Status = .ok) -> HTTPServerResponse {
        HTTPServerResponse(status: status, contentType: "application/json", body: body)
    }
}

/// A WebSocket upgrade request, as far as the transport can see it before accepting.
public struct UpgradeRequest: Sendable, Equatable {
    public var subprotocols: String
    public var origin: String
    public var peer: String
    /// `Sec-WebSocket-Version`.
    public var version: String
    /// `Sec-WebSocket-Key`.
    public var key: String
    /// GET, or another method (OTHER), or HTTP/1.0.
    public var method: String
    public var path: String

    public init(subprotocols: String, origin: String, peer: String = "", version: String = "13", key: String = "dGhlIHNhbXBsZSBub25jZQ==", method: String = "GET", path: String = "/stream") {
        self.subprotocols = subprotocols
        self.origin = origin
        self.peer = peer
        self.version = version
        self.key = key
        self.method = method
        self.path = path
    }

    /// Whether this is a well-formed RFC 6455 opening handshake for `path`: the HTTP status to refuse it with, or
    /// nil. (426 for a version other than 13, 404 for another path, 400 for the rest.)
    public func problem(path expected: String) -> (status: Int, reason: String)? {
        if method == "HTTP/1.0" { return (400, "WebSocket needs HTTP/1.1") }
        if method != "GET" { return (400, "WebSocket upgrades are GET") }
        if path != expected && !path.hasPrefix(expected + "?") { return (404, "no WebSocket endpoint at \(path)") }
        if version != "13" { return (426, "Sec-WebSocket-Version must be 13") }
        // The key is 16 random bytes in base64: 24 characters ending in "==".
        let validKey = key.utf8.count == 24 && key.hasSuffix("==") && Data(base64Encoded: key)?.count == 16
        if !validKey { return (400, "Sec-WebSocket-Key must be 16 bytes in base64") }
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
    /// A WebSocket upgrade arrives: nil accepts it, an HTTP status (400, 403, 426, 429) refuses it.
    func shouldAccept(_ upgrade: UpgradeRequest) -> Int?
    /// A client connected to the server.
    func opened(_ c: ConnectionID, peer: String)
    /// An outgoing connection is up.
    func connected(_ c: ConnectionID)
    /// An outgoing connection could not be made; no `closed` follows.
    func connectFailed(_ c: ConnectionID, reason: String)
    /// A complete message arrived.
    func received(_ c: ConnectionID, message: [UInt8], binary: Bool) -> ReceiveAction
    /// A message grew past `maxMessageBytes`: it is dropped, the rest of it read and discarded (so that the
    /// connection can still deliver an answer and close cleanly). The default closes with 1009 at once.
    func tooLarge(_ c: ConnectionID) -> ReceiveAction
    /// The connection can take one message.
    func writable(_ c: ConnectionID) -> WriteAction
    /// The connection is gone.
    func closed(_ c: ConnectionID)
    /// An HTTP request (any path). Answer it with ``EventLoop/respond(_:_:)``, now or later; a request whose
    /// connection closes first is dropped (see ``httpClosed(_:)``).
    func http(_ request: HTTPServerRequest)
    /// The connection of an HTTP request closed, answered or not.
    func httpClosed(_ id: HTTPRequestID)
    /// The timer set with ``EventLoop/schedule(afterMicroseconds:)`` fired.
    func timer()
    /// The loop is stopping: close connections now (they get `closeTimeout` to go).
    func stopping()
}

extension EventLoopHandler {
    public func shouldAccept(_ upgrade: UpgradeRequest) -> Int? { nil }
    public func opened(_ c: ConnectionID, peer: String) {}
    public func connected(_ c: ConnectionID) {}
    public func connectFailed(_ c: ConnectionID, reason: String) {}
    public func tooLarge(_ c: ConnectionID) -> ReceiveAction { .close(code: 1009, reason: "message too big") }
    public func http(_ request: HTTPServerRequest) {}
    public func httpClosed(_ id: HTTPRequestID) {}
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
    /// TCP port (0: the kernel picks one; read it from ``EventLoop/port``); nil for no listening socket (clients only).
    public var port: Int?
    /// Interface or address to bind; nil for all.
    public var bindAddress: String?
    public var subprotocol = "scenestream.v1"
    /// Largest HTTP request body; larger ones reach the handler cut, marked ``HTTPServerRequest/Problem/bodyTooLarge``.
    public var maxBodyBytes = 4 << 20
    /// An HTTP request body must arrive within this many seconds, however slowly it trickles.
    public var bodySeconds = 10
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
/// reach it only through ``post(_:)`` and ``stop()`` (or a ``LoopHandle``, which has only those). No C pointer
/// leaves this type. The service-thread API checks that it is called on the service thread.
public final class EventLoop: @unchecked Sendable {
    // Service-thread state.
    private var ctx: OpaquePointer?
    private var conns: [UInt64: Conn] = [:]
    private var httpRequests: [UInt64: OpaquePointer] = [:]
    private var serviceThread: pthread_t?
    /// The port listened on (the kernel's choice when the configuration asked for 0); nil without one.
    public private(set) var port: Int?
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
        /// Bytes of a too-large message read and dropped so far (nil: not in one).
        var discarding: Int?
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
        var cfg = ss_config()
        cfg.max_body = configuration.maxBodyBytes
        cfg.body_seconds = Int32(configuration.bodySeconds)
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
        let created: OpaquePointer? = ss_create(&cfg, eventTrampoline, user)
        guard let created else {
            throw TransportError(description: "could not start libwebsockets on \(configuration.bindAddress ?? "*"):\(configuration.port.map(String.init) ?? "-") (port in use, bad address or bad TLS files)")
        }
        ctx = created
        let listening = Int(ss_listen_port(created))
        port = configuration.port == nil || listening < 0 ? nil : listening
    }

    /// A handle for other threads: it can only post work and stop the loop, and stays safe after the loop ended.
    public var handle: LoopHandle { LoopHandle(self) }

    /// Whether the caller runs on the service thread: one thread-local read (the service thread marks itself
    /// with its loop when it starts), no lock — cheap enough for every call on the hot path.
    public var inLoop: Bool { ss_thread_mark() == UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()) }

    /// Service-thread API: on the service thread, or before the loop starts or after it ended (set-up, tear-down).
    private func assertInLoop(_ what: StaticString = #function) {
        if inLoop { return }
        lock.lock()
        let ok = serviceThread == nil || finished
        lock.unlock()
        precondition(ok, "EventLoop.\(what) called off the service thread")
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
        // The context is read and woken under the lock: the loop marks itself finished under it before destroying.
        lock.lock()
        defer { lock.unlock() }
        guard !finished, let ctx else { return }
        posted.append(work)
        ss_wake(ctx)
    }

    /// Asks the loop to stop: the handler's `stopping()` runs, connections get up to `closeTimeout` to close,
    /// then the context is destroyed. Any thread; returns at once. ``wait()`` waits for the end.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        let already = stopRequested || finished
        stopRequested = true
        if !already, let ctx { ss_wake(ctx) }
    }

    /// Blocks until the loop has ended.
    public func wait() {
        done.wait()
        done.signal()
    }

    /// Whether the service thread is running (started and not ended).
    public var isRunning: Bool {
        lock.lock()
        defer { lock.unlock() }
        return serviceThread != nil && !finished
    }

    /// Whether the loop has ended.
    public var isFinished: Bool {
        lock.lock()
        defer { lock.unlock() }
        return finished
    }

    private func runLoop() {
        guard let ctx else { return }
        lock.lock()
        serviceThread = pthread_self()
        lock.unlock()
        ss_mark_thread(UnsafeRawPointer(Unmanaged.passUnretained(self).toOpaque()))
        defer { ss_mark_thread(nil) }
        while true {
            if ss_service(ctx) < 0 {
                logger.error("libwebsockets service failed; stopping")
                break
            }
            if let deadline = stopDeadline, conns.isEmpty || DispatchTime.now() >= deadline { break }
        }
        lock.lock()
        finished = true
        posted.removeAll()
        self.ctx = nil
        lock.unlock()
        conns.removeAll()
        httpRequests.removeAll()
        ss_destroy(ctx)
        done.signal()
    }

    // MARK: service-thread API

    /// Asks for a writable event on `c`.
    public func requestWrite(_ c: ConnectionID) {
        assertInLoop()
        if let conn = conns[c.raw] { ss_request_write(conn.wsi) }
    }

    /// Answers HTTP request `id` (service thread). A request whose connection has gone is ignored.
    public func respond(_ id: HTTPRequestID, _ r: HTTPServerResponse) {
        assertInLoop()
        guard let wsi = httpRequests.removeValue(forKey: id.raw), let ctx else { return }
        let contentType = r.headerFields[.contentType] ?? "application/octet-stream"
        let extra = r.headerFields.filter { $0.name != .contentType }.map { "\($0.name.rawName): \($0.value)" }.joined(separator: "\n")
        let status = UInt32(r.status.code)
        if r.body.withUnsafeBufferPointer({ ss_http_respond(ctx, wsi, status, contentType, extra, $0.baseAddress, $0.count) }) != 0 {
            logger.error("could not queue an HTTP answer (out of memory)", metadata: ["request": "\(id)"])
        }
    }

    /// Closes `c` with a close code as soon as it is writable.
    public func close(_ c: ConnectionID, code: Int, reason: String) {
        assertInLoop()
        guard let conn = conns[c.raw], conn.closing == nil else { return }
        conn.closing = (code, reason)
        ss_request_write(conn.wsi)
    }

    /// Whether libwebsockets still holds bytes for `c` that the socket has not taken: the peer is not reading.
    public func hasUnsentOutput(_ c: ConnectionID) -> Bool {
        assertInLoop()
        guard let conn = conns[c.raw] else { return false }
        return ss_pending(conn.wsi) != 0
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
            let f = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 7 else { return 400 }
            let u = UpgradeRequest(subprotocols: f[0], origin: f[1], peer: f[2], version: f[3], key: f[4], method: f[5], path: f[6])
            guard let handler else { return 503 }
            return Int32(handler.shouldAccept(u) ?? 0)
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
            if let dropped = conn.discarding {
                // The rest of a message that was too large: read and dropped, up to 16 times the limit.
                guard dropped + len <= 16 * config.maxMessageBytes else {
                    ss_close_reason(wsi, 1009, "message too big")
                    return -1
                }
                conn.discarding = flags & 2 != 0 ? nil : dropped + len
                // A close waiting for the end of it goes now (closing with unread input would reset the
                // connection, and the client could lose the answer and the close frame).
                if conn.discarding == nil, conn.closing != nil { ss_request_write(wsi) }
                return 0
            }
            if conn.rx.count + len > config.maxMessageBytes {
                logger.notice("message too big", metadata: ["conn": "\(c)", "limit": "\(config.maxMessageBytes)"])
                let dropped = conn.rx.count + len
                conn.rx.removeAll(keepingCapacity: false)
                conn.discarding = flags & 2 != 0 ? nil : dropped
                switch handler?.tooLarge(c) ?? .close(code: 1009, reason: "message too big") {
                case .keep: return 0
                case .close(let code, let reason):
                    ss_close_reason(wsi, Int32(code), reason)
                    return -1
                }
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
                if conn.discarding != nil { return 0 }  // after the rest of a too-large message
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
                if conn.discarding != nil {
                    conn.closing = (code, reason)  // once the rest of a too-large message is read
                    return 0
                }
                ss_close_reason(wsi, Int32(code), reason)
                return -1
            }
        case SS_EV_CLOSED.rawValue:
            if conns.removeValue(forKey: raw) != nil { handler?.closed(c) }
            return 0
        case SS_EV_HTTP.rawValue:
            guard let wsi else { return -1 }
            httpRequests[raw] = wsi
            let bytes = data.map { UnsafeBufferPointer(start: $0, count: len) } ?? UnsafeBufferPointer(start: nil, count: 0)
            // method, path, query, authorization, content-type, host, origin, if-match, peer — NUL-terminated — then
            // the body.
            var fields: [String] = []
            var at = 0
            while fields.count < 9, at < bytes.count {
                let end = bytes[at...].firstIndex(of: 0) ?? bytes.count
                fields.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[at..<end]), as: UTF8.self))
                at = end + 1
            }
            guard fields.count == 9 else { return -1 }
            let body: [UInt8]? = flags & 1 != 0 ? Array(bytes[min(at, bytes.count)...]) : nil
            var headers = HTTPFields()
            if !fields[3].isEmpty { headers[.authorization] = fields[3] }
            if !fields[4].isEmpty { headers[.contentType] = fields[4] }
            if !fields[6].isEmpty { headers[.origin] = fields[6] }
            if !fields[7].isEmpty { headers[.ifMatch] = fields[7] }
            let method = HTTPRequest.Method(fields[0]) ?? .get
            let path = fields[2].isEmpty ? fields[1] : "\(fields[1])?\(fields[2])"
            let problem: HTTPServerRequest.Problem? = flags & 4 != 0 ? .badContentLength : flags & 2 != 0 ? .bodyTooLarge : nil
            let head = HTTPRequest(method: method, scheme: nil, authority: fields[5].isEmpty ? nil : fields[5], path: path, headerFields: headers)
            handler?.http(HTTPServerRequest(id: HTTPRequestID(raw: raw), head: head, peer: fields[8], body: body, problem: problem))
            return 0
        case SS_EV_HTTP_CLOSED.rawValue:
            // Answered requests were removed by `respond`; one still here went unanswered.
            if httpRequests.removeValue(forKey: raw) != nil { handler?.httpClosed(HTTPRequestID(raw: raw)) }
            return 0
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

/// What other threads may hold of an ``EventLoop``: post work to it and stop it. Safe after the loop has ended
/// (posting then does nothing).
public struct LoopHandle: Sendable {
    private let loop: EventLoop
    init(_ loop: EventLoop) { self.loop = loop }
    /// Runs `work` on the service thread soon.
    public func post(_ work: @escaping @Sendable () -> Void) { loop.post(work) }
    /// Asks the loop to stop.
    public func stop() { loop.stop() }
}

/// A value that belongs to an ``EventLoop``'s service thread. It may travel through other threads (into a
/// closure posted back to the loop), but is read only on the service thread: every access checks.
public struct LoopBound<Value>: @unchecked Sendable {
    private let _value: Value
    private let loop: EventLoop

    /// Binds `value` to `loop` (on the service thread).
    public init(_ value: Value, loop: EventLoop) {
        precondition(loop.inLoop || !loop.isRunning, "LoopBound created off the service thread")
        _value = value
        self.loop = loop
    }

    /// The value; only on the service thread.
    public var value: Value {
        precondition(loop.inLoop || !loop.isRunning, "LoopBound read off the service thread")
        return _value
    }
}

/// Lowers the calling thread below the service threads (nice +10, about a tenth of a nice-0 thread's share when both
/// want a core): for work off the service thread, so that under load the thread that sends frames gets the CPU first.
public func lowerCurrentThreadPriority() {
    _ = ss_nice_current_thread(10)
}

/// Puts the calling thread in the idle scheduling class: it gets the CPU only when nothing else wants it. For a
/// thread of its own doing bulk work (never a shared pool thread: the class stays with the thread).
public func idleCurrentThread() {
    _ = ss_idle_current_thread()
}
