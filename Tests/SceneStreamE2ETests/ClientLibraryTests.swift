import Foundation
import SceneStreamTestSupport
import Logging
import SceneStreamClient
import SceneStreamProtocol
import SceneStreamReplica
import SceneStreamTransport
import Testing

/// The `SceneStreamClient` library: an AsyncSequence of updates over a live replica, resume after a drop, and a
/// typed error with a clean close when a server sends a malformed frame.
@Suite(.serialized) struct ClientLibraryTests {
    func snapshot(_ server: ServerProcess) throws -> (UInt64, [NSDictionary]) {
        let s = try JSONSerialization.jsonObject(with: Data(try server.http("/api/scene"))) as! [String: Any]
        return (UInt64(s["version"] as! String)!, (s["entered"] as! [[String: Any]]).map { NSDictionary(dictionary: $0) })
    }

    func describe(_ r: Replica) -> [NSDictionary] {
        let m = MessageDescription.describe(
            ServerMessage.frame(
                SceneFrame(
                    kind: .keyframe(sceneId: r.sceneId, quantization: r.quantization), version: r.version ?? 0, timeMs: 0, nodeSpace: 0,
                    entered: r.nodes.keys.sorted().map { NodeEntry(index: $0, node: r.nodes[$0]!) })))
        return (m["entered"] as! [[String: Any]]).map { NSDictionary(dictionary: $0) }
    }

    @Test func updatesStreamConvergesAndResumesAfterADrop() async throws {
        let server = try ServerProcess()
        defer { _ = server.stop() }
        let client = try SceneStreamClient(
            endpoint: StreamEndpoint(host: "127.0.0.1", port: server.port),
            options: ClientOptions(token: "demo:swift", interest: InterestSpec(sceneId: "demo", rateHz: 60)))
        var frames = 0
        var keyframes = 0
        var afterDrop: [Bool] = []
        var reconnecting = 0
        for try await update in await client.updates() {
            switch update {
            case .frame(_, let change):
                frames += 1
                if change.keyframe { keyframes += 1 }
                // Frames after the client said it reconnects: those are the resumed stream. (Counting from the
                // drop instead raced the stream's buffer: a consumer lagging five frames saw only frames sent
                // before the drop and stopped before the reconnect event.)
                if reconnecting > 0 { afterDrop.append(change.keyframe) }
                if frames == 20 { await client.dropConnection() }
            case .reconnecting:
                reconnecting += 1
            default:
                break
            }
            if afterDrop.count >= 5 { break }
        }
        #expect(keyframes == 1, "the resume is a delta, not a second keyframe")
        #expect(reconnecting == 1)
        #expect(afterDrop.allSatisfy { !$0 })
        // Freeze the plant and compare with the server.
        _ = try server.http("/api/simulator", post: Array("{\"running\":false}".utf8))
        try await Task.sleep(nanoseconds: 200_000_000)
        let (version, want) = try snapshot(server)
        var replica = await client.replica
        let deadline = Date().addingTimeInterval(10)
        while replica.version != version && Date() < deadline {
            try await Task.sleep(nanoseconds: 20_000_000)
            replica = await client.replica
        }
        // The loop above stopped consuming updates, but the client keeps applying frames.
        #expect(replica.version == version)
        #expect(describe(replica) == want)
        await client.stop()
    }

    /// A fake server that welcomes the client, then sends a truncated delta.
    final class FakeServer: EventLoopHandler, @unchecked Sendable {
        var loop: EventLoop!
        let port: Int
        let lock = NSLock()
        var closed = false
        var pending: [ConnectionID: [[UInt8]]] = [:]

        init() throws {
            port = Int.random(in: 20000...60000)
            loop = try EventLoop(configuration: TransportConfiguration(port: port, bindAddress: "127.0.0.1"), handler: self, logger: Logger(label: "fake"))
            loop.start()
        }

        func shouldAccept(subprotocols: String, origin: String) -> Bool { true }

        func received(_ c: ConnectionID, message: [UInt8], binary: Bool) -> ReceiveAction {
            let enc = try! MessageEncoder()
            if message.first == MessageType.hello.rawValue {
                pending[c, default: []].append(
                    enc.encode(ServerMessage.welcome(version: 1, sessionId: "s", sessionToken: "t", serverName: "fake", heartbeatMs: 1000, maxMessageBytes: 1000, scenes: ["demo"])))
                pending[c, default: []].append([0x83, 0x00, 0x05, 0x01])  // a delta that ends inside its header
                loop.requestWrite(c)
            }
            return .keep
        }

        func writable(_ c: ConnectionID) -> WriteAction {
            guard var q = pending[c], !q.isEmpty else { return .idle }
            let m = q.removeFirst()
            pending[c] = q
            return .send(m, more: !q.isEmpty)
        }

        func closed(_ c: ConnectionID) {
            lock.lock()
            closed = true
            lock.unlock()
        }

        var wasClosed: Bool {
            lock.lock()
            defer { lock.unlock() }
            return closed
        }
    }

    @Test func malformedFrameIsATypedErrorAndACleanClose() async throws {
        var fake: FakeServer?
        for _ in 0..<5 where fake == nil { fake = try? FakeServer() }
        let server = try #require(fake)
        let client = try SceneStreamClient(
            endpoint: StreamEndpoint(host: "127.0.0.1", port: server.port),
            options: ClientOptions(interest: InterestSpec(sceneId: "demo")), reconnects: false)
        var caught: (any Error)?
        do {
            for try await _ in await client.updates() {}
        } catch {
            caught = error
        }
        let e = try #require(caught as? ProtocolError)
        #expect(e.kind == .truncated)
        let deadline = Date().addingTimeInterval(5)
        while !server.wasClosed && Date() < deadline { try await Task.sleep(nanoseconds: 20_000_000) }
        #expect(server.wasClosed, "the client closed the connection")
        server.loop.stop()
        server.loop.wait()
    }
}
