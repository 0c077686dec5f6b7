import Dispatch
import Foundation
import SceneStreamNATS

/// An error starting or running a cluster node: what and where, in words an operator can act on.
public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The owner lease of one scene: a key in a key-value bucket whose entries expire `leaseSeconds` after their last
/// write. The active owner holds it and renews it (compare-and-set on its revision, so a lease taken over by a
/// standby after a pause is noticed, not overwritten); a second owner is refused; a standby waits for it.
public final class OwnerLease: @unchecked Sendable {
    // @unchecked: mutable state is guarded by `lock`; the bucket is thread-safe; renewal runs on `queue`.
    private let kv: NATSKeyValue
    public let key: String
    public let node: String
    private let leaseMs: Int64
    private let queue = DispatchQueue(label: "scenestream.owner-lease")
    private let lock = NSLock()
    private var revision: UInt64 = 0
    private var timer: (any DispatchSourceTimer)?
    private var lostHandler: (@Sendable (String) -> Void)?
    private var renewals = 0
    private var failures = 0

    /// The lease bucket on `connection` (`replicas` copies).
    public init(connection: NATSConnection, key: String, node: String, leaseSeconds: Int, replicas: Int, domain: String? = nil) throws(NATSError) {
        self.key = key
        self.node = node
        leaseMs = Int64(leaseSeconds) * 1000
        kv = try NATSKeyValue(connection, bucket: ClusterSubjects.ownersBucket, replicas: replicas, ttlMs: leaseMs, domain: domain)
    }

    /// The node holding the lease now, if any.
    public func holder() throws(NATSError) -> String? {
        try kv.get(key).map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// Takes the lease, or says who has it. A node restarted under the same name takes its own lease back.
    /// nats-server before 2.9.21 may let two concurrent creates of one key both succeed (nats-server#4320): a
    /// won create is read back from the stream leader after a moment, and only a lease still ours counts.
    public func acquire() throws(NATSError) -> String? {
        let me = Array(node.utf8)
        if let rev = try kv.create(key, me) {
            Thread.sleep(forTimeInterval: 0.2)
            guard let e = try kv.get(key) else { return try acquire() }
            let holder = String(decoding: e.value, as: UTF8.self)
            guard holder == node else { return holder }
            set(max(rev, e.revision))
            return nil
        }
        guard let e = try kv.get(key) else { return try acquire() }  // expired meanwhile
        let other = String(decoding: e.value, as: UTF8.self)
        if other.isEmpty || other == node, let rev = try kv.update(key, me, revision: e.revision) {
            set(rev)
            return nil
        }
        return other
    }

    /// Waits until the lease is free and takes it (a standby); checks every half second.
    public func waitAndAcquire(stop: @Sendable () -> Bool = { false }) throws(NATSError) {
        while !stop() {
            do {
                if try acquire() == nil { return }
            } catch {
                // NATS away: keep waiting; the lease cannot be had without it anyway.
            }
            Thread.sleep(forTimeInterval: 0.5)
        }
        throw NATSError(text: "stopped while waiting for the lease of \(key)")
    }

    /// Renews the lease three times per period; `lost` runs once if another node took it (this node must stop
    /// committing: two owners would fork the version sequence).
    public func keepRenewed(lost: @escaping @Sendable (String) -> Void) {
        lock.lock()
        lostHandler = lost
        lock.unlock()
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + .milliseconds(Int(leaseMs / 3)), repeating: .milliseconds(Int(leaseMs / 3)))
        t.setEventHandler { [weak self] in self?.renew() }
        lock.lock()
        timer = t
        lock.unlock()
        t.resume()
    }

    /// Renewals made and failed (NATS away), for `/metrics`.
    public var counts: (renewals: Int, failures: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (renewals, failures)
    }

    /// Stops renewing and gives the lease up at once (a clean shutdown: a standby need not wait for it to expire).
    public func release() {
        queue.sync {
            lock.lock()
            timer?.cancel()
            timer = nil
            let rev = revision
            lock.unlock()
            // Writing an empty holder with the lease's revision frees it for `acquire` (which treats "" as free).
            if rev > 0 { _ = try? kv.update(key, [], revision: rev) }
        }
    }

    private func set(_ rev: UInt64) {
        lock.lock()
        revision = rev
        lock.unlock()
    }

    private func renew() {
        lock.lock()
        let rev = revision
        lock.unlock()
        do {
            if let next = try kv.update(key, Array(node.utf8), revision: rev) {
                adopt(next)
                return
            }
            // The compare-and-set failed. Reads may come from a replica a little behind (NATS moving a leader), so
            // only another node's name in the entry means the lease is lost.
            guard let e = try kv.get(key) else {
                // Expired while renewals failed: take it again (nil from create: someone else did, seen next time).
                if try kv.create(key, Array(node.utf8)).map(adopt) == nil { noteFailure() }
                return
            }
            let holder = String(decoding: e.value, as: UTF8.self)
            if holder == node {
                adopt(e.revision)  // our renewal landed but its answer was lost
                return
            }
            lock.lock()
            timer?.cancel()
            timer = nil
            let h = lostHandler
            lostHandler = nil
            lock.unlock()
            h?(holder.isEmpty ? "nobody (released)" : holder)
        } catch {
            noteFailure()
        }
    }

    private func adopt(_ rev: UInt64) {
        lock.lock()
        revision = rev
        renewals += 1
        lock.unlock()
    }

    private func noteFailure() {
        lock.lock()
        failures += 1
        lock.unlock()
    }
}
