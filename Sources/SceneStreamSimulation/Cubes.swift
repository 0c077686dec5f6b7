import Foundation
import SceneStreamCore
import SceneStreamProtocol

/// One cube's quantized state, field for field as in the 2015 delta-compression contest data
/// (rygorous/gaffer_net `CubeState`): eight little-endian int32.
public struct CubeState: Hashable, Sendable {
    public var orientationLargest: Int32
    /// Smallest-three components, 9 bits each (0…511).
    public var orientationA: Int32
    public var orientationB: Int32
    public var orientationC: Int32
    /// Position at 512 values per metre; z is up.
    public var positionX: Int32
    public var positionY: Int32
    public var positionZ: Int32
    public var interacting: Int32

    /// The scene quantization that carries these values exactly.
    public static let quantization = Quantization(positionUnitsPerMetre: 512, rotationBits: 9)
    /// Colour used for interacting cubes.
    public static let interactingColor: UInt32 = 0xE0_30_30_FF

    /// This cube as a scene node.
    public func wireNode(name: String, parent: UInt32?) -> WireNode {
        WireNode(
            parent: parent, name: name, translation: QVec3(positionX, positionY, positionZ),
            rotation: QRotation(largest: UInt8(orientationLargest & 3), orientationA - 256, orientationB - 256, orientationC - 256),
            color: interacting != 0 ? Self.interactingColor : 0, asset: "models/cube.gltf")
    }

    /// The cube a scene node stands for (inverse of ``wireNode(name:parent:)``).
    public init(_ n: WireNode) {
        self.init(
            orientationLargest: Int32(n.rotation.largest), orientationA: n.rotation.a + 256, orientationB: n.rotation.b + 256,
            orientationC: n.rotation.c + 256, positionX: n.translation.x, positionY: n.translation.y,
            positionZ: n.translation.z, interacting: n.color == Self.interactingColor ? 1 : 0)
    }

    /// Creates a state from its fields.
    public init(
        orientationLargest: Int32, orientationA: Int32, orientationB: Int32, orientationC: Int32, positionX: Int32,
        positionY: Int32, positionZ: Int32, interacting: Int32
    ) {
        self.orientationLargest = orientationLargest
        self.orientationA = orientationA
        self.orientationB = orientationB
        self.orientationC = orientationC
        self.positionX = positionX
        self.positionY = positionY
        self.positionZ = positionZ
        self.interacting = interacting
    }
}

/// The contest's file format: for each frame, for each of the 901 cubes, the cube's state then the state of the
/// same cube in the reference frame (6 frames earlier; the initial frame for the first 6).
public enum CubeDataFile {
    public static let cubes = 901
    public static let referenceDistance = 6

    /// Parses a file into the initial frame and the frames.
    public static func parse(_ bytes: [UInt8]) throws(ConfigError) -> (initial: [CubeState], frames: [[CubeState]]) {
        let recordBytes = 32
        let frameBytes = cubes * 2 * recordBytes
        guard bytes.count >= frameBytes, bytes.count % frameBytes == 0 else {
            throw ConfigError(file: "cube data", location: "", reason: "size \(bytes.count) is not a multiple of \(frameBytes) bytes (901 cubes × 2 states × 32 bytes)")
        }
        func int(_ o: Int) -> Int32 {
            Int32(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
        }
        func state(_ o: Int) -> CubeState {
            CubeState(
                orientationLargest: int(o), orientationA: int(o + 4), orientationB: int(o + 8), orientationC: int(o + 12),
                positionX: int(o + 16), positionY: int(o + 20), positionZ: int(o + 24), interacting: int(o + 28))
        }
        var initial: [CubeState] = []
        var frames: [[CubeState]] = []
        for f in 0..<(bytes.count / frameBytes) {
            var frame: [CubeState] = []
            frame.reserveCapacity(cubes)
            for c in 0..<cubes {
                let o = f * frameBytes + c * 2 * recordBytes
                frame.append(state(o))
                if f == 0 { initial.append(state(o + recordBytes)) }
            }
            frames.append(frame)
        }
        return (initial, frames)
    }

    /// Writes frames in the contest format.
    public static func serialize(initial: [CubeState], frames: [[CubeState]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frames.count * cubes * 64)
        func put(_ v: Int32) {
            let u = UInt32(bitPattern: v)
            out.append(UInt8(u & 0xFF))
            out.append(UInt8((u >> 8) & 0xFF))
            out.append(UInt8((u >> 16) & 0xFF))
            out.append(UInt8(u >> 24))
        }
        for (f, frame) in frames.enumerated() {
            let ref = f >= referenceDistance ? frames[f - referenceDistance] : initial
            for c in 0..<cubes {
                for s in [frame[c], ref[c]] {
                    for v in [s.orientationLargest, s.orientationA, s.orientationB, s.orientationC, s.positionX, s.positionY, s.positionZ, s.interacting] {
                        put(v)
                    }
                }
            }
        }
        return out
    }
}

/// The cubes scenario after Gaffer On Games "Snapshot Compression": a large player cube pushing 900 small cubes
/// on a 30 × 30 grid, stepped at 60 Hz. Deterministic for a seed.
public struct CubeSimulation: Sendable {
    struct Body {
        var p: (Double, Double, Double)
        var v: (Double, Double, Double)
        var q: Quaternion
        var w: (Double, Double, Double)
        var interacting: Bool
        var resting: Bool
    }

    private var bodies: [Body] = []
    private var rng: SplitMix64
    private var time = 0.0
    private var heading = 0.0
    public let dt = 1.0 / 60
    let smallHalf = 0.25
    let playerHalf = 1.0

    /// Creates the scenario with cubes at rest on the grid.
    public init(seed: UInt64 = 2015) {
        rng = SplitMix64(seed: seed)
        bodies.append(Body(p: (0, 0, playerHalf), v: (0, 0, 0), q: .identity, w: (0, 0, 0), interacting: false, resting: false))
        for i in 0..<30 {
            for j in 0..<30 {
                let p = (Double(i - 15) * 1.5 + 0.75, Double(j - 15) * 1.5 + 0.75, smallHalf)
                bodies.append(Body(p: p, v: (0, 0, 0), q: .identity, w: (0, 0, 0), interacting: false, resting: true))
            }
        }
    }

    /// The current state, quantized as in the contest data.
    public func snapshot() -> [CubeState] {
        let q = CubeState.quantization
        return bodies.map { b in
            let r = q.rotation(b.q)
            let pos = q.position(b.p.0, b.p.1, b.p.2)
            return CubeState(
                orientationLargest: Int32(r.largest), orientationA: r.a + 256, orientationB: r.b + 256, orientationC: r.c + 256,
                positionX: pos.x, positionY: pos.y, positionZ: pos.z, interacting: b.interacting ? 1 : 0)
        }
    }

    /// Advances one 60 Hz step.
    public mutating func step() {
        time += dt
        // The player wanders: heading drifts smoothly, speed pulses, and it turns back toward the field's centre.
        heading += (rng.unit() - 0.5) * 0.2 + 0.6 * dt * sin(time * 0.3)
        let speed = 5.5 + 2.5 * sin(time * 0.7)
        var player = bodies[0]
        let toCentre = atan2(-player.p.1, -player.p.0)
        if (player.p.0 * player.p.0 + player.p.1 * player.p.1).squareRoot() > 18 {
            heading += 0.08 * sin(toCentre - heading)
        }
        player.v = (cos(heading) * speed, sin(heading) * speed, 0)
        player.p = (player.p.0 + player.v.0 * dt, player.p.1 + player.v.1 * dt, playerHalf)
        player.q = Quaternion(axis: (0, 0, 1), angle: heading)
        bodies[0] = player

        let reach = playerHalf + smallHalf + 0.15
        for i in 1..<bodies.count {
            var b = bodies[i]
            let dx = b.p.0 - player.p.0, dy = b.p.1 - player.p.1
            let d2 = dx * dx + dy * dy
            b.interacting = d2 < reach * reach * 1.6
            if d2 < reach * reach {
                let d = max(d2.squareRoot(), 1e-6)
                let nx = dx / d, ny = dy / d
                // Push out of the player and throw it along the contact normal.
                b.p.0 = player.p.0 + nx * reach
                b.p.1 = player.p.1 + ny * reach
                let kick = speed * (1.1 + 0.4 * rng.unit())
                b.v = (nx * kick + player.v.0 * 0.3, ny * kick + player.v.1 * 0.3, 2 + 3 * rng.unit())
                b.w = ((rng.unit() - 0.5) * 14, (rng.unit() - 0.5) * 14, (rng.unit() - 0.5) * 8)
                b.resting = false
            }
            if !b.resting {
                b.v.2 -= 9.81 * dt
                b.p = (b.p.0 + b.v.0 * dt, b.p.1 + b.v.1 * dt, b.p.2 + b.v.2 * dt)
                if b.p.2 <= smallHalf {
                    b.p.2 = smallHalf
                    if b.v.2 < -1 { b.v.2 = -b.v.2 * 0.35 } else { b.v.2 = 0 }
                    // Ground friction and rolling resistance.
                    let f = pow(0.3, dt)
                    b.v.0 *= f
                    b.v.1 *= f
                    b.w = (b.w.0 * f, b.w.1 * f, b.w.2 * f)
                }
                let wn = (b.w.0 * b.w.0 + b.w.1 * b.w.1 + b.w.2 * b.w.2).squareRoot()
                if wn > 1e-6 {
                    b.q = (Quaternion(axis: (b.w.0 / wn, b.w.1 / wn, b.w.2 / wn), angle: wn * dt) * b.q).normalized
                }
                let sp = (b.v.0 * b.v.0 + b.v.1 * b.v.1 + b.v.2 * b.v.2).squareRoot()
                if sp < 0.05 && wn < 0.1 && b.p.2 <= smallHalf + 1e-6 {
                    b.resting = true
                    b.v = (0, 0, 0)
                    b.w = (0, 0, 0)
                }
            }
            bodies[i] = b
        }
        collideCubes()
    }

    /// Moving cubes knock resting ones they overlap, passing on part of their speed (chain reactions).
    private mutating func collideCubes() {
        let cell = 1.0
        var grid: [Int64: [Int]] = [:]
        func key(_ x: Double, _ y: Double) -> Int64 { Int64((x / cell).rounded(.down)) << 32 | Int64(UInt32(bitPattern: Int32((y / cell).rounded(.down)))) }
        for i in 1..<bodies.count { grid[key(bodies[i].p.0, bodies[i].p.1), default: []].append(i) }
        let contact = 2 * smallHalf
        for i in 1..<bodies.count where !bodies[i].resting {
            let b = bodies[i]
            let speed = (b.v.0 * b.v.0 + b.v.1 * b.v.1).squareRoot()
            guard speed > 0.5 else { continue }
            let cx = Int64((b.p.0 / cell).rounded(.down)), cy = Int64((b.p.1 / cell).rounded(.down))
            for gx in (cx - 1)...(cx + 1) {
                for gy in (cy - 1)...(cy + 1) {
                    for j in grid[gx << 32 | Int64(UInt32(bitPattern: Int32(truncatingIfNeeded: gy)))] ?? [] where j != i && bodies[j].resting {
                        let dx = bodies[j].p.0 - b.p.0, dy = bodies[j].p.1 - b.p.1
                        let d2 = dx * dx + dy * dy
                        guard d2 < contact * contact, d2 > 1e-9 else { continue }
                        let d = d2.squareRoot()
                        var o = bodies[j]
                        o.v = (dx / d * speed * 0.6, dy / d * speed * 0.6, 1 + rng.unit())
                        o.w = ((rng.unit() - 0.5) * 10, (rng.unit() - 0.5) * 10, (rng.unit() - 0.5) * 6)
                        o.resting = false
                        bodies[j] = o
                        bodies[i].v.0 *= 0.7
                        bodies[i].v.1 *= 0.7
                    }
                }
            }
        }
    }
}