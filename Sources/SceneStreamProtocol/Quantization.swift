/// A quantized 3-vector: positions in 1/`positionUnitsPerMetre` metres, scales in thousandths.
public struct QVec3: Hashable, Sendable, CustomStringConvertible {
    public var x: Int32
    public var y: Int32
    public var z: Int32

    /// Creates a vector from its quantized components.
    @inlinable public init(_ x: Int32, _ y: Int32, _ z: Int32) {
        self.x = x
        self.y = y
        self.z = z
    }

    /// The zero vector.
    public static let zero = QVec3(0, 0, 0)
    /// Unit scale (1.0 on each axis, at ``Quantization/scaleUnits``).
    public static let unitScale = QVec3(Quantization.scaleUnits, Quantization.scaleUnits, Quantization.scaleUnits)

    public var description: String { "(\(x), \(y), \(z))" }
}

/// A rotation in smallest-three form: the index of the largest quaternion component (made positive and dropped)
/// and the other three, each in [-1/√2, 1/√2] quantized to ``Quantization/rotationBits`` bits.
public struct QRotation: Hashable, Sendable, CustomStringConvertible {
    /// Index (0 = x, 1 = y, 2 = z, 3 = w) of the dropped largest component.
    public var largest: UInt8
    /// The remaining components in x, y, z, w order without the largest.
    public var a: Int32
    public var b: Int32
    public var c: Int32

    /// Creates a rotation from its quantized parts.
    @inlinable public init(largest: UInt8, _ a: Int32, _ b: Int32, _ c: Int32) {
        self.largest = largest
        self.a = a
        self.b = b
        self.c = c
    }

    /// The identity rotation (w largest, others zero).
    public static let identity = QRotation(largest: 3, 0, 0, 0)

    public var description: String { "[\(largest): \(a), \(b), \(c)]" }
}

/// A unit quaternion in double precision.
public struct Quaternion: Hashable, Sendable {
    public var x: Double
    public var y: Double
    public var z: Double
    public var w: Double

    /// Creates a quaternion from its components.
    public init(x: Double, y: Double, z: Double, w: Double) {
        self.x = x
        self.y = y
        self.z = z
        self.w = w
    }

    /// The identity rotation.
    public static let identity = Quaternion(x: 0, y: 0, z: 0, w: 1)

    /// A rotation of `angle` radians about the unit `axis`.
    public init(axis: (Double, Double, Double), angle: Double) {
        let s = (angle / 2).sin
        self.init(x: axis.0 * s, y: axis.1 * s, z: axis.2 * s, w: (angle / 2).cos)
    }

    /// The Hamilton product `self * other` (apply `other` first).
    public static func * (l: Quaternion, r: Quaternion) -> Quaternion {
        Quaternion(
            x: l.w * r.x + l.x * r.w + l.y * r.z - l.z * r.y,
            y: l.w * r.y - l.x * r.z + l.y * r.w + l.z * r.x,
            z: l.w * r.z + l.x * r.y - l.y * r.x + l.z * r.w,
            w: l.w * r.w - l.x * r.x - l.y * r.y - l.z * r.z)
    }

    /// Rotates the vector `v`.
    public func rotate(_ v: (Double, Double, Double)) -> (Double, Double, Double) {
        // v' = v + 2w(q×v) + 2 q×(q×v)
        let (vx, vy, vz) = v
        let tx = 2 * (y * vz - z * vy)
        let ty = 2 * (z * vx - x * vz)
        let tz = 2 * (x * vy - y * vx)
        return (
            vx + w * tx + (y * tz - z * ty),
            vy + w * ty + (z * tx - x * tz),
            vz + w * tz + (x * ty - y * tx)
        )
    }

    /// This quaternion scaled to unit length (identity if it is zero).
    public var normalized: Quaternion {
        let n = (x * x + y * y + z * z + w * w).squareRoot()
        guard n > 1e-12 else { return .identity }
        return Quaternion(x: x / n, y: y / n, z: z / n, w: w / n)
    }
}

extension Double {
    @usableFromInline var sin: Double { _sin(self) }
    @usableFromInline var cos: Double { _cos(self) }
}

#if canImport(Glibc)
import Glibc
@usableFromInline func _sin(_ x: Double) -> Double { Glibc.sin(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@usableFromInline func _sin(_ x: Double) -> Double { Darwin.sin(x) }
@usableFromInline func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif

/// How a scene's continuous values are quantized on the wire. Sent in every keyframe.
public struct Quantization: Hashable, Sendable {
    /// Position steps per metre (1000 = millimetres; the cubes scenario uses 512).
    public var positionUnitsPerMetre: UInt32
    /// Bits per smallest-three rotation component (the cubes scenario uses 9).
    public var rotationBits: UInt8
    /// Scale steps per unit scale; fixed by the spec.
    public static let scaleUnits: Int32 = 1000

    /// Creates quantization parameters; the defaults give millimetres and 12-bit rotation components.
    public init(positionUnitsPerMetre: UInt32 = 1000, rotationBits: UInt8 = 12) {
        self.positionUnitsPerMetre = positionUnitsPerMetre
        self.rotationBits = rotationBits
    }

    /// The largest quantized rotation component magnitude, 2^(bits-1) - 1.
    @inlinable public var rotationMax: Int32 { (1 << Int32(rotationBits - 1)) - 1 }

    /// Quantizes a position in metres.
    public func position(_ x: Double, _ y: Double, _ z: Double) -> QVec3 {
        let u = Double(positionUnitsPerMetre)
        return QVec3(Self.clamp32((x * u).rounded()), Self.clamp32((y * u).rounded()), Self.clamp32((z * u).rounded()))
    }

    /// The position in metres that `q` stands for.
    public func metres(_ q: QVec3) -> (Double, Double, Double) {
        let u = Double(positionUnitsPerMetre)
        return (Double(q.x) / u, Double(q.y) / u, Double(q.z) / u)
    }

    /// Quantizes a scale factor per axis.
    public func scale(_ x: Double, _ y: Double, _ z: Double) -> QVec3 {
        let u = Double(Quantization.scaleUnits)
        return QVec3(Self.clamp32((x * u).rounded()), Self.clamp32((y * u).rounded()), Self.clamp32((z * u).rounded()))
    }

    /// The scale factors `q` stands for.
    public func scaleFactors(_ q: QVec3) -> (Double, Double, Double) {
        let u = Double(Quantization.scaleUnits)
        return (Double(q.x) / u, Double(q.y) / u, Double(q.z) / u)
    }

    /// Quantizes a rotation to smallest-three form.
    public func rotation(_ q: Quaternion) -> QRotation {
        let n = q.normalized
        var comps = [n.x, n.y, n.z, n.w]
        var largest = 3
        for i in 0..<4 where abs(comps[i]) > abs(comps[largest]) + 1e-12 { largest = i }
        if comps[largest] < 0 { comps = comps.map { -$0 } }
        let m = Double(rotationMax)
        let k = m * 2.0.squareRoot()  // component / (1/√2) * max
        var out: [Int32] = []
        out.reserveCapacity(3)
        for i in 0..<4 where i != largest {
            let v = (comps[i] * k).rounded()
            out.append(Int32(Swift.max(-m, Swift.min(m, v))))
        }
        return QRotation(largest: UInt8(largest), out[0], out[1], out[2])
    }

    /// The unit quaternion `r` stands for.
    public func quaternion(_ r: QRotation) -> Quaternion {
        let k = 1.0 / (Double(rotationMax) * 2.0.squareRoot())
        let a = Double(r.a) * k, b = Double(r.b) * k, c = Double(r.c) * k
        let d = Swift.max(0, 1 - a * a - b * b - c * c).squareRoot()
        switch r.largest & 3 {
        case 0: return Quaternion(x: d, y: a, z: b, w: c)
        case 1: return Quaternion(x: a, y: d, z: b, w: c)
        case 2: return Quaternion(x: a, y: b, z: d, w: c)
        default: return Quaternion(x: a, y: b, z: c, w: d)
        }
    }

    @usableFromInline static func clamp32(_ v: Double) -> Int32 {
        if v.isNaN { return 0 }
        return Int32(Swift.max(Double(Int32.min), Swift.min(Double(Int32.max), v)))
    }
}
