import Foundation
import SceneStreamTransport

/// Work off the service thread (HTTP answers, storage, rebuilds) runs a little less favoured than the
/// service thread (nice +10 on Linux), so when the cores are busy the thread that sends frames gets them first. The
/// MQTT network thread is not lowered: it is ingest's bottleneck (topic matching, Sparkplug decoding), and niced it
/// halved MQTT ingest.
enum BackgroundPriority {
    /// Lowers the calling thread's priority (idempotent).
    static func lower() { lowerCurrentThreadPriority() }
}

/// One thread of its own in the idle scheduling class, for bulk HTTP work (scene snapshots): it gets the CPU only
/// when nothing else wants it, so on a busy box the service thread, ingest and the clients' own processes come
/// first, and a snapshot waits instead. Jobs run in order.
final class BulkWorker: @unchecked Sendable {
    // @unchecked: `jobs` and `stopped` are read and written under `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false

    /// Starts the thread.
    init(name: String) {
        let t = Thread { [condition = self.condition, weak self] in
            idleCurrentThread()
            while true {
                condition.lock()
                while self?.jobs.isEmpty ?? false, !(self?.stopped ?? true) { condition.wait() }
                guard let me = self, !me.stopped else {
                    condition.unlock()
                    return
                }
                let job = me.jobs.removeFirst()
                condition.unlock()
                job()
            }
        }
        t.name = name
        t.start()
    }

    /// Runs `job` on the thread, after the ones queued before it.
    func async(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    deinit {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}
