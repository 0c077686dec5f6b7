import Foundation
import JWTKit
import SceneStreamCore
import SceneStreamProtocol

/// The claims SceneStream reads from a bearer token, as numbers and strings: their meaning is checked by
/// ``TokenRules`` (with checked arithmetic), not by the decoder.
struct AuthClaims: JWTPayload, Equatable {
    var sub: String?
    var exp: Double?
    var nbf: Double?
    var iat: Double?
    var aud: AudienceClaim?
    var name: String?
    /// viewer, operator or admin.
    var role: String?
    /// Zones (scene subtrees) the holder may see; absent: all.
    var zones: [String]?
    /// Scenes the holder may see; absent: all.
    var scenes: [String]?

    /// Signature and structure are checked by jwt-kit before this; the claims by `TokenRules`, so that each failure
    /// gets its own error.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Why a token was refused.
enum AuthFailure: Error, Equatable, CustomStringConvertible {
    case missing
    case invalid(String)
    case expired
    case notYetValid
    case wrongAudience

    var description: String {
        switch self {
        case .missing: return "missing"
        case .invalid(let why): return "invalid (\(why))"
        case .expired: return "expired"
        case .notYetValid: return "not valid yet (nbf in the future)"
        case .wrongAudience: return "wrong audience"
        }
    }
}

/// What a token's claims must be. Pure: the caller passes the time.
enum TokenRules {
    static let maxSubjectBytes = 256
    static let maxNameBytes = 256
    static let maxListCount = 256
    static let maxListItemBytes = 256
    /// Seconds since the epoch beyond this (the year 2286) are refused rather than converted.
    static let maxSeconds = 9_999_999_999.0

    /// Seconds since the epoch → milliseconds, or nil if not a finite number in 0…maxSeconds.
    static func milliseconds(_ seconds: Double) -> UInt64? {
        guard seconds.isFinite, seconds >= 0, seconds <= maxSeconds else { return nil }
        return UInt64((seconds * 1000).rounded(.down))
    }

    static func cleanText(_ s: String, max: Int) -> Bool {
        !s.isEmpty && s.utf8.count <= max && !s.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F }
    }

    /// The identity the claims stand for at `nowMs`, or why they are refused.
    static func identity(_ c: AuthClaims, audience: String, nowMs: UInt64) -> Result<Identity, AuthFailure> {
        guard let sub = c.sub, cleanText(sub, max: maxSubjectBytes) else {
            return .failure(.invalid("sub must be 1…\(maxSubjectBytes) bytes without control characters"))
        }
        guard let aud = c.aud, aud.value.contains(audience) else { return .failure(.wrongAudience) }
        guard let exp = c.exp else { return .failure(.invalid("exp is required")) }
        guard let expires = milliseconds(exp) else { return .failure(.invalid("exp out of range")) }
        if let iat = c.iat, milliseconds(iat) == nil { return .failure(.invalid("iat out of range")) }
        var notBefore: UInt64?
        if let nbf = c.nbf {
            guard let ms = milliseconds(nbf) else { return .failure(.invalid("nbf out of range")) }
            notBefore = ms
        }
        guard expires > nowMs else { return .failure(.expired) }
        if let notBefore, notBefore > nowMs { return .failure(.notYetValid) }
        let role: Role
        switch c.role ?? "operator" {
        case "admin": role = .host
        case "operator": role = .participant
        case "viewer": role = .viewer
        default: return .failure(.invalid("unknown role (expected admin, operator or viewer)"))
        }
        if let name = c.name, !cleanText(name, max: maxNameBytes) {
            return .failure(.invalid("name must be 1…\(maxNameBytes) bytes without control characters"))
        }
        for (key, list) in [("zones", c.zones), ("scenes", c.scenes)] {
            guard let list else { continue }
            guard list.count <= maxListCount, list.allSatisfy({ cleanText($0, max: maxListItemBytes) }) else {
                return .failure(.invalid("\(key): at most \(maxListCount) names of 1…\(maxListItemBytes) bytes"))
            }
        }
        var id = Identity(userId: sub, displayName: c.name ?? sub, role: role)
        id.zones = c.zones.map(Set.init)
        id.scenes = c.scenes.map(Set.init)
        id.expiresMs = expires
        return .success(id)
    }
}

/// Verifies bearer tokens with jwt-kit: HS256 with a shared secret (on-prem) and RS256/ES256 keys from a JWKS file
/// (identity providers such as Entra ID or Keycloak).
final class Authenticator: Sendable {
    let keys: JWTKeyCollection
    let audience: String

    init(configuration c: AuthConfiguration) async throws {
        keys = JWTKeyCollection()
        audience = c.audience
        if let secret = c.hs256Secret {
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        }
        if let file = c.jwksFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ConfigError(file: file, location: "", reason: "cannot read the JWKS file")
            }
            do {
                _ = try await keys.add(jwksJSON: String(decoding: data, as: UTF8.self))
            } catch {
                throw ConfigError(file: file, location: "", reason: "not a valid JWKS (\(error))")
            }
        }
    }

    /// The identity a token stands for, or why it is refused.
    func verify(_ token: String, nowMs: UInt64) async -> Result<Identity, AuthFailure> {
        guard !token.isEmpty else { return .failure(.missing) }
        guard token.utf8.count <= 16 * 1024 else { return .failure(.invalid("token longer than 16 KiB")) }
        let claims: AuthClaims
        do {
            claims = try await keys.verify(token, as: AuthClaims.self)
        } catch {
            return .failure(.invalid("\(error)".prefix(120).description))
        }
        return TokenRules.identity(claims, audience: audience, nowMs: nowMs)
    }
}

/// Token settings (`auth` in the configuration).
public struct AuthConfiguration: Sendable {
    public var hs256Secret: String?
    public var jwksFile: String?
    /// The `aud` a token must name.
    public var audience = "scenestream"
    public init() {}
}

/// The claims path of a token whose signature checked out: its JSON payload → ``AuthClaims`` → ``TokenRules``.
/// What the `fuzz-token-claims` target and its replayed corpus drive (any bytes: a refusal, never a crash).
package enum TokenClaimsCheck {
    /// "accepted", "undecodable", or the refusal.
    package static func check(payload: [UInt8], audience: String = "scenestream", nowMs: UInt64) -> String {
        guard let claims = try? JSONDecoder().decode(AuthClaims.self, from: Data(payload)) else { return "undecodable" }
        switch TokenRules.identity(claims, audience: audience, nowMs: nowMs) {
        case .success: return "accepted"
        case .failure(let why): return "\(why)"
        }
    }
}
