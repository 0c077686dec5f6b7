import ArgumentParser
import Foundation
import SceneStreamCore
import SceneStreamDeflate
import SceneStreamProtocol
import SceneStreamServer
import SceneStreamReplica
import SceneStreamSimulation

struct CodecBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "codec", abstract: "Frame sizes and encode speed on the cubes or plant scenario.")

    enum Scenario: String, ExpressibleByArgument, CaseIterable {
        case cubes, plant
    }

    @Option(help: "cubes or plant.") var scenario: Scenario = .plant
    @Option(help: "Seconds of simulated time.") var seconds: Double = 60
    @Option(help: "Cubes only: read the contest's snapshots from this file (either layout, detected) instead of simulating.")
    var input: String?
    @Option(help: "Cubes only: write the simulated snapshots in the contest's format to this file.") var write: String?
    @Option(help: "Cubes only: the layout --write uses (initial-then-frames, as delta_data_realnew.bin; or pairs).")
    var layout: CubeDataFile.Layout = .initialThenFrames
    @Option(help: "zlib level for frames (1…9).") var level: Int32 = 6
    @Option(help: "Write every measured frame as a version-2 message to this folder (NNNNNN.bin), for studying coders.")
    var dump: String?
    @Option(help: "Whose figures head the output: 1 (version 1's alone), 2 (version 2's, version 1's under \"v1\") or both.")
    var `protocol`: ProtocolChoice = .both
    @Flag(help: "Print one JSON object.") var json = false

    enum ProtocolChoice: String, ExpressibleByArgument, CaseIterable {
        case one = "1", two = "2", both
    }

    /// Both versions are always measured on the same frames (and checked to decode back); `--protocol 2` puts
    /// version 2's size and speed at the top and version 1's under "v1", `--protocol 1` leaves version 2's out.
    static func headline(_ r: [String: Any], protocol p: ProtocolChoice) -> [String: Any] {
        guard p != .both, let v2 = r["v2"] as? [String: Any] else { return r }
        var out = r
        out["v2"] = nil
        out["protocol"] = p.rawValue
        guard p == .two else { return out }
        var v1: [String: Any] = [:]
        for k in ["bytes_per_frame", "kbps", "encode_updates_per_s"] {
            v1[k] = r[k]
            out[k] = v2[k]
        }
        // Figures measured on version 1 alone go with it.
        for k in ["uncompressed_bytes_per_frame", "keyframe_bytes", "keyframe_bytes_per_node", "keyframe_encode_nodes_per_s",
                  "json_baseline_ratio", "json_deflate_baseline_ratio", "encode_ns_per_update", "shared_frame_us_per_tick"] {
            guard let value = out.removeValue(forKey: k) else { continue }
            v1[k] = value
        }
        out["v1"] = v1
        out["ratio_to_v1"] = v2["ratio_to_v1"]
        return out
    }

    func run() throws {
        var result: [String: Any]
        switch scenario {
        case .cubes: result = try runCubes()
        case .plant: result = try runPlant()
        }
        result = Self.headline(result, protocol: self.protocol)
        if json {
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for k in result.keys.sorted() { print("\(k): \(result[k]!)") }
        }
    }

    /// Writes frame `n` to the dump folder, when one was asked for.
    func dumpFrame(_ n: Int, _ frame: SceneFrame) throws {
        guard let dump else { return }
        if !FileManager.default.fileExists(atPath: dump) {
            try FileManager.default.createDirectory(atPath: dump, withIntermediateDirectories: true)
        }
        let path = "\(dump)/\(String(format: "%06d", n)).bin"
        guard FileManager.default.createFile(atPath: path, contents: Data(FrameCodecV2.encodeMessage(frame))) else {
            throw ValidationError("cannot write \(path)")
        }
    }

    func progress(_ s: String) {
        if !json { FileHandle.standardError.write(Data((s + "\n").utf8)) }
    }

    // MARK: cubes

    func runCubes() throws -> [String: Any] {
        var initial: [CubeState]
        var frames: [[CubeState]]
        var source = "simulated (seed 2015)"
        if let input {
            guard let d = FileManager.default.contents(atPath: input) else { throw ValidationError("cannot read \(input)") }
            let file = try CubeDataFile.parse([UInt8](d))
            (initial, frames) = (file.initial, file.frames)
            source = "\(input) (\(file.layout.rawValue) layout, \(frames.count) frames)"
            progress("read \(source)")
        } else {
            var sim = CubeSimulation()
            initial = sim.snapshot()
            frames = []
            let n = Int(seconds * 60)
            frames.reserveCapacity(n)
            for _ in 0..<n {
                sim.step()
                frames.append(sim.snapshot())
            }
            if let write {
                let bytes = CubeDataFile.serialize(initial: initial, frames: frames, layout: layout)
                guard FileManager.default.createFile(atPath: write, contents: Data(bytes)) else { throw ValidationError("cannot write \(write)") }
                progress("wrote \(frames.count) frames to \(write)")
            }
        }
        let graph = SceneGraph(sceneId: "cubes", quantization: CubeState.quantization, retainedVersions: 64)
        try graph.add(NodeSpec(id: "arena", anchor: "floor"))
        var indices: [UInt32] = []
        for (c, s) in initial.enumerated() {
            let i = try graph.add(NodeSpec(id: "arena/cube-\(c)"))
            graph.update(i) { $0 = s.wireNode(name: "cube-\(c)", parent: 0) }
            indices.append(i)
        }
        graph.commit(timeMs: 0)
        let engine = try DeltaEngine(graph: graph, compressionLevel: level)
        let decoder = try MessageDecoder()
        var versions: [UInt64] = []
        let initialVersion = graph.version
        var replicas: [UInt64: Replica] = [:]
        var keyframeReplica = Replica()
        let key = engine.encodedFrame(from: nil, filter: .everything)!
        if case .frame(let f) = try decoder.decodeServerMessage(key.bytes) { try keyframeReplica.apply(f) }
        replicas[initialVersion] = keyframeReplica
        let keyframeBytes = key.bytes.count
        var total = 0
        var rawTotal = 0
        var moving = 0
        var encodeNs: UInt64 = 0
        var updates = 0
        var totalV2 = 0
        var encodeV2Ns: UInt64 = 0
        for (f, frame) in frames.enumerated() {
            let previous = f == 0 ? initial : frames[f - 1]
            for c in 0..<frame.count where frame[c] != previous[c] {
                if f >= CubeDataFile.referenceDistance { moving += 1 }
                graph.update(indices[c]) { $0 = frame[c].wireNode(name: "cube-\(c)", parent: 0) }
            }
            graph.commit(timeMs: UInt64(f + 1) * 1000 / 60)
            versions.append(graph.version)
            let refVersion = f >= CubeDataFile.referenceDistance ? versions[f - CubeDataFile.referenceDistance] : initialVersion
            let t0 = DispatchTime.now().uptimeNanoseconds
            let sceneFrame = engine.frame(from: ClientBaseline(version: refVersion, filter: .everything), filter: .everything)
            let encoder = try MessageEncoder(level: level)
            let bytes = encoder.encode(.frame(sceneFrame))
            encodeNs += DispatchTime.now().uptimeNanoseconds - t0
            // Scored as the contest scored: every frame from the 7th on (each coded against the frame 6 before).
            let scored = f >= CubeDataFile.referenceDistance
            updates += sceneFrame.updated.count
            if scored {
                rawTotal += 2 + sceneFrame.encodedBodySize
                total += bytes.count
            }
            let v0 = DispatchTime.now().uptimeNanoseconds
            var w2 = WireWriter(capacity: 4096)
            FrameCodecV2.encodeBody(sceneFrame, into: &w2)
            encodeV2Ns += DispatchTime.now().uptimeNanoseconds - v0
            if scored {
                totalV2 += w2.bytes.count + 2
                try dumpFrame(f, sceneFrame)
            }
            var r2 = WireReader(w2.bytes, context: "v2")
            guard try FrameCodecV2.decodeBody(&r2, isKeyframe: false) == sceneFrame else { throw ValidationError("frame \(f): v2 did not decode back exactly") }
            // Decode against the reference replica and check every cube exactly.
            guard case .frame(let decoded) = try decoder.decodeServerMessage(bytes), var replica = replicas[refVersion] else {
                throw ValidationError("frame \(f): not a frame or no reference replica")
            }
            try replica.apply(decoded)
            for c in 0..<frame.count where CubeState(replica.nodes[indices[c]]!) != frame[c] {
                throw ValidationError("frame \(f) cube \(c): decoded \(CubeState(replica.nodes[indices[c]]!)) expected \(frame[c])")
            }
            replicas[graph.version] = replica
            if f >= CubeDataFile.referenceDistance { replicas[versions[f - CubeDataFile.referenceDistance]] = nil }
            if f % 600 == 599 { progress("cubes: \(f + 1)/\(frames.count) frames") }
        }
        guard frames.count > CubeDataFile.referenceDistance else {
            throw ValidationError("\(frames.count) frames: the contest scores frames from the 7th on, so at least 7 are needed")
        }
        let n = Double(frames.count - CubeDataFile.referenceDistance)
        let bpf = Double(total) / n
        return [
            "scenario": "cubes", "frames": frames.count, "frames_scored": frames.count - CubeDataFile.referenceDistance, "source": source,
            "bytes_per_frame": round2(bpf), "kbps": round2(bpf * 60 * 8 / 1000),
            "uncompressed_bytes_per_frame": round2(Double(rawTotal) / n),
            "uncompressed_kbps_anchor": 17370, "anchor_kbps": ["target": 256, "gaffer_net": 213.6, "DeltaCompress": 135.07],
            "moving_share": round4(Double(moving) / (n * 901)),
            "keyframe_bytes": keyframeBytes, "keyframe_bytes_per_node": round2(Double(keyframeBytes) / 902),
            "encode_updates_per_s": Int(Double(updates) / (Double(encodeNs) / 1e9)),
            "decoded_exactly": true,
            "v2": [
                "bytes_per_frame": round2(Double(totalV2) / n), "kbps": round2(Double(totalV2) / n * 60 * 8 / 1000),
                "ratio_to_v1": round4(Double(totalV2) / Double(total)),
                "encode_updates_per_s": Int(Double(updates) / (Double(encodeV2Ns) / 1e9)),
                "frames_decode_back_exactly": true,
            ],
        ]
    }

    // MARK: plant

    func runPlant() throws -> [String: Any] {
        let plant = try PlantBundle.generated(.reference)
        let runtime = try SceneRuntime(scene: plant.scene, bindings: plant.bindings, rules: plant.rules, retainedVersions: 64)
        let start: UInt64 = 1_795_000_000_000
        var sim = try PlantSimulator(twinsJSON: plant.twinsJSON, file: "reference/twins.json", startMs: start)
        let engine = try DeltaEngine(graph: runtime.graph, compressionLevel: level)
        let decoder = try MessageDecoder()
        let nodeCount = runtime.graph.liveCount

        // Warm up 2 s so that every twin has reported once, then take the keyframe.
        var t = start
        for _ in 0..<60 {
            t += 1000 / 30
            _ = runtime.ingest(sim.step(to: t))
            runtime.commit(timeMs: t)
        }
        let k0 = DispatchTime.now().uptimeNanoseconds
        let key = engine.encodedFrame(from: nil, filter: .everything)!
        let keyNs = DispatchTime.now().uptimeNanoseconds - k0
        var replica = Replica()
        if case .frame(let f) = try decoder.decodeServerMessage(key.bytes) { try replica.apply(f) }
        var base = ClientBaseline(version: key.version, filter: .everything)

        let jsonStream = try DeflateStream(level: 6)
        var jsonRaw = 0
        var jsonDeflated = 0
        var total = 0
        var changes = 0
        var updates = 0
        var encodeNs: UInt64 = 0
        var alerts = 0
        var propertyUpdates = 0
        let ticks = Int(seconds * 30)
        var sharedCost: [Int: UInt64] = [1: 0, 100: 0, 1000: 0]
        var breakdown: [UInt64] = [0, 0, 0]
        var breakdownUpdates = 0
        let breakdownDeflater = try Deflater(level: level)
        // Version 2 (range-coded bodies, not negotiated yet) on the same frames: bytes, encode time, exact decode.
        var totalV2 = 0
        var encodeV2Ns: UInt64 = 0
        var updatesV2 = 0
        for tick in 0..<ticks {
            t = start + 2000 + UInt64(tick + 1) * 1000 / 30
            let ups = sim.step(to: t)
            propertyUpdates += ups.count
            for u in ups {
                let msg = Self.dittoJSON(u)
                jsonRaw += msg.count
                jsonDeflated += jsonStream.compress(msg).count
            }
            alerts += runtime.ingest(ups).count
            runtime.commit(timeMs: t)
            changes += runtime.graph.lastChangeCount
            let t0 = DispatchTime.now().uptimeNanoseconds
            guard let frame = engine.encodedFrame(from: base, filter: .everything) else { continue }
            encodeNs += DispatchTime.now().uptimeNanoseconds - t0
            // Clients in the same group get the same bytes: measure what 1, 100, 1000 of them cost.
            for n in [1, 100, 1000] where tick % 10 == 0 {
                let s0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<n { _ = engine.encodedFrame(from: base, filter: .everything) }
                sharedCost[n]! += DispatchTime.now().uptimeNanoseconds - s0
            }
            // Where the encode time goes: computing the frame, writing its body, deflating it.
            if tick % 10 == 0 {
                let b0 = DispatchTime.now().uptimeNanoseconds
                let f = engine.frame(from: base, filter: .everything)
                let b1 = DispatchTime.now().uptimeNanoseconds
                var w = WireWriter(capacity: 4096)
                f.encodeBody(into: &w)
                let b2 = DispatchTime.now().uptimeNanoseconds
                _ = breakdownDeflater.compress(w.bytes)
                let b3 = DispatchTime.now().uptimeNanoseconds
                breakdown[0] += b1 - b0
                breakdown[1] += b2 - b1
                breakdown[2] += b3 - b2
                breakdownUpdates += f.updated.count
            }
            total += frame.bytes.count
            let same = engine.frame(from: base, filter: .everything)
            let v0 = DispatchTime.now().uptimeNanoseconds
            var w2 = WireWriter(capacity: 4096)
            FrameCodecV2.encodeBody(same, into: &w2)
            encodeV2Ns += DispatchTime.now().uptimeNanoseconds - v0
            totalV2 += w2.bytes.count + 2  // and the envelope
            try dumpFrame(tick, same)
            updatesV2 += same.updated.count
            var r2 = WireReader(w2.bytes, context: "v2")
            guard try FrameCodecV2.decodeBody(&r2, isKeyframe: same.isKeyframe) == same else { throw ValidationError("a v2 frame did not decode back exactly") }
            guard case .frame(let decoded) = try decoder.decodeServerMessage(frame.bytes) else { throw ValidationError("not a frame") }
            updates += decoded.updated.count
            try replica.apply(decoded)
            base = ClientBaseline(version: frame.version, filter: .everything)
            if tick % 300 == 299 { progress("plant: \(tick + 1)/\(ticks) ticks") }
        }
        // The replica must equal the server's view.
        for i in runtime.graph.liveIndices where replica.nodes[i] != runtime.graph[i] {
            throw ValidationError("replica differs from the server at node \(runtime.graph.id(of: i) ?? "?")")
        }
        let n = Double(ticks)
        let bpf = Double(total) / n
        let sampled = Double((ticks + 9) / 10)
        return [
            "scenario": "plant", "frames": ticks, "rate_hz": 30, "nodes": nodeCount,
            "bytes_per_frame": round2(bpf), "kbps": round2(bpf * 30 * 8 / 1000),
            "v2": [
                "bytes_per_frame": round2(Double(totalV2) / n), "kbps": round2(Double(totalV2) / n * 30 * 8 / 1000),
                "ratio_to_v1": round4(Double(totalV2) / Double(total)),
                "encode_updates_per_s": Int(Double(updatesV2) / (Double(encodeV2Ns) / 1e9)),
                "frames_decode_back_exactly": true,
            ],
            "changed_node_share": round4(Double(changes) / (n * Double(nodeCount))),
            "property_updates_per_s": Int(Double(propertyUpdates) / seconds),
            "keyframe_bytes": key.bytes.count, "keyframe_bytes_per_node": round2(Double(key.bytes.count) / Double(nodeCount)),
            "keyframe_encode_nodes_per_s": Int(Double(nodeCount) / (Double(keyNs) / 1e9)),
            "encode_updates_per_s": Int(Double(updates) / (Double(encodeNs) / 1e9)),
            "json_baseline_bytes_per_frame": round2(Double(jsonRaw) / n),
            "json_baseline_ratio": round2(Double(jsonRaw) / Double(total)),
            "json_deflate_baseline_ratio": round2(Double(jsonDeflated) / Double(total)),
            "alerts": alerts,
            "shared_frame_us_per_tick": [
                "clients_1": round2(Double(sharedCost[1]!) / sampled / 1000),
                "clients_100": round2(Double(sharedCost[100]!) / sampled / 1000),
                "clients_1000": round2(Double(sharedCost[1000]!) / sampled / 1000),
            ],
            "replica_matches_server": true,
            "encode_ns_per_update": [
                "frame": round2(Double(breakdown[0]) / Double(max(1, breakdownUpdates))),
                "body": round2(Double(breakdown[1]) / Double(max(1, breakdownUpdates))),
                "deflate": round2(Double(breakdown[2]) / Double(max(1, breakdownUpdates))),
            ],
        ]
    }

    /// `2026-11-25T12:00:00.000Z` for a time in ms since the Unix epoch.
    static func iso8601(_ ms: UInt64) -> String {
        var t = time_t(ms / 1000)
        var tm = tm()
        gmtime_r(&t, &tm)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1, Int(tm.tm_mday),
            Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec), Int(ms % 1000))
    }

    /// One change event as a Ditto-style twin platform streams it (compact JSON, shortest round-trip numbers).
    static func dittoJSON(_ u: PropertyUpdate) -> [UInt8] {
        let parts = u.twin.split(separator: "/")
        let thing = parts.last.map(String.init) ?? u.twin
        let ns = parts.dropLast().joined(separator: ".")
        let value: String
        switch u.value {
        case .number(let d): value = d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)"
        case .bool(let b): value = b ? "true" : "false"
        case .text(let s): value = "\"\(s)\""
        }
        let ts = iso8601(u.timestampMs)
        return Array(
            "{\"topic\":\"\(ns)/\(thing)/things/twin/events/modified\",\"path\":\"/features/\(u.property)/properties/value\",\"value\":\(value),\"revision\":\(u.timestampMs / 33),\"timestamp\":\"\(ts)\"}".utf8)
    }
}

extension CubeDataFile.Layout: ExpressibleByArgument {}

func round2(_ d: Double) -> Double { (d * 100).rounded() / 100 }
func round4(_ d: Double) -> Double { (d * 10000).rounded() / 10000 }

extension SceneFrame {
    /// The size of the frame body before compression.
    var encodedBodySize: Int {
        var w = WireWriter()
        encodeBody(into: &w)
        return w.bytes.count
    }
}
