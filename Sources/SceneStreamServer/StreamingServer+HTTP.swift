import Dispatch
import Foundation
import HTTPTypes
import SceneStreamCore
import SceneStreamHTTP
import SceneStreamProtocol
import SceneStreamSimulation
import SceneStreamTransport

/// The HTTP routes. Every route declares who may use it; with `auth` configured, `/api` takes the stream's bearer
/// JWT and narrows what it returns to the token's scenes and zones.
enum APIRoute: Hashable, Sendable {
    case healthz, metrics, status, scene, twin, twins, history, ingest, simulator, plant, anchors, plantFiles, files
}

extension StreamingServer {
    static func makeRouter(authenticated: Bool) -> HTTPRouter<APIRoute> {
        HTTPRouter([
            Route(.get, "/healthz", .open, .healthz),
            Route(.get, "/metrics", .metrics, .metrics),
            Route(.get, "/api/status", .token, .status),
            Route(.get, "/api/scene", .token, .scene),
            Route(.get, "/api/twin", .token, .twin),
            Route(.get, "/api/twins", .token, .twins),
            Route(.get, "/api/history", .token, .history),
            Route(.post, "/api/ingest", .ingest, .ingest),
            Route(.post, "/api/simulator", .admin, .simulator),
            // The plant's files, read and written (bindings and rules) by admins; applied live.
            Route(.get, "/api/plant/", .admin, .plant),
            Route(.put, "/api/plant/", .admin, .plant),
            // The site's spatial anchors: read by anyone who may see the scene, set by admins.
            Route(.get, "/api/anchors", .token, .anchors),
            Route(.put, "/api/anchors/", .admin, .anchors),
            Route(.delete, "/api/anchors/", .admin, .anchors),
            // The plant's files reveal its whole layout: admins only once tokens are required.
            Route(.get, "/assets/plants/", authenticated ? .admin : .open, .plantFiles),
            // ... but an imported plant's models are geometry like /assets/models/: the viewer loads them (no header).
            Route(.get, "/assets/plants/*/models/", .open, .files),
            Route(.get, "/", .open, .files),
        ])
    }

    static func makeFiles(_ c: ServerConfiguration) -> StaticFiles {
        var mounts = [
            StaticFiles.Mount(prefix: "/assets/", directory: c.assetsDirectory),
            StaticFiles.Mount(prefix: "/", directory: "\(c.assetsDirectory)/web"),
        ]
        // Browser libraries come from Debian's packages (libjs-three, node-qrcode-generator): nothing from a CDN.
        // Their folders link into /usr/share/nodejs.
        for (path, dir) in c.vendorDirectories where FileManager.default.fileExists(atPath: dir) {
            mounts.append(StaticFiles.Mount(prefix: path, directory: dir, alsoWithin: ["/usr/share/nodejs"]))
        }
        return StaticFiles(mounts)
    }

    // MARK: entry

    public func http(_ r: HTTPServerRequest) {
        switch r.problem {
        case .bodyTooLarge?: return answer(r, .text("request body too large (at most \(configuration.maxHTTPBodyBytes) bytes)\n", status: .contentTooLarge))
        case .badContentLength?: return answer(r, .text("conflicting or malformed Content-Length\n", status: .badRequest))
        case nil: break
        }
        switch router.match(r.head.method, r.route) {
        case .notFound:
            answer(r, .text("not found\n", status: .notFound))
        case .methodNotAllowed(let allowed):
            var resp = HTTPServerResponse.text("method \(r.head.method.rawValue) not allowed here\n", status: .methodNotAllowed)
            resp.headerFields[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
            answer(r, resp)
        case .route(let route):
            authorize(r, route)
        }
    }

    public func httpClosed(_ id: HTTPRequestID) {}

    /// Sends the answer and counts it by route and status.
    func answer(_ r: HTTPServerRequest, _ response: HTTPServerResponse, route: APIRoute? = nil) {
        metrics.http(route: route.map { "\($0)" } ?? "none", status: response.status.code)
        loop.respond(r.id, response)
    }

    /// Answers from another thread: the answer is posted to the service thread.
    static func answerLater(_ loop: EventLoop, _ metrics: ServerMetrics, _ id: HTTPRequestID, _ route: APIRoute, _ response: HTTPServerResponse) {
        loop.post {
            metrics.http(route: "\(route)", status: response.status.code)
            loop.respond(id, response)
        }
    }

    // MARK: access

    static func unauthorized(_ why: String) -> HTTPServerResponse {
        var r = HTTPServerResponse.text("\(why)\n", status: .unauthorized)
        r.headerFields[.wwwAuthenticate] = "Bearer realm=\"scenestream\""
        return r
    }

    /// Checks the route's access rule, then serves it (on the service thread). Tokens are verified off the thread.
    func authorize(_ r: HTTPServerRequest, _ route: Route<APIRoute>) {
        switch route.access {
        case .open:
            serve(route.name, r, caller: nil)
            return
        case .ingest:
            // Its own bearer token (plant systems, not people); off when none is configured.
            guard let token = configuration.ingestToken, !token.isEmpty else {
                return answer(r, .text("HTTP ingest is off: set \"ingestToken\" in the configuration\n", status: .forbidden), route: route.name)
            }
            guard Self.constantTimeEqual(r.bearerToken, token) else {
                metrics.refused(source: "http", reason: "unauthorized")
                return answer(r, Self.unauthorized("missing or wrong bearer token"), route: route.name)
            }
            serve(route.name, r, caller: nil)
            return
        case .metrics:
            if let t = configuration.metricsToken, Self.constantTimeEqual(r.bearerToken, t) {
                serve(route.name, r, caller: nil)
                return
            }
            if authenticator == nil && configuration.metricsToken == nil {
                serve(route.name, r, caller: nil)
                return
            }
        case .token, .admin:
            break
        }
        guard let auth = authenticator else {
            // Open mode (the demo): no tokens at all, so a metrics token is the only key there is.
            if route.access == .metrics {
                metrics.authFailures.increment()
                return answer(r, Self.unauthorized("metrics need the metrics token"), route: route.name)
            }
            return serve(route.name, r, caller: nil)
        }
        let token = r.bearerToken
        guard !token.isEmpty else {
            metrics.authFailures.increment()
            return answer(r, Self.unauthorized("a bearer token is required (Authorization: Bearer JWT)"), route: route.name)
        }
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        let now = Self.wallMs()
        Task {
            let result = await auth.verify(token, nowMs: now)
            loop.post { me.value.authorized(r, route, result) }
        }
    }

    /// A token was checked: serve the route, or say why not.
    func authorized(_ r: HTTPServerRequest, _ route: Route<APIRoute>, _ result: Result<Identity, AuthFailure>) {
        let identity: Identity
        switch result {
        case .failure(let why):
            metrics.authFailures.increment()
            logger.notice("HTTP token refused", metadata: ["peer": "\(r.peer)", "route": "\(route.name)", "reason": "\(why)"])
            return answer(r, Self.unauthorized("token refused: \(why.description)"), route: route.name)
        case .success(let id):
            identity = id
        }
        let needsAdmin = route.access == .admin || route.access == .metrics
        if needsAdmin && identity.role != .host {
            metrics.refusals.increment()
            answer(r, .text("this needs the admin role\n", status: .forbidden), route: route.name)
        } else if let scenes = identity.scenes, !scenes.contains(runtime.scene.id), route.name != .status {
            metrics.refusals.increment()
            answer(r, .text("scene '\(runtime.scene.id)' is not allowed for you\n", status: .forbidden), route: route.name)
        } else {
            serve(route.name, r, caller: identity)
        }
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !y.isEmpty else { return false }
        var d: UInt8 = 0
        for i in 0..<x.count { d |= x[i] ^ y[i] }
        return d == 0
    }

    // MARK: routes

    /// Serves a route for `caller` (nil: open mode, or an open route). Service thread; slow work goes to workers.
    func serve(_ name: APIRoute, _ r: HTTPServerRequest, caller: Identity?) {
        switch name {
        case .healthz:
            // Only that it is up (and, in a cluster, its role and lag, for load balancers and the operator): the
            // details are behind a token at /api/status.
            guard cluster != nil else { return answer(r, .json(Array("{\"status\":\"ok\"}".utf8)), route: name) }
            var body = clusterHealth()
            body["status"] = "ok"
            answer(r, .json([UInt8]((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data())), route: name)
        case .twin where isFollower, .twins where isFollower, .ingest where isFollower, .simulator where isFollower:
            answer(r, .text("this is a fan-out node: twin state, ingest and the simulator are on the scene's owner\n", status: .conflict), route: name)
        case .status:
            answer(r, .json(statusJSON(caller: caller)), route: name)
        case .metrics:
            metrics.uptime.set(Date().timeIntervalSince(startedAt))
            clusterHousekeeping()
            metrics.controlQueued.set(Double(clients.values.reduce(0) { $0 + $1.control.count }))
            metrics.unackedFrames.set(Double(clients.values.reduce(0) { $0 + $1.unacked.count }))
            let registry = metrics.registry
            let (loop, m, id) = (self.loop!, metrics, r.id)
            httpWork.async {
                BackgroundPriority.lower()
                let body = registry.emitToBuffer()
                Self.answerLater(loop, m, id, name, HTTPServerResponse(contentType: "text/plain; version=0.0.4; charset=utf-8", body: body))
            }
        case .scene:
            sceneJSON(r, filter: httpFilter(caller))
        case .twin:
            answer(r, twinJSON(r.query("id") ?? "", caller: caller), route: name)
        case .twins:
            answer(r, twinListJSON(caller: caller), route: name)
        case .history:
            historyJSON(r, caller: caller)
        case .ingest:
            httpIngest(r)
        case .simulator:
            answer(r, simulatorControl(r), route: name)
        case .plant:
            plantFile(r, caller: caller)
        case .anchors:
            anchorsRoute(r, caller: caller)
        case .plantFiles, .files:
            let files = self.files
            let (loop, m, id, path) = (self.loop!, metrics, r.id, r.route)
            httpWork.async {
                BackgroundPriority.lower()
                let resp: HTTPServerResponse
                switch files.resolve(path) {
                case .success(let real):
                    if let bytes = StaticFiles.read(real) {
                        resp = HTTPServerResponse(contentType: StaticFiles.contentType(real), body: bytes)
                    } else {
                        resp = .text("not found\n", status: .notFound)
                    }
                case .failure(.notFound): resp = .text("not found\n", status: .notFound)
                case .failure(.tooLarge): resp = .text("file too large\n", status: .contentTooLarge)
                case .failure(.forbidden(let why)): resp = .text("forbidden: \(why)\n", status: .forbidden)
                }
                Self.answerLater(loop, m, id, name, resp)
            }
        }
    }

    /// What a caller may see of the scene: every zone (open mode, or a token without zones), or its zones.
    func httpFilter(_ caller: Identity?) -> InterestFilter {
        var f = InterestFilter()
        if let zones = caller?.zones { f.zones = zones.isEmpty ? ["\u{0}none"] : zones }
        return f
    }

    /// `GET /api/status`: what the server runs. Admins (and the open demo) see it all; anyone else sees only what
    /// their token may — the node count of their zones, no connection counts — and a token of another scene not
    /// even the scene's name.
    func statusJSON(caller: Identity?) -> [UInt8] {
        let everything = caller == nil || (caller?.role == .host && caller?.zones == nil)
        var body: [String: Any] = [
            "status": "ok", "version": runtime.graph.version,
            "authentication": authenticator == nil ? "none: this demo server is open to anyone who can reach it" : "bearer tokens (JWT)",
        ]
        let sceneAllowed = caller?.scenes.map { $0.contains(runtime.scene.id) } ?? true
        if sceneAllowed {
            body["scene"] = runtime.scene.id
            body["nodes"] = caller?.zones == nil ? runtime.graph.liveCount : engine.membership(httpFilter(caller)).population
        }
        if everything {
            body["clients"] = clients.count
            body["subscribed"] = subscribedCount
            body["uptimeSeconds"] = Int(Date().timeIntervalSince(startedAt))
            body["simulator"] = simulator != nil
        }
        return [UInt8]((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data())
    }

    /// `GET /api/scene`: the scene the caller may see at the current version, as the JSON the vectors use. The
    /// frame is taken on the service thread (a copy of the visible nodes) and turned into JSON on a worker; requests
    /// for the same view while one is being built share its answer, and an answer is reused for a second (it names
    /// its version; the stream, not this, is for live values).
    func sceneJSON(_ r: HTTPServerRequest, filter: InterestFilter) {
        switch sceneAnswers.request(filter, by: r.id, nowNs: DispatchTime.now().uptimeNanoseconds) {
        case .reuse(let response): return answer(r, response, route: .scene)
        case .wait: return
        case .build: break
        }
        let frame = engine.keyframe(for: filter)  // a copy of the visible nodes: 1–5 ms on the reference plant
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        bulkWork.async {
            let resp = HTTPServerResponse.json(JSONText.serialize(MessageDescription.describe(.frame(frame))))
            loop.post {
                let s = me.value
                for id in s.sceneAnswers.finish(filter, with: resp, nowNs: DispatchTime.now().uptimeNanoseconds) {
                    s.metrics.http(route: "\(APIRoute.scene)", status: 200)
                    loop.respond(id, resp)
                }
            }
        }
    }

    /// `POST /api/simulator` `{"running": true|false}` (JSON only: a form or text/plain post from another site's page
    /// is refused without a CORS preflight reaching us).
    func simulatorControl(_ r: HTTPServerRequest) -> HTTPServerResponse {
        let type = r.head.headerFields[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard type == "application/json" else {
            return .text("Content-Type must be application/json\n", status: .unsupportedMediaType)
        }
        guard let body = r.body, let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let running = obj["running"] as? Bool
        else { return .text("expected {\"running\": true|false}\n", status: .badRequest) }
        if simulatorPaused && running, simulator != nil {
            // Start the simulation afresh from now rather than replaying everything missed while paused.
            simulator = try? PlantSimulator(twinsJSON: twinsJSON, file: "twins.json", startMs: Self.wallMs())
        }
        simulatorPaused = !running
        logger.info("simulator control over HTTP", metadata: ["peer": "\(r.peer)", "running": "\(running)"])
        return .json(Array("{\"running\":\(running)}".utf8))
    }
}
