import Dispatch
import Foundation
import HTTPTypes
import Logging
import SceneStreamCore
import SceneStreamHTTP
import SceneStreamIngest
import SceneStreamSimulation
import SceneStreamTransport
import ServiceLifecycle

/// Plant files changed while the server runs — edited on disk or saved by an admin over HTTP — are loaded and
/// checked off the service thread and applied on it: the scene's changes go to clients as ordinary deltas, new
/// bindings and rules apply to the current values. A file that does not load is refused with its file, place and
/// reason, and the running plant is kept.
extension StreamingServer {
    /// The plant files an admin may replace over HTTP.
    static let authoredFiles: Set<String> = ["bindings.json", "rules.json"]

    /// Applies a plant loaded from its folder (service thread). Returns what changed, or why nothing did. A read
    /// older than the one applied last, or of the very files applied last (the watcher seeing an HTTP write that
    /// was applied already), changes nothing.
    @discardableResult
    func applyPlant(_ b: PlantBundle, origin: String) -> Result<String, SceneRuntime.ReloadError> {
        guard !isFollower else { return .failure(.init(reason: "a fan-out node takes its plant from the scene's owner")) }
        guard b.generation > appliedPlant.generation else {
            logger.debug("an older read of the plant files arrived after a newer one: skipped", metadata: ["origin": "\(origin)"])
            return .success("nothing: a newer read of the files was applied already")
        }
        guard b.fingerprint.isEmpty || b.fingerprint != appliedPlant.fingerprint else {
            appliedPlant.generation = b.generation
            metrics.plantReload(result: "unchanged")
            return .success("nothing: these files were applied already")
        }
        let newCatalog: TwinCatalog
        var newSimulator = simulator
        do {
            newCatalog = try TwinCatalog(json: b.twinsJSON, file: "\(b.source)/twins.json")
            // The simulator follows a changed twins.json (from now on).
            if simulator != nil && b.twinsJSON != twinsJSON {
                newSimulator = try PlantSimulator(twinsJSON: b.twinsJSON, file: "\(b.source)/twins.json", startMs: Self.wallMs())
            }
        } catch {
            return refusePlant(.init(reason: "\(error)"), origin: origin)
        }
        let before = (nodes: runtime.scene.nodes.count, bindings: runtime.bindings.set.bindings.count, rules: runtime.alerts.set.rules.count)
        let t0 = DispatchTime.now().uptimeNanoseconds
        let events: [AlertEvent]
        do {
            events = try runtime.reload(scene: b.scene, bindings: b.bindings, rules: b.rules, relationships: b.relationships, timeMs: Self.wallMs())
        } catch {
            return refusePlant(error, origin: origin)
        }
        appliedPlant = (b.generation, b.fingerprint)
        catalog = newCatalog
        twinsJSON = b.twinsJSON
        simulator = newSimulator
        models = b.models
        var periods: [String: UInt64] = [:]
        for (twin, e) in newCatalog.entries where e.rateHz > 0 { periods[twin] = UInt64(1000 / max(e.rateHz, 0.001)) }
        ageWatch.setTwinPeriods(periods)
        machineNodes = [:]
        // Notes pinned to a node that was removed and added back are pinned again (those whose node is gone wait,
        // as after a restart, until it comes back); selections lose the nodes that are gone.
        restoreAnnotations()
        for s in sessions.values where s.selection.contains(where: { runtime.graph[$0] == nil }) {
            applySelection(s, s.selection.filter { runtime.graph[$0] != nil })
        }
        if !events.isEmpty {
            publishAlerts(events)
            broadcast(events)
        }
        // Roots and zones may have changed: every version-3 client gets the anchors its view shows now.
        for c in clients.values { sendAnchors(to: c) }
        metrics.plantReload(result: "applied")
        // The time the service thread spent on it (frames wait that long): for the operator, in the log.
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let summary = "\(b.scene.nodes.count) nodes (was \(before.nodes)), \(b.bindings.bindings.count) bindings (was \(before.bindings)), \(b.rules.rules.count) rules (was \(before.rules)), \(events.count) alert changes"
        logger.notice("plant files applied", metadata: ["origin": "\(origin)", "source": "\(b.source)", "changes": "\(summary)", "ms": "\(String(format: "%.1f", ms))"])
        return .success(summary)
    }

    private func refusePlant(_ e: SceneRuntime.ReloadError, origin: String) -> Result<String, SceneRuntime.ReloadError> {
        metrics.plantReload(result: "refused")
        logger.error("plant files refused; the running plant is kept", metadata: ["origin": "\(origin)", "reason": "\(e.reason)"])
        return .failure(e)
    }

    /// A plant folder that did not load (service thread): counted and logged, the running plant kept.
    func plantDidNotLoad(_ e: ConfigError, origin: String) {
        _ = refusePlant(.init(reason: "\(e)"), origin: origin)
    }

    /// The watcher of the plant folder, when there is one to watch.
    func plantWatchService() -> PlantWatchService? {
        guard let dir = plantFolder, configuration.plantWatchMs > 0, !isFollower else { return nil }
        let me = LoopBound(self, loop: loop)
        let loop = self.loop!
        return PlantWatchService(directory: dir, intervalMs: configuration.plantWatchMs, seen: plantFingerprint, generations: plantGenerations) { result in
            loop.post {
                switch result {
                case .success(let bundle): me.value.applyPlant(bundle, origin: "file")
                case .failure(let e): me.value.plantDidNotLoad(e, origin: "file")
                }
            }
        }
    }

    // MARK: HTTP: GET and PUT /api/plant/FILE

    /// `GET /api/plant/FILE` answers the plant file as it is on disk; `PUT` (an admin's, with every zone) checks
    /// the new file together with the rest of the folder, writes it atomically and applies it live. Open mode takes
    /// writes from this machine only (anyone on the network could otherwise rewrite the plant).
    func plantFile(_ r: HTTPServerRequest, caller: Identity?) {
        let name = String(r.route.dropFirst("/api/plant/".count))
        guard let dir = plantFolder else {
            return answer(r, .text("this plant was generated in memory, not read from a folder: nothing to read or write\n", status: .conflict), route: .plant)
        }
        guard PlantBundle.fileNames.contains(name) else {
            return answer(r, .text("no plant file '\(name)' (expected one of \(PlantBundle.fileNames.joined(separator: ", ")))\n", status: .notFound), route: .plant)
        }
        if let caller, caller.zones != nil {
            // The files describe every zone; /api/scene is the zone-filtered view.
            metrics.refusals.increment()
            return answer(r, .text("plant files cover every zone: an admin limited to zones cannot read or write them\n", status: .forbidden), route: .plant)
        }
        let (loop, m, id) = (self.loop!, metrics, r.id)
        if r.head.method != .put {
            return httpWork.async {
                var resp = HTTPServerResponse.text("not found\n", status: .notFound)
                if let bytes = try? PlantBundle.read("\(dir)/\(name)") {
                    resp = .json(bytes)
                    // Send it back in If-Match with a PUT: the PUT is refused (412) if the file changed meanwhile.
                    resp.headerFields[.eTag] = Self.eTag(bytes)
                }
                Self.answerLater(loop, m, id, .plant, resp)
            }
        }
        guard !isFollower else {
            return answer(r, .text("this is a fan-out node: plant files are written on the scene's owner\n", status: .conflict), route: .plant)
        }
        guard Self.authoredFiles.contains(name) else {
            return answer(r, .text("'\(name)' cannot be written over HTTP (only \(Self.authoredFiles.sorted().joined(separator: ", ")))\n", status: .methodNotAllowed), route: .plant)
        }
        if caller == nil && authenticator == nil && !Self.isLocal(r) {
            metrics.refusals.increment()
            return answer(r, .text("without authentication plant files are written from this machine only (configure \"auth\" to author from elsewhere)\n", status: .forbidden), route: .plant)
        }
        let body = r.body ?? []
        let me = LoopBound(self, loop: loop)
        let (logger, who, generations, ifMatch) = (self.logger, caller?.userId ?? "local", plantGenerations, r.head.headerFields[.ifMatch])
        plantWrites.async {
            BackgroundPriority.lower()
            // The whole folder with the new file must load (the same check as at start) before anything is written.
            if let expected = ifMatch, expected != "*" {
                let now = (try? PlantBundle.read("\(dir)/\(name)")).map(Self.eTag)
                guard now == expected else {
                    return Self.answerLater(loop, m, id, .plant, .text("\(name) changed since you read it (If-Match \(expected), now \(now ?? "absent")): read it again; nothing was written\n", status: .preconditionFailed))
                }
            }
            var bundle: PlantBundle
            do { bundle = try PlantBundle.load(directory: dir, replacing: [name: body]) } catch {
                loop.post { me.value.metrics.plantReload(result: "refused") }
                return Self.answerLater(loop, m, id, .plant, .text("\(error); nothing was written\n", status: .badRequest))
            }
            do {
                try DurableFile.write(Data(body), to: "\(dir)/\(name)")
            } catch {
                logger.error("plant file write failed", metadata: ["file": "\(dir)/\(name)", "error": "\(error)"])
                return Self.answerLater(loop, m, id, .plant, .text("could not write \(name): \(error)\n", status: .internalServerError))
            }
            logger.notice("plant file written over HTTP", metadata: ["file": "\(dir)/\(name)", "user": "\(who)"])
            bundle.fingerprint = PlantBundle.fingerprint(directory: dir)
            bundle.generation = generations.next()
            let written = bundle
            loop.post {
                let s = me.value
                switch s.applyPlant(written, origin: "http") {
                case .success(let summary):
                    let json: [String: Any] = ["applied": true, "file": name, "changes": summary]
                    s.answer(r, .json([UInt8]((try? JSONSerialization.data(withJSONObject: json, options: [.sortedKeys])) ?? Data())), route: .plant)
                case .failure(let e):
                    s.answer(r, .text("\(name) was written but not applied: \(e.reason)\n", status: .conflict), route: .plant)
                }
            }
        }
    }

    /// A file's entity tag: a hash of its bytes (FNV-1a, 64 bits), quoted.
    static func eTag(_ bytes: [UInt8]) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return "\"\(String(h, radix: 16))\""
    }

    static func isLoopback(_ peer: String) -> Bool {
        peer.hasPrefix("127.") || peer == "::1" || peer.hasPrefix("::ffff:127.") || peer == "localhost"
    }

    /// A request from this machine, addressed to it by a loopback name, and not sent by a page of another site: in
    /// open mode only such a request may write. The peer alone is not enough — a web page whose name was rebound to
    /// 127.0.0.1 (DNS rebinding) reaches the server from this machine, but names its own host and origin.
    static func isLocal(_ r: HTTPServerRequest) -> Bool {
        func loopbackHost(_ authority: String) -> Bool {
            var host = Substring(authority)
            if host.hasPrefix("[") { host = host.dropFirst().prefix { $0 != "]" } } else { host = host.prefix { $0 != ":" } }
            return host == "localhost" || host == "::1" || host.hasPrefix("127.")
        }
        guard isLoopback(r.peer), let authority = r.head.authority, loopbackHost(authority) else { return false }
        guard let origin = r.head.headerFields[.origin] else { return true }
        let rest = origin.split(separator: "://", maxSplits: 1).last.map(String.init) ?? ""
        return loopbackHost(rest)
    }
}

/// Watches a plant folder: every `intervalMs` it looks at the files' inode, size and modification time and, when
/// they changed, loads the folder (on this service's thread, never the one that sends frames) and hands over the
/// plant or the reason it did not load.
struct PlantWatchService: Service {
    let directory: String
    let intervalMs: Int
    /// The fingerprint of the files the running plant was loaded from.
    let seen: [String]
    let generations: PlantBundle.Generations
    let changed: @Sendable (Result<PlantBundle, ConfigError>) -> Void

    func run() async throws {
        _ = try? await cancelWhenGracefulShutdown { () async throws -> Void in
            var last = seen
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(intervalMs))
                let now = PlantBundle.fingerprint(directory: directory)
                guard now != last else { continue }
                // An editor's save may come in pieces: let the files settle a moment before reading them (a read
                // of a half-written file is refused and retried at the next change).
                try await Task.sleep(for: .milliseconds(min(intervalMs, 250)))
                let (directory, generations, changed) = (directory, generations, changed)
                let box = FingerprintBox()
                // File reads and parsing on a thread of their own, not the task pool's (two threads here).
                await offThread {
                    let print = PlantBundle.fingerprint(directory: directory)
                    box.value = print
                    let generation = generations.next()
                    changed(Result { () throws(ConfigError) -> PlantBundle in
                        var b = try PlantBundle.load(directory: directory)
                        b.fingerprint = print
                        b.generation = generation
                        return b
                    })
                }
                last = box.value
            }
        }
    }
}

/// Hands a fingerprint back from `offThread`.
final class FingerprintBox: @unchecked Sendable {
    // @unchecked: written on the worker before `offThread` returns, read after.
    var value: [String] = []
}
