import Dispatch
import Foundation
import SceneStreamCluster
import SceneStreamCore
import SceneStreamIngest
import SceneStreamStorage
import SceneStreamTransport

/// Where playback reads the past that this node's memory does not hold: its storage, or — on a fan-out node, which
/// holds no twins — the scene's owner. Callbacks run off the service thread.
protocol PastSource: AnyObject, Sendable {
    /// Every property's value at `timeMs` (nil: no history that old).
    func stateLater(at timeMs: UInt64, done: @escaping @Sendable (Result<[PropertyUpdate]?, any Error>) -> Void)
    /// The updates with `from <= time < to`, oldest first, and where they end (`to`, or less for a long stretch).
    func stretchLater(from: UInt64, to: UInt64, done: @escaping @Sendable (Result<(updates: [PropertyUpdate], throughMs: UInt64), any Error>) -> Void)
    /// The oldest moment the history holds.
    func oldestCheckpointLater(done: @escaping @Sendable (UInt64?) -> Void)
}

extension Storage: PastSource {
    func stretchLater(from: UInt64, to: UInt64, done: @escaping @Sendable (Result<(updates: [PropertyUpdate], throughMs: UInt64), any Error>) -> Void) {
        updatesLater(from: from, to: to) { r in done(r.map { ($0, to) }) }
    }
}

/// A fan-out node's playback source: questions to the owner over NATS (``OwnerHistory``).
final class OwnerPast: PastSource {
    let history: OwnerHistory

    init(_ history: OwnerHistory) { self.history = history }

    static func updates(_ a: HistoryAnswer) -> Result<[PropertyUpdate]?, any Error> {
        guard let b = a.batch else { return .success(nil) }
        return HTTPIngest.parse([UInt8](b), nowMs: 0).map(Optional.some).mapError { ClusterError("the owner's history answer: \($0)") }
    }

    func stateLater(at timeMs: UInt64, done: @escaping @Sendable (Result<[PropertyUpdate]?, any Error>) -> Void) {
        history.ask(HistoryRequest(kind: .state, atMs: timeMs)) { r in done(r.mapError { $0 }.flatMap(Self.updates)) }
    }

    func stretchLater(from: UInt64, to: UInt64, done: @escaping @Sendable (Result<(updates: [PropertyUpdate], throughMs: UInt64), any Error>) -> Void) {
        history.ask(HistoryRequest(kind: .updates, fromMs: from, toMs: to)) { r in
            done(r.mapError { $0 }.flatMap { a in Self.updates(a).map { ($0 ?? [], a.throughMs ?? to) } })
        }
    }

    func oldestCheckpointLater(done: @escaping @Sendable (UInt64?) -> Void) {
        history.ask(HistoryRequest(kind: .oldest)) { r in done(try? r.get().oldestMs) }
    }
}

extension StreamingServer {
    /// Where playback reads what memory does not hold: the owner, on a fan-out node; else storage.
    var pastSource: (any PastSource)? { isFollower ? cluster?.ownerPast : storage }

    /// Whether this node's own memory serves playback (a fan-out node's holds no twins).
    var memoryHoldsHistory: Bool { !isFollower }

    /// The owner answers fan-out nodes' history questions (their playback) from memory when it holds the stretch,
    /// else from storage — the same sources its own clients' seeks use. Answers are encoded off the service thread.
    func serveHistory(_ link: ClusterLink) {
        let metrics = self.metrics
        let connection = link.connection
        link.historySubscription = listen(link, link.subjects.history, to: "answer fan-out nodes' history requests") { m in
            guard let reply = m.reply else { return nil }
            guard m.payload.count <= 4096, let request = try? JSONDecoder().decode(HistoryRequest.self, from: Data(m.payload)) else {
                metrics.clusterRefused.increment()
                try? connection.publish(reply, HistoryAnswer(error: "not a history request").encoded())
                return nil
            }
            return { $0.answerHistory(request, reply: reply) }
        }
    }

    /// The most updates one answer holds (an ingest body of about 80 bytes each, under NATS's payload limit).
    static let maxHistoryUpdates = 6000

    /// Answers one history question. Service thread; reading storage and encoding happen elsewhere.
    func answerHistory(_ request: HistoryRequest, reply: String) {
        guard let link = cluster, link.publisher != nil else { return }
        let conn = link.connection
        let send: @Sendable (HistoryAnswer) -> Void = { a in
            var bytes = a.encoded()
            if bytes.count > HistoryAnswer.maxBytes {
                bytes = HistoryAnswer(error: "the answer would be \(bytes.count) bytes, over the \(HistoryAnswer.maxBytes)-byte limit: play this back on the owner's node").encoded()
            }
            try? conn.publish(reply, bytes)
        }
        let history = runtime.twins.history
        let queue = link.historyAnswers
        switch request.kind {
        case .oldest:
            let memory = history.checkpoints.first?.timeMs ?? Self.wallMs()
            if let storage {
                storage.oldestCheckpointLater { oldest in send(HistoryAnswer(oldestMs: oldest ?? memory)) }
            } else {
                send(HistoryAnswer(oldestMs: memory))
            }
        case .state:
            let t = request.atMs
            if history.canRebuild(at: t) || storage == nil {
                let state = UncheckedSendable(runtime.pastState(at: t))
                queue.async { send(HistoryAnswer(batch: state.value.map(HTTPIngest.encode))) }
            } else if let storage {
                storage.stateLater(at: t) { r in
                    switch r {
                    case .success(let state): send(HistoryAnswer(batch: state.map(HTTPIngest.encode)))
                    case .failure(let e): send(HistoryAnswer(error: "reading the state at \(t): \(e)"))
                    }
                }
            }
        case .updates:
            let (from, to) = (request.fromMs, max(request.fromMs, request.toMs))
            let answer: @Sendable ([PropertyUpdate]) -> Void = { ups in
                let (kept, through) = Self.head(of: ups, from: from, to: to, max: Self.maxHistoryUpdates)
                send(HistoryAnswer(batch: HTTPIngest.encode(kept), throughMs: through))
            }
            if history.holdsEverything(after: from > 0 ? from - 1 : 0) || storage == nil {
                let ups = UncheckedSendable(history.updates(from: from, to: to))
                queue.async { answer(ups.value) }
            } else if let storage {
                storage.updatesLater(from: from, to: to) { r in
                    switch r {
                    case .success(let ups): answer(ups)
                    case .failure(let e): send(HistoryAnswer(error: "reading updates \(from)..<\(to): \(e)"))
                    }
                }
            }
        }
    }

    /// The first updates of a stretch `from..<to` (oldest first), at most about `max`, cut between two moments so
    /// that the rest starts where these end; and where they end.
    static func head(of ups: [PropertyUpdate], from: UInt64, to: UInt64, max: Int) -> (updates: [PropertyUpdate], throughMs: UInt64) {
        guard ups.count > max else { return (ups, to) }
        let cut = ups[max].timestampMs
        // Everything before the moment of the first one left out; if one moment fills the answer, that moment whole.
        let kept = ups.prefix { $0.timestampMs < cut }
        if kept.isEmpty {
            let whole = ups.prefix { $0.timestampMs == cut }
            return (Array(whole), cut + 1)
        }
        return (Array(kept), cut)
    }
}
