import CNATS
import Foundation

/// A NATS error: what was being done and what libnats said.
public struct NATSError: Error, CustomStringConvertible, Sendable {
    public let description: String
    /// An error this package describes itself (not a libnats status).
    package init(text: String) { description = text }

    init(_ what: String, _ status: natsStatus) {
        let text = natsStatus_GetText(status).map { String(cString: $0) } ?? "status \(status.rawValue)"
        var detail = ""
        var last = status
        if let e = nats_GetLastError(&last) { detail = String(cString: e) }
        description = detail.isEmpty || detail == text ? "\(what): \(text)" : "\(what): \(text) (\(detail))"
    }
}

/// A message received on a subscription.
public struct NATSMessage: Sendable, Equatable {
    public let subject: String
    public let reply: String?
    public let payload: [UInt8]

    /// A copy of a libnats message (which the caller still owns).
    init(_ msg: OpaquePointer) {
        payload = copyBytes(natsMsg_GetData(msg), Int(natsMsg_GetDataLength(msg)))
        subject = natsMsg_GetSubject(msg).map { String(cString: $0) } ?? ""
        reply = natsMsg_GetReply(msg).map { String(cString: $0) }
    }
}

/// A connection to a NATS cluster (libnats, wrapped once: no C pointer leaves this module). It reconnects by itself
/// to any server of the list; callbacks run on libnats' threads.
public final class NATSConnection: @unchecked Sendable {
    // @unchecked: libnats connections are thread-safe; `subscriptions` is guarded by `lock`.
    private let nc: OpaquePointer
    /// For the other wrappers of this module (JetStream, key-value); never leaves it.
    var handle: OpaquePointer { nc }
    private let lock = NSLock()
    private var subscriptions: [NATSSubscription] = []

    /// How a connection authenticates and secures itself (all optional).
    public struct Security: Sendable, Equatable {
        /// User and password.
        public var user: String?
        public var password: String?
        /// A `.creds` file (JWT and NKey seed), as `nsc` writes them.
        public var credentialsFile: String?
        /// TLS: required when true or when a CA file is given; the CA file names the trusted roots.
        public var tls = false
        public var caFile: String?
        public init(user: String? = nil, password: String? = nil, credentialsFile: String? = nil, tls: Bool = false, caFile: String? = nil) {
            self.user = user
            self.password = password
            self.credentialsFile = credentialsFile
            self.tls = tls
            self.caFile = caFile
        }
    }

    /// Connects to `servers` (`nats://host:port`), naming the connection `name`.
    public init(servers: [String], name: String, security: Security = Security(), timeoutMs: Int64 = 2000) throws(NATSError) {
        var opts: OpaquePointer?
        var s = natsOptions_Create(&opts)
        guard s == NATS_OK, let opts else { throw NATSError("nats options", s) }
        defer { natsOptions_Destroy(opts) }
        var cStrings = servers.map { strdup($0) }
        defer { for p in cStrings { free(p) } }
        s = cStrings.withUnsafeMutableBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
                natsOptions_SetServers(opts, $0, Int32(buf.count))
            }
        }
        guard s == NATS_OK else { throw NATSError("servers \(servers.joined(separator: ","))", s) }
        _ = natsOptions_SetName(opts, name)
        _ = natsOptions_SetTimeout(opts, timeoutMs)
        // A lost server is noticed in about 3 s (pings every second, 3 unanswered), not the default 4 minutes.
        _ = natsOptions_SetPingInterval(opts, 1000)
        _ = natsOptions_SetMaxPingsOut(opts, 3)
        if let user = security.user {
            s = natsOptions_SetUserInfo(opts, user, security.password ?? "")
            guard s == NATS_OK else { throw NATSError("user \(user)", s) }
        }
        if let creds = security.credentialsFile {
            s = natsOptions_SetUserCredentialsFromFiles(opts, creds, nil)
            guard s == NATS_OK else { throw NATSError("credentials file \(creds)", s) }
        }
        if security.tls || security.caFile != nil {
            s = natsOptions_SetSecure(opts, true)
            guard s == NATS_OK else { throw NATSError("TLS", s) }
        }
        if let ca = security.caFile {
            s = natsOptions_LoadCATrustedCertificates(opts, ca)
            guard s == NATS_OK else { throw NATSError("CA file \(ca)", s) }
        }
        _ = natsOptions_SetMaxReconnect(opts, -1)
        _ = natsOptions_SetReconnectWait(opts, 250)
        var conn: OpaquePointer?
        s = natsConnection_Connect(&conn, opts)
        guard s == NATS_OK, let conn else { throw NATSError("connect to \(servers.joined(separator: ","))", s) }
        nc = conn
    }

    /// Publishes `payload` on `subject` (buffered; ``flush(timeoutMs:)`` waits until the server has it).
    public func publish(_ subject: String, _ payload: [UInt8]) throws(NATSError) {
        let s = payload.withUnsafeBytes { natsConnection_Publish(nc, subject, $0.baseAddress, Int32($0.count)) }
        guard s == NATS_OK else { throw NATSError("publish on \(subject)", s) }
    }

    /// Sends a request on `subject` and waits up to `timeoutMs` for its reply (JetStream's API works this way).
    public func request(_ subject: String, _ payload: [UInt8], timeoutMs: Int64 = 5000) throws(NATSError) -> NATSMessage {
        var reply: OpaquePointer?
        let s = payload.withUnsafeBytes { natsConnection_Request(&reply, nc, subject, $0.baseAddress, Int32($0.count), timeoutMs) }
        guard s == NATS_OK, let reply else { throw NATSError("request on \(subject)", s) }
        defer { natsMsg_Destroy(reply) }
        return NATSMessage(reply)
    }

    /// Waits until the server has processed everything published so far.
    public func flush(timeoutMs: Int64 = 5000) throws(NATSError) {
        let s = natsConnection_FlushTimeout(nc, timeoutMs)
        guard s == NATS_OK else { throw NATSError("flush", s) }
    }

    /// Delivers every message on `subject` (wildcards allowed) to `handler`, on a libnats thread, in order.
    @discardableResult
    public func subscribe(_ subject: String, handler: @escaping @Sendable (NATSMessage) -> Void) throws(NATSError) -> NATSSubscription {
        let box = Unmanaged.passRetained(HandlerBox(handler))
        var sub: OpaquePointer?
        let s = natsConnection_Subscribe(&sub, nc, subject, natsMessageTrampoline, box.toOpaque())
        guard s == NATS_OK, let sub else {
            box.release()
            throw NATSError("subscribe to \(subject)", s)
        }
        let subscription = NATSSubscription(sub: sub, release: { box.release() })
        lock.lock()
        subscriptions.append(subscription)
        lock.unlock()
        return subscription
    }

    /// Whether the connection is up now (it reconnects by itself when not).
    public var isConnected: Bool { natsConnection_Status(nc) == NATS_CONN_STATUS_CONNECTED }

    deinit {
        lock.lock()
        let subs = subscriptions
        subscriptions = []
        lock.unlock()
        for s in subs { s.cancel() }
        natsConnection_Close(nc)
        natsConnection_Destroy(nc)
    }
}

/// A subscription; ``cancel()`` stops deliveries (also when its connection goes).
public final class NATSSubscription: @unchecked Sendable {
    // @unchecked: `sub` and the handler are released once, under `lock`.
    private let lock = NSLock()
    private var sub: OpaquePointer?
    private var release: (() -> Void)?

    init(sub: OpaquePointer, release: @escaping () -> Void) {
        self.sub = sub
        self.release = release
    }

    /// Stops deliveries; waits for a delivery in progress.
    public func cancel() {
        lock.lock()
        let (s, r) = (sub, release)
        sub = nil
        release = nil
        lock.unlock()
        guard let s else { return }
        _ = natsSubscription_Unsubscribe(s)
        natsSubscription_Destroy(s)
        r?()
    }

    deinit { cancel() }
}

final class HandlerBox {
    let handler: @Sendable (NATSMessage) -> Void
    init(_ handler: @escaping @Sendable (NATSMessage) -> Void) { self.handler = handler }
}

/// libnats calls a C function: a free function (a closure here would be inferred main-actor-isolated under Swift 6).
private func natsMessageTrampoline(
    _ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?
) {
    guard let msg, let closure else { return }
    defer { natsMsg_Destroy(msg) }
    Unmanaged<HandlerBox>.fromOpaque(closure).takeUnretainedValue().handler(NATSMessage(msg))
}

/// A copy of `count` bytes libnats owns (nil or empty: none).
func copyBytes(_ start: UnsafeRawPointer?, _ count: Int) -> [UInt8] {
    guard let start, count > 0 else { return [] }
    return Array(UnsafeRawBufferPointer(start: start, count: count))
}
