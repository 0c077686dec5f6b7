import Foundation
import JWTKit
import SceneStreamCore
import SceneStreamProtocol

/// The claims SceneStream reads from a bearer token.
struct AuthClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var aud: AudienceClaim
    var name: String?
    /// viewer, operator or admin.
    var role: String?
    /// Zones (scene subtrees) the holder may see; absent: all.
    var zones: [String]?
    /// Scenes the holder may see; absent: all.
    var scenes: [String]?

    /// Signature and structure are checked by jwt-kit before this; expiry and audience are checked by the caller so
    /// that each failure gets its own error code.
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Why a token was refused.
enum AuthFailure: Error, Equatable {
    case missing
    case invalid(String)
    case expired
    case wrongAudience
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
        let claims: AuthClaims
        do {
            claims = try await keys.verify(token, as: AuthClaims.self)
        } catch {
            return .failure(.invalid("\(error)".prefix(120).description))
        }
        guard claims.aud.value.contains(audience) else { return .failure(.wrongAudience) }
        let expires = UInt64(max(0, claims.exp.value.timeIntervalSince1970) * 1000)
        guard expires > nowMs else { return .failure(.expired) }
        let role: Role
        switch claims.role ?? "operator" {
        case "admin": role = .host
        case "viewer": role = .viewer
        default: role = .participant
        }
        var id = Identity(userId: claims.sub.value, displayName: claims.name ?? claims.sub.value, role: role)
        id.zones = claims.zones.map(Set.init)
        id.scenes = claims.scenes.map(Set.init)
        id.expiresMs = expires
        return .success(id)
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
