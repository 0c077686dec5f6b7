import Foundation
import SceneStreamNATS
import SceneStreamTestSupport
import Testing

/// The libnats wrapper against a real 3-server nats-server cluster on loopback.
@Suite(.serialized) struct NATSConnectionTests {
    final class Inbox: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [NATSMessage] = []
        func add(_ m: NATSMessage) {
            lock.lock()
            items.append(m)
            lock.unlock()
        }
        var all: [NATSMessage] {
            lock.lock()
            defer { lock.unlock() }
            return items
        }
    }

    @Test func aMessagePublishedOnOneServerArrivesOnAnotherInOrder() throws {
        let cluster = try NATSCluster(count: 3)
        defer { cluster.stop() }
        let sub = try NATSConnection(servers: [cluster.urls[2]], name: "sub")
        let pub = try NATSConnection(servers: [cluster.urls[0]], name: "pub")
        let inbox = Inbox()
        try sub.subscribe("scenestream.demo.>") { inbox.add($0) }
        try sub.flush()
        // The routes between the servers come up after each is ready: publish a probe until it crosses.
        #expect(eventually {
            try? pub.publish("scenestream.demo.probe", [0])
            try? pub.flush()
            return !inbox.all.isEmpty
        }, "the cluster routes never carried a message from n0 to n2")
        let before = inbox.all.count
        for k in 0..<100 { try pub.publish("scenestream.demo.commits", [UInt8(k), 0xFF, 0x00]) }
        try pub.flush()
        #expect(eventually { inbox.all.count >= before + 100 })
        let got = inbox.all.dropFirst(before).filter { $0.subject == "scenestream.demo.commits" }
        #expect(got.map { $0.payload[0] } == (0..<100).map { UInt8($0) }, "in order, every byte kept")
        #expect(got.allSatisfy { $0.payload.count == 3 && $0.payload[2] == 0 })
    }

    @Test func aConnectionSurvivesItsServerGoingAway() throws {
        let cluster = try NATSCluster(count: 3)
        defer { cluster.stop() }
        let sub = try NATSConnection(servers: [cluster.urls[2]], name: "sub")
        let pub = try NATSConnection(servers: [cluster.urls[0], cluster.urls[1]], name: "pub")
        let inbox = Inbox()
        let s = try sub.subscribe("scenestream.x") { inbox.add($0) }
        try sub.flush()
        #expect(eventually {
            try? pub.publish("scenestream.x", [1])
            try? pub.flush()
            return !inbox.all.isEmpty
        })
        // The publisher's server is killed: it moves to the other one of its list and goes on.
        cluster.stop(0, kill: true)
        let n = inbox.all.count
        #expect(eventually(20) {
            try? pub.publish("scenestream.x", [2])
            try? pub.flush(timeoutMs: 500)
            return inbox.all.count > n
        }, "no message after the publisher's server died")
        // A cancelled subscription gets nothing more. (Messages of the loop above may still be on their way: what
        // must not come is one published after the cancel.) A marker on another subject of the same connection,
        // published right after each such message, says when it would have come. The marker's interest reaches the
        // publisher's server over the cluster route some time after the subscriber's server has it, so both are
        // published until a marker arrives.
        let marks = Inbox()
        let marker = try sub.subscribe("scenestream.y") { marks.add($0) }
        defer { marker.cancel() }
        try sub.flush()
        s.cancel()
        #expect(eventually {
            try? pub.publish("scenestream.x", [3])
            try? pub.publish("scenestream.y", [4])
            try? pub.flush()
            return !marks.all.isEmpty
        }, "the marker never came")
        #expect(!inbox.all.contains { $0.payload == [3] }, "a cancelled subscription got a message")
    }

    @Test func aJetStreamClusterOfThreeAnswersItsAPI() throws {
        let cluster = try NATSCluster(count: 3, jetStream: true)
        defer { cluster.stop() }
        let nc = try NATSConnection(servers: cluster.urls, name: "js")
        // The servers elect a JetStream meta leader after they meet: ask until it answers (bounded).
        var info = ""
        #expect(eventually(30) {
            info = (try? nc.request("$JS.API.INFO", [], timeoutMs: 1000)).map { String(decoding: $0.payload, as: UTF8.self) } ?? ""
            return info.contains("account_info_response") && !info.contains("\"error\"")
        }, "JetStream never answered: \(info)")
        #expect(cluster.nodes.allSatisfy { $0.process.isRunning })
    }

    @Test func aKeyIsCreatedOnceAndClaimedOnceAcrossServers() throws {
        let cluster = try NATSCluster(count: 3, jetStream: true)
        defer { cluster.stop() }
        let a = try NATSConnection(servers: [cluster.urls[0]], name: "a")
        let b = try NATSConnection(servers: [cluster.urls[2]], name: "b")
        #expect(eventually(30) { (try? a.request("$JS.API.INFO", [], timeoutMs: 1000))?.payload.count ?? 0 > 0 && (try? NATSKeyValue(a, bucket: "probe", replicas: 3)) != nil })
        let kvA = try NATSKeyValue(a, bucket: "codes", replicas: 3)
        let kvB = try NATSKeyValue(b, bucket: "codes", replicas: 3)
        // Two nodes race to create the same 100 keys: exactly one wins each.
        final class Wins: @unchecked Sendable {
            let lock = NSLock()
            var a = 0, b = 0, errors: [String] = []
        }
        let wins = Wins()
        let group = DispatchGroup()
        for (kv, isA) in [(kvA, true), (kvB, false)] {
            group.enter()
            DispatchQueue.global().async {
                for k in 0..<100 {
                    do {
                        if try kv.create("code-\(k)", Array((isA ? "a" : "b").utf8)) != nil {
                            wins.lock.lock(); if isA { wins.a += 1 } else { wins.b += 1 }; wins.lock.unlock()
                        }
                    } catch {
                        wins.lock.lock(); wins.errors.append("\(error)"); wins.lock.unlock()
                    }
                }
                group.leave()
            }
        }
        group.wait()
        #expect(wins.errors.isEmpty, "\(wins.errors.prefix(3))")
        #expect(wins.a + wins.b == 100)
        // What each winner wrote is what both nodes read.
        for k in 0..<100 { #expect(try kvA.get("code-\(k)") == kvB.get("code-\(k)")) }
        // A claim is a compare-and-set on the revision: of two claimers that read the same revision, one wins.
        let entry = try #require(try kvA.get("code-0"))
        #expect(entry.revision > 0)
        let first = try kvA.update("code-0", Array("claimed by a".utf8), revision: entry.revision)
        let second = try kvB.update("code-0", Array("claimed by b".utf8), revision: entry.revision)
        #expect(first != nil && second == nil)
        #expect(try kvB.get("code-0")?.value == Array("claimed by a".utf8))
        #expect(try kvA.get("no-such-code") == nil)
    }

    @Test func aRequestWithNoOneListeningFails() throws {
        let cluster = try NATSCluster(count: 1)
        defer { cluster.stop() }
        let nc = try NATSConnection(servers: cluster.urls, name: "req")
        #expect(throws: NATSError.self) { try nc.request("scenestream.nobody", [1], timeoutMs: 500) }
    }

    @Test func connectingToNothingIsAClearError() {
        #expect(throws: NATSError.self) { try NATSConnection(servers: ["nats://127.0.0.1:1"], name: "none") }
    }
}
