import CNATS
import Foundation

/// A message stored in a JetStream stream: its stream sequence and payload.
public struct StreamMessage: Sendable, Equatable {
    public let sequence: UInt64
    public let subject: String
    public let payload: [UInt8]
}

/// A JetStream context on a connection (libnats' `jsCtx`): streams, acknowledged publishes, last message by
/// subject, and ordered consumers from a sequence. The scene's commit stream rides on it.
public final class NATSJetStream: @unchecked Sendable {
    // @unchecked: libnats' JetStream context is thread-safe; `subscriptions` is guarded by `lock`.
    private let js: OpaquePointer
    private let connection: NATSConnection
    private let lock = NSLock()
    private var subscriptions: [NATSSubscription] = []

    /// A JetStream context on `connection`; `timeoutMs` bounds each API call and publish acknowledgement.
    public init(_ connection: NATSConnection, timeoutMs: Int64 = 5000) throws(NATSError) {
        self.connection = connection
        var opts = jsOptions()
        _ = jsOptions_Init(&opts)
        opts.Wait = timeoutMs
        var ctx: OpaquePointer?
        let s = natsConnection_JetStream(&ctx, connection.handle, &opts)
        guard s == NATS_OK, let ctx else { throw NATSError("JetStream context", s) }
        js = ctx
    }

    /// Creates stream `name` over `subjects` (or updates it to this configuration): `replicas` copies on file
    /// storage, messages kept at most `maxAgeMs` (0: no limit) and `maxMessages` (0: no limit).
    public func addStream(_ name: String, subjects: [String], replicas: Int = 1, maxAgeMs: Int64 = 0, maxMessages: Int64 = 0, memory: Bool = false) throws(NATSError) {
        var cfg = jsStreamConfig()
        _ = jsStreamConfig_Init(&cfg)
        let cName = strdup(name)
        var cSubjects = subjects.map { UnsafePointer<CChar>(strdup($0)) }
        defer {
            free(cName)
            for p in cSubjects { free(UnsafeMutablePointer(mutating: p)) }
        }
        cfg.Name = UnsafePointer(cName)
        cfg.SubjectsLen = Int32(subjects.count)
        cfg.Replicas = Int64(replicas)
        cfg.MaxAge = maxAgeMs * 1_000_000  // nanoseconds
        cfg.MaxMsgs = maxMessages > 0 ? maxMessages : -1
        cfg.Storage = memory ? js_MemoryStorage : js_FileStorage
        let s: natsStatus = cSubjects.withUnsafeMutableBufferPointer { buf in
            var info: UnsafeMutablePointer<jsStreamInfo>?
            var code = jsErrCode(rawValue: 0)
            cfg.Subjects = UnsafeMutablePointer(mutating: buf.baseAddress!).withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) { $0 }
            var s = js_AddStream(&info, js, &cfg, nil, &code)
            if s != NATS_OK {
                // It exists with another configuration: bring it to this one.
                s = js_UpdateStream(&info, js, &cfg, nil, &code)
            }
            if let info { jsStreamInfo_Destroy(info) }
            return s
        }
        guard s == NATS_OK else { throw NATSError("stream \(name)", s) }
    }

    /// Publishes `payload` on `subject` and waits for the stream's acknowledgement; returns its sequence.
    /// `messageId` makes a republish of the same message a duplicate the stream drops.
    @discardableResult
    public func publish(_ subject: String, _ payload: [UInt8], messageId: String? = nil) throws(NATSError) -> UInt64 {
        var ack: UnsafeMutablePointer<jsPubAck>?
        var code = jsErrCode(rawValue: 0)
        var opts = jsPubOptions()
        _ = jsPubOptions_Init(&opts)
        let cId = messageId.map { strdup($0) }
        defer { if let cId { free(cId) } }
        if let cId { opts.MsgId = UnsafePointer(cId) }
        let s = payload.withUnsafeBytes { js_Publish(&ack, js, subject, $0.baseAddress, Int32($0.count), &opts, &code) }
        guard s == NATS_OK, let ack else { throw NATSError("publish on \(subject) (JetStream \(code.rawValue))", s) }
        defer { jsPubAck_Destroy(ack) }
        return ack.pointee.Sequence
    }

    /// The last message on `subject` in stream `stream`, or nil if it has none.
    public func lastMessage(stream: String, subject: String) throws(NATSError) -> StreamMessage? {
        var msg: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let s = js_GetLastMsg(&msg, js, stream, subject, nil, &code)
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let msg else { throw NATSError("last message on \(subject) in \(stream)", s) }
        defer { natsMsg_Destroy(msg) }
        return StreamMessage(
            sequence: natsMsg_GetSequence(msg), subject: natsMsg_GetSubject(msg).map { String(cString: $0) } ?? subject,
            payload: copyBytes(natsMsg_GetData(msg), Int(natsMsg_GetDataLength(msg))))
    }

    /// Delivers the messages of `subject` from stream sequence `from` on (0: only new ones), in order, on a libnats
    /// thread, through an ordered consumer (libnats restarts it by itself after a gap or a lost server).
    @discardableResult
    public func follow(_ subject: String, from: UInt64, handler: @escaping @Sendable (StreamMessage) -> Void) throws(NATSError) -> NATSSubscription {
        let box = Unmanaged.passRetained(StreamHandlerBox(handler))
        var so = jsSubOptions()
        _ = jsSubOptions_Init(&so)
        so.Ordered = true
        so.Config.DeliverPolicy = from == 0 ? js_DeliverNew : js_DeliverByStartSequence
        so.Config.OptStartSeq = from
        // Heartbeats every second: a consumer lost with its server is noticed (and recreated by libnats) in
        // seconds, not after the default five.
        so.Config.Heartbeat = 1_000_000_000
        var sub: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let s = js_Subscribe(&sub, js, subject, streamMessageTrampoline, box.toOpaque(), nil, &so, &code)
        guard s == NATS_OK, let sub else {
            box.release()
            throw NATSError("follow \(subject) from \(from) (JetStream \(code.rawValue))", s)
        }
        let subscription = NATSSubscription(sub: sub, release: { box.release() })
        lock.lock()
        subscriptions.append(subscription)
        lock.unlock()
        return subscription
    }

    deinit {
        lock.lock()
        let subs = subscriptions
        subscriptions = []
        lock.unlock()
        for s in subs { s.cancel() }
        jsCtx_Destroy(js)
    }
}

final class StreamHandlerBox {
    let handler: @Sendable (StreamMessage) -> Void
    init(_ handler: @escaping @Sendable (StreamMessage) -> Void) { self.handler = handler }
}

/// libnats calls a C function (see `natsMessageTrampoline`).
private func streamMessageTrampoline(
    _ nc: OpaquePointer?, _ sub: OpaquePointer?, _ msg: OpaquePointer?, _ closure: UnsafeMutableRawPointer?
) {
    guard let msg, let closure else { return }
    defer { natsMsg_Destroy(msg) }
    var meta: UnsafeMutablePointer<jsMsgMetaData>?
    var seq: UInt64 = 0
    if natsMsg_GetMetaData(&meta, msg) == NATS_OK, let meta {
        seq = meta.pointee.Sequence.Stream
        jsMsgMetaData_Destroy(meta)
    }
    let m = StreamMessage(
        sequence: seq, subject: natsMsg_GetSubject(msg).map { String(cString: $0) } ?? "",
        payload: copyBytes(natsMsg_GetData(msg), Int(natsMsg_GetDataLength(msg))))
    Unmanaged<StreamHandlerBox>.fromOpaque(closure).takeUnretainedValue().handler(m)
}
