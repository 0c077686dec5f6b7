import Dispatch
import Foundation
import HTTPTypes
import SceneStreamCore
import SceneStreamHTTP
import SceneStreamProtocol
import SceneStreamTransport

/// The site's spatial anchors: set by admins over HTTP (`PUT`/`DELETE /api/anchors/ID`), stored durably in the data
/// folder before the answer, read by anyone who may see the scene (`GET /api/anchors`) and sent to every subscribed
/// client of protocol version 3 (`anchors`, SPEC §12) on subscribe and whenever they change — each client only the
/// anchors of the roots in its view.
extension StreamingServer {
    /// Where the registry is stored (nil without a data folder: then it lives in memory only).
    static func anchorsPath(_ c: ServerConfiguration, scene: String) -> String? {
        c.dataDirectory.map { "\($0)/anchors-\(scene).json" }
    }

    /// Reads the stored registry at start; a file that is there but does not read stops the start (it is an
    /// admin's data: better to say so than to serve without it).
    static func loadAnchors(_ path: String?) throws(ConfigError) -> AnchorRegistry {
        guard let path, let d = FileManager.default.contents(atPath: path) else { return AnchorRegistry() }
        return try AnchorRegistry(file: [UInt8](d), path: path)
    }

    /// The anchors a view shows: nil (all of them) without zones; with zones, those the view's roots name.
    func visibleAnchors(_ filter: InterestFilter, limited: Bool) -> Set<String>? {
        guard limited || !filter.zones.isEmpty else { return nil }
        let members = engine.membership(filter)
        var named: Set<String> = []
        for i in runtime.graph.liveIndices where members.contains(Int(i)) {
            if let n = runtime.graph[i], n.parent == nil { named.insert(n.anchor) }
        }
        return named
    }

    /// The registered anchors a view shows, as the protocol sends them.
    func anchorRecords(for filter: InterestFilter, limited: Bool) -> [AnchorRecord] {
        let all = anchorRegistry.declared(Set(runtime.scene.anchors.map(\.id))).records
        guard let named = visibleAnchors(filter, limited: limited) else { return all }
        return all.filter { named.contains($0.id) }
    }

    /// Sends a version-3 client its anchors (after subscribe, and when they change).
    func sendAnchors(to c: Client) {
        guard c.machine.version >= 3, let s = c.subscription else { return }
        enqueue(c, .anchors(sceneId: runtime.scene.id, anchors: anchorRecords(for: s.filter, limited: c.session?.identity.zones != nil)))
        loop.requestWrite(c.id)
    }

    // MARK: HTTP

    /// `GET /api/anchors`: the scene's declared anchors with what admins registered for them (those the caller's
    /// zones show); `PUT /api/anchors/ID` (admin, every zone) sets one, `DELETE` removes it.
    func anchorsRoute(_ r: HTTPServerRequest, caller: Identity?) {
        if r.head.method == .get {
            guard r.route == "/api/anchors" else { return answer(r, .text("not found\n", status: .notFound), route: .anchors) }
            let visible = visibleAnchors(httpFilter(caller), limited: caller?.zones != nil)
            let declared = runtime.scene.anchors.filter { visible?.contains($0.id) ?? true }
            let list: [[String: Any]] = declared.map { spec in
                var d: [String: Any] = ["id": spec.id, "registered": false]
                if !spec.description.isEmpty { d["description"] = spec.description }
                if let a = anchorRegistry.anchors[spec.id] {
                    d["registered"] = true
                    d["position"] = a.position
                    d["rotation"] = a.rotation
                    d["handles"] = a.handles
                    d["updatedMs"] = a.updatedMs
                    d["updatedBy"] = a.updatedBy
                }
                return d
            }
            let body: [String: Any] = ["scene": runtime.scene.id, "stored": anchorsPath != nil, "anchors": list]
            return answer(r, .json([UInt8]((try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])) ?? Data())), route: .anchors)
        }
        let id = String(r.route.dropFirst("/api/anchors/".count))
        guard r.route.hasPrefix("/api/anchors/"), !id.isEmpty else {
            return answer(r, .text("name the anchor: /api/anchors/ID\n", status: .notFound), route: .anchors)
        }
        guard !isFollower else {
            return answer(r, .text("this is a fan-out node: anchors are set on the scene's owner\n", status: .conflict), route: .anchors)
        }
        if let caller, caller.zones != nil {
            metrics.refusals.increment()
            return answer(r, .text("anchors place the whole site: an admin limited to zones cannot set them\n", status: .forbidden), route: .anchors)
        }
        if caller == nil && authenticator == nil && !Self.isLocal(r) {
            metrics.refusals.increment()
            return answer(r, .text("without authentication anchors are set from this machine only (configure \"auth\" to set them from elsewhere)\n", status: .forbidden), route: .anchors)
        }
        var next = anchorRegistry
        let result: [String: Any]
        switch r.head.method {
        case .delete:
            guard next.remove(id) else { return answer(r, .text("no anchor '\(id)' is registered\n", status: .notFound), route: .anchors) }
            result = ["removed": id]
        default:
            do {
                let a = try AnchorRegistry.parse(
                    body: r.body ?? [], id: id, declared: Set(runtime.scene.anchors.map(\.id)), by: caller?.userId ?? "local", nowMs: Self.wallMs())
                next.set(a)
                result = ["id": a.id, "position": a.position, "rotation": a.rotation, "handles": a.handles, "updatedMs": a.updatedMs, "updatedBy": a.updatedBy]
            } catch {
                return answer(r, .text("\(error.reason)\n", status: error.code == "unknown_anchor" ? .notFound : .badRequest), route: .anchors)
            }
        }
        // The registry changes here, on the service thread, so the next request sees it; the file is written (in
        // order, off this thread) before the answer says it is stored.
        anchorRegistry = next
        for c in clients.values { sendAnchors(to: c) }
        replicateAnchors()
        logger.notice("anchor changed", metadata: ["anchor": "\(id)", "user": "\(caller?.userId ?? "local")", "method": "\(r.head.method.rawValue)"])
        guard let path = anchorsPath else {
            return answer(r, .json([UInt8]((try? JSONSerialization.data(withJSONObject: result.merging(["stored": false]) { a, _ in a }, options: [.sortedKeys])) ?? Data())), route: .anchors)
        }
        let bytes = next.fileBytes()
        let stored = [UInt8]((try? JSONSerialization.data(withJSONObject: result.merging(["stored": true]) { a, _ in a }, options: [.sortedKeys])) ?? Data())
        let (loop, m, rid, logger) = (self.loop!, metrics, r.id, self.logger)
        anchorWrites.async {
            let resp: HTTPServerResponse
            do {
                try DurableFile.write(Data(bytes), to: path)
                resp = .json(stored)
            } catch {
                logger.error("anchors write failed (they are in memory and sent to clients)", metadata: ["path": "\(path)", "error": "\(error)"])
                m.storageErrors.increment()
                resp = .text("the anchor is set but could not be stored (\(error)): it will not survive a restart\n", status: .serviceUnavailable)
            }
            Self.answerLater(loop, m, rid, .anchors, resp)
        }
    }
}

/// Writes a file so that a crash leaves either the old or the new one: a temporary file beside it, fsynced, renamed
/// over it.
enum DurableFile {
    static func write(_ data: Data, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        let tmp = path + ".tmp"
        guard FileManager.default.createFile(atPath: tmp, contents: data) else {
            throw ConfigError(file: tmp, location: "", reason: "cannot write")
        }
        guard let h = FileHandle(forUpdatingAtPath: tmp) else { throw ConfigError(file: tmp, location: "", reason: "cannot open to sync") }
        do {
            try h.synchronize()
            try h.close()
        } catch {
            try? h.close()
            throw ConfigError(file: tmp, location: "", reason: "fsync failed: \(error)")
        }
        if rename(tmp, path) != 0 { throw ConfigError(file: path, location: "", reason: "rename failed (errno \(errno))") }
        // The rename itself is durable once the folder is synced.
        let fd = open(dir.isEmpty ? "." : dir, O_RDONLY)
        if fd >= 0 {
            defer { close(fd) }
            if fsync(fd) != 0 { throw ConfigError(file: dir, location: "", reason: "fsync of the folder failed (errno \(errno))") }
        }
    }
}
