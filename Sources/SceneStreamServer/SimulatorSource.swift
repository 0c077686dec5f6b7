import Foundation
import SceneStreamCore
import SceneStreamSimulation
import ServiceLifecycle

/// The built-in plant simulator as an ingest source of its own, like MQTT: its thread steps the simulation at the
/// tick rate and leaves the updates for the service thread, which takes them at its next tick. Paused and resumed
/// over HTTP (`POST /api/simulator`); a pause drops what was not taken yet, so nothing changes after it is answered.
final class SimulatorSource: @unchecked Sendable {
    // @unchecked: every field below is read and written under `lock`.
    private let lock = NSLock()
    private var simulation: PlantSimulator
    private var paused = false
    private var pending: [PropertyUpdate] = []
    private var running = false
    private let twinsJSON: [UInt8]
    private let file: String
    private let intervalNs: UInt64
    private let done = DispatchSemaphore(value: 0)

    /// A simulator of the twins in `twinsJSON`, stepped every `intervalNs`, starting at `startMs`.
    init(twinsJSON: [UInt8], file: String, startMs: UInt64, intervalNs: UInt64) throws(ConfigError) {
        simulation = try PlantSimulator(twinsJSON: twinsJSON, file: file, startMs: startMs)
        self.twinsJSON = twinsJSON
        self.file = file
        self.intervalNs = intervalNs
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    /// Steps the simulation to `nowMs` (unless paused). Any thread.
    func step(to nowMs: UInt64) {
        locked {
            guard !paused else { return }
            pending.append(contentsOf: simulation.step(to: nowMs))
        }
    }

    /// The updates made since the last call, in order. Service thread.
    func take() -> [PropertyUpdate] {
        locked {
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }

    /// Whether it runs.
    var isPaused: Bool { locked { paused } }

    /// Pauses (dropping what was not taken) or resumes — afresh from `nowMs`, not replaying what was missed.
    func set(running run: Bool, nowMs: UInt64) {
        locked {
            if paused && run, let fresh = try? PlantSimulator(twinsJSON: twinsJSON, file: file, startMs: nowMs) { simulation = fresh }
            paused = !run
            if !run { pending.removeAll() }
        }
    }

    /// Starts the stepping thread (at a lower priority than the service thread).
    func start() {
        guard locked({ () -> Bool in
            defer { running = true }
            return !running
        }) else { return }
        let t = Thread { [self] in
            BackgroundPriority.lower()
            var next = DispatchTime.now().uptimeNanoseconds
            while locked({ running }) {
                step(to: UInt64(Date().timeIntervalSince1970 * 1000))
                next += intervalNs
                let now = DispatchTime.now().uptimeNanoseconds
                if next > now { usleep(UInt32(min(1_000_000, (next - now) / 1000))) } else { next = now }
            }
            done.signal()
        }
        t.name = "scenestream-simulator"
        t.start()
    }

    /// Stops the stepping thread and waits for it.
    func stop() {
        let was = locked { () -> Bool in
            defer { running = false }
            return running
        }
        if was { done.wait() }
    }
}

/// The simulator's thread as a service: it steps from the group's start until graceful shutdown.
struct SimulatorService: Service {
    let source: SimulatorSource

    func run() async throws {
        source.start()
        try? await gracefulShutdown()
        await offThread { [source] in source.stop() }
    }
}
