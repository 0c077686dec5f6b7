import Foundation
import SceneStreamTestSupport
import Logging
import SceneStreamClient
import SceneStreamProtocol
import SceneStreamReplica
import Testing

/// The Swift client against the real server binary: keyframe, deltas, and a replica equal to the server's scene.
@Suite(.serialized) struct SwiftClientTests {
    final class Box: @unchecked Sendable {
        let lock = NSLock()
        var frames = 0
        var keyframes = 0
        var version: UInt64 = 0
        var replica = Replica()
        var closed = false
        var failure: String?
        func with<T>(_ f: (Box) -> T) -> T {
            lock.lock()
            defer { lock.unlock() }
            return f(self)
        }
    }

    func waitUntil(_ seconds: Double, _ cond: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if cond() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return cond()
    }

    @Test func swiftClientConvergesToTheServersScene() throws {
        let server = try ServerProcess()
        let box = Box()
        let pool = try ClientPool(
            logger: Logger(label: "test"),
            onEvent: { conn, event in
                if case .frame(let v, _, let keyframe, _) = event {
                    box.with {
                        $0.frames += 1
                        $0.keyframes += keyframe ? 1 : 0
                        $0.version = v
                        $0.replica = conn.session.replica
                    }
                }
            },
            onClose: { conn in box.with { $0.closed = true; $0.failure = conn.failure } })
        try pool.connect(host: "127.0.0.1", port: server.port, options: ClientOptions(interest: InterestSpec(sceneId: "demo", rateHz: 60)))
        #expect(waitUntil(20) { box.with { $0.frames >= 30 } }, "frames: \(box.with { $0.frames })")
        #expect(box.with { $0.keyframes } == 1)

        // Freeze the plant; the replica must then equal the server's scene exactly.
        _ = try server.http("/api/simulator", post: Array("{\"running\":false}".utf8))
        Thread.sleep(forTimeInterval: 0.2)
        let snapshot = try JSONSerialization.jsonObject(with: Data(try server.http("/api/scene"))) as! [String: Any]
        let target = UInt64(snapshot["version"] as! String)!
        #expect(waitUntil(10) { box.with { $0.version } >= target })
        let replica = box.with { $0.replica }
        #expect(replica.version == target)
        let mine = MessageDescription.describe(
            ServerMessage.frame(
                SceneFrame(
                    kind: .keyframe(sceneId: "demo", quantization: replica.quantization), version: target, timeMs: 0, nodeSpace: 0,
                    entered: replica.nodes.keys.sorted().map { NodeEntry(index: $0, node: replica.nodes[$0]!) })))
        let a = (mine["entered"] as! [[String: Any]]).map { NSDictionary(dictionary: $0) }
        let b = (snapshot["entered"] as! [[String: Any]]).map { NSDictionary(dictionary: $0) }
        #expect(a.count == b.count)
        #expect(a == b)
        #expect(!box.with { $0.closed })
        pool.shutdown()
        #expect(server.stop() == 0)
    }

    @Test func clientSeesTheServerGoAway() throws {
        let server = try ServerProcess()
        let box = Box()
        let pool = try ClientPool(
            logger: Logger(label: "test"),
            onEvent: { _, event in if case .frame = event { box.with { $0.frames += 1 } } },
            onClose: { _ in box.with { $0.closed = true } })
        try pool.connect(host: "127.0.0.1", port: server.port, options: ClientOptions(interest: InterestSpec(sceneId: "demo")))
        #expect(waitUntil(20) { box.with { $0.frames } > 3 })
        #expect(server.stop() == 0, "SIGTERM is a clean exit")
        #expect(waitUntil(10) { box.with { $0.closed } })
        pool.shutdown()
    }

    @Test func connectingToNothingFailsCleanly() throws {
        let box = Box()
        let pool = try ClientPool(logger: Logger(label: "test"), onClose: { conn in box.with { $0.closed = true; $0.failure = conn.failure } })
        try pool.connect(host: "127.0.0.1", port: 1, options: ClientOptions(interest: InterestSpec(sceneId: "demo")))
        #expect(waitUntil(10) { box.with { $0.closed } })
        #expect(box.with { $0.failure } != nil)
        pool.shutdown()
    }
}
