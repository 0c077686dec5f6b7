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

/// The contest's data files, in the two layouts they were published in. Both hold 901 cubes per frame as
/// ``CubeState`` records (eight little-endian int32, 32 bytes):
/// - ``Layout/initialThenFrames`` — `delta_data_realnew.bin`, the later file (what rygorous/gaffer_net's HEAD reads):
///   the initial frame, then each frame's 901 states.
/// - ``Layout/pairs`` — the earlier file: for each frame, for each cube, its state then the state of the same cube
///   in the reference frame (6 frames earlier; the initial frame for the first 6).
public enum CubeDataFile {
    public static let cubes = 901
    public static let referenceDistance = 6
    static let recordBytes = 32
    static let frameBytes = cubes * recordBytes

    /// Which of the two published layouts a file is in.
    public enum Layout: String, Sendable, CaseIterable {
        case initialThenFrames = "initial-then-frames"
        case pairs
    }

    /// A parsed file: the initial frame (what the first six frames are coded against), the frames, and the layout
    /// it was read in.
    public struct Contents: Sendable, Equatable {
        public var initial: [CubeState]
        public var frames: [[CubeState]]
        public var layout: Layout
    }

    /// Parses a file in either layout, telling them apart by size and content: an odd number of 901-record blocks
    /// can only be initial-then-frames; an even number (4 or more) is pairs when every frame's second states are
    /// the frame 6 earlier (the same initial states for the first 6), else initial-then-frames. Two blocks (one
    /// frame) read the same either way, and are taken as initial-then-frames.
    public static func parse(_ bytes: [UInt8]) throws(ConfigError) -> Contents {
        guard bytes.count >= 2 * frameBytes, bytes.count % frameBytes == 0 else {
            throw ConfigError(
                file: "cube data", location: "",
                reason: "size \(bytes.count) is not a whole number (at least 2) of 901-cube frames of \(frameBytes) bytes")
        }
        let blocks = bytes.count / frameBytes
        if blocks % 2 == 0, blocks >= 4, let pairs = parsePairs(bytes) { return pairs }
        let initial = (0..<cubes).map { state(bytes, $0 * recordBytes) }
        let frames = (1..<blocks).map { f in (0..<cubes).map { state(bytes, f * frameBytes + $0 * recordBytes) } }
        return Contents(initial: initial, frames: frames, layout: .initialThenFrames)
    }

    /// The pairs reading of `bytes`, or nil when the reference states are not the frames 6 earlier.
    static func parsePairs(_ bytes: [UInt8]) -> Contents? {
        let count = bytes.count / (2 * frameBytes)
        var frames: [[CubeState]] = []
        var references: [[CubeState]] = []
        for f in 0..<count {
            let o = f * 2 * frameBytes
            frames.append((0..<cubes).map { state(bytes, o + $0 * 2 * recordBytes) })
            references.append((0..<cubes).map { state(bytes, o + $0 * 2 * recordBytes + recordBytes) })
        }
        for f in 0..<count {
            let expected = f >= referenceDistance ? frames[f - referenceDistance] : references[0]
            guard references[f] == expected else { return nil }
        }
        return Contents(initial: references[0], frames: frames, layout: .pairs)
    }

    static func state(_ bytes: [UInt8], _ o: Int) -> CubeState {
        func int(_ o: Int) -> Int32 {
            Int32(bitPattern: UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24)
        }
        return CubeState(
            orientationLargest: int(o), orientationA: int(o + 4), orientationB: int(o + 8), orientationC: int(o + 12),
            positionX: int(o + 16), positionY: int(o + 20), positionZ: int(o + 24), interacting: int(o + 28))
    }

    /// Writes frames in `layout`.
    public static func serialize(initial: [CubeState], frames: [[CubeState]], layout: Layout = .initialThenFrames) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((frames.count + 1) * cubes * 64)
        func put(_ s: CubeState) {
            for v in [s.orientationLargest, s.orientationA, s.orientationB, s.orientationC, s.positionX, s.positionY, s.positionZ, s.interacting] {
                let u = UInt32(bitPattern: v)
                out.append(contentsOf: [UInt8(u & 0xFF), UInt8((u >> 8) & 0xFF), UInt8((u >> 16) & 0xFF), UInt8(u >> 24)])
            }
        }
        switch layout {
        case .initialThenFrames:
            initial.forEach(put)
            for frame in frames { frame.forEach(put) }
        case .pairs:
            for (f, frame) in frames.enumerated() {
                let ref = f >= referenceDistance ? frames[f - referenceDistance] : initial
                for c in 0..<cubes {
                    put(frame[c])
                    put(ref[c])
                }
            }
        }
        return out
    }
}

/// The cubes scenario after Gaffer On Games "Snapshot Compression": a large player cube pushing 900 small cubes
/// (laid out on a 30 × 30 grid) around a floor, stepped at 60 Hz. Deterministic for a seed.
///
/// Physical enough to look like the contest's data: cubes collide with the player and with each other (contacts
/// with restitution and friction, resolved a few times a step so pushed cubes shove the ones in front of them into
/// piles), are thrown and tumble when hit hard, slide and roll with floor friction, settle flat on a face, and go
/// to sleep (stop changing at all) once at rest; a moving cube that touches a sleeping one wakes it. Cubes in contact
/// with the player, or with a cube that is, are "interacting" (the contest's red cubes).
public struct CubeSimulation: Sendable {
    typealias V3 = (Double, Double, Double)

    struct Body {
        var p: V3
        var v: V3 = (0, 0, 0)
        var q: Quaternion = .identity
        var w: V3 = (0, 0, 0)
        var interacting = false
        var asleep = true
        var still = 0  // consecutive slow steps on the floor
    }

    private var bodies: [Body] = []
    private var rng: SplitMix64
    private var time = 0.0
    private var heading = 0.0
    private var playerVelocity: V3 = (0, 0, 0)
    public let dt = 1.0 / 60
    let smallHalf = 0.25
    let playerHalf = 1.0
    /// Contact radius of a small cube (between its inscribed 0.25 and circumscribed 0.43 spheres).
    let radius = 0.28
    let gravity = 9.81

    /// Creates the scenario with cubes at rest on the grid.
    public init(seed: UInt64 = 2015) {
        rng = SplitMix64(seed: seed)
        bodies.append(Body(p: (0, 0, playerHalf), asleep: false))
        for i in 0..<30 {
            for j in 0..<30 {
                let p = (Double(i - 15) * 1.2 + 0.6, Double(j - 15) * 1.2 + 0.6, smallHalf)
                bodies.append(Body(p: p, q: Quaternion(axis: (0, 0, 1), angle: rng.uniform(-0.3...0.3))))
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

    /// Cubes that are awake (moving, or not yet settled).
    public var awakeCount: Int { bodies.dropFirst().filter { !$0.asleep }.count }

    /// Advances one 60 Hz step.
    public mutating func step() {
        time += dt
        movePlayer()
        for i in 1..<bodies.count where !bodies[i].asleep { bodies[i].interacting = false }
        for i in 1..<bodies.count where !bodies[i].asleep { integrate(i) }
        for _ in 0..<3 {
            for i in 1..<bodies.count { collideWithPlayer(i) }
            collideCubes()
        }
        for i in 1..<bodies.count where !bodies[i].asleep {
            // Contacts may have pushed a cube into the floor.
            bodies[i].p.2 = max(bodies[i].p.2, smallHalf)
            settle(i)
        }
    }

    /// The player wanders: its heading drifts smoothly, its speed pulses, and it turns back toward the field's
    /// centre; it slides on the floor facing where it goes.
    private mutating func movePlayer() {
        let wander: Double = (rng.unit() - 0.5) * 0.15
        heading += wander + 0.5 * dt * sin(time * 0.3)
        let speed: Double = 6 + 3 * sin(time * 0.7)
        var player = bodies[0]
        if (player.p.0 * player.p.0 + player.p.1 * player.p.1).squareRoot() > 14 {
            let toCentre = atan2(-player.p.1, -player.p.0)
            heading += 0.1 * sin(toCentre - heading)
        }
        playerVelocity = (cos(heading) * speed, sin(heading) * speed, 0)
        player.v = playerVelocity
        player.p = (player.p.0 + player.v.0 * dt, player.p.1 + player.v.1 * dt, playerHalf)
        player.q = Quaternion(axis: (0, 0, 1), angle: heading)
        bodies[0] = player
    }

    /// Gravity, motion, rotation, and the floor (bounce, sliding friction, rolling friction).
    private mutating func integrate(_ i: Int) {
        var b = bodies[i]
        b.v.2 -= gravity * dt
        b.p = (b.p.0 + b.v.0 * dt, b.p.1 + b.v.1 * dt, b.p.2 + b.v.2 * dt)
        let wn = length(b.w)
        if wn > 1e-9 { b.q = (Quaternion(axis: scale(b.w, 1 / wn), angle: wn * dt) * b.q).normalized }
        if b.p.2 <= smallHalf {
            b.p.2 = smallHalf
            b.v.2 = b.v.2 < -1.5 ? -b.v.2 * 0.3 : max(0, b.v.2)
            // Coulomb friction on the floor: the horizontal speed drops by μg per second.
            let h = (b.v.0 * b.v.0 + b.v.1 * b.v.1).squareRoot()
            if h > 1e-9 {
                let k = max(0, h - 0.5 * gravity * dt) / h
                b.v.0 *= k
                b.v.1 *= k
            }
            b.w = scale(b.w, 0.9)
        } else {
            b.w = scale(b.w, 0.995)
        }
        bodies[i] = b
    }

    /// The player as an oriented box: a cube inside its contact radius is pushed out along the normal, thrown when
    /// hit hard (up and spinning), and marked interacting.
    private mutating func collideWithPlayer(_ i: Int) {
        let player = bodies[0]
        var b = bodies[i]
        let d = (b.p.0 - player.p.0, b.p.1 - player.p.1, b.p.2 - player.p.2)
        guard abs(d.0) < 2, abs(d.1) < 2, abs(d.2) < 2 else { return }
        let local = Quaternion(x: -player.q.x, y: -player.q.y, z: -player.q.z, w: player.q.w).rotate(d)
        let h = playerHalf
        let closest = (min(max(local.0, -h), h), min(max(local.1, -h), h), min(max(local.2, -h), h))
        let off = (local.0 - closest.0, local.1 - closest.1, local.2 - closest.2)
        let dist = length(off)
        guard dist < radius, dist > 1e-9 else { return }
        let n = player.q.rotate(scale(off, 1 / dist))
        b.p = add(b.p, scale(n, radius - dist))
        let rel = sub(b.v, playerVelocity)
        let vn = dot(rel, n)
        if vn < 0 {
            b.v = sub(b.v, scale(n, 1.3 * vn))
            let hard = -vn
            if hard > 1.5, b.p.2 <= smallHalf + 0.01 {
                b.v.2 += hard * (0.3 + 0.4 * rng.unit())
                b.w = add(b.w, (rng.uniform(-1...1) * hard * 2, rng.uniform(-1...1) * hard * 2, rng.uniform(-1...1) * hard))
            }
        }
        b.interacting = true
        b.asleep = false
        b.still = 0
        bodies[i] = b
    }

    /// Cube–cube contacts as spheres: overlapping pairs are separated (a sleeping cube only moves once it is hit
    /// fast enough to wake), exchange normal speed with little bounce, lose tangential speed to friction and pick
    /// up spin from it. Interacting spreads through contacts.
    private mutating func collideCubes() {
        let cell = 2 * radius
        var grid: [Int64: [Int]] = [:]
        func key(_ x: Double, _ y: Double) -> Int64 {
            Int64((x / cell).rounded(.down)) << 32 | Int64(UInt32(bitPattern: Int32(truncatingIfNeeded: Int64((y / cell).rounded(.down)))))
        }
        for i in 1..<bodies.count { grid[key(bodies[i].p.0, bodies[i].p.1), default: []].append(i) }
        let reach = 2 * radius
        for i in 1..<bodies.count where !bodies[i].asleep {
            let cx = Int64((bodies[i].p.0 / cell).rounded(.down)), cy = Int64((bodies[i].p.1 / cell).rounded(.down))
            for gx in (cx - 1)...(cx + 1) {
                for gy in (cy - 1)...(cy + 1) {
                    for j in grid[gx << 32 | Int64(UInt32(bitPattern: Int32(truncatingIfNeeded: gy)))] ?? [] where j != i {
                        // Each awake pair once (from its lower index); an asleep partner from the awake side.
                        if !bodies[j].asleep && j < i { continue }
                        contact(i, j, reach)
                    }
                }
            }
        }
    }

    private mutating func contact(_ i: Int, _ j: Int, _ reach: Double) {
        var a = bodies[i]
        var b = bodies[j]
        let d = sub(b.p, a.p)
        let dist = length(d)
        guard dist < reach, dist > 1e-9 else { return }
        let n = scale(d, 1 / dist)
        let rel = sub(a.v, b.v)
        let vn = dot(rel, n)
        if b.asleep && vn < 0.25 && !a.interacting {
            // Too gentle to wake it: the sleeping cube is a wall.
            a.p = sub(a.p, scale(n, reach - dist))
            if vn > 0 { a.v = sub(a.v, scale(n, 1.1 * vn)) }
            bodies[i] = a
            return
        }
        b.asleep = false
        b.still = 0
        let push = scale(n, (reach - dist) / 2)
        a.p = sub(a.p, push)
        b.p = add(b.p, push)
        if vn > 0 {
            let impulse = scale(n, 0.55 * vn)  // restitution 0.1, equal masses
            a.v = sub(a.v, impulse)
            b.v = add(b.v, impulse)
            let tangential = sub(rel, scale(n, vn))
            let friction = scale(tangential, 0.15)
            a.v = sub(a.v, friction)
            b.v = add(b.v, friction)
            let spin = cross(n, tangential)
            a.w = add(a.w, scale(spin, -1.5))
            b.w = add(b.w, scale(spin, -1.5))
        }
        if a.interacting || b.interacting, vn > 0.2 || a.interacting != b.interacting {
            a.interacting = true
            b.interacting = true
        }
        bodies[i] = a
        bodies[j] = b
    }

    /// On the floor a slow cube turns flat onto its nearest face; one that stays slow and flat for half a second goes
    /// to sleep.
    private mutating func settle(_ i: Int) {
        var b = bodies[i]
        let onFloor = b.p.2 <= smallHalf + 0.02
        let speed = length(b.v)
        let spin = length(b.w)
        if onFloor && speed < 1.5 && spin < 4 {
            // The cube axis closest to vertical, and the rotation that makes it exactly vertical.
            let axes = [b.q.rotate((1, 0, 0)), b.q.rotate((0, 1, 0)), b.q.rotate((0, 0, 1))]
            var best = axes[0]
            for a in axes.dropFirst() where abs(a.2) > abs(best.2) { best = a }
            if best.2 < 0 { best = scale(best, -1) }
            let axis = cross(best, (0, 0, 1))
            let s = length(axis)
            if s > 1e-6 {
                let angle = atan2(s, best.2)
                b.q = (Quaternion(axis: scale(axis, 1 / s), angle: angle * 0.25) * b.q).normalized
            }
            b.w = (b.w.0 * 0.8, b.w.1 * 0.8, b.w.2 * 0.9)
            if speed < 0.08 && spin < 0.2 && s < 0.01 {
                b.still += 1
                if b.still >= 30 {
                    b.asleep = true
                    b.v = (0, 0, 0)
                    b.w = (0, 0, 0)
                    b.p.2 = smallHalf
                    b.interacting = false
                }
            } else {
                b.still = 0
            }
        } else {
            b.still = 0
        }
        bodies[i] = b
    }

    private func length(_ v: V3) -> Double { (v.0 * v.0 + v.1 * v.1 + v.2 * v.2).squareRoot() }
    private func scale(_ v: V3, _ k: Double) -> V3 { (v.0 * k, v.1 * k, v.2 * k) }
    private func add(_ a: V3, _ b: V3) -> V3 { (a.0 + b.0, a.1 + b.1, a.2 + b.2) }
    private func sub(_ a: V3, _ b: V3) -> V3 { (a.0 - b.0, a.1 - b.1, a.2 - b.2) }
    private func dot(_ a: V3, _ b: V3) -> Double { a.0 * b.0 + a.1 * b.1 + a.2 * b.2 }
    private func cross(_ a: V3, _ b: V3) -> V3 { (a.1 * b.2 - a.2 * b.1, a.2 * b.0 - a.0 * b.2, a.0 * b.1 - a.1 * b.0) }
}
