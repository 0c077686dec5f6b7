import Foundation
import HTTPTypes
import Testing

@testable import SceneStreamHTTP
@testable import SceneStreamTransport

@Suite struct RouterTests {
    enum R: Hashable, Sendable { case health, scene, ingest, plant, models, files }
    let router = HTTPRouter<R>([
        Route(.get, "/healthz", .open, .health),
        Route(.get, "/api/scene", .token, .scene),
        Route(.post, "/api/ingest", .ingest, .ingest),
        Route(.get, "/assets/plants/", .admin, .plant),
        Route(.get, "/assets/plants/*/models/", .open, .models),
        Route(.get, "/", .open, .files),
    ])

    func name(_ m: RouteMatch<R>) -> R? {
        if case .route(let r) = m { return r.name }
        return nil
    }

    @Test func exactBeforePrefixAndLongestPrefixFirst() {
        #expect(name(router.match(.get, "/healthz")) == .health)
        #expect(name(router.match(.get, "/api/scene")) == .scene)
        #expect(name(router.match(.get, "/assets/plants/reference/scene.json")) == .plant)
        #expect(name(router.match(.get, "/assets/plants")) == .plant)
        #expect(name(router.match(.get, "/assets/models/robot.gltf")) == .files)
        #expect(name(router.match(.head, "/healthz")) == .health)
    }

    @Test func aWildcardLevelMatchesOneLevelAndCannotBeWalkedOutOf() {
        #expect(name(router.match(.get, "/assets/plants/mill/models/press.glb")) == .models)
        #expect(name(router.match(.get, "/assets/plants/mill/models/sub/press.glb")) == .models)
        // Everything else in the plant folder stays behind the admin rule, however the path is spelt.
        for p in [
            "/assets/plants/mill/scene.json", "/assets/plants/mill/models/../bindings.json", "/assets/plants/mill/models/./../rules.json",
            "/assets/plants/mill/models/%2e%2e/twins.json", "/assets/plants//models/x.glb", "/assets/plants/mill/models",
            "/assets/plants/../plants/mill/models/x.glb",
        ] {
            #expect(name(router.match(.get, p)) == .plant, "\(p)")
        }
    }

    @Test func theRouteCarriesItsAccessRule() {
        guard case .route(let r) = router.match(.get, "/assets/plants/demo/twins.json") else {
            Issue.record("no route")
            return
        }
        #expect(r.access == .admin)
    }

    @Test func wrongMethodIs405WithWhatIsAllowed() {
        guard case .methodNotAllowed(let allowed) = router.match(.get, "/api/ingest") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == [.post])
        // A POST to a file path is not allowed either (the "/" prefix serves GET only).
        guard case .methodNotAllowed = router.match(.post, "/api/simulator") else {
            Issue.record("expected 405 for an unknown POST under /")
            return
        }
    }
}

@Suite struct StaticFilesTests {
    /// A served folder with a file, a subfolder, a link inside it, and links that point outside it.
    func fixture() throws -> (root: String, files: StaticFiles) {
        let base = NSTemporaryDirectory() + "scenestream-files-\(UUID().uuidString)"
        let web = base + "/web"
        let fm = FileManager.default
        try fm.createDirectory(atPath: web + "/js", withIntermediateDirectories: true)
        try Data("<html>".utf8).write(to: URL(fileURLWithPath: web + "/index.html"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: web + "/js/app.js"))
        try Data("{\"hs256Secret\":\"s\"}".utf8).write(to: URL(fileURLWithPath: base + "/config.json"))
        try fm.createSymbolicLink(atPath: web + "/root", withDestinationPath: "/")
        try fm.createSymbolicLink(atPath: web + "/config.json", withDestinationPath: base + "/config.json")
        try fm.createSymbolicLink(atPath: web + "/app-link.js", withDestinationPath: web + "/js/app.js")
        return (base, StaticFiles([StaticFiles.Mount(prefix: "/", directory: web)]))
    }

    @Test func servesFilesAndIndexes() throws {
        let (base, files) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: base) }
        #expect(try files.resolve("/js/app.js").get().hasSuffix("/web/js/app.js"))
        #expect(try files.resolve("/").get().hasSuffix("/web/index.html"))
        #expect(try files.resolve("/app-link.js").get().hasSuffix("/web/js/app.js"))
        #expect(files.resolve("/nope.js") == .failure(.notFound))
    }

    @Test func linksOutOfTheFolderAreRefused() throws {
        let (base, files) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: base) }
        #expect(files.resolve("/root/etc/passwd") == .failure(.forbidden("resolves outside its folder")))
        #expect(files.resolve("/config.json") == .failure(.forbidden("resolves outside its folder")))
    }

    @Test func dotDotNulAndBackslashAreRefused() throws {
        let (base, files) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: base) }
        #expect(files.resolve("/js/../../config.json") == .failure(.forbidden("'..' in path")))
        #expect(files.resolve("/js/%2e%2e/%2e%2e/config.json") == .failure(.forbidden("'..' in path")))
        #expect(files.resolve("/index.html%00.js") == .failure(.forbidden("bad character in path")))
        #expect(files.resolve("/js\\app.js") == .failure(.forbidden("bad character in path")))
    }
}

/// RFC 6455 opening handshakes: what is refused, with which HTTP status.
@Suite struct UpgradeTests {
    let good = UpgradeRequest(subprotocols: "scenestream.v1", origin: "")

    @Test func aGoodHandshakePasses() {
        #expect(good.problem(path: "/stream") == nil)
        var q = good
        q.path = "/stream?x=1"
        #expect(q.problem(path: "/stream") == nil)
    }

    @Test func badVersionsKeysMethodsAndPathsAreRefused() {
        for v in ["8", "99", ""] {
            var u = good
            u.version = v
            #expect(u.problem(path: "/stream")?.status == 426, "version \(v)")
        }
        for k in ["", "abc", "dGhlIHNhbXBsZSBub25jZQ", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
            var u = good
            u.key = k
            #expect(u.problem(path: "/stream")?.status == 400, "key \(k)")
        }
        var post = good
        post.method = "OTHER"
        #expect(post.problem(path: "/stream")?.status == 400)
        var old = good
        old.method = "HTTP/1.0"
        #expect(old.problem(path: "/stream")?.status == 400)
        var other = good
        other.path = "/streamx"
        #expect(other.problem(path: "/stream")?.status == 404)
    }

    @Test func bearerTokensAreReadCaseInsensitively() {
        var head = HTTPRequest(method: .get, scheme: nil, authority: nil, path: "/api/scene?x=%41")
        head.headerFields[.authorization] = "bearer abc.def "
        let r = HTTPServerRequest(head: head)
        #expect(r.bearerToken == "abc.def")
        #expect(r.route == "/api/scene")
        #expect(r.query("x") == "A")
        head.headerFields[.authorization] = "Basic abc"
        #expect(HTTPServerRequest(head: head).bearerToken == "")
    }
}

/// Costly answers shared: one build per key at a time, reused while fresh.
@Suite struct SharedAnswersTests {
    @Test func concurrentRequestsShareOneBuild() {
        var a = SharedAnswers<String, Int, String>(freshNs: 1_000)
        guard case .build = a.request("all", by: 1, nowNs: 0) else { Issue.record("no build"); return }
        guard case .wait = a.request("all", by: 2, nowNs: 10) else { Issue.record("second build"); return }
        guard case .build = a.request("zone", by: 3, nowNs: 10) else { Issue.record("other key waited"); return }
        #expect(a.building == 2)
        #expect(a.finish("all", with: "A", nowNs: 100) == [1, 2])
        guard case .reuse(let r) = a.request("all", by: 4, nowNs: 1_099) else { Issue.record("not reused"); return }
        #expect(r == "A")
        guard case .build = a.request("all", by: 5, nowNs: 1_100) else { Issue.record("stale answer reused"); return }
    }

    @Test func keysAreBounded() {
        var a = SharedAnswers<Int, Int, Int>(freshNs: .max, maxKeys: 3)
        for k in 0..<10 {
            _ = a.request(k, by: k, nowNs: UInt64(k))
            _ = a.finish(k, with: k, nowNs: UInt64(k))
        }
        guard case .reuse = a.request(9, by: 0, nowNs: 20) else { Issue.record("newest forgotten"); return }
        guard case .build = a.request(0, by: 0, nowNs: 20) else { Issue.record("oldest kept"); return }
    }
}
