import Foundation
import SceneStreamCore

/// A twin the simulator drives.
public struct SimulatedTwin: Hashable, Sendable {
    public var id: String
    /// One of robot6, item, press, tank, agv.
    public var model: String
    public var rateHz: Double
}

/// Drives a plant's twins with believable motion and values: robot joints in work cycles, items riding
/// conveyors, AGVs on loops, press strokes and temperatures drifting into alarm now and then, tank levels.
///
/// Deterministic: the updates depend only on the twins, the seed and the times asked for. No clock, no I/O.
public struct PlantSimulator: Sendable {
    public let twins: [SimulatedTwin]
    public let lineLength: Double
    public let hallSize: Double
    private var nextDue: [UInt64]
    private var lastState: [String: Double] = [:]
    private let seeds: [UInt64]
    private let startMs: UInt64

    /// Creates a simulator from a twins file (`Assets/plants/*/twins.json`).
    public init(twinsJSON data: [UInt8], file: String, startMs: UInt64, seed: UInt64 = 1) throws(ConfigError) {
        let root: [String: Any]
        do {
            guard let r = try JSONSerialization.jsonObject(with: Data(data)) as? [String: Any] else {
                throw ConfigError(file: file, location: "top level", reason: "expected an object")
            }
            root = r
        } catch let e as ConfigError {
            throw e
        } catch {
            throw ConfigError(file: file, location: "", reason: "not valid JSON")
        }
        guard let list = root["twins"] as? [[String: Any]] else {
            throw ConfigError(file: file, location: "twins", reason: "expected an array of objects")
        }
        var twins: [SimulatedTwin] = []
        let models: Set<String> = ["robot6", "item", "press", "tank", "agv"]
        for (k, t) in list.enumerated() {
            guard let id = t["id"] as? String, let model = t["model"] as? String, models.contains(model) else {
                throw ConfigError(file: file, location: "twins[\(k)]", reason: "needs an id and a model (one of \(models.sorted().joined(separator: ", ")))")
            }
            let rate = (t["rateHz"] as? NSNumber)?.doubleValue ?? 1
            guard rate > 0, rate <= 100 else { throw ConfigError(file: file, location: "twins[\(k)].rateHz", reason: "expected 0 < rate ≤ 100") }
            twins.append(SimulatedTwin(id: id, model: model, rateHz: rate))
        }
        self.twins = twins
        lineLength = (root["lineLength"] as? NSNumber)?.doubleValue ?? 40
        hallSize = (root["hallSize"] as? NSNumber)?.doubleValue ?? 60
        seeds = twins.map { fnv1a($0.id) ^ seed }
        self.startMs = startMs
        // Stagger first updates so that rates do not pulse.
        nextDue = zip(twins, seeds).map { t, s in startMs + UInt64(Double(s % 1000) / 1000 * 1000 / t.rateHz) }
    }

    /// Every update due in `(last step, toMs]`, in time order per twin.
    public mutating func step(to toMs: UInt64) -> [PropertyUpdate] {
        var out: [PropertyUpdate] = []
        for k in twins.indices {
            let period = UInt64(max(1, (1000 / twins[k].rateHz).rounded()))
            while nextDue[k] <= toMs {
                emit(k, at: nextDue[k], into: &out)
                nextDue[k] += period
            }
        }
        return out
    }

    private mutating func changed(_ key: String, _ v: Double) -> Bool {
        if lastState[key] == v { return false }
        lastState[key] = v
        return true
    }

    private mutating func emit(_ k: Int, at ms: UInt64, into out: inout [PropertyUpdate]) {
        let twin = twins[k]
        let seed = seeds[k]
        let t = Double(ms - startMs) / 1000 + Double(seed % 10_000) / 10
        func u(_ p: String, _ v: Double) { out.append(PropertyUpdate(twin: twin.id, property: p, value: .number(v), timestampMs: ms)) }
        func frac(_ shift: UInt64) -> Double { Double((seed >> shift) & 0xFFFF) / 65535 }
        switch twin.model {
        case "robot6":
            let cycle = 6 + 4 * frac(0)
            let phase = (t / cycle).truncatingRemainder(dividingBy: 1)
            // Faults: a few minutes apart per robot, 20 s each.
            let faultPeriod = 300 + 600 * frac(16)
            let inFault = (t + frac(32) * faultPeriod).truncatingRemainder(dividingBy: faultPeriod) < 20
            let moving = phase < 0.6 && !inFault
            let state: Double = inFault ? 2 : (moving ? 1 : 0)
            if changed(twin.id + "#state", state) { u("state", state) }
            guard moving else { return }
            let w = 2 * Double.pi / cycle
            let amps = [1.2, 0.5, 0.6, 0.8, 0.6, 1.5]
            for j in 0..<6 {
                let v = amps[j] * sin(w * t * Double(j % 3 + 1) / 2 + frac(UInt64(j * 8)) * 6.28) + (j == 1 ? 0.3 : 0)
                u("j\(j + 1)", (v * 1000).rounded() / 1000)
            }
        case "item":
            let speed = 0.4 + 0.2 * frac(0)
            let s = (frac(16) * lineLength + speed * t).truncatingRemainder(dividingBy: lineLength)
            u("s", (s * 1000).rounded() / 1000)
        case "press":
            let strokePeriod = 3 + 2 * frac(0)
            let p = (t / strokePeriod).truncatingRemainder(dividingBy: 1)
            if p < 0.4 {
                u("ram", (sin(p / 0.4 * Double.pi) * 1.4 * 1000).rounded() / 1000)
            } else if changed(twin.id + "#ram", 0) {
                u("ram", 0)
            }
            // Temperature once a second: a slow drift plus, now and then, an excursion above 90 °C.
            let second = (t * 1).rounded(.down)
            if changed(twin.id + "#tsec", second) {
                let base = 62 + 8 * sin(t / (60 + 60 * frac(16))) + 2 * sin(t / 7)
                let excursionPeriod = 240 + 480 * frac(32)
                let e = (t + frac(48) * excursionPeriod).truncatingRemainder(dividingBy: excursionPeriod)
                let excursion = e < 40 ? 32 * sin(e / 40 * Double.pi) : 0
                u("temperature", ((base + excursion) * 10).rounded() / 10)
            }
        case "tank":
            let period = 120 + 240 * frac(0)
            let level = 50 + 48 * sin(2 * Double.pi * t / period + frac(16) * 6.28)
            u("level", (level * 10).rounded() / 10)
        case "agv":
            let size = hallSize
            let perimeter = 4 * (size - 8)
            let speed = 1.2 + 0.6 * frac(0)
            var d = (frac(16) * perimeter + speed * t).truncatingRemainder(dividingBy: perimeter)
            let side = size - 8
            var x = 4.0, z = 4.0, heading = 0.0
            if d < side { x = 4 + d; heading = 90 } else {
                d -= side
                if d < side { x = 4 + side; z = 4 + d; heading = 0 } else {
                    d -= side
                    if d < side { x = 4 + side - d; z = 4 + side; heading = -90 } else {
                        d -= side
                        z = 4 + side - d
                        heading = 180
                    }
                }
            }
            u("x", (x * 1000).rounded() / 1000)
            u("z", (z * 1000).rounded() / 1000)
            u("heading", heading)
            let lap = ((frac(16) * perimeter + speed * t) / perimeter).rounded(.down)
            let loaded: Double = Int(lap) % 2 == 0 ? 1 : 0
            if changed(twin.id + "#loaded", loaded) { u("loaded", loaded) }
            let second = (t / 5).rounded(.down)
            if changed(twin.id + "#bsec", second) {
                let battery = 100 - (t / 6 + frac(32) * 100).truncatingRemainder(dividingBy: 95)
                u("battery", battery.rounded())
            }
        default:
            break
        }
    }
}
