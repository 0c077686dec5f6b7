import Foundation
import SceneStreamCore
import SceneStreamSimulation
import ServiceLifecycle

/// The built-in plant simulator as an ingest source of its own, like MQTT: its thread steps the simulation when the
/// tick asks (so every tick finds one step's updates, however the threads are scheduled) and leaves the updates
/// for the service thread, which takes them at its next tick. Paused and resumed
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
    private var stepTo: UInt64?
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)

    /// A simulator of the twins in `twinsJSON`, starting at `startMs`.
    init(twinsJSON: [UInt8], file: String, startMs: UInt64) throws(ConfigError) {
        simulation = try PlantSimulator(twinsJSON: twinsJSON, file: file, startMs: startMs)
        self.twinsJSON = twinsJSON
        self.file = file
    }

    /// Asks the thread to step the simulation to `nowMs` (the tick calls this after taking the last step's
    /// updates). Any thread; returns at once.
    func requestStep(to nowMs: UInt64) {
        locked { stepTo = nowMs }
        wake.signal()
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

    /// Starts the stepping thread. It keeps normal priority, as the MQTT network thread does: it is the plant's data,
    /// and lowered with the HTTP workers it would be starved by them (a tick with no new values sends no frame).
    func start() {
        guard locked({ () -> Bool in
            defer { running = true }
            return !running
        }) else { return }
        let t = Thread { [self] in
            while locked({ running }) {
                _ = wake.wait(timeout: .now() + .milliseconds(500))
                let to = locked { () -> UInt64? in
                    defer { stepTo = nil }
                    return stepTo
                }
                if let to { step(to: to) }
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
        if was {
            wake.signal()
            done.wait()
        }
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
