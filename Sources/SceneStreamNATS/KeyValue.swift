import CNATS
import Foundation

/// A JetStream key-value bucket (libnats' `kvStore`): what every node of a cluster sees — sessions, handoff codes.
/// `create` succeeds for one writer only; `update` is a compare-and-set on the revision, so a claim is made once
/// across the cluster.
public final class NATSKeyValue: @unchecked Sendable {
    // @unchecked: libnats' JetStream context and kvStore are thread-safe.
    private let js: OpaquePointer
    private let kv: OpaquePointer
    /// The bucket's name.
    public let bucket: String

    /// One entry: its value and revision.
    public struct Entry: Sendable, Equatable {
        public let value: [UInt8]
        public let revision: UInt64
    }

    /// Creates (or binds to) bucket `bucket` on `connection`: `replicas` copies, entries expire after `ttlMs`
    /// (0: never; per bucket in NATS 2.9), `history` values kept per key.
    public init(
        _ connection: NATSConnection, bucket: String, replicas: Int = 1, ttlMs: Int64 = 0, history: UInt8 = 1, memory: Bool = false,
        domain: String? = nil
    ) throws(NATSError) {
        self.bucket = bucket
        var ctx: OpaquePointer?
        var s = jetStreamContext(&ctx, connection, timeoutMs: 5000, domain: domain)
        guard s == NATS_OK, let ctx else { throw NATSError("JetStream context", s) }
        var cfg = kvConfig()
        _ = kvConfig_Init(&cfg)
        var store: OpaquePointer?
        // Bind to it when it exists (every node but the first), create it otherwise.
        if js_KeyValue(&store, ctx, bucket) == NATS_OK, let store {
            js = ctx
            kv = store
            return
        }
        store = nil
        s = bucket.withCString { name in
            cfg.Bucket = name
            cfg.Replicas = Int32(replicas)
            cfg.History = history
            cfg.TTL = ttlMs * 1_000_000  // nanoseconds
            cfg.StorageType = memory ? js_MemoryStorage : js_FileStorage
            return js_CreateKeyValue(&store, ctx, &cfg)
        }
        guard s == NATS_OK, let store else {
            jsCtx_Destroy(ctx)
            throw NATSError("key-value bucket \(bucket)", s)
        }
        js = ctx
        kv = store
    }

    /// Sets `key` to `value` only if it has no value; returns its revision, or nil when another writer has it.
    public func create(_ key: String, _ value: [UInt8]) throws(NATSError) -> UInt64? {
        var rev: UInt64 = 0
        let s = value.withUnsafeBytes { kvStore_Create(&rev, kv, key, $0.baseAddress, Int32($0.count)) }
        if s == NATS_OK { return rev }
        // libnats reports a lost create race as a generic error: it is one when the key now has a value.
        if (try? get(key)) != nil { return nil }
        throw NATSError("create \(bucket).\(key)", s)
    }

    /// Sets `key` to `value` only if its revision is still `revision`; returns the new revision, or nil when
    /// someone else changed it first.
    public func update(_ key: String, _ value: [UInt8], revision: UInt64) throws(NATSError) -> UInt64? {
        var rev: UInt64 = 0
        let s = value.withUnsafeBytes { kvStore_Update(&rev, kv, key, $0.baseAddress, Int32($0.count), revision) }
        if s == NATS_OK { return rev }
        if let now = try? get(key), now.revision != revision { return nil }
        throw NATSError("update \(bucket).\(key)", s)
    }

    /// Sets `key` to `value` whatever it held; returns the new revision.
    public func put(_ key: String, _ value: [UInt8]) throws(NATSError) -> UInt64 {
        var rev: UInt64 = 0
        let s = value.withUnsafeBytes { kvStore_Put(&rev, kv, key, $0.baseAddress, Int32($0.count)) }
        guard s == NATS_OK else { throw NATSError("put \(bucket).\(key)", s) }
        return rev
    }

    /// The entry of `key`, or nil if it has none. Read from the bucket's stream leader (libnats' own get may be
    /// answered by a replica a little behind, which would make a fresh code look unknown or a claim look lost).
    public func get(_ key: String) throws(NATSError) -> Entry? {
        var msg: OpaquePointer?
        var code = jsErrCode(rawValue: 0)
        let s = js_GetLastMsg(&msg, js, "KV_\(bucket)", "$KV.\(bucket).\(key)", nil, &code)
        if s == NATS_NOT_FOUND { return nil }
        guard s == NATS_OK, let msg else { throw NATSError("get \(bucket).\(key)", s) }
        defer { natsMsg_Destroy(msg) }
        // A deleted or purged key keeps a marker message (KV-Operation header) with no value.
        var op: UnsafePointer<CChar>?
        if natsMsgHeader_Get(msg, "KV-Operation", &op) == NATS_OK, op != nil { return nil }
        return Entry(value: copyBytes(natsMsg_GetData(msg), Int(natsMsg_GetDataLength(msg))), revision: natsMsg_GetSequence(msg))
    }

    deinit {
        kvStore_Destroy(kv)
        jsCtx_Destroy(js)
    }
}
