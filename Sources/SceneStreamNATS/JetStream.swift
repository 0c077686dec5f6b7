import CNATS
import Foundation

/// A message stored in a JetStream stream: its stream sequence and payload.
public struct StreamMessage: Sendable, Equatable {
    public let sequence: UInt64
    public let subject: String
    public let payload: [UInt8]

    /// A copy of a message read from a stream, which it then destroys.
    init(taking msg: OpaquePointer) {
        defer { natsMsg_Destroy(msg) }
        sequence = natsMsg_GetSequence(msg)
        subject = natsMsg_GetSubject(msg).map { String(cString: $0) } ?? ""
        payload = copyBytes(natsMsg_GetData(msg), Int(natsMsg_GetDataLength(msg)))
    }
}

/// A JetStream context on a connection (libnats' `jsCtx`): streams, acknowledged publishes, messages read back by
/// sequence and the last one by subject. The scene's commit stream rides on it.
public final class NATSJetStream: @unchecked Sendable {
    // @unchecked: libnats' JetStream context is thread-safe.
    private let js: OpaquePointer
    /// Kept alive as long as the context.
    private let connection: NATSConnection

    /// A JetStream context on `connection`; `timeoutMs` bounds each API call and publish acknowledgement.
    /// `domain`: the JetStream domain to use (a leaf node without JetStream reaching its hub's, e.g. a plant's
    /// server using the cloud's); nil for the connection's own.
    public init(_ connection: NATSConnection, timeoutMs: Int64 = 5000, domain: String? = nil) throws(NATSError) {
        self.connection = connection
        var ctx: OpaquePointer?
        let s = jetStreamContext(&ctx, connection, timeoutMs: timeoutMs, domain: domain)
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
        return StreamMessage(taking: msg)
    }

    /// The message at stream sequence `sequence`, or nil if the stream has none there (deleted, or aged out).
    public func message(stream: String, sequence: UInt64) throws(NATSError) -> StreamMessage? {
        var msg: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let s = js_GetMsg(&msg, js, stream, sequence, nil, &code)
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let msg else { throw NATSError("message \(sequence) of \(stream)", s) }
        return StreamMessage(taking: msg)
    }

    /// The first and last sequence stream `stream` holds (first > last when it is empty).
    public func sequences(stream: String) throws(NATSError) -> (first: UInt64, last: UInt64) {
        var info: UnsafeMutablePointer<jsStreamInfo>?
        var code = jsErrCode(rawValue: 0)
        let s = js_GetStreamInfo(&info, js, stream, nil, &code)
        guard s == NATS_OK, let info else { throw NATSError("stream \(stream) (JetStream \(code.rawValue))", s) }
        defer { jsStreamInfo_Destroy(info) }
        return (info.pointee.State.FirstSeq, info.pointee.State.LastSeq)
    }

    deinit { jsCtx_Destroy(js) }
}

/// A JetStream context on `connection` (libnats copies the options, so the domain string need not outlive it).
func jetStreamContext(_ ctx: inout OpaquePointer?, _ connection: NATSConnection, timeoutMs: Int64, domain: String?) -> natsStatus {
    var opts = jsOptions()
    _ = jsOptions_Init(&opts)
    opts.Wait = timeoutMs
    guard let domain else { return natsConnection_JetStream(&ctx, connection.handle, &opts) }
    return domain.withCString { d in
        opts.Domain = d
        return natsConnection_JetStream(&ctx, connection.handle, &opts)
    }
}
