import Foundation
import SceneStreamCore
import SceneStreamHTTP
import SceneStreamTransport
import SceneStreamTwinModels

/// What the viewer's inspect panel, asset tree and trend chart read over HTTP: `/api/twin`, `/api/twins` and
/// `/api/history`. Every answer holds to the caller's zones: a twin is visible only through a node the caller sees,
/// and one that is not is "not found" (its name does not leak either).
extension StreamingServer {
    /// The node that stands for `twin` in the scene: the node with the twin's id, else its topmost bound node.
    func machineNode(of twin: String) -> UInt32? {
        let g = runtime.graph
        if let n = machineNodes[twin], g.id(of: n) != nil { return n }
        let found = g.index(of: twin)
            ?? runtime.bindings.nodes(boundTo: twin, graph: g).min { (g.id(of: $0)?.count ?? .max) < (g.id(of: $1)?.count ?? .max) }
        if let found { machineNodes[twin] = found }
        return found
    }

    /// Whether `caller` may see `twin`: open mode and tokens without zones see every twin; otherwise one of the
    /// twin's nodes must be in the caller's zones.
    func twinVisible(_ twin: String, caller: Identity?, visible: Bitset? = nil) -> Bool {
        guard caller?.zones != nil else { return true }
        let seen = visible ?? engine.membership(httpFilter(caller))
        let bound = runtime.bindings.nodes(boundTo: twin, graph: runtime.graph) + (machineNode(of: twin).map { [$0] } ?? [])
        return bound.contains { seen.contains(Int($0)) }
    }

    static func jsonValue(_ v: TwinValue) -> Any {
        switch v {
        case .number(let d): d.isFinite ? d : String(d)
        case .bool(let b): b
        case .text(let s): s
        }
    }

    static func json(_ object: Any) -> HTTPServerResponse {
        .json([UInt8]((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()))
    }

    /// `GET /api/twin?id=TWIN`: the twin's properties now (value, unit, quality, timestamp, age, whether it is
    /// overdue for its expected rate), its model, its node and the alerts raised on it.
    func twinJSON(_ id: String, caller: Identity?) -> HTTPServerResponse {
        let props = runtime.twins.properties(of: id)
        guard !props.isEmpty, twinVisible(id, caller: caller) else {
            if !props.isEmpty { metrics.refusals.increment() }
            return .text("no twin \(id.prefix(200))\n", status: .notFound)
        }
        let now = Self.wallMs()
        let entry = catalog.entries[id]
        // Age: since the newest value arrived (a stale mark's own time is not an arrival).
        let arrived = ageWatch.lastArrivalMs(of: id)
        var out: [String: Any] = [:]
        for (k, v) in props {
            let since = v.quality == .good ? v.timestampMs : min(v.timestampMs, arrived ?? v.timestampMs)
            var p: [String: Any] = [
                "value": Self.jsonValue(v.value), "timestamp": v.timestampMs, "quality": "\(v.quality)",
                "ageMs": now > since ? now - since : 0,
            ]
            if let c = models.content(twin: id, property: k) {
                if let u = c.unit { p["unit"] = TwinModels.symbol(u) }
                p["kind"] = c.kind.rawValue
            } else if let u = catalog.unit(twin: id, property: k) {
                p["unit"] = u
            }
            out[k] = p
        }
        var body: [String: Any] = ["twin": id, "properties": out, "timeMs": now]
        if let m = models.twinModel[id] {
            body["model"] = m
            if let name = models.interfaces[m]?.displayName { body["modelName"] = name }
        } else if let entry {
            body["model"] = entry.model
        }
        // Relationships to twins the caller may see (a target in another zone is left out: its name would leak).
        let rels = runtime.twins.relationships(of: id).filter { twinVisible($0.target, caller: caller) }
        if !rels.isEmpty { body["relationships"] = rels.map { ["name": $0.name, "target": $0.target] } }
        // Expected period: given (catalog, mapping) or learned from arrivals; overdue: past the watch's deadline (a
        // source that died without a death certificate).
        if let p = ageWatch.periodMs(of: id) {
            body["expectedPeriodMs"] = p
        } else if let entry, entry.rateHz > 0 {
            body["expectedPeriodMs"] = Int(1000 / max(entry.rateHz, 0.001))
        }
        if ageWatch.isOverdue(id, nowMs: now) { body["overdue"] = true }
        if let n = machineNode(of: id), let nodeId = runtime.graph.id(of: n) { body["node"] = nodeId }
        body["alerts"] = runtime.alerts.active.values.filter { $0.twin == id }.sorted { $0.timeMs > $1.timeMs }.map {
            ["id": $0.id, "severity": "\($0.severity)", "timeMs": $0.timeMs, "message": $0.message] as [String: Any]
        }
        return Self.json(body)
    }

    /// `GET /api/twins`: every twin the caller may see, with its model and the node that stands for it (what the
    /// viewer's asset tree and picking need to go from a clicked part to its machine).
    func twinListJSON(caller: Identity?) -> HTTPServerResponse {
        let visible: Bitset? = caller?.zones == nil ? nil : engine.membership(httpFilter(caller))
        var list: [[String: Any]] = []
        for id in runtime.twins.twinIds where twinVisible(id, caller: caller, visible: visible) {
            var t: [String: Any] = ["id": id]
            if let m = catalog.entries[id]?.model { t["model"] = m }
            if let n = machineNode(of: id), let nodeId = runtime.graph.id(of: n) { t["node"] = nodeId }
            list.append(t)
        }
        return Self.json(["twins": list])
    }

    /// `GET /api/history?twin=ID&property=P&from=MS&to=MS&points=N`: one property's history, downsampled on a worker
    /// to at most N buckets (min, max, mean, first, last each). Without `twin`: the range history covers.
    func historyJSON(_ r: HTTPServerRequest, caller: Identity?) {
        let now = Self.wallMs()
        let loop = self.loop!
        let m = metrics
        guard let twin = r.query("twin") else {
            // The range playback and charts can use: memory's oldest moment, or the disk's.
            let memory = runtime.twins.history.checkpoints.first?.timeMs ?? runtime.twins.history.oldestMs ?? now
            let window = configuration.historyWindowMs
            let id = r.id
            guard let past = pastSource else {
                return answer(r, Self.json(["fromMs": max(memory, now - min(now, window)), "toMs": now, "windowMs": window]), route: .history)
            }
            past.oldestCheckpointLater { oldest in
                let from = max(min(oldest ?? memory, memory), now - min(now, window))
                Self.answerLater(loop, m, id, .history, Self.json(["fromMs": from, "toMs": now, "windowMs": window]))
            }
            return
        }
        guard !isFollower else {
            return answer(r, .text("this is a fan-out node: twin history is on the scene's owner\n", status: .conflict), route: .history)
        }
        guard let property = r.query("property"), !property.isEmpty else {
            return answer(r, .text("history needs property=NAME with twin=ID\n", status: .badRequest), route: .history)
        }
        func whole(_ name: String, _ fallback: UInt64) -> UInt64?? {
            guard let s = r.query(name) else { return .some(fallback) }
            return UInt64(s).map { .some($0) } ?? .none
        }
        // Nothing is recorded in the future: `to` stops a minute after now (so a huge `to` cannot stretch the range).
        guard let asked = whole("to", now) ?? nil, case let to = min(asked, now + 60_000),
            let from = whole("from", to > 600_000 ? to - 600_000 : 0) ?? nil, let points = Int(r.query("points") ?? "500")
        else {
            return answer(r, .text("from, to (milliseconds since 1970) and points must be whole numbers\n", status: .badRequest), route: .history)
        }
        let props = runtime.twins.properties(of: twin)
        guard !props.isEmpty, twinVisible(twin, caller: caller) else {
            if !props.isEmpty { metrics.refusals.increment() }
            return answer(r, .text("no twin \(twin.prefix(200))\n", status: .notFound), route: .history)
        }
        guard props[property] != nil else {
            return answer(r, .text("twin \(twin.prefix(200)) has no property \(property.prefix(200))\n", status: .notFound), route: .history)
        }
        let empty: HistorySeries
        do { empty = try HistorySeries(fromMs: from, toMs: to, points: points) } catch {
            return answer(r, .text("\(error)\n", status: .badRequest), route: .history)
        }
        var header: [String: String] = ["twin": twin, "property": property]
        if let unit = catalog.unit(twin: twin, property: property) { header["unit"] = unit }
        if let storage {
            // Disk holds every update (written in order on the storage queue): read there, by the (key, ts) index,
            // row by row into the buckets. The service thread only asks.
            let id = r.id, fixed = header
            storage.seriesLater(twin: twin, property: property, into: empty) { result in
                let response: HTTPServerResponse
                switch result {
                case .success(let series): response = Self.json(Self.describe(series, header: fixed, source: "disk"))
                case .failure(let error): response = .text("history could not be read: \(error)\n", status: .internalServerError)
                }
                Self.answerLater(loop, m, id, .history, response)
            }
        } else if memoryHoldsHistory {
            // No data folder: memory is all there is. Read here (a copy for a worker would make the next ingest
            // copy the whole history), so only ranges of bounded size.
            let h = runtime.twins.history
            guard h.count(from: from, to: to) <= 200_000 else {
                return answer(r, .text("that range holds too many updates to read without a data folder: ask for a shorter one\n", status: .contentTooLarge), route: .history)
            }
            var series = empty
            let before = h.series(twin: twin, property: property, from: from, to: to) { u in
                if let v = u.value.number { series.add(.init(timeMs: u.timestampMs, value: v)) }
            }
            series.finish()
            if let b = before, let v = b.value.number { series.before = .init(timeMs: b.timestampMs, value: v) }
            answer(r, Self.json(Self.describe(series, header: header, source: "memory")), route: .history)
        } else {
            answer(r, .text("this node keeps no history of twin values\n", status: .conflict), route: .history)
        }
    }

    static func describe(_ s: HistorySeries, header: [String: String], source: String) -> [String: Any] {
        var body: [String: Any] = header
        body["fromMs"] = s.fromMs
        body["toMs"] = s.toMs
        body["bucketMs"] = s.bucketMs
        body["samples"] = s.samples
        body["source"] = source
        if let b = s.before { body["before"] = ["t": b.timeMs, "v": b.value] }
        body["points"] = s.buckets.map { b in
            ["t": b.startMs, "lastT": b.lastMs, "n": b.count, "min": b.min, "max": b.max, "mean": b.mean, "first": b.first, "last": b.last] as [String: Any]
        }
        return body
    }
}
