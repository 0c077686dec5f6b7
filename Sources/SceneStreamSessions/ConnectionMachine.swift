import SceneStreamProtocol

/// One connection's protocol state: awaiting hello → verifying (a signed token) → established → closing.
///
/// Pure: it reads no clock (callers pass `nowNs`, monotonic, and `nowMs`, wall time) and does no I/O; each
/// method says what the connection should do and the server's adapter carries it out.
public struct ConnectionMachine: Sendable, Equatable {
    /// Where the connection is.
    public enum State: Sendable, Equatable {
        /// Opened at `openedNs`; only a hello may come.
        case awaitingHello(openedNs: UInt64)
        /// The hello's token is being checked off the service thread; nothing else may come meanwhile.
        case verifying
        /// Hello accepted; the token expires at `expiresMs` (nil: never).
        case established(expiresMs: UInt64?)
        /// Going away; nothing more is read.
        case closing
    }

    /// What to do with a message that arrived.
    public enum Gate: Sendable, Equatable {
        /// Handle it.
        case pass
        /// Keep it, in order, and handle it once the hello is accepted (the token is being checked): a client may
        /// send `subscribe` right behind `hello`.
        case hold
        /// Answer with `error` (code and text), then close with `closeCode` once that is out.
        case refuse(ErrorCode, message: String, closeCode: Int)
        /// Ignore it (the connection is closing once its last messages are out).
        case drop
    }

    /// What to do with a hello.
    public enum HelloDecision: Sendable, Equatable {
        /// Check the token off the service thread, then call ``verified(expiresMs:)`` or ``refused()``.
        case verify
        /// Establish the session now (open mode: the token is a demo name).
        case establish
        /// Answer with an error and keep the connection (a second hello).
        case alreadyEstablished
        /// Answer with `error` (code and text), then close with `closeCode`: no protocol version in common.
        case refuse(ErrorCode, message: String, closeCode: Int)
    }

    /// Why a connection must go at a deadline.
    public enum Deadline: Sendable, Equatable {
        /// No hello within the handshake time.
        case noHello
        /// The token expired and was not refreshed in time.
        case tokenExpired
    }

    /// The state now.
    public private(set) var state: State
    /// The protocol version the hello settled on (1 before it).
    public private(set) var version: UInt32 = 1

    /// A connection opened at `openedNs`.
    public init(openedNs: UInt64) { state = .awaitingHello(openedNs: openedNs) }

    /// Whether the hello was accepted.
    public var isEstablished: Bool {
        if case .established = state { return true }
        return false
    }

    /// The gate for a message that decoded: only a hello before the session exists (anything else: error 5, close
    /// 1008); what follows the hello while its token is checked is held.
    public mutating func admit(isHello: Bool) -> Gate {
        switch state {
        case .awaitingHello:
            if isHello { return .pass }
            state = .closing
            return .refuse(.unauthenticated, message: "hello must be the first message", closeCode: 1008)
        case .verifying: return .hold
        case .established: return .pass
        case .closing: return .drop
        }
    }

    /// A hello offering protocol versions `minVersion…maxVersion`, to a server that speaks `supported`: the highest
    /// in common is chosen (``version``). `authRequired` when tokens are signed.
    public mutating func hello(minVersion: UInt32, maxVersion: UInt32, supported: ClosedRange<UInt32>, authRequired: Bool) -> HelloDecision {
        switch state {
        case .established, .verifying: return .alreadyEstablished
        case .closing: return .refuse(.unauthenticated, message: "the connection is closing", closeCode: 1008)
        case .awaitingHello: break
        }
        let chosen = min(maxVersion, supported.upperBound)
        guard chosen >= max(minVersion, supported.lowerBound) else {
            state = .closing
            let speaks = supported.count == 1 ? "\(supported.lowerBound)" : "\(supported.lowerBound)…\(supported.upperBound)"
            return .refuse(.unsupportedVersion, message: "no common protocol version: the client offers \(minVersion)…\(maxVersion), this server speaks \(speaks)", closeCode: 1002)
        }
        version = chosen
        if authRequired {
            state = .verifying
            return .verify
        }
        state = .established(expiresMs: nil)
        return .establish
    }

    /// The token checked out; it expires at `expiresMs`.
    public mutating func verified(expiresMs: UInt64?) {
        guard case .verifying = state else { return }
        state = .established(expiresMs: expiresMs)
    }

    /// The token was refused (or the session could not be made): the connection goes once the error is sent.
    public mutating func refused() { state = .closing }

    /// A refreshed token of the same subject: the session lasts until `expiresMs`.
    public mutating func refreshed(expiresMs: UInt64?) {
        guard case .established = state else { return }
        state = .established(expiresMs: expiresMs)
    }

    /// The connection is closing (whatever the reason).
    public mutating func close() { state = .closing }

    /// Whether the connection must go now: no hello within `handshakeNs` of opening, or a token past its expiry.
    /// A deadline moves the machine to closing, so each is reported once.
    public mutating func deadline(nowNs: UInt64, nowMs: UInt64, handshakeNs: UInt64) -> Deadline? {
        switch state {
        case .awaitingHello(let opened) where nowNs &- opened > handshakeNs:
            state = .closing
            return .noHello
        case .established(let exp?) where exp <= nowMs:
            state = .closing
            return .tokenExpired
        default:
            return nil
        }
    }
}
