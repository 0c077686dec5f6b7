import Foundation
import JWTKit
import Testing

@testable import SceneStreamCore
import SceneStreamIngest
@testable import SceneStreamServer

/// What a token's claims must be: checked arithmetic on times, nbf, subject and role rules, bounded claims.
@Suite struct TokenRulesTests {
    let nowMs: UInt64 = 1_800_000_000_000

    func claims(sub: String? = "alice", exp: Double? = 1_800_000_600, nbf: Double? = nil, iat: Double? = nil, role: String? = nil, zones: [String]? = nil) -> AuthClaims {
        AuthClaims(sub: sub, exp: exp, nbf: nbf, iat: iat, aud: AudienceClaim(value: ["scenestream"]), name: nil, role: role, zones: zones, scenes: nil)
    }

    func check(_ c: AuthClaims) -> Result<Identity, AuthFailure> { TokenRules.identity(c, audience: "scenestream", nowMs: nowMs) }

    @Test func aGoodTokenGivesItsIdentity() throws {
        let id = try check(claims(role: "viewer", zones: ["hall-a"])).get()
        #expect(id.userId == "alice" && id.role == .viewer && id.zones == ["hall-a"] && id.expiresMs == 1_800_000_600_000)
        #expect(try check(claims()).get().role == .participant)
        #expect(try check(claims(role: "admin")).get().role == .host)
    }

    @Test func hugeAndOddTimesAreRefusedNotConverted() {
        for exp in [1.8e16, 1e300, .infinity, -.infinity, .nan, -1] {
            #expect(check(claims(exp: exp)) == .failure(.invalid("exp out of range")), "exp \(exp)")
        }
        #expect(check(claims(nbf: 1e30)) == .failure(.invalid("nbf out of range")))
        #expect(check(claims(iat: -5)) == .failure(.invalid("iat out of range")))
        #expect(check(claims(exp: nil)) == .failure(.invalid("exp is required")))
    }

    @Test func expiryAndNotBefore() {
        #expect(check(claims(exp: 1_799_999_999)) == .failure(.expired))
        #expect(check(claims(exp: 1_800_000_000)) == .failure(.expired))
        #expect(check(claims(nbf: 1_800_000_001)) == .failure(.notYetValid))
        #expect((try? check(claims(nbf: 1_800_000_000)).get()) != nil)
    }

    @Test func subjectsRolesAndListsAreBounded() {
        #expect(check(claims(sub: "")).isFailure)
        #expect(check(claims(sub: nil)).isFailure)
        #expect(check(claims(sub: String(repeating: "a", count: 10_000))).isFailure)
        #expect(check(claims(sub: "a\u{0}b")).isFailure)
        #expect(check(claims(role: "root")) == .failure(.invalid("unknown role (expected admin, operator or viewer)")))
        #expect(check(claims(zones: Array(repeating: "z", count: 1000))).isFailure)
        #expect(check(claims(zones: [""])).isFailure)
    }

    @Test func theAudienceMustNameUs() {
        var c = claims()
        c.aud = AudienceClaim(value: ["other"])
        #expect(check(c) == .failure(.wrongAudience))
        c.aud = nil
        #expect(check(c) == .failure(.wrongAudience))
    }

    /// The whole path through jwt-kit: a signed "never expires" token (exp ≈ 1.8e16) is refused, not a crash.
    @Test func aSignedTokenWithAHugeExpiryIsRefused() async throws {
        var config = AuthConfiguration()
        config.hs256Secret = String(repeating: "k", count: 32)
        let auth = try await Authenticator(configuration: config)
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: config.hs256Secret!), digestAlgorithm: .sha256)
        let token = try await keys.sign(claims(exp: 1.8e16))
        #expect(await auth.verify(token, nowMs: nowMs) == .failure(.invalid("exp out of range")))
        let good = try await keys.sign(claims())
        #expect((try? await auth.verify(good, nowMs: nowMs).get())?.userId == "alice")
    }
}

extension Result {
    var isFailure: Bool {
        if case .failure = self { return true }
        return false
    }
}

/// HTTP ingest bodies: entries named by index, keys bounded and without control characters.
@Suite struct IngestParsingTests {
    func parse(_ json: String) -> Result<[PropertyUpdate], IngestRefusal> {
        HTTPIngest.parse(Array(json.utf8), nowMs: 1000)
    }

    @Test func aGoodBatchParses() throws {
        let ups = try parse(#"{"updates":[{"twin":"a/b","property":"t","value":1.5,"timestamp":900},{"twin":"a/b","property":"on","value":true}]}"#).get()
        #expect(ups == [
            PropertyUpdate(twin: "a/b", property: "t", value: .number(1.5), timestampMs: 900),
            PropertyUpdate(twin: "a/b", property: "on", value: .bool(true), timestampMs: 1000),
        ])
    }

    @Test func badKeysAreRefusedWithTheirIndex() {
        let long = String(repeating: "x", count: 100_000)
        #expect(parse(#"{"updates":[{"twin":"a","property":"t","value":1},{"twin":"a\u0000b","property":"t","value":1}]}"#)
            == .failure(.init(code: "bad_key", message: "updates[1]: control character in twin id")))
        #expect(parse(#"{"updates":[{"twin":"\#(long)","property":"t","value":1}]}"#)
            == .failure(.init(code: "bad_key", message: "updates[0]: twin id longer than 256 bytes")))
        #expect(parse(#"{"updates":[{"twin":"a","property":"","value":1}]}"#)
            == .failure(.init(code: "bad_key", message: "updates[0]: empty property name")))
        #expect(parse(#"{"nope":1}"#).isFailure)
    }
}

/// Configuration errors name the file, the key path and the reason.
@Suite struct ConfigurationTests {
    func error(_ json: String) -> String? {
        do {
            _ = try ServerConfiguration.load(Array(json.utf8), file: "cfg.json")
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func unknownKeysAndWrongTypesAtAnyDepth() {
        #expect(error(#"{"metricsTokn": "x"}"#)?.contains("cfg.json: metricsTokn: unknown key") == true)
        #expect(error(#"{"mqtt": {"prot": 1}}"#)?.contains("cfg.json: mqtt.prot: unknown key") == true)
        #expect(error(#"{"mqtt": {"sparkplug": {"hostID": "x"}}}"#)?.contains("mqtt.sparkplug.hostID: unknown key") == true)
        #expect(error(#"{"metricsToken": "short"}"#)?.contains("metricsToken: expected at least 16 characters") == true)
        #expect(error(#"{"connectionsPerSecondPerAddress": "ten"}"#)?.contains("connectionsPerSecondPerAddress: expected a whole number") == true)
        #expect(error(#"{"maxAnnotationsPerUser": 5, "annotationsPerSecond": 0}"#)?.contains("annotationsPerSecond: 0 is outside") == true)
        #expect(error(#"{"metricsToken": "a-metrics-token-123", "maxUpdatesPerTick": 1000}"#) == nil)
    }

    @Test func stalenessByAgeAndMappingPeriods() throws {
        let c = try ServerConfiguration.load(
            Array(#"{"staleness": {"factor": 4, "minimumMs": 1500, "learn": false}, "mqtt": {"topics": [{"topic": "a/{twin}/{property}", "twin": "{twin}", "property": "{property}", "periodMs": 2000}]}}"#.utf8),
            file: "cfg.json")
        #expect(c.staleness.factor == 4 && c.staleness.minimumMs == 1500 && !c.staleness.learn && c.staleness.enabled)
        #expect(c.mqtt?.topics.first?.periodMs == 2000)
        #expect(error(#"{"staleness": {"factor": 0.5}}"#)?.contains("cfg.json: staleness.factor: 0.5 is outside 1…1000") == true)
        #expect(error(#"{"staleness": {"minimumMs": 10}}"#)?.contains("cfg.json: staleness.minimumMs: 10 is outside") == true)
        #expect(error(#"{"staleness": {"periods": 3}}"#)?.contains("staleness.periods: unknown key") == true)
        #expect(error(#"{"mqtt": {"topics": [{"topic": "a/{twin}", "twin": "{twin}", "property": "p", "periodMs": -1}]}}"#)?.contains("mqtt.topics[0].periodMs") == true)
    }

    @Test func plantWatchInterval() throws {
        #expect(try ServerConfiguration.load(Array("{}".utf8), file: "cfg.json").plantWatchMs == 1000)
        #expect(try ServerConfiguration.load(Array(#"{"plantWatchMs": 0}"#.utf8), file: "cfg.json").plantWatchMs == 0)
        #expect(try ServerConfiguration.load(Array(#"{"plantWatchMs": 250}"#.utf8), file: "cfg.json").plantWatchMs == 250)
        #expect(error(#"{"plantWatchMs": 20}"#)?.contains("cfg.json: plantWatchMs: expected 0 (off) or at least 100") == true)
    }

    @Test func theClusterKey() throws {
        let c = try ServerConfiguration.load(
            Array(#"{"cluster": {"nats": ["nats://a:4222", "tls://b:4222"], "role": "fanout", "node": "cloud-1", "replicas": 3, "user": "u", "password": "p", "tls": {"ca": "ca.pem"}, "domain": "cloud"}}"#.utf8),
            file: "cfg.json")
        let cc = try #require(c.cluster)
        #expect(cc.servers == ["nats://a:4222", "tls://b:4222"] && cc.role == .fanout && cc.node == "cloud-1" && cc.replicas == 3)
        #expect(cc.security.user == "u" && cc.security.password == "p" && cc.security.tls && cc.security.caFile == "ca.pem")
        #expect(cc.domain == "cloud" && !cc.standby && cc.keyframeSeconds == 5)
        // Without the key a node is alone, as the demo runs.
        #expect(try ServerConfiguration.load(Array("{}".utf8), file: "cfg.json").cluster == nil)
    }

    @Test(arguments: [
        (#"{"cluster": {"role": "owner"}}"#, "cfg.json: cluster.nats: missing"),
        (#"{"cluster": {"nats": []}}"#, "cfg.json: cluster.nats: expected a list of nats://HOST:PORT"),
        (#"{"cluster": {"nats": ["http://a:4222"]}}"#, "cfg.json: cluster.nats[0]: expected nats://HOST:PORT"),
        (#"{"cluster": {"nats": ["nats://a:1"], "role": "leader"}}"#, "cfg.json: cluster.role: expected owner or fanout"),
        (#"{"cluster": {"nats": ["nats://a:1"], "role": "fanout", "standby": true}}"#, "cfg.json: cluster.standby: only an owner can stand by"),
        (#"{"cluster": {"nats": ["nats://a:1"], "replicas": 7}}"#, "cfg.json: cluster.replicas: 7 is outside 1…5"),
        (#"{"cluster": {"nats": ["nats://a:1"], "domain": "a.b"}}"#, "cfg.json: cluster.domain: expected a JetStream domain name"),
        (#"{"cluster": {"nats": ["nats://a:1"], "tls": {"cert": "x"}}}"#, "cfg.json: cluster.tls.cert: unknown key"),
        (#"{"mqtt": {"port": true}}"#, "cfg.json: mqtt.port: expected a whole number"),
        (#"{"mqtt": {"port": "1883"}}"#, "cfg.json: mqtt.port: expected a whole number"),
        (#"{"mqtt": {"cleanSession": 1}}"#, "cfg.json: mqtt.cleanSession: expected true or false"),
        (#"{"mqtt": {"topics": [{"topic": "a/{p}", "twin": "t", "property": "{p}"}, {"topic": "b/{p}", "twin": "t", "property": "{p}", "scale": "x"}]}}"#,
         "cfg.json: mqtt.topics[1].scale: expected a number"),
        (#"{"mqtt": {"topics": [{"topc": "a", "twin": "t", "property": "p"}]}}"#, "cfg.json: mqtt.topics[0].topc: unknown key"),
        (#"{"mqtt": {"topics": [{"twin": "t", "property": "p"}]}}"#, "cfg.json: mqtt.topics[0].topic: missing"),
        (#"{"mqtt": {"sparkplug": {"groups": ["a", 3]}}}"#, "cfg.json: mqtt.sparkplug.groups[1]: expected a string"),
        (#"{"mqtt": {"sparkplug": {"groups": ["a/b"]}}}"#, "cfg.json: mqtt.sparkplug.groups[0]: expected a name without / + #"),
        (#"{"mqtt": {"sparkplug": {"rebirthIntervalMs": -1}}}"#, "cfg.json: mqtt.sparkplug.rebirthIntervalMs: -1 is outside"),
        (#"{"simulator": 1}"#, "cfg.json: simulator: expected true or false"),
        (#"{"port": 80.5}"#, "cfg.json: port: expected a whole number"),
        (#"{"port": null}"#, "cfg.json: port: null is not a value here"),
        (#"{"tls": {"certificate": "c.pem"}}"#, "cfg.json: tls.key: missing"),
        (#"{"tls": {"certificate": "c.pem", "key": "k.pem", "ca": "x"}}"#, "cfg.json: tls.ca: unknown key"),
        (#"{"auth": {"audience": 5}}"#, "cfg.json: auth.audience: expected a string"),
        (#"{"auth": {"hs256Secret": "0123456789abcdef0123456789abcdef", "issuer": "x"}}"#, "cfg.json: auth.issuer: unknown key"),
        (#"{"allowedOrigins": "https://a"}"#, "cfg.json: allowedOrigins: expected a list"),
        (#"[1, 2]"#, "cfg.json: expected an object"),
        (#"{"port": 1,"#, "cfg.json: not valid JSON"),
    ])
    func nestedKeyPathsAndReasons(json: String, expected: String) {
        let e = error(json)
        #expect(e?.hasPrefix(expected) == true, "\(e ?? "accepted")")
    }
}

/// The token-claims fuzz corpus (Tests/Fuzz/corpus/fuzz-token-claims), replayed: every input is accepted or refused
/// with a reason, never a crash, and the seeds give the answers their names say.
@Suite struct TokenClaimsCorpusTests {
    static let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus/fuzz-token-claims")

    func answer(_ name: String) throws -> String {
        TokenClaimsCheck.check(payload: [UInt8](try Data(contentsOf: Self.dir.appendingPathComponent(name))), nowMs: 1_800_000_000_000)
    }

    @Test func everyInputIsAnsweredAndTheSeedsAsNamed() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.dir.path).sorted()
        #expect(names.count >= 25)
        for n in names { #expect(!(try answer(n)).isEmpty) }
        #expect(try answer("valid") == "accepted" && answer("valid-aud-list") == "accepted")
        for n in ["exp-huge", "exp-1e308", "exp-negative"] { #expect(try answer(n) == "invalid (exp out of range)", "\(n)") }
        #expect(try answer("expired") == "expired")
        #expect(try answer("nbf-future") == "not valid yet (nbf in the future)")
        #expect(try answer("nbf-huge") == "invalid (nbf out of range)" && answer("iat-huge") == "invalid (iat out of range)")
        for n in ["sub-empty", "sub-control", "sub-long"] { #expect(try answer(n).hasPrefix("invalid (sub must be"), "\(n)") }
        #expect(try answer("role-unknown").hasPrefix("invalid (unknown role"))
        for n in ["zones-many", "zones-empty-name"] { #expect(try answer(n).hasPrefix("invalid (zones:"), "\(n)") }
        #expect(try answer("aud-wrong") == "wrong audience" && answer("aud-missing") == "wrong audience")
        for n in ["exp-string", "sub-number", "zones-not-list", "not-json", "array", "deep"] {
            #expect(try answer(n) == "undecodable", "\(n)")
        }
        // 1e400 is no Double: refused by the decoder, or read as infinity and refused by the rules.
        #expect(["undecodable", "invalid (exp out of range)"].contains(try answer("exp-1e400")))
    }
}
