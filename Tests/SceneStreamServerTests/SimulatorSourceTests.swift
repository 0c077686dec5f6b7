import Foundation
import Testing

@testable import SceneStreamServer

/// The simulator as a source: what it makes waits for the tick; a pause drops it and makes nothing more.
@Suite struct SimulatorSourceTests {
    func source() throws -> SimulatorSource {
        let twins = try #require(FileManager.default.contents(atPath: "Assets/plants/demo/twins.json"))
        return try SimulatorSource(twinsJSON: [UInt8](twins), file: "twins.json", startMs: 1_000_000, intervalNs: 33_000_000)
    }

    @Test func stepsWaitForTheTickInOrder() throws {
        let s = try source()
        s.step(to: 1_001_000)
        s.step(to: 1_002_000)
        let taken = s.take()
        #expect(!taken.isEmpty)
        #expect(zip(taken, taken.dropFirst()).allSatisfy { $0.timestampMs <= $1.timestampMs || $0.twin != $1.twin || $0.property != $1.property })
        #expect(s.take().isEmpty)
    }

    @Test func pauseDropsWhatWasNotTakenAndStopsMaking() throws {
        let s = try source()
        s.step(to: 1_001_000)
        s.set(running: false, nowMs: 1_001_000)
        #expect(s.isPaused && s.take().isEmpty)
        s.step(to: 1_005_000)
        #expect(s.take().isEmpty)
        // Resumed afresh: the first values are of the resume time, not a replay of the pause.
        s.set(running: true, nowMs: 2_000_000)
        s.step(to: 2_000_500)
        let after = s.take()
        #expect(!after.isEmpty && after.allSatisfy { $0.timestampMs >= 2_000_000 })
    }

    @Test func theThreadStepsUntilStopped() throws {
        let s = try SimulatorSource(
            twinsJSON: [UInt8](try #require(FileManager.default.contents(atPath: "Assets/plants/demo/twins.json"))), file: "twins.json",
            startMs: UInt64(Date().timeIntervalSince1970 * 1000), intervalNs: 5_000_000)
        s.start()
        var got: [Any] = []
        let deadline = Date().addingTimeInterval(10)
        while got.isEmpty && Date() < deadline {
            got = s.take()
            usleep(10_000)
        }
        s.stop()
        #expect(!got.isEmpty)
    }
}
